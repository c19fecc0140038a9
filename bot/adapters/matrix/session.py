"""Login and store: the nio client, its encryption store, and the persisted device.

After a password login the access token and device id are kept in `store_path`, so a
restart is the same device with the same encryption keys. The encryption store lives
there too, protected by the pickle key from the settings, never nio's public default.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiResponse
from nio.store import DefaultStore

from bot.core.errors import PlatformUnavailable, StartRefused
from bot.settings import MatrixSettings

from . import schemas

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
DEVICE_NAME = "Samverkan"


class MatrixStartError(StartRefused):
    """The adapter cannot start as configured: refused credentials, no store."""


# What a homeserver answers when it refuses who we say we are (not when it is unwell).
_REFUSALS = frozenset(
    {"M_FORBIDDEN", "M_UNKNOWN_TOKEN", "M_USER_DEACTIVATED", "M_INVALID_USERNAME"}
)


def refused(answer: Any) -> bool:
    """Whether an error answer refuses our credentials; otherwise the server is unwell
    (a 5xx, a rate limit, a proxy with no homeserver behind it) and we try again."""
    if getattr(answer, "status_code", None) in _REFUSALS:
        return True
    status = getattr(getattr(answer, "transport_response", None), "status", None)
    return status in (401, 403)


def _unwell(what: str, answer: Any) -> PlatformUnavailable:
    return PlatformUnavailable(f"{what}: {answer}")


@dataclass(frozen=True)
class Credentials:
    user_id: str
    device_id: str
    access_token: str


def load_credentials(store: Path) -> Credentials | None:
    path = store / CREDENTIALS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(raw["user_id"], raw["device_id"], raw["access_token"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MatrixStartError(f"{path} is unreadable ({exc}); fix or remove it") from None


def save_credentials(store: Path, creds: Credentials) -> None:
    path = store / CREDENTIALS_FILE
    tmp = path.with_suffix(".tmp")
    # The token is a secret: readable by the bot's user only, written atomically.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(creds.__dict__, fh)
    os.replace(tmp, path)


class LeanStore(DefaultStore):  # type: ignore[misc]
    """nio's store, minus a database transaction on every sync.

    nio saves the set of rooms that became encrypted after each sync, even when the set
    is empty: an atomic SQLite transaction each time, about half of the CPU a sync costs.
    """

    def save_encrypted_rooms(self, rooms: Any) -> None:
        if rooms:
            super().save_encrypted_rooms(rooms)


def client_config(settings: MatrixSettings) -> AsyncClientConfig:
    if settings.pickle_key is None:
        raise MatrixStartError(
            "matrix.pickle_key is not set: it protects the encryption store "
            "(set SAMVERKAN_MATRIX__PICKLE_KEY)"
        )
    return AsyncClientConfig(
        # Rate limits and network errors go back to Delivery, which retries from its
        # persisted outbox; nio's own retry loops would hide them and block the lane.
        max_limit_exceeded=0,
        max_timeouts=0,
        request_timeout=60,
        encryption_enabled=True,
        store=LeanStore,
        store_sync_tokens=False,
        pickle_key=settings.pickle_key.get_secret_value(),
    )


async def open_client(settings: MatrixSettings) -> tuple[AsyncClient, Credentials, bool]:
    """A logged-in client with its store loaded; the flag says the device is new."""
    quiet = logging.getLogger("nio.responses")
    if quiet.level == logging.NOTSET:
        # nio warns that each error answer "fails validation" as a success answer: noise
        # beside the one line we make of the error itself.
        quiet.setLevel(logging.ERROR)
    schemas.install()  # nio's checks of each answer, compiled
    store = Path(settings.store_path)
    store.mkdir(parents=True, exist_ok=True, mode=0o700)  # noqa: ASYNC240 (once, at start)
    client = AsyncClient(
        settings.homeserver,
        settings.user_id,
        store_path=str(store),
        config=client_config(settings),
    )
    try:
        creds, new_device = await _login(client, settings, store)
    except BaseException:
        await client.close()
        raise
    if client.store is None or client.olm is None:
        await client.close()
        raise MatrixStartError(f"the encryption store in {store} could not be loaded")
    return client, creds, new_device


async def _login(
    client: AsyncClient, settings: MatrixSettings, store: Path
) -> tuple[Credentials, bool]:
    if settings.access_token is not None:
        token = settings.access_token.get_secret_value()
        client.access_token = token
        who = await client.whoami()
        if not isinstance(who, WhoamiResponse):
            if not refused(who):
                raise _unwell("checking the access token failed", who)
            raise MatrixStartError(f"the homeserver refused matrix.access_token: {who}")
        device_id = settings.device_id or who.device_id
        if not device_id:
            raise MatrixStartError("the access token has no device; set matrix.device_id")
        if who.user_id != settings.user_id:
            raise MatrixStartError(f"the access token belongs to {who.user_id}")
        client.restore_login(settings.user_id, device_id, token)
        creds = Credentials(settings.user_id, device_id, token)
        known = load_credentials(store)
        save_credentials(store, creds)
        return creds, known is None or known.device_id != device_id
    saved = load_credentials(store)
    if saved is not None and saved.user_id == settings.user_id:
        client.restore_login(saved.user_id, saved.device_id, saved.access_token)
        who = await client.whoami()
        if isinstance(who, WhoamiResponse):
            log.info("reusing Matrix device %s", saved.device_id)
            return saved, False
        if not refused(who):
            raise _unwell("checking the saved access token failed", who)
        log.warning("the saved access token was refused (%s); logging in again", who)
        client.access_token = ""
    assert settings.password is not None  # the settings require one of the two
    # Logging in again with the saved device id keeps the same device and its keys.
    if saved is not None and saved.user_id == settings.user_id:
        client.device_id = saved.device_id
    answer: Any = await client.login(settings.password.get_secret_value(), DEVICE_NAME)
    if not isinstance(answer, LoginResponse):
        if not refused(answer):
            raise _unwell(f"logging in as {settings.user_id} failed", answer)
        raise MatrixStartError(
            f"the homeserver refused the login as {settings.user_id} "
            f"(check matrix.password): {answer}"
        )
    creds = Credentials(answer.user_id, answer.device_id, answer.access_token)
    save_credentials(store, creds)
    new = saved is None or saved.device_id != creds.device_id
    log.info(
        "logged in to Matrix as %s, device %s%s",
        creds.user_id,
        creds.device_id,
        " (new)" if new else "",
    )
    return creds, new
