"""`samverkan health` through the running bot's HTTP service (when `[http]` is on).

Asks `/ready` (or `/live`) on the configured address and exits 0 only on 200: a bot
whose database cannot be written or whose platform is down is unhealthy, and says why.
A wildcard address (0.0.0.0, ::) is asked on loopback, where a container's check runs.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Final

from bot.health_probe import listen_address

TIMEOUT: Final = 5.0
_WILDCARDS: Final = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def url_of(listen: str, path: str) -> str:
    host, port = listen_address(listen)
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def http_health(listen: str, *, live_only: bool = False, timeout: float = TIMEOUT) -> int:
    url = url_of(listen, "/live" if live_only else "/ready")
    # Loopback or a private address of our own: no proxy from the environment applies.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"unhealthy: no answer from {url} ({reason})", file=sys.stderr)
        return 1
    try:
        answer = json.loads(body)
        reason = str(answer.get("reason") or f"HTTP {status}")
        role = str(answer.get("role") or "")
    except (ValueError, AttributeError):
        reason, role = f"HTTP {status}", ""
    # `role`: active, or standby while another instance holds the database.
    said = f" ({''.join(ch for ch in role if ch.isalnum())[:20]})" if role else ""
    if status == 200:
        print(f"healthy{said}: {url} answered 200")
        return 0
    print(f"unhealthy{said}: {reason}", file=sys.stderr)
    return 1
