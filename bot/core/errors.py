"""Errors that cross the adapter boundary, in platform-neutral form.

Adapters convert their library's error values into these, in one place each, so that
delivery and the framework decide about retries without knowing any platform.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class SendError(Exception):
    """A post could not be made."""


class TransientSendError(SendError):
    """Worth retrying: network trouble, a 5xx, a rate limit."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying will not help: unknown room, missing permission, rejected content."""


class UserError(Exception):
    """Something a user did wrong; carries an i18n key and arguments for the reply."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def params_in(self, language: str) -> dict[str, object]:
        """The arguments for a reader of `language`: a parameter or flag (anything with
        a `label`) by its name in that language."""
        return {
            k: v.label(language) if isinstance(v, Labelled) else v for k, v in self.params.items()
        }


@runtime_checkable
class Labelled(Protocol):
    def label(self, language: str) -> str: ...


class PlatformUnavailable(Exception):
    """A platform does not answer (yet), at start: connecting is tried again with
    backoff while the rest of the bot runs."""


class StartRefused(Exception):
    """A platform refused the bot (its password or token) or cannot serve it as
    configured: a person must fix the configuration. The bot stops, exit code 2, with
    this one line (which never holds a secret)."""
