"""Hostile inputs, built to any length: long runs of markers, unclosed constructs, deep
nesting, NULs. Shared by the tests (bounded time, sane output) and the bench."""

from __future__ import annotations

from collections.abc import Callable


def run(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


Make = Callable[[int], str]

MARKDOWN: dict[str, Make] = {
    "[": lambda n: run("[", n),
    "**a ": lambda n: run("**a ", n),
    "||x ": lambda n: run("||x ", n),
    "__x ": lambda n: run("__x ", n),
    "~~x ": lambda n: run("~~x ", n),
    "*": lambda n: run("*", n),
    "_": lambda n: run("_", n),
    "`": lambda n: run("`", n),
    "``` ": lambda n: run("``` ", n),
    "```⏎": lambda n: run("```\n", n),
    "unclosed fence": lambda n: "```py\n" + run("kod ", n - 6),
    "[a](": lambda n: run("[a](", n),
    "](": lambda n: run("](", n),
    "<@": lambda n: run("<@", n),
    "<:a:": lambda n: run("<:a:", n),
    "https://": lambda n: run("https://", n),
    "> lines": lambda n: run("> citat\n", n),
    ">>>": lambda n: ">>> " + run("rad\n", n - 4),
    "nested list": lambda n: run("".join("  " * i + "- x\n" for i in range(400)), n),
    "headings": lambda n: run("# x\n", n),
    "small": lambda n: run("-# x\n", n),
    "ordered": lambda n: run("1. x\n", n),
    "NUL": lambda n: run("a\x00b\x0012\x00 **fet** ", n),
    "backslashes": lambda n: run("\\", n),
    "prose": lambda n: run("Ett möte **i Falun** på _torsdag_, se https://example.org/a_b. ", n),
}

HTML: dict[str, Make] = {
    "<a": lambda n: run("<a", n),
    "<!--": lambda n: run("<!--", n),
    "<b> deep": lambda n: run("<b>", n),
    "<blockquote> deep": lambda n: run("<blockquote>", n),
    "<ul><li> deep": lambda n: run("<ul><li>", n),
    "spoiler deep": lambda n: run("<span data-mx-spoiler>", n),
    "table deep": lambda n: run("<table><tr><td>", n),
    "&amp;": lambda n: run("&amp;", n),
    "<a href=": lambda n: run('<a href="https://example.org/">', n),
    "paragraphs": lambda n: run("<p>x</p>", n),
    "<br>": lambda n: run("<br>", n),
    "pre of fences": lambda n: "<pre><code>" + run("```x\n", n - 11),
    "pills": lambda n: run('<a href="https://matrix.to/#/@a:example.org">A</a> ', n),
    "emoji": lambda n: run('<img data-mx-emoticon src="mxc://a/b" alt=":a:">', n),
    "NUL": lambda n: run("<b>a\x00b</b>\x00", n),
    "prose": lambda n: run("<p>Ett möte <strong>i Falun</strong> på <em>torsdag</em>.</p>", n),
}

PLAIN: dict[str, Make] = {
    "marks": lambda n: run("_x_ *y* `z` <@1> ", n),
    "lines": lambda n: run("# x\n> y\n", n),
    "one word": lambda n: run("a", n),
}
