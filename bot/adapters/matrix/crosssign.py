"""Cross-signing of the bot's own device, which nio has no API for.

Modern clients hide or refuse devices their owner has not cross-signed. On first start
the bot creates a master and a self-signing key, uploads them through
`/keys/device_signing/upload` (user-interactive auth with its password), signs its
device key with the self-signing key (`/keys/signatures/upload`), and keeps the private
keys in the store, pickled with a key derived from the pickle key. Later starts reuse
them. If the server has a master key the store does not, the store was lost: the bot
says so loudly instead of silently becoming a new, untrusted identity.

The ed25519 key pairs are vodozemac accounts used only for their signing key: the one
ed25519 implementation already in the dependencies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Final

import vodozemac
from nio import AsyncClient

from bot.settings import MatrixSettings

from .outbound import api

log = logging.getLogger(__name__)

KEYS_FILE: Final = "cross_signing.json"
_QUERY: Final = "/_matrix/client/v3/keys/query"
_DEVICE_SIGNING: Final = "/_matrix/client/v3/keys/device_signing/upload"
_SIGNATURES: Final = "/_matrix/client/v3/keys/signatures/upload"


class CrossSigningError(RuntimeError):
    pass


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(
        "utf-8"
    )


def signable(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def sign(obj: dict[str, Any], user_id: str, key: vodozemac.Account) -> dict[str, Any]:
    """`obj` with our signature added under `signatures`, per the spec's signing rules."""
    public = key.ed25519_key.to_base64()
    signature = key.sign(canonical_json(signable(obj))).to_base64()
    signed = dict(obj)
    sigs = {u: dict(s) for u, s in (obj.get("signatures") or {}).items()}
    sigs.setdefault(user_id, {})[f"ed25519:{public}"] = signature
    signed["signatures"] = sigs
    return signed


def key_object(user_id: str, usage: str, key: vodozemac.Account) -> dict[str, Any]:
    public = key.ed25519_key.to_base64()
    return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}


class CrossSigning:
    def __init__(self, client: AsyncClient, settings: MatrixSettings, new_device: bool) -> None:
        self._client = client
        self._settings = settings
        self._new_device = new_device
        self._path = Path(settings.store_path) / KEYS_FILE
        assert settings.pickle_key is not None
        self._key = hashlib.sha256(
            b"samverkan-cross-signing\0" + settings.pickle_key.get_secret_value().encode()
        ).digest()
        self.status = "not checked"
        self.master: vodozemac.Account | None = None
        self.self_signing: vodozemac.Account | None = None

    @property
    def user_id(self) -> str:
        return str(self._client.user_id)

    def _load(self) -> bool:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return False
        try:
            self.master = vodozemac.Account.from_pickle(raw["master"], self._key)
            self.self_signing = vodozemac.Account.from_pickle(raw["self_signing"], self._key)
        except (KeyError, ValueError, TypeError, vodozemac.PickleException) as exc:
            raise CrossSigningError(
                f"{self._path} cannot be read with this pickle key: {exc}"
            ) from None
        return True

    def _save(self) -> None:
        assert self.master is not None and self.self_signing is not None
        data = {
            "user_id": self.user_id,
            "master": self.master.pickle(self._key),
            "self_signing": self.self_signing.pickle(self._key),
        }
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, self._path)

    async def _query(self) -> dict[str, Any]:
        status, answer = await api(
            self._client, "POST", _QUERY, {"device_keys": {self.user_id: []}}
        )
        if status != 200:
            raise CrossSigningError(f"keys/query failed: {status} {answer.get('errcode')}")
        return answer

    async def ensure(self) -> None:
        """Have the device cross-signed, creating the keys on the very first start."""
        answer = await self._query()
        server_master = _public(answer.get("master_keys", {}).get(self.user_id))
        have = self._load()
        if not have:
            if server_master is not None:
                self.status = "keys lost"
                log.error(
                    "CROSS-SIGNING KEYS MISSING: %s has a master key on the server but %s "
                    "holds no private keys: the bot's store was lost or replaced. Clients "
                    "will show device %s as unverified. Restore the store from a backup, or "
                    "reset cross-signing for this account deliberately.",
                    self.user_id, self._settings.store_path, self._client.device_id,
                )  # fmt: skip
                return
            if self._settings.password is None:
                self.status = "needs password"
                log.warning(
                    "cross-signing needs matrix.password (user-interactive auth); "
                    "device %s stays unverified",
                    self._client.device_id,
                )
                return
            self.master, self.self_signing = vodozemac.Account(), vodozemac.Account()
            await self._upload_keys()
            # Saved only once the server has them: a failed upload leaves nothing behind.
            self._save()
            log.info("created and uploaded cross-signing keys for %s", self.user_id)
            answer = await self._query()
        else:
            assert self.master is not None
            mine = self.master.ed25519_key.to_base64()
            if server_master != mine:
                self.status = "master key mismatch"
                log.error(
                    "CROSS-SIGNING MISMATCH: the server's master key for %s is not the one in "
                    "%s; someone reset cross-signing. Device %s is not re-signed.",
                    self.user_id, self._path, self._client.device_id,
                )  # fmt: skip
                return
        await self._sign_device(answer)
        self.status = "ok"

    async def _upload_keys(self) -> None:
        assert self.master is not None and self.self_signing is not None
        master = key_object(self.user_id, "master", self.master)
        self_signing = sign(
            key_object(self.user_id, "self_signing", self.self_signing), self.user_id, self.master
        )
        body: dict[str, Any] = {"master_key": master, "self_signing_key": self_signing}
        status, answer = await api(self._client, "POST", _DEVICE_SIGNING, body)
        if status == 401 and "session" in answer:
            assert self._settings.password is not None
            body["auth"] = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self.user_id},
                "password": self._settings.password.get_secret_value(),
                "session": answer["session"],
            }
            status, answer = await api(self._client, "POST", _DEVICE_SIGNING, body)
        if status != 200:
            raise CrossSigningError(
                f"uploading cross-signing keys failed: {status} {answer.get('errcode')}"
            )

    async def _sign_device(self, answer: dict[str, Any]) -> None:
        assert self.self_signing is not None
        device_id = str(self._client.device_id)
        device = answer.get("device_keys", {}).get(self.user_id, {}).get(device_id)
        if not isinstance(device, dict):
            raise CrossSigningError(f"device {device_id} has no keys on the server yet")
        ssk = f"ed25519:{self.self_signing.ed25519_key.to_base64()}"
        if ssk in (device.get("signatures") or {}).get(self.user_id, {}):
            return
        signed = sign(signable(device) | {"signatures": {}}, self.user_id, self.self_signing)
        body = {self.user_id: {device_id: signed}}
        status, result = await api(self._client, "POST", _SIGNATURES, body)
        failures = result.get("failures") or {}
        if status != 200 or failures:
            raise CrossSigningError(f"signature upload failed: {status} {failures}")
        log.info("cross-signed device %s", device_id)


def _public(key: Any) -> str | None:
    if not isinstance(key, dict):
        return None
    for name in key.get("keys") or {}:
        if isinstance(name, str) and name.startswith("ed25519:"):
            return name.split(":", 1)[1]
    return None
