"""The `feed` and `update` commands (flöde, uppdatering), in Swedish and English, with
the clear answers a mistake or a bad feed gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.clock import FakeClock
from tests.engines import Target
from tests.fetching_server import gzip_bomb
from tests.updates.server import NewsServer, news_server
from tests.updates.support import Bot, Item, feed_toml, make_settings, rss

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10.00 in Stockholm
LATEST = Item(
    "Regionen satsar på tåg @everyone",
    "tag:r,2026:2",
    "https://region.example/2",
    "<p>Fler avgångar <script>x()</script>till Mora.</p>",
    START - timedelta(hours=1),
)
OLDER = Item("Äldre", "tag:r,2026:1", "https://region.example/1", "", START - timedelta(days=2))


@pytest.fixture
async def server() -> AsyncIterator[NewsServer]:
    async with news_server() as running:
        running.serve("/rss", rss([LATEST, OLDER], title="Region Dalarna"))
        yield running


@pytest.fixture
async def bot(tmp_path: Path, db_target: Target) -> AsyncIterator[Bot]:
    running = await Bot(make_settings(tmp_path, database=db_target), FakeClock(START)).start()
    try:
        yield running
    finally:
        await running.stop()


def last(bot: Bot, room: str = "falun") -> str:
    return bot.texts(room)[-1]


async def test_feed_add_answers_with_the_title_and_a_preview(bot: Bot, server: NewsServer) -> None:
    await bot.say("falun", "anna", f"!flöde ny {server.url('/rss')} --läge direkt --i falun,mora")
    answer = last(bot)
    head, preview_intro, *preview = answer.split("\n")
    assert head == (
        "Följer nu Region Dalarna (#1, direkt, till Falun, Mora)."
        " Gamla inlägg postas inte, bara nya."
    )
    assert preview_intro == "Så här kommer det senaste inlägget att se ut:"
    assert preview == [
        "📰 [Regionen satsar på tåg @\u200beveryone](https://region.example/2)",
        "Fler avgångar till Mora.",
        "— Region Dalarna, måndag 23 november kl. 09.00",
    ]
    assert len(bot.posts()) == 1  # the answer; nothing old posted
    server.serve(
        "/rss",
        rss(
            [Item("Ny", "tag:r,2026:3", "https://region.example/3"), LATEST, OLDER],
            "Region Dalarna",
        ),
    )
    await bot.refresh()
    assert [t.split("\n")[0] for t in bot.texts("mora")] == ["📰 [Ny](https://region.example/3)"]
    assert len(bot.texts("falun2")) == 1

    await bot.say("falun", "anna", f"!flöde ny {server.url('/rss')}")
    assert last(bot) == "Det flödet följs redan, som #1 (Region Dalarna)."


async def test_feed_add_options_in_english_with_a_name_and_words(
    bot: Bot, server: NewsServer
) -> None:
    await bot.say(
        "mora",
        "anna",
        f'!feed add {server.url("/rss")} --name "Tåg" --include tåg,buss --exclude Falun',
    )
    assert last(bot, "mora").startswith(
        "Now following Tåg (#1, digest, to Mora (console:mora)). Old entries are not posted"
    )
    server.serve(
        "/rss",
        rss(
            [
                Item("Bussar i Falun", "tag:r,2026:5", summary="buss"),
                Item("Vägar", "tag:r,2026:4", summary="asfalt"),
                Item("Nytt tåg", "tag:r,2026:3"),
                LATEST,
            ]
        ),
    )
    await bot.refresh()
    await bot.advance_to(START + timedelta(days=1))  # the digest, Tuesday 08.00
    (digest,) = [t for t in bot.texts("mora") if t.startswith("📰 News")]
    assert digest.split("\n") == [
        "📰 News for Mora, Tuesday 24 November",
        "• Nytt tåg — Tåg, Monday 23 November",
    ]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/page", "adressen ger en vanlig webbsida (HTML), inte ett flöde"),
        ("/huge", "svaret är större än gränsen på 5 MB"),
        ("/bomb", "svaret är större än gränsen på 5 MB"),
        ("/missing", "adressen finns inte på servern (felkod 404)"),
        ("/inside", "adressen leder till ett internt nät som boten inte får hämta från"),
        ("/lol", "XML-dokumentet deklarerar entiteter"),
    ],
)
async def test_feed_add_refuses_what_cannot_be_a_feed(
    bot: Bot, server: NewsServer, path: str, reason: str
) -> None:
    server.serve("/page", b"<!doctype html><html><body>Hej</body></html>", "text/html")
    server.serve("/huge", b"<rss>" + b" " * 6_000_000 + b"</rss>")
    server.serve("/bomb", gzip_bomb(50_000_000), headers={"Content-Encoding": "gzip"})
    server.serve("/inside", b"", redirect="http://169.254.169.254/latest/meta-data/")
    lol = '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><rss><channel><title>&a;</title></channel></rss>'
    server.serve("/lol", lol.encode())
    await bot.say("falun", "anna", f"!flöde ny {server.url(path)}")
    answer = last(bot)
    assert answer.startswith(f"Flödet {server.url(path)} kan inte användas: {reason}")
    assert "SECRET" not in answer
    await bot.say("falun", "anna", "!flöde lista")
    assert last(bot) == "Inga nyhetsflöden följs. Lägg till ett med flöde ny ADRESS."


async def test_not_a_web_address_and_loopback_unless_allowed(
    tmp_path: Path, server: NewsServer, db_target: Target
) -> None:
    bot = await Bot(
        make_settings(tmp_path, allow_loopback=False, database=db_target), FakeClock(START)
    ).start()
    try:
        for url in ("file:///etc/passwd", "/etc/passwd", "ftp://x.example/feed"):
            await bot.say("falun", "anna", f"!flöde ny {url}")
            assert last(bot) == (
                f"{url} är ingen webbadress. Ett flöde anges med http:// eller https://."
            )
        for host in ("127.0.0.1", "localhost"):  # a name resolving to 127.0.0.1 too
            url = server.url("/rss").replace("127.0.0.1", host)
            await bot.say("falun", "anna", f"!flöde ny {url}")
            assert last(bot) == (
                f"Flödet {url} kan inte användas: adressen leder till ett internt nät som boten"
                " inte får hämta från."
            )
        assert server.asked == []
    finally:
        await bot.stop()


async def test_list_pause_resume_remove(
    tmp_path: Path, server: NewsServer, db_target: Target
) -> None:
    feeds = feed_toml(tmp_path / "local.rss", ["mora"], name="Lokal")
    (tmp_path / "local.rss").write_bytes(rss([OLDER]))
    bot = await Bot(make_settings(tmp_path, feeds, database=db_target), FakeClock(START)).start()
    try:
        await bot.say("falun", "anna", f"!flöde ny {server.url('/rss')} --i alla")
        await bot.say("falun", "anna", "!flöde pausa 2")
        assert (
            last(bot) == "Flöde #2 (Region Dalarna) är pausat."
            " Skriv flöde återuppta 2 för att starta det igen."
        )
        await bot.say("falun", "anna", "!flöde lista")
        assert last(bot).split("\n") == [
            "Nyhetsflöden (2):",
            "#1 Lokal (sammandrag, till Mora)",
            "   senast hämtat måndag 23 november kl. 10.00"
            " · nästa hämtning måndag 23 november kl. 10.15",
            "#2 Region Dalarna (sammandrag, till alla föreningar) – pausat av en organisatör",
            "   senast hämtat måndag 23 november kl. 10.00",
        ]
        asked = len(server.asked)
        await bot.refresh()
        assert len(server.asked) == asked
        await bot.say("falun", "anna", "!flöde återuppta 2")
        assert last(bot) == "Flöde #2 (Region Dalarna) hämtas igen."
        assert len(server.asked) == asked + 1
        await bot.say("falun", "anna", "!flöde ta-bort 1")
        assert last(bot).startswith("Flöde #1 (Lokal) kommer från konfigurationen.")
        await bot.say("falun", "anna", "!feed remove 2")
        assert last(bot) == "Flöde #2 (Region Dalarna) följs inte längre."
        await bot.say("falun", "anna", "!flöde ta-bort 7")
        assert last(bot) == "Det finns inget flöde med nummer 7. Skriv flöde lista för att se dem."
    finally:
        await bot.stop()


async def test_members_may_not_run_them(bot: Bot) -> None:
    for command in ("!flöde lista", '!uppdatering ny "Hej"', "!update list"):
        await bot.say("falun", "lisa", command)
        assert "organisatör" in last(bot)
    assert not [t for t in bot.texts() if t.startswith("📣")]


async def test_update_post_now_at_a_time_list_cancel_and_edit(bot: Bot) -> None:
    await bot.say("falun", "anna", '!uppdatering ny "Årsmöte 12 mars @everyone" --i alla')
    posted = [p for p in bot.posts() if p.text.startswith("📣")]
    assert {p.room for p in posted} == {"falun", "falun2", "mora"}
    assert posted[0].text == "📣 Uppdatering från distriktet:\nÅrsmöte 12 mars @\u200beveryone"
    assert [p.text for p in posted if p.room == "mora"] == [
        "📣 Update from the district:\nÅrsmöte 12 mars @\u200beveryone"
    ]
    assert last(bot) == "Uppdatering 1 postas nu i 3 rum (alla föreningar)."

    await bot.say("falun", "anna", '!uppdatering ny "Kallelse" --tid "2026-11-24 18:00"')
    assert last(bot) == (
        "Uppdatering 2 postas tisdag 24 november kl. 18.00 till Falun (console:falun)."
    )
    await bot.say("falun", "anna", '!uppdatering ny "Påminnelse" --tid "2026-11-25 09:00" --i mora')
    await bot.say("falun", "anna", '!uppdatering ny "För sent" --tid "2026-11-01 09:00"')
    assert last(bot).startswith("Den tiden har redan varit.")
    await bot.say("falun", "anna", "!uppdatering lista")
    assert last(bot).split("\n") == [
        "Uppdateringar:",
        "#1 postad måndag 23 november kl. 10.00, till alla föreningar:"
        " Årsmöte 12 mars @\u200beveryone",
        "#2 väntar till tisdag 24 november kl. 18.00, till Falun (console:falun): Kallelse",
        "#3 väntar till onsdag 25 november kl. 09.00, till Mora: Påminnelse",
    ]
    await bot.say("falun", "anna", "!uppdatering avbryt 3")
    assert last(bot) == "Uppdatering 3 är avbruten och postas inte."
    await bot.say("falun", "anna", "!uppdatering avbryt 1")
    assert last(bot).startswith("Uppdatering 1 är redan postad.")
    await bot.say("falun", "anna", '!uppdatering ändra 2 "Kallelse till styrelsemöte"')
    assert last(bot) == "Uppdatering 2 är ändrad och postas med den nya texten."

    await bot.advance_to(datetime(2026, 11, 26, tzinfo=UTC))
    assert [t for t in bot.texts() if t.startswith("📣") and "Årsmöte" not in t] == [
        "📣 Uppdatering från distriktet:\nKallelse till styrelsemöte"
    ]
    # After posting, an edit changes every copy.
    await bot.say("falun", "anna", '!update edit 1 "Årsmöte 13 mars"')
    assert last(bot) == "Uppdatering 1 är ändrad; 3 postade exemplar ändras."
    edited = [p for p in bot.posts() if p.text.startswith("(ändrat) 📣")]
    assert {p.room for p in edited} == {"falun", "falun2", "mora"}
    assert all(p.text.endswith("Årsmöte 13 mars") for p in edited)
    await bot.say("falun", "anna", '!uppdatering ändra 3 "x"')
    assert last(bot).startswith("Det finns ingen uppdatering med nummer 3.")


async def test_a_text_due_while_the_bot_was_down(tmp_path: Path, db_target: Target) -> None:
    clock = FakeClock(START)
    bot = await Bot(make_settings(tmp_path, database=db_target), clock).start()
    await bot.say("falun", "anna", '!uppdatering ny "Snart" --tid "2026-11-23 12:00" --i mora')
    await bot.say("falun", "anna", '!uppdatering ny "Senare" --tid "2026-11-23 16:00" --i mora')
    await bot.stop()
    clock.set(datetime(2026, 11, 23, 11, 30, tzinfo=UTC))  # 12.30: within the hour's grace
    await bot.start()
    try:
        assert bot.texts("mora") == ["(late) 📣 Update from the district:\nSnart"]
    finally:
        await bot.stop()
    clock.set(datetime(2026, 11, 23, 18, tzinfo=UTC))  # 19.00: three hours late
    await bot.start()
    try:
        assert len(bot.texts("mora")) == 1  # the late one, from before: nothing new
        assert "en uppdatering från en organisatör" in bot.texts("styrelse")[-1]
        await bot.say("falun", "anna", "!uppdatering lista")
        assert last(bot).split("\n")[-1] == (
            "#2 skulle ha postats måndag 23 november kl. 16.00, till Mora, men boten var nere;"
            " posta den igen med uppdatering ny: Senare"
        )
    finally:
        await bot.stop()
