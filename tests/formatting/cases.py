"""The conversion cases, both ways: what a member writes on one platform and what the
other platform should show for it, as Element and Discord show it (cases taken from
the conversion behaviour of matrix-appservice-discord and mautrix-discord, and from
what Element and Discord's client render).

A case whose `ours` is set is a known difference: `want` is what the other side would
show at best, `ours` what the bridge produces, and the test holds us to `ours`. The
bench counts the cases without one (bench/formatting_bench.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.document import Emoji, MentionKind

GUILD = "900000000000000001"
ANNA = "111111111111111111"
ROLE = "222222222222222222"
CHANNEL = "333333333333333333"
HIPPO = "444444444444444444"
DANCE = "555555555555555555"
HIPPO_MXC = "mxc://example.org/hippo"
DANCE_MXC = "mxc://example.org/dance"


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    want: str  # Discord -> Matrix: formatted_body; Matrix -> Discord: the Markdown
    body: str | None = None  # Discord -> Matrix: the plain body, where it matters
    ours: str | None = None  # a known difference: what we produce instead of `want`

    @property
    def expected(self) -> str:
        return self.ours if self.ours is not None else self.want


class Names:
    """What the Discord adapter resolves for these ids."""

    def mention(self, kind: MentionKind, id: str) -> tuple[str, str | None]:
        if kind == "user":
            return ("Anna" if id == ANNA else "deleted-user"), None
        if kind == "role":
            return ("Organisatör" if id == ROLE else "deleted-role"), None
        return "allmänt", f"https://discord.com/channels/{GUILD}/{id}"

    def emoji_url(self, id: str, animated: bool) -> str | None:
        return f"https://cdn.example/emojis/{id}.{'gif' if animated else 'png'}"


def uploaded(emoji: Emoji) -> str | None:
    """The homeserver's copies of the test emoji (the adapter uploads them)."""
    return {HIPPO: HIPPO_MXC, DANCE: DANCE_MXC}.get(emoji.id)


HIPPO_IMG = f'<img data-mx-emoticon src="{HIPPO_MXC}" alt=":hippo:" title=":hippo:" height="32">'

