"""From a feed's bytes to entries: RSS 0.9x/1.0/2.0 and Atom by feedparser, JSON Feed
by json, each bounded.

feedparser gets bytes (never a URL: its own fetch has no timeout and no size cap) and
only after defusedxml has read the XML once with entity declarations refused, so a
billion-laughs document is turned away before any parser expands it. HTML served where
a feed should be gets its own reason, as does a document that is neither. Entries past
`max_entries` are left unread; entries with neither title nor content are left out.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import xml.sax
import xml.sax.handler
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import defusedxml.sax
import feedparser
from defusedxml.common import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from bot.fetching import FetchError
from plugins.updates import text
from plugins.updates.model import Entry, ParsedFeed

log = logging.getLogger(__name__)

GUID_LIMIT: Final = 500
_JSON_VERSION: Final = "https://jsonfeed.org/version/"
_HEAD: Final = 2048
_FEED_ROOTS = re.compile(rb"<(rss|feed|rdf:rdf|channel)[\s>]", re.IGNORECASE)
_HTML_ROOTS = re.compile(rb"<(!doctype\s+html|html|body|head)[\s>]", re.IGNORECASE)
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)


def unusable(reason: str, message: str) -> FetchError:
    """Fetched fine, but not a feed we can read: the reason is ours (`updates.reason.`)."""
    return FetchError("bad_content", message, f"updates.reason.{reason}")


def parse_feed(
    body: bytes,
    *,
    content_type: str | None,
    url: str,
    max_entries: int,
    summary_lines: int,
    summary_chars: int,
) -> ParsedFeed:
    """Parse `body`; raises FetchError (kind bad_content) when it is no usable feed."""
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise unusable("empty", "the document is empty")
    kind = (content_type or "").split(";")[0].strip().lower()
    shape = _Shape(summary_lines, summary_chars, max_entries)
    if stripped.startswith((b"{", b"[")) or kind.endswith("json"):
        return _json_feed(stripped, shape)
    head = stripped[:_HEAD]
    if _HTML_ROOTS.search(head) and not _FEED_ROOTS.search(head):
        raise unusable("html", "an HTML page, not a feed")
    _screen(stripped)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # A stream, never bytes or a string: feedparser would take a string for a URL or a
    # path and open it.
    # Its own sanitiser off: every piece of HTML we use goes through nh3 (`text`), and
    # feedparser's pure-Python one is a third of its time on a big feed.
    parsed = feedparser.parse(io.BytesIO(stripped), response_headers=headers, sanitize_html=False)
    version = str(parsed.get("version") or "")
    if not version:
        if kind == "text/html" or _HTML_ROOTS.search(head):
            raise unusable("html", "an HTML page, not a feed")
        raise unusable("not_feed", "neither RSS, Atom nor JSON Feed")
    feed = parsed.get("feed", {})
    title = text.plain_title(feed.get("title"), is_html=_is_html(feed.get("title_detail")))
    raw_entries = parsed.get("entries", [])
    entries: list[Entry] = []
    skipped = 0
    for raw in raw_entries[:max_entries]:
        entry = _xml_entry(raw, shape)
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    return ParsedFeed(
        kind=version,
        title=title,
        link=text.safe_url(feed.get("link")),
        entries=entries,
        dropped=max(0, len(raw_entries) - max_entries),
        unusable=skipped,
    )


class _Shape:
    def __init__(self, lines: int, chars: int, max_entries: int) -> None:
        self.lines = lines
        self.chars = chars
        self.max_entries = max_entries


def _screen(body: bytes) -> None:
    """Read the XML once through defusedxml: entity declarations are refused before any
    parser expands them. A document that is not well-formed goes on to feedparser's
    lenient parser (real feeds often are not), unless it declares entities."""
    try:
        defusedxml.sax.parseString(
            body,
            xml.sax.handler.ContentHandler(),
            forbid_dtd=False,
            forbid_entities=True,
            forbid_external=True,
        )
    except (EntitiesForbidden, DTDForbidden):
        raise unusable("entities", "the XML declares entities (refused)") from None
    except ExternalReferenceForbidden:
        # An external DTD (RSS 0.91 names Netscape's): never fetched, by anyone. The
        # internal subset, where entities would be, has been read by then.
        return
    except xml.sax.SAXParseException as exc:
        log.debug("feed XML is not well-formed (%s); trying the lenient parser", exc)
        prolog = body.split(b">", 64)
        if _ENTITY_DECL.search(b">".join(prolog[:64])):
            raise unusable("entities", "the XML declares entities (refused)") from None


def _is_html(detail: Any) -> bool:
    return isinstance(detail, Mapping) and "html" in str(detail.get("type", ""))


def _when(value: Any) -> datetime | None:
    if isinstance(value, time.struct_time):
        try:
            return datetime(*value[:6], tzinfo=UTC)
        except (ValueError, OverflowError):
            return None
    return None


def _guid(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    guid = str(value).strip()
    return guid[:GUID_LIMIT] or None


def _xml_entry(raw: dict[str, Any], shape: _Shape) -> Entry | None:
    title = text.plain_title(raw.get("title"), is_html=_is_html(raw.get("title_detail")))
    detail = dict.get(raw, "summary_detail")
    body = dict.get(raw, "summary")
    contents = [c for c in dict.get(raw, "content") or [] if isinstance(c, Mapping)]
    if contents and (not body or detail is None):
        # No summary of its own (feedparser then mirrors the content into `summary`,
        # without saying its type): the content, with its type.
        detail = contents[0]
        body = body or detail.get("value")
    # feedparser leaves text/plain content as it came: it is text, never markup.
    is_html = detail is None or _is_html(detail)
    summary = text.summary(str(body or ""), is_html=is_html, lines=shape.lines, chars=shape.chars)
    link = text.safe_url(raw.get("link"))
    if not title and not summary:
        return None
    # dict.get: feedparser's own get maps a missing key to another, with a warning.
    published = _when(dict.get(raw, "published_parsed")) or _when(dict.get(raw, "updated_parsed"))
    return Entry(_guid(raw.get("id")), link, title, summary, published)


# -- JSON Feed (https://jsonfeed.org/version/1.1) --------------------------------------


def _json_feed(body: bytes, shape: _Shape) -> ParsedFeed:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise unusable("bad_json", "not valid JSON") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(_JSON_VERSION):
        raise unusable("not_feed", "JSON, but not a JSON Feed")
    items = data.get("items")
    if not isinstance(items, list):
        raise unusable("not_feed", "a JSON Feed without items")
    entries: list[Entry] = []
    skipped = 0
    for item in items[: shape.max_entries]:
        entry = _json_entry(item, shape) if isinstance(item, dict) else None
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    version = str(data["version"]).removeprefix(_JSON_VERSION)
    title = data.get("title")
    return ParsedFeed(
        kind=f"json{version}",
        title=text.plain_title(title if isinstance(title, str) else "", is_html=False),
        link=text.safe_url(_str(data.get("home_page_url"))),
        entries=entries,
        dropped=max(0, len(items) - shape.max_entries),
        unusable=skipped,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _json_entry(item: Mapping[str, Any], shape: _Shape) -> Entry | None:
    raw_id = item.get("id")
    guid = _guid(raw_id) if isinstance(raw_id, str | int | float) else None
    title = text.plain_title(_str(item.get("title")), is_html=False)
    lines, chars = shape.lines, shape.chars
    # The spec's `summary` is plain text; else the content, HTML before plain text.
    if given := _str(item.get("summary")):
        summary = text.summary(given, is_html=False, lines=lines, chars=chars)
    elif html := _str(item.get("content_html")):
        summary = text.summary(html, is_html=True, lines=lines, chars=chars)
    else:
        plain = _str(item.get("content_text"))
        summary = text.summary(plain, is_html=False, lines=lines, chars=chars)
    if not title and not summary:
        return None
    link = text.safe_url(_str(item.get("url")) or _str(item.get("external_url")))
    published = _iso(item.get("date_published")) or _iso(item.get("date_modified"))
    return Entry(guid, link, title, summary, published)
