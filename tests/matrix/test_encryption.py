"""Encrypted rooms both ways, undecryptable events, and the device's cross-signature."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import vodozemac
from nio.crypto.attachments import decrypt_attachment
from pydantic import SecretStr

import bot.adapters.matrix as matrix_package
from bot.adapters.matrix.crosssign import canonical_json, signable
from bot.adapters.matrix.memory import Threads
from bot.adapters.matrix.outbound import Outbound
from bot.adapters.matrix.session import MatrixStartError, client_config
from bot.core.errors import PermanentSendError
from bot.core.events import MessageReceived
from bot.core.i18n import Translator
from bot.core.messages import Attachment, OutgoingMessage
from bot.core.refs import RoomRef
from bot.settings import MatrixSettings
from tests.matrix.botrun import Recorder, bot_settings, matrix_adapter, running_bot, wait_until
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot


async def test_encrypted_room_both_ways(synapse: Synapse, users: MakeUser, tmp_path: Path) -> None:
    bot = synapse.register("bot")
    alice = await users("alice", tmp_path / "alice-store")
    room = await alice.create_room(invite=[bot.user_id], encrypted=True)
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])):
        await alice.wait_joined(room, bot.user_id)
        command = await alice.say(room, "!hjälp")
        (reply,) = await alice.wait_for(from_bot(bot.user_id, room))
    # Alice's client decrypted it; on the wire it was encrypted.
    assert reply["content"]["msgtype"] == "m.notice"
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == command
    path = f"/_matrix/client/v3/rooms/{room}/event/{reply['event_id']}"
    raw = synapse.request("GET", path, token=alice.account.access_token)
    assert raw["type"] == "m.room.encrypted"
    assert "body" not in json.dumps(raw["content"])
    # And Alice's command reached the server encrypted too.
    sent = synapse.request(
        "GET", f"/_matrix/client/v3/rooms/{room}/event/{command}", token=alice.account.access_token
    )
    assert sent["type"] == "m.room.encrypted"


async def test_encrypted_media_both_ways(synapse: Synapse, users: MakeUser, tmp_path: Path) -> None:
    bot = synapse.register("bot")
    alice = await users("alice", tmp_path / "alice-store")
    room = await alice.create_room(invite=[bot.user_id], encrypted=True)
    picture = b"GIF89a" + bytes(range(200))
    document = "protokoll åäö".encode() * 50
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])) as app:
        await alice.wait_joined(room, bot.user_id)
        answer, keys = await alice.client.upload(
            io.BytesIO(picture), "image/gif", "a.gif", encrypt=True, filesize=len(picture)
        )
        file = {**keys, "url": answer.content_uri}
        info = {"mimetype": "image/gif", "size": len(picture)}
        await alice.send(room, {"msgtype": "m.image", "body": "a.gif", "file": file, "info": info})
        await wait_until(lambda: any(isinstance(e, MessageReceived) for e in Recorder.events))
        attachment = Attachment("protokoll.txt", "text/plain", data=document)
        message = OutgoingMessage(text="", attachments=(attachment,))
        await app.delivery.send("doc:1", RoomRef("matrix", room), message)
        (posted,) = await alice.wait_for(from_bot(bot.user_id, room))
    (received,) = [e for e in Recorder.events if isinstance(e, MessageReceived)]
    assert received.attachments[0].data == picture
    enc = posted["content"]["file"]
    assert "url" not in posted["content"]
    ciphertext = synapse.download(enc["url"], alice.account.access_token)
    assert ciphertext != document
    plain = decrypt_attachment(ciphertext, enc["key"]["k"], enc["hashes"]["sha256"], enc["iv"])
    assert plain == document


async def test_undecryptable_event_is_logged_and_answered_once(
    synapse: Synapse, users: MakeUser, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = synapse.register("bot")
    alice = await users("alice", tmp_path / "alice-store")
    room = await alice.create_room(invite=[bot.user_id], encrypted=True)
    caplog.set_level(logging.WARNING, logger="bot.adapters.matrix")
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])):
        await alice.wait_joined(room, bot.user_id)
        garbage = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": "a" * 43,
            "device_id": "NOSUCHDEVICE",
            "session_id": "b" * 43,
            "ciphertext": "c" * 120,
        }
        for _ in range(2):
            # Straight to the server: nio would try to encrypt the encrypted content.
            synapse.request(
                "PUT",
                f"/_matrix/client/v3/rooms/{room}/send/m.room.encrypted/{_}x{id(garbage)}",
                garbage,
                token=alice.account.access_token,
            )
        (notice,) = await alice.wait_for(from_bot(bot.user_id, room))
        await alice.say(room, "!help")  # the bot goes on: a later command is answered
        await alice.wait_for(from_bot(bot.user_id, room), count=2)
    catalog = Translator("sv")
    catalog.load_dir(Path(matrix_package.__file__).parent / "locales")
    translated = catalog.t("matrix.undecryptable", "sv")
    assert notice["content"]["body"] == translated
    assert notice["content"]["msgtype"] == "m.notice"
    assert caplog.text.count("cannot decrypt") == 2


async def test_device_is_cross_signed_and_keys_are_reused(
    synapse: Synapse, users: MakeUser, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = synapse.register("bot")
    bob = await users("bob")
    settings = bot_settings(synapse, bot, tmp_path, [])
    async with running_bot(settings) as app:
        device = matrix_adapter(app).health()["device"]
        assert matrix_adapter(app).health()["cross_signing"] == "ok"
    query: dict[str, Any] = {"device_keys": {bot.user_id: []}}
    keys = synapse.request("POST", "/_matrix/client/v3/keys/query", query, bob.account.access_token)
    master = _only_key(keys["master_keys"][bot.user_id])
    ssk_obj = keys["self_signing_keys"][bot.user_id]
    ssk = _only_key(ssk_obj)
    _verify(ssk_obj, bot.user_id, master)  # the self-signing key is signed by the master
    device_keys = keys["device_keys"][bot.user_id][device]
    _verify(device_keys, bot.user_id, ssk)  # and the device by the self-signing key

    caplog.set_level(logging.INFO, logger="bot.adapters.matrix")
    caplog.clear()  # the root logger is at INFO for the log check: only the second run
    async with running_bot(settings) as app:
        assert matrix_adapter(app).health()["cross_signing"] == "ok"
        assert matrix_adapter(app).health()["device"] == device
    assert "created and uploaded cross-signing keys" not in caplog.text
    again = synapse.request(
        "POST", "/_matrix/client/v3/keys/query", query, bob.account.access_token
    )
    assert _only_key(again["master_keys"][bot.user_id]) == master

    # The store lost: a new device, and the bot says so loudly instead of going on as if
    # nothing happened.
    shutil.rmtree(settings.matrix.store_path)  # type: ignore[union-attr]
    caplog.clear()
    async with running_bot(settings) as app:
        assert matrix_adapter(app).health()["cross_signing"] == "keys lost"
        assert matrix_adapter(app).health()["device"] != device
    lost = [r for r in caplog.records if "CROSS-SIGNING KEYS MISSING" in r.getMessage()]
    assert lost and lost[0].levelno == logging.ERROR


def _only_key(obj: dict[str, Any]) -> str:
    (name,) = obj["keys"]
    assert name.startswith("ed25519:")
    return str(obj["keys"][name])


def _verify(obj: dict[str, Any], user_id: str, public: str) -> None:
    signature = obj["signatures"][user_id][f"ed25519:{public}"]
    key = vodozemac.Ed25519PublicKey.from_base64(public)
    key.verify_signature(
        canonical_json(signable(obj)), vodozemac.Ed25519Signature.from_base64(signature)
    )


def test_no_pickle_key_no_start() -> None:
    settings = MatrixSettings(
        homeserver="http://127.0.0.1:1", user_id="@bot:localhost", password=SecretStr("x")
    )
    with pytest.raises(MatrixStartError, match="pickle_key"):
        client_config(settings)


async def test_refuses_plaintext_into_an_encrypted_room_without_store() -> None:
    room = SimpleNamespace(encrypted=True)
    client = SimpleNamespace(rooms={"!r": room}, olm=None, store=None)
    outbound = Outbound(client, Threads())
    with pytest.raises(PermanentSendError, match="encrypted"):
        await outbound.send(RoomRef("matrix", "!r"), OutgoingMessage(text="secret"), "t" * 24)
