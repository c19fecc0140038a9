"""Why a feed cannot be used this time, for the log and for organisers.

Apart from `fetching.py` so that the parsing worker can raise it without importing the
bot's HTTP stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.fetching_types import Translate

if TYPE_CHECKING:
    from bot.fetching import FetchError


class FeedError(Exception):
    """A feed could not be used this time; `str()` says why for the log, `reason()` for
    organisers (an i18n key with its parameters, never bytes of the feed)."""

    def __init__(self, message: str, reason_key: str, /, **params: object) -> None:
        super().__init__(message)
        self.reason_key = reason_key
        self.params = params

    @classmethod
    def of(cls, error: FetchError) -> FeedError:
        return cls(str(error), error.reason_key, **error.params)

    def reason(self, t: Translate, language: str | None = None) -> str:
        return t(self.reason_key, language, **self.params)
