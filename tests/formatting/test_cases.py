"""The case table (cases.py), converted as the bridge converts: Discord's Markdown
through the core's parser to Matrix HTML and a plain body, Matrix HTML through the core's
HTML parser to Discord's Markdown, plain Matrix bodies escaped, Matrix to Matrix."""

from __future__ import annotations

import pytest

from bot.adapters.matrix.html_out import to_html
from bot.core.document import Document
from bot.core.html_in import parse_html
from bot.core.markdown import parse
from bot.core.markdown_out import to_markdown
from bot.core.plain import to_plain
from tests.formatting.cases import (
    DISCORD_TO_MATRIX,
    MATRIX_TO_DISCORD,
    MATRIX_TO_MATRIX,
    PLAIN_TO_DISCORD,
    Case,
    Names,
    uploaded,
)


def _ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


@pytest.mark.parametrize("case", DISCORD_TO_MATRIX, ids=_ids(DISCORD_TO_MATRIX))
def test_discord_to_matrix(case: Case) -> None:
    document = parse(case.source, Names())
    assert to_html(document, uploaded) == case.expected
    if case.body is not None:
        assert to_plain(document) == case.body


@pytest.mark.parametrize("case", MATRIX_TO_DISCORD, ids=_ids(MATRIX_TO_DISCORD))
def test_matrix_to_discord(case: Case) -> None:
    assert to_markdown(parse_html(case.source)) == case.expected


@pytest.mark.parametrize("case", PLAIN_TO_DISCORD, ids=_ids(PLAIN_TO_DISCORD))
def test_plain_matrix_bodies_are_escaped_for_discord(case: Case) -> None:
    assert to_markdown(Document.plain(case.source)) == case.expected


@pytest.mark.parametrize("case", MATRIX_TO_MATRIX, ids=_ids(MATRIX_TO_MATRIX))
def test_matrix_to_matrix(case: Case) -> None:
    document = parse_html(case.source)
    assert to_html(document) == case.expected
    if case.body is not None:
        assert to_plain(document) == case.body


@pytest.mark.parametrize("case", DISCORD_TO_MATRIX, ids=_ids(DISCORD_TO_MATRIX))
def test_discord_reads_its_own_markdown_back(case: Case) -> None:
    """Discord to Discord (two channels in one bridge): the rendering parses back to
    the same document, so a Discord reader sees what the author wrote."""
    document = parse(case.source, Names())
    again = parse(to_markdown(document), Names())
    assert to_html(again, uploaded) == to_html(document, uploaded)


@pytest.mark.parametrize(
    "case",
    [*DISCORD_TO_MATRIX, *MATRIX_TO_DISCORD, *MATRIX_TO_MATRIX],
    ids=_ids([*DISCORD_TO_MATRIX, *MATRIX_TO_DISCORD, *MATRIX_TO_MATRIX]),
)
def test_documents_survive_the_outbox(case: Case) -> None:
    parsed = parse(case.source, Names()) if "<" not in case.source else parse_html(case.source)
    assert Document.from_obj(parsed.to_obj()) == parsed