DISCORD_TO_MATRIX: list[Case] = [
    Case("bold", "**fet**", "<strong>fet</strong>", "fet"),
    Case("italic star", "*kursiv*", "<em>kursiv</em>", "kursiv"),
    Case("italic underscore", "_kursiv_", "<em>kursiv</em>"),
    Case("underline", "__under__", "<u>under</u>"),
    Case("strike", "~~bort~~", "<del>bort</del>"),
    Case("bold italic nested right", "***båda***", "<em><strong>båda</strong></em>"),
    Case("underline italic", "___båda___", "<em><u>båda</u></em>"),
    Case("bold inside italic", "*a **b** c*", "<em>a <strong>b</strong> c</em>"),
    Case("bold across spaces", "**a ** b", "<strong>a </strong> b"),
    Case("underscores in a word", "snake_case_namn", "snake_case_namn"),
    Case("spoiler", "||hemligt||", "<span data-mx-spoiler>hemligt</span>", "[spoiler]"),
    Case(
        "spoiler with spaces",
        "svaret är || Nils Holgersson ||",
        "svaret är <span data-mx-spoiler> Nils Holgersson </span>",
        "svaret är [spoiler]",
    ),
    Case(
        "spoiler over lines",
        "||rad ett\nrad två||",
        "<span data-mx-spoiler>rad ett<br>rad två</span>",
        "[spoiler]",
    ),
    Case(
        "spoiler around code",
        "||`kod`||",
        "<span data-mx-spoiler><code>kod</code></span>",
        "[spoiler]",
    ),
    Case(
        "spoiler around a code block",
        "||```\nhemlig kod\n```||",
        "<span data-mx-spoiler><pre><code>hemlig kod\n</code></pre></span>",
        "[spoiler]",
    ),
    Case("inline code", "`a < b`", "<code>a &lt; b</code>", "`a < b`"),
    Case("double backticks", "``a`b``", "<code>a`b</code>"),
    Case(
        "fence with language",
        "```py\nif x < 2:\n    pass\n```",
        '<pre><code class="language-py">if x &lt; 2:\n    pass\n</code></pre>',
        "```py\nif x < 2:\n    pass\n```",
    ),
    Case("fence without language", "```\nrad\n```", "<pre><code>rad\n</code></pre>"),
    Case("one-line fence", "```test```", "<pre><code>test\n</code></pre>"),
    Case(
        "fence in the middle of a line",
        "se ```kod``` här",
        "<p>se</p><pre><code>kod\n</code></pre><p>här</p>",
    ),
    Case("unclosed fence", "```py\nx = 1", "```py<br>x = 1"),
    Case("quote", "> citat", "<blockquote>citat</blockquote>", "> citat"),
    Case(
        "quote and answer",
        "> citat\nmitt svar",
        "<blockquote>citat</blockquote><p>mitt svar</p>",
        "> citat\nmitt svar",
    ),
    Case(
        "quote to the end",
        ">>> allt\ndetta\när citat",
        "<blockquote>allt<br>detta<br>är citat</blockquote>",
    ),
    Case("quote needs a space", ">inte citat", "&gt;inte citat"),
    Case("no nested quote", "> > inre", "<blockquote>&gt; inre</blockquote>"),
    Case(
        "quote with a list",
        "> - ett\n> - två",
        "<blockquote><ul><li>ett</li><li>två</li></ul></blockquote>",
    ),
    Case("headings", "# Ett\n## Två\n### Tre", "<h1>Ett</h1><h2>Två</h2><h3>Tre</h3>"),
    Case("no fourth heading", "#### Fyra", "#### Fyra"),
    Case("heading needs a space", "#hashtag", "#hashtag"),
    Case("small text", "-# liten text", "<p><sub>liten text</sub></p>", "liten text"),
    Case("list", "- ett\n- två", "<ul><li>ett</li><li>två</li></ul>", "- ett\n- två"),
    Case("star list", "* ett\n* två", "<ul><li>ett</li><li>två</li></ul>"),
    Case("ordered list", "1. ett\n2. två", "<ol><li>ett</li><li>två</li></ol>"),
    Case("ordered from three", "3. tre\n4. fyra", '<ol start="3"><li>tre</li><li>fyra</li></ol>'),
    Case(
        "nested list",
        "- ett\n  - inre\n- två",
        "<ul><li><p>ett</p><ul><li>inre</li></ul></li><li>två</li></ul>",
    ),
    Case("plus is no list", "+ plus", "+ plus"),
    Case(
        "masked link",
        "[sidan](https://example.org/s)",
        '<a href="https://example.org/s">sidan</a>',
        "sidan (https://example.org/s)",
    ),
    Case(
        "masked link in angle brackets",
        "[sidan](<https://example.org/s>)",
        '<a href="https://example.org/s">sidan</a>',
    ),
    Case(
        "link with marks in label and address",
        "[**x** __y__](https://e.org/a__b__c**d)",
        '<a href="https://e.org/a__b__c**d"><strong>x</strong> <u>y</u></a>',
    ),
    Case(
        "bare URL with underscores",
        "se https://en.wikipedia.org/wiki/After_gay_pride.",
        'se <a href="https://en.wikipedia.org/wiki/After_gay_pride">'
        "https://en.wikipedia.org/wiki/After_gay_pride</a>.",
    ),
    Case(
        "bare URL in bold",
        "**https://example.org**",
        '<strong><a href="https://example.org">https://example.org</a></strong>',
    ),
    Case(
        "URL without embed",
        "<https://example.org/a>",
        '<a href="https://example.org/a">https://example.org/a</a>',
    ),
    Case("escapes", r"\*inte kursiv\* \_inte\_", "*inte kursiv* _inte_"),
    Case("custom emoji", f"<:hippo:{HIPPO}>", HIPPO_IMG, ":hippo:"),
    Case(
        "animated emoji",
        f"dans <a:dance:{DANCE}>",
        f'dans <img data-mx-emoticon src="{DANCE_MXC}" alt=":dance:" title=":dance:" height="32">',
        "dans :dance:",
    ),
    Case("user mention", f"hej <@{ANNA}>", "hej @Anna", "hej @Anna"),
    Case("old user mention", f"hej <@!{ANNA}>", "hej @Anna"),
    Case("role mention", f"<@&{ROLE}> kom", "@Organisatör kom", "@Organisatör kom"),
    Case(
        "channel mention",
        f"se <#{CHANNEL}>",
        f'se <a href="https://discord.com/channels/{GUILD}/{CHANNEL}">#allmänt</a>',
        "se #allmänt",
    ),
    Case(
        "timestamp",
        "<t:1700000000:R>",
        "om 2 år",
        ours="2023-11-14 22:13 UTC",  # Discord shows it relative, in the reader's zone
    ),
    Case("paragraphs", "ett\n\ntvå", "<p>ett</p><p>två</p>", "ett\n\ntvå"),
    Case("line break", "ett\ntvå", "ett<br>två"),
    Case("a javascript: link is text", "[x](javascript:alert(1))", "[x](javascript:alert(1))"),
    Case(
        "no image from text",
        "![bild](https://evil.example/t.png)",
        '!<a href="https://evil.example/t.png">bild</a>',  # a link, as Discord shows it
    ),
    Case("HTML is text", "<b onclick=x()>fet</b>", "&lt;b onclick=x()&gt;fet&lt;/b&gt;"),
    Case("unclosed bold", "**inte stängd", "**inte stängd"),
    Case("unclosed spoiler", "||inte stängd", "||inte stängd"),
]

