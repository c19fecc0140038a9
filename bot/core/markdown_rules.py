"""markdown-it rules for Discord's dialect, where it differs from CommonMark.

Blocks: quotes are `> ` lines or `>>> ` to the end, never nested; code fences need their
closing backticks (which may end a line early) and take a language only before a line
break; headings are `#` to `###`; `-# ` is small print; lists are `-`, `*` and `1.`.
Inline: `**`, `__`, `~~` and `||` pair up also around spaces, `__` is underline, runs of
three backticks are code blocks wherever they stand, masked links take http(s) only,
bare URLs are links, `<@id>`, `<#id>`, `<@&id>`, `<:name:id>` and `<t:...>` are
entities.

Every rule is linear: what could be searched again and again (the closing fence, the
bracket that closes a `[`, the end of a URL) is found once per text and looked up.
"""

from __future__ import annotations

import bisect
import re
from typing import Any, Final

from markdown_it.rules_block import StateBlock
from markdown_it.rules_block.list import list_block
from markdown_it.rules_inline import StateInline, backtick
from markdown_it.rules_inline.state_inline import Delimiter

from bot.core.urls import is_web_url, trim_url

LANGUAGE: Final = re.compile(r"[A-Za-z0-9_+\-.#]{1,40}")
_HEADING: Final = re.compile(r"(#{1,3}) +(?=\S)")
_SMALL: Final = re.compile(r"-# +(?=\S)")
_LIST_MARK: Final = re.compile(r" *(?:[-*]|\d{1,9}\.)(?: |$)")
_ENTITY: Final = re.compile(
    r"<(?:(?P<user>@!?)(?P<uid>\d{1,20})|@&(?P<role>\d{1,20})|#(?P<channel>\d{1,20})"
    r"|(?P<anim>a?):(?P<emoji>\w{1,32}):(?P<eid>\d{1,20})"
    r"|t:(?P<ts>-?\d{1,13})(?::[tTdDfFRs])?"
    r"|/(?P<command>[\w\- ]{1,64}):\d{1,20})>"
)
_TERMINATORS: Final = re.compile(r"[\n!#$%&*+\-:<=>@\[\\\]^_`{}~|]")
_URL_END: Final = re.compile(r"[\s<]")
_DEST_STOP: Final = re.compile(r"[\s()<>]")
_BRACKETS: Final = re.compile(r"\\.|[\[\]]", re.DOTALL)


def _memo(state: StateInline | StateBlock, name: str, build: Any) -> Any:
    """A per-text table, built once: the states of one parse share `env`."""
    key = f"_discord_{name}"
    found = state.env.get(key)
    if found is not None and found[0] is state.src:
        return found[1]
    table = build(state.src)
    state.env[key] = (state.src, table)
    return table


def _positions(pattern: re.Pattern[str]) -> Any:
    return lambda src: [m.start() for m in pattern.finditer(src)]


def _next(table: list[int], pos: int) -> int:
    i = bisect.bisect_left(table, pos)
    return table[i] if i < len(table) else -1


# -- blocks ------------------------------------------------------------------------------


def _line(state: StateBlock, line: int) -> str:
    return state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]


def _quote_prefix(state: StateBlock, line: int) -> int:
    """How many characters of `line` mark it as a quote line: 0 for none."""
    if state.tShift[line] != 0:
        return 0
    text = state.src[state.bMarks[line] : state.eMarks[line]]
    if text in {">", ">>>"}:
        return len(text)
    if text.startswith(">>> "):
        return 4
    return 2 if text.startswith("> ") else 0


