"""A real Synapse for the Matrix tests: config, start on port 0, admin registration, stop.

Synapse lives in its own virtualenv (`make test` builds `.venv-synapse`); nothing is
installed at test time. `SAMVERKAN_SYNAPSE_PYTHON` names another interpreter that has
Synapse. The server binds 127.0.0.1 only, keeps its database in SQLite under a temporary
folder, logs to a file (an undrained pipe would block it) and dies with its parent.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import hmac
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVER_NAME = "localhost"
_PORT_LINE = re.compile(r"Synapse now listening on TCP port (\d+)")
_PR_SET_PDEATHSIG = 1
_names = itertools.count(1)


class SynapseMissing(RuntimeError):
    pass


def synapse_python() -> Path:
    override = os.environ.get("SAMVERKAN_SYNAPSE_PYTHON")
    path = Path(override) if override else REPO / ".venv-synapse" / "bin" / "python"
    if not path.exists():
        raise SynapseMissing(
            f"no Synapse interpreter at {path}: run `make test` (it builds .venv-synapse) "
            "or set SAMVERKAN_SYNAPSE_PYTHON"
        )
    return path


def _die_with_parent() -> None:
    # Linux only: a killed test run must not leave a homeserver behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_LIMIT = {"per_second": 100000, "burst_count": 100000}


def _config(root: Path, secret: str) -> dict[str, Any]:
    return {
        "server_name": SERVER_NAME,
        "public_baseurl": "http://127.0.0.1/",
        "pid_file": str(root / "homeserver.pid"),
        "listeners": [
            {
                "port": 0,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(root / "homeserver.db")}},
        "log_config": str(root / "log.yaml"),
        "media_store_path": str(root / "media"),
        "signing_key_path": str(root / "signing.key"),
        "registration_shared_secret": secret,
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "bcrypt_rounds": 4,
        "enable_registration": False,
        "url_preview_enabled": False,
        "presence": {"enabled": False},
        "rc_message": _LIMIT,
        "rc_registration": _LIMIT,
        "rc_registration_token_validity": _LIMIT,
        "rc_login": {"address": _LIMIT, "account": _LIMIT, "failed_attempts": _LIMIT},
        "rc_admin_redaction": _LIMIT,
        "rc_joins": {"local": _LIMIT, "remote": _LIMIT},
        "rc_joins_per_room": _LIMIT,
        "rc_3pid_validation": _LIMIT,
        "rc_invites": {"per_room": _LIMIT, "per_user": _LIMIT, "per_issuer": _LIMIT},
        "rc_third_party_invite": _LIMIT,
        "rc_media_create": _LIMIT,
        "rc_federation": {"window_size": 1000, "sleep_limit": 1000, "reject_limit": 1000},
        "rc_presence": {"per_user": _LIMIT},
        "rc_delayed_event_mgmt": _LIMIT,
        "rc_reports": _LIMIT,
        "rc_room_creation": _LIMIT,
        "rc_key_requests": _LIMIT,
    }


_LOG_CONFIG = """\
version: 1
formatters:
  plain:
    format: '%(asctime)s %(name)s %(levelname)s %(message)s'
handlers:
  file:
    class: logging.FileHandler
    filename: {path}
    formatter: plain
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"""


@dataclass(frozen=True)
class Account:
    user_id: str
    password: str
    access_token: str
    device_id: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


class Synapse:
    """One running homeserver. `start()` returns once it answers on its port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secret = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._admin: Account | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "homeserver.log"

    def start(self, timeout: float = 60.0) -> None:
        python = synapse_python()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "media").mkdir(exist_ok=True)
        seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        (self.root / "signing.key").write_text(f"ed25519 a_test {seed}\n")
        (self.root / "log.yaml").write_text(_LOG_CONFIG.format(path=self.log_path))
        # JSON is YAML: no yaml dependency needed here.
        config = self.root / "homeserver.yaml"
        config.write_text(json.dumps(_config(self.root, self.secret), indent=1))
        self.process = subprocess.Popen(
            [str(python), "-m", "synapse.app.homeserver", "--config-path", str(config)],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=(self.root / "stdout.log").open("wb"),
            stderr=subprocess.STDOUT,
            # Only a prctl call between fork and exec: safe enough despite threads.
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited early; see {self.root / 'stdout.log'}")
            if self.log_path.exists():
                found = _PORT_LINE.search(self.log_path.read_text(errors="replace"))
                if found:
                    self.port = int(found[1])
                    break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"Synapse did not start in {timeout}s; see {self.log_path}")
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/_matrix/client/versions")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("Synapse does not answer")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    # -- HTTP ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                answer: dict[str, Any] = json.loads(resp.read() or b"{}")
                return answer
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path}: {err.code} {err.read()[:300]!r}") from None

    def download(self, mxc: str, token: str) -> bytes:
        server, _, media_id = mxc.removeprefix("mxc://").partition("/")
        req = urllib.request.Request(
            f"{self.url}/_matrix/client/v1/media/download/{server}/{media_id}"
        )
        req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            data: bytes = resp.read()
            return data

    def register(self, prefix: str = "user", *, admin: bool = False) -> Account:
        """A new user with a unique name, through the shared-secret admin API."""
        localpart = f"{prefix}{next(_names)}_{secrets.token_hex(2)}"
        password = secrets.token_urlsafe(12)
        nonce = self.request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode()]))
        mac.update(b"\x00admin" if admin else b"\x00notadmin")
        answer = self.request(
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        return Account(answer["user_id"], password, answer["access_token"], answer["device_id"])

    @property
    def admin(self) -> Account:
        if self._admin is None:
            self._admin = self.register("admin", admin=True)
        return self._admin

    def override_ratelimit(self, user_id: str, per_second: int, burst: int) -> None:
        """Give one user a low message rate limit (0, 0 would mean none at all)."""
        self.request(
            "POST",
            f"/_synapse/admin/v1/users/{user_id}/override_ratelimit",
            {"messages_per_second": per_second, "burst_count": burst},
            token=self.admin.access_token,
        )