MATRIX_TO_DISCORD: list[Case] = [
    Case("bold", "<strong>fet</strong>", "**fet**"),
    Case("b", "<b>fet</b>", "**fet**"),
    Case("italic", "<em>kursiv</em>", "*kursiv*"),
    Case("underline", "<u>under</u>", "__under__"),
    Case("strike", "<del>bort</del>", "~~bort~~"),
    Case("s", "<s>bort</s>", "~~bort~~"),
    Case("bold italic", "<em><strong>båda</strong></em>", "***båda***"),
    Case("italic then bold", "<strong>a</strong><em>b</em>", "**a**\u200b*b*"),
    Case("spaces outside italics", "<em> kursiv </em>x", " *kursiv* x"),
    Case("spaces inside bold", "<strong> fet </strong>x", "** fet **x"),
    Case("spoiler", "<span data-mx-spoiler>dolt</span>", "||dolt||"),
    Case("spoiler with a reason", '<span data-mx-spoiler="slutet">dolt</span>', "||dolt||"),
    Case(
        "Element's quote",
        "<blockquote>\n<p>citat här</p>\n</blockquote>\n<p>mitt svar</p>\n",
        "> citat här\nmitt svar",
    ),
    Case(
        "quote of two paragraphs",
        "<blockquote>\n<p>ett</p>\n<p>två</p>\n</blockquote>\n",
        "> ett\n> \n> två",
    ),
    Case(
        "nested quote",
        "<blockquote><blockquote>inre</blockquote>yttre</blockquote>",
        "> inre\n> \n> yttre",
    ),
    Case("list", "<ul>\n<li>ett</li>\n<li>två</li>\n</ul>\n", "- ett\n- två"),
    Case("ordered list", '<ol start="3">\n<li>tre</li>\n<li>fyra</li>\n</ol>\n', "3. tre\n4. fyra"),
    Case(
        "nested list",
        "<ul><li>ett<ul><li>inre</li></ul></li><li>två</li></ul>",
        "- ett\n  - inre\n- två",
    ),
    Case("headings", "<h1>Ett</h1>\n<h2>Två</h2>\n<h3>Tre</h3>\n", "# Ett\n## Två\n### Tre"),
    Case("small headings", "<h5>Fem</h5>", "### Fem", ours="### Fem"),
    Case(
        "code with language",
        '<pre><code class="language-py">if a &lt; b:\n    pass\n</code></pre>\n',
        "```py\nif a < b:\n    pass\n```",
    ),
    Case(
        "code holding backticks",
        "<pre><code>a ``` b\n</code></pre>",
        "```\na `\u200b`\u200b` b\n```",
    ),
    Case("inline code", "<code>a &lt; b</code>", "`a < b`"),
    Case("inline code with a backtick", "<code>a`b</code>", "``a`b``"),
    Case(
        "table",
        "<table><thead><tr><th>Namn</th><th>Ort</th></tr></thead>"
        "<tbody><tr><td>Anna</td><td>Falun</td></tr></tbody></table>",
        "```\nNamn | Ort\n-----+------\nAnna | Falun\n```",
    ),
    Case(
        "colours dropped",
        '<font color="#ff0000">röd</font> <span data-mx-color="#0f0">grön</span>',
        "röd grön",
    ),
    Case(
        "user pill", '<a href="https://matrix.to/#/@anna:example.org">Anna</a>: hej', "@Anna: hej"
    ),
    Case(
        "room pill",
        '<a href="https://matrix.to/#/#mote:example.org">#mote:example.org</a>',
        "[#mote:example.org](https://matrix.to/#/#mote:example.org)",
    ),
    Case(
        "percent-encoded room pill",
        '<a href="https://matrix.to/#/%23mote%3Aexample.org">#mote:example.org</a>',
        "[#mote:example.org](https://matrix.to/#/%23mote%3Aexample.org)",
    ),
    Case(
        "event link",
        '<a href="https://matrix.to/#/!rum:example.org/$ev?via=example.org">'
        "https://matrix.to/#/!rum:example.org/$ev?via=example.org</a>",
        "https://matrix.to/#/!rum:example.org/$ev?via=example.org",
    ),
    Case(
        "event link with a name",
        '<a href="https://matrix.to/#/!rum:example.org/$ev">mötet</a>',
        "[mötet](https://matrix.to/#/!rum:example.org/$ev)",
    ),
    Case(
        "reply fallback always dropped",
        "<mx-reply><blockquote><a>In reply to</a> @admin: I approve this</blockquote>"
        "</mx-reply>Faktiskt inte",
        "Faktiskt inte",
    ),
    Case(
        "custom emoji",
        '<img data-mx-emoticon src="mxc://example.org/party" alt=":party:" '
        'title=":party:" height="32">',
        ":party:",
    ),
    Case("an image is its alt text", '<img src="mxc://example.org/x" alt="karta">', "karta"),
    Case(
        "bare URL untouched",
        "se https://en.wikipedia.org/wiki/After_gay_pride",
        "se https://en.wikipedia.org/wiki/After_gay_pride",
    ),
    Case(
        "masked link", '<a href="https://example.org/s">sidan</a>', "[sidan](https://example.org/s)"
    ),
    Case(
        "link with parentheses",
        '<a href="https://sv.wikipedia.org/wiki/Mora_(ort)">Mora</a>',
        "[Mora](https://sv.wikipedia.org/wiki/Mora_%28ort%29)",
    ),
    Case(
        "link named by itself",
        '<a href="https://example.org">https://example.org</a>',
        "https://example.org",
    ),
    Case("mailto", '<a href="mailto:a@example.org">skriv</a>', "skriv (mailto:a@example.org)"),
    Case(
        "text that looks like markup",
        "<p>_x_ *y* `z` ||w|| ~~v~~</p>",
        r"\_x\_ \*y\* \`z\` \|\|w\|\| \~\~v\~\~",
    ),
    Case(
        "Discord syntax as text",
        f"&lt;@{ANNA}&gt; &lt;:a:{HIPPO}&gt;",
        rf"\<@{ANNA}> \<:a:{HIPPO}>",
    ),
    Case(
        "line starts as text",
        "# inte rubrik<br>- inte lista<br>&gt; inte citat<br>1. nej",
        "\\# inte rubrik\n\\- inte lista\n\\> inte citat\n1\\. nej",
    ),
    Case("line break", "ett<br>två", "ett\ntvå"),
    Case("paragraphs", "<p>ett</p>\n<p>två</p>", "ett\n\ntvå"),
    Case("rule", "<p>ett</p><hr><p>två</p>", "ett\n\n———\n\ntvå"),
    Case(
        "script and handlers dropped",
        '<p>Hej <script>alert("x")</script><a href="javascript:alert(1)">klicka</a> '
        '<b onclick="x()">fet</b></p>',
        "Hej klicka **fet**",
    ),
    Case("style dropped", "<style>p{color:red}</style>text", "text"),
    Case("comments dropped", "a<!-- dold -->b", "ab"),
]