def quote(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    if state.parentType == "blockquote":
        return False  # Discord nests no quote: `> > x` reads "> x" in a quote
    first = _quote_prefix(state, start)
    if not first:
        return False
    if silent:
        return True  # it ends a paragraph or a list
    if state.parentType == "list" or state.blkIndent != 0:
        return False
    head = state.src[state.bMarks[start] : state.eMarks[start]]
    rest_of_message = head.startswith(">>>")
    last = start + 1
    prefixes = {start: first}
    while last < end and (rest_of_message or _quote_prefix(state, last)):
        prefixes[last] = 0 if rest_of_message else _quote_prefix(state, last)
        last += 1
    saved = {n: (state.bMarks[n], state.tShift[n], state.sCount[n]) for n in prefixes}
    for n, width in prefixes.items():
        begin = state.bMarks[n] + width
        spaces = len(state.src[begin : state.eMarks[n]]) - len(
            state.src[begin : state.eMarks[n]].lstrip(" ")
        )
        state.bMarks[n], state.tShift[n], state.sCount[n] = begin, spaces, spaces
    old_parent, old_max = state.parentType, state.lineMax
    state.parentType = "blockquote"
    state.lineMax = last
    token = state.push("blockquote_open", "blockquote", 1)
    token.map = [start, last]
    state.md.block.tokenize(state, start, last)
    state.push("blockquote_close", "blockquote", -1)
    state.parentType, state.lineMax = old_parent, old_max
    for n, (b, t, s) in saved.items():
        state.bMarks[n], state.tShift[n], state.sCount[n] = b, t, s
    state.line = last
    return True


def fence(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    begin = state.bMarks[start] + state.tShift[start]
    src = state.src
    if not src.startswith("```", begin):
        return False
    limit = state.eMarks[end - 1]
    close = _next(_memo(state, "fences", _positions(re.compile("(?=```)"))), begin + 3)
    if close < 0 or close + 3 > limit:
        return False  # unclosed: Discord shows the backticks
    line = start
    while line < end - 1 and state.eMarks[line] < close + 3:
        line += 1
    if line == start:
        body = src[begin + 3 : close]
    else:  # the lines as this block sees them (inside a quote: without its marks)
        middle = state.getLines(start + 1, line, state.sCount[start], False)
        last = state.bMarks[line] + min(state.tShift[line], state.sCount[start])
        body = src[begin + 3 : state.eMarks[start]] + "\n" + middle + src[last:close]
    code, language = split_fence(body)
    if not code:
        return False
    if silent:
        return True
    token = state.push("fence", "code", 0)
    token.content, token.info, token.map = code, language, [start, line + 1]
    after = src[close + 3 : state.eMarks[line]].strip()
    if after:  # text after the closing backticks, on their line
        state.push("paragraph_open", "p", 1)
        inline = state.push("inline", "", 0)
        inline.content, inline.children = after, []
        state.push("paragraph_close", "p", -1)
    state.line = line + 1
    return True


def split_fence(body: str) -> tuple[str, str]:
    """A fence's (code, language), as Discord reads them: a language only on the first
    line and followed by code; line breaks at either end dropped."""
    head, newline, rest = body.partition("\n")
    if newline and LANGUAGE.fullmatch(head) and rest.strip("\n"):
        return rest.strip("\n"), head.lower()
    return body.strip("\n"), ""


def heading(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    text = _line(state, start)
    match = _HEADING.match(text)
    if state.sCount[start] - state.blkIndent >= 4 or match is None:
        return False
    if silent:
        return True
    level = len(match[1])
    state.push("heading_open", f"h{level}", 1).map = [start, start + 1]
    inline = state.push("inline", "", 0)
    inline.content, inline.children, inline.map = text[match.end() :].strip(), [], [start, start]
    state.push("heading_close", f"h{level}", -1)
    state.line = start + 1
    return True


def small(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    text = _line(state, start)
    match = _SMALL.match(text)
    if state.sCount[start] - state.blkIndent >= 4 or match is None:
        return False
    if silent:
        return True
    state.push("small_open", "sub", 1).map = [start, start + 1]
    inline = state.push("inline", "", 0)
    inline.content, inline.children, inline.map = text[match.end() :].strip(), [], [start, start]
    state.push("small_close", "sub", -1)
    state.line = start + 1
    return True


def discord_list(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """CommonMark's lists, with Discord's markers only (`+` and `1)` are text)."""
    if not _LIST_MARK.match(state.src, state.bMarks[start] + state.tShift[start]):
        return False
    return bool(list_block(state, start, end, silent))


# -- inline ------------------------------------------------------------------------------


def text(state: StateInline, silent: bool) -> bool:
    """markdown-it's text rule, stopping at `|` as well (spoilers)."""
    found = _TERMINATORS.search(state.src, state.pos, state.posMax)
    pos = found.start() if found else state.posMax
    if pos == state.pos:
        return False
    if not silent:
        state.pending += state.src[state.pos : pos]
    state.pos = pos
    return True


def _is_space(ch: str) -> bool:
    return not ch or ch.isspace()


def emphasis(state: StateInline, silent: bool) -> bool:
    """`*` and `_` as delimiters, flanking as Discord has it: a double marker pairs
    across spaces, a single `*` needs a non-space inside, a single `_` a word end
    outside."""
    marker = state.src[state.pos]
    if silent or marker not in "*_":
        return False
    start = state.pos
    end = start
    while end < state.posMax and state.src[end] == marker:
        end += 1
    length = end - start
    before = state.src[start - 1] if start > 0 else ""
    after = state.src[end] if end < state.posMax else ""
    if length >= 2:
        can_open, can_close = bool(after), bool(before)
    elif marker == "*":
        can_open, can_close = not _is_space(after), not _is_space(before)
    else:
        can_open = not _is_space(after) and not (before.isalnum() or before == "_")
        can_close = not _is_space(before) and not (after.isalnum() or after == "_")
    for _ in range(length):
        token = state.push("text", "", 0)
        token.content = marker
        state.delimiters.append(
            Delimiter(ord(marker), length, len(state.tokens) - 1, -1, can_open, can_close)
        )
    state.pos = end
    return True


def pairs(state: StateInline, silent: bool) -> bool:
    """`~~` and `||` as delimiters that pair across spaces and lines (Discord's)."""
    marker = state.src[state.pos]
    if silent or marker not in "~|":
        return False
    start = state.pos
    end = start
    while end < state.posMax and state.src[end] == marker:
        end += 1
    length = end - start
    if length < 2:
        return False
    if length % 2:
        state.push("text", "", 0).content = marker
    for _ in range(length // 2):
        state.push("text", "", 0).content = marker * 2
        state.delimiters.append(Delimiter(ord(marker), 0, len(state.tokens) - 1, -1, True, True))
    state.pos = end
    return True


_PAIR_TAGS: Final = {ord("~"): ("s", "~~"), ord("|"): ("spoiler", "||")}


def pairs_post(state: StateInline) -> None:
    _pairs_post(state, state.delimiters)
    for meta in state.tokens_meta:
        if meta and "delimiters" in meta:
            _pairs_post(state, meta["delimiters"])


def _pairs_post(state: StateInline, delimiters: list[Delimiter]) -> None:
    for opener in delimiters:
        if opener.marker not in _PAIR_TAGS or opener.end == -1:
            continue
        closer = delimiters[opener.end]
        tag, markup = _PAIR_TAGS[opener.marker]
        for token, kind, nesting in (
            (state.tokens[opener.token], "_open", 1),
            (state.tokens[closer.token], "_close", -1),
        ):
            token.type, token.tag, token.nesting = tag + kind, tag, nesting  # type: ignore[assignment]
            token.markup, token.content = markup, ""


def backticks(state: StateInline, silent: bool) -> bool:
    """One or two backticks: inline code (markdown-it's rule); three or more open a
    code block that closes at the next three, wherever they stand."""
    src, pos = state.src, state.pos
    if not src.startswith("```", pos):
        return bool(backtick(state, silent))
    close = _next(_memo(state, "inline_fences", _positions(re.compile("(?=```)"))), pos + 3)
    if close < 0 or close + 3 > state.posMax:
        run = pos
        while run < state.posMax and src[run] == "`":
            run += 1
        if not silent:
            state.pending += src[pos:run]
        state.pos = run
        return True
    code, language = split_fence(src[pos + 3 : close])
    if not silent:
        if code:
            token = state.push("discord_code_block", "code", 0)
            token.content, token.info = code, language
        else:
            state.pending += src[pos : close + 3]
    state.pos = close + 3
    return True


def link(state: StateInline, silent: bool) -> bool:
    """A masked link `[label](http(s)://...)`, the address also in `<>`."""
    src, pos = state.src, state.pos
    if src[pos] != "[" or state.linkLevel > 0:
        return False
    close = _memo(state, "brackets", _match_brackets).get(pos, -1)
    if close < 0 or close + 1 >= state.posMax or src[close + 1] != "(":
        return False
    found = _destination(state, close + 2)
    if found is None:
        return False
    href, end = found
    if not silent:
        state.push("link_open", "a", 1).attrs = {"href": href}
        old_max = state.posMax
        state.pos, state.posMax = pos + 1, close
        state.linkLevel += 1
        state.md.inline.tokenize(state)
        state.linkLevel -= 1
        state.posMax = old_max
        state.push("link_close", "a", -1)
    state.pos = end
    return True


def _match_brackets(src: str) -> dict[int, int]:
    found: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACKETS.finditer(src):
        if m[0] == "[":
            stack.append(m.start())
        elif m[0] == "]" and stack:
            found[stack.pop()] = m.start()
    return found


def _destination(state: StateInline, start: int) -> tuple[str, int] | None:
    """The address of a masked link from `start` (after its `(`), and where it ends."""
    src = state.src
    stops = _memo(state, "stops", _positions(_DEST_STOP))
    if src.startswith("<", start):
        stop = _next(stops, start + 1)
        if stop < 0 or src[stop] != ">" or not src.startswith(")", stop + 1):
            return None
        href, end = src[start + 1 : stop], stop + 2
    else:
        stop = _next(stops, start)
        if stop >= 0 and src[stop] == "(":  # one level of parentheses, as in Wikipedia's
            inner = _next(stops, stop + 1)
            stop = _next(stops, inner + 1) if inner >= 0 and src[inner] == ")" else -1
        if stop < 0 or src[stop] != ")":
            return None
        href, end = src[start:stop], stop + 1
    if end > state.posMax or not is_web_url(href) or len(href) > 2048:
        return None
    return href, end


def bare_url(state: StateInline, silent: bool) -> bool:
    """`http(s)://...` in running text, ended as Discord ends it."""
    src, pos = state.src, state.pos
    if state.linkLevel > 0 or not src.startswith("://", pos):
        return False
    pending = state.pending
    scheme = "https" if pending[-5:].lower() == "https" else "http"
    if pending[-len(scheme) :].lower() != scheme:
        return False
    before = pending[-len(scheme) - 1 : -len(scheme)] if len(pending) > len(scheme) else ""
    if before.isalnum():
        return False
    stop = _next(_memo(state, "url_ends", _positions(_URL_END)), pos)
    stop = state.posMax if stop < 0 or stop > state.posMax else stop
    url = pending[-len(scheme) :] + trim_url(src[pos:stop], markdown=True)
    if len(url) <= len(scheme) + 3:
        return False
    if not silent:
        state.pending = pending[: -len(scheme)]
        state.push("link_open", "a", 1).attrs = {"href": url}
        state.push("text", "", 0).content = url
        state.push("link_close", "a", -1).markup = "bare"
    state.pos += len(url) - len(scheme)
    return True


def entity(state: StateInline, silent: bool) -> bool:
    """`<@id>` and the other angle-bracketed entities; `<https://...>` as a link."""
    src, pos = state.src, state.pos
    if src[pos] != "<":
        return False
    if src.startswith(("<http://", "<https://"), pos):
        stop = _next(_memo(state, "stops", _positions(_DEST_STOP)), pos + 1)
        if stop < 0 or src[stop] != ">" or stop > state.posMax:
            return False
        if not silent:
            url = src[pos + 1 : stop]
            state.push("link_open", "a", 1).attrs = {"href": url}
            state.push("text", "", 0).content = url
            state.push("link_close", "a", -1).markup = "bare"
        state.pos = stop + 1
        return True
    match = _ENTITY.match(src, pos, min(state.posMax, pos + 80))
    if match is None:
        return False
    if not silent:
        token = state.push("discord_entity", "", 0)
        token.meta = {k: v for k, v in match.groupdict().items() if v is not None}
        token.content = match[0]
    state.pos = match.end()
    return True


__all__ = [
    "backticks",
    "bare_url",
    "discord_list",
    "emphasis",
    "entity",
    "fence",
    "heading",
    "link",
    "pairs",
    "pairs_post",
    "quote",
    "small",
    "split_fence",
    "text",
]
