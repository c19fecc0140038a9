"""Formatting across platforms: Matrix HTML to the Markdown that Discord (and our core
text) speaks. The other direction is the Matrix adapter's: it renders core text.

Untrusted input: scripts and styles are dropped with their content, only http(s) and
mailto links survive, and a Matrix user pill becomes a readable name, never a ping.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

_SAFE_SCHEMES: Final = ("http://", "https://", "mailto:")
_DROP: Final = {"script", "style", "mx-reply", "head", "title", "iframe", "object"}
_MD_SPECIAL: Final = re.compile(r"([\\*_~|`>])")
_PILL: Final = re.compile(r"^https://matrix\.to/#/[@!#]")
# Tags that Markdown writes with the same mark before and after.
_MARKS: Final = {
    "strong": "**", "b": "**", "em": "*", "i": "*", "u": "__", "del": "~~", "s": "~~",
    "strike": "~~",
}  # fmt: skip


def escape_markdown(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


class _ToMarkdown(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._drop = 0
        self._pre = 0
        self._code = 0
        self._links: list[tuple[str | None, int]] = []
        self._lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self._quote = 0

    def _emit(self, text: str) -> None:
        if not self._drop:
            self.out.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in _DROP:
            self._drop += 1
            return
        if tag in _MARKS:
            self._emit(_MARKS[tag])
        elif tag == "code" and not self._pre:
            self._code += 1
            self._emit("`")
        elif tag == "pre":
            self._pre += 1
            lang = ""
            self._emit(f"\n```{lang}\n")
        elif tag == "code" and self._pre:
            cls = a.get("class") or ""
            if cls.startswith("language-") and self.out and self.out[-1].endswith("```\n"):
                self.out[-1] = self.out[-1][:-1] + cls.removeprefix("language-") + "\n"
        elif tag == "br":
            self._emit("\n")
        elif tag in {"p", "div"}:
            self._emit("\n\n")
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._emit("\n\n**")
        elif tag == "blockquote":
            self._quote += 1
            self._emit("\n> ")
        elif tag in {"ul", "ol"}:
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            if self._lists:
                self._lists[-1][1] += 1
                ordered, n = self._lists[-1]
                self._emit("\n" + "  " * (len(self._lists) - 1) + (f"{n}. " if ordered else "- "))
            else:
                self._emit("\n- ")
        elif tag == "span" and "data-mx-spoiler" in a:
            self._emit("||")
            self._links.append(("||spoiler", len(self.out)))
        elif tag == "a":
            href = (a.get("href") or "").strip()
            self._links.append((href, len(self.out)))
        elif tag == "img":
            alt = a.get("alt") or a.get("title") or ""
            self._emit(escape_markdown(alt))
        elif tag == "hr":
            self._emit("\n\n---\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            self._drop = max(0, self._drop - 1)
            return
        if tag in _MARKS:
            self._emit(_MARKS[tag])
        elif tag == "code" and not self._pre:
            self._code = max(0, self._code - 1)
            self._emit("`")
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            ends_line = bool(self.out) and self.out[-1].endswith("\n")
            self._emit("```\n" if ends_line else "\n```\n")
        elif tag in {"p", "div"}:
            self._emit("\n\n")
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._emit("**\n\n")
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
            self._emit("\n\n")
        elif tag in {"ul", "ol"}:
            if self._lists:
                self._lists.pop()
            self._emit("\n")
        elif tag == "span" and self._links and self._links[-1][0] == "||spoiler":
            self._links.pop()
            self._emit("||")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.out[start:])
            del self.out[start:]
            self._emit(_link(label, href or ""))

    def handle_data(self, data: str) -> None:
        if self._drop:
            return
        if self._pre or self._code:
            self._emit(data)
            return
        text = escape_markdown(data)
        if self._quote:
            text = text.replace("\n", "\n> ")
        self._emit(text)


def _link(label: str, href: str) -> str:
    if _PILL.match(href):
        # A mention pill: a readable name, never a ping on the other side.
        name = label.strip() or href.rsplit("/", 1)[-1]
        return name if name.startswith("@") else "@" + name
    if not href.lower().startswith(_SAFE_SCHEMES):
        return label
    if label.strip() in {href, escape_markdown(href)}:
        return href
    return f"[{label}]({href})"


def html_to_markdown(html: str) -> str:
    parser = _ToMarkdown()
    parser.feed(html)
    parser.close()
    text = "".join(parser.out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def quote(excerpt: str, limit: int = 200) -> str:
    """A reply's original as a quote line, for rooms where it cannot be linked."""
    flat = " ".join(excerpt.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return "> " + flat