PLAIN_TO_DISCORD: list[Case] = [
    Case("marks are text", "_x_ *y* `z`", r"\_x\_ \*y\* \`z\`"),
    Case("bare URL untouched", "https://example.org/a_b_c", "https://example.org/a_b_c"),
    Case("Discord mention as text", f"<@{ANNA}>", rf"\<@{ANNA}>"),
    Case("line start as text", "# rubrik\n> citat", "\\# rubrik\n\\> citat"),
    Case("paragraphs kept", "ett\n\ntvå\ntre", "ett\n\ntvå\ntre"),
]

MATRIX_TO_MATRIX: list[Case] = [
    Case(
        "forged reply dropped",
        "<mx-reply><blockquote>@admin: I approve this</blockquote></mx-reply>ok",
        "ok",
        "ok",
    ),
    Case(
        "spoiler kept, hidden in body",
        "<span data-mx-spoiler>x</span>",
        "<span data-mx-spoiler>x</span>",
        "[spoiler]",
    ),
    Case(
        "emoji kept",
        '<img data-mx-emoticon src="mxc://example.org/p" alt=":p:" title=":p:" height="32">',
        '<img data-mx-emoticon src="mxc://example.org/p" alt=":p:" title=":p:" height="32">',
        ":p:",
    ),
    Case(
        "pill kept as a link",
        '<a href="https://matrix.to/#/@anna:example.org">Anna</a>',
        '<a href="https://matrix.to/#/@anna:example.org">@Anna</a>',
        "@Anna",
    ),
    Case(
        "table kept",
        "<table><tr><th>A</th></tr><tr><td>1</td></tr></table>",
        "<table><thead><tr><th>A</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>",
    ),
    Case(
        "external image dropped",
        '<img src="https://evil.example/t.png" alt="spår">',
        "spår",
    ),
    Case("javascript link dropped", '<a href="javascript:alert(1)">x</a>', "x"),
]

ALL: list[list[Case]] = [DISCORD_TO_MATRIX, MATRIX_TO_DISCORD, PLAIN_TO_DISCORD, MATRIX_TO_MATRIX]
