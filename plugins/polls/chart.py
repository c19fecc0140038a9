"""The results as a bar chart (PNG), drawn with matplotlib's Agg backend.

Drawn off the event loop (`asyncio.to_thread`): importing matplotlib takes most of a
second the first time, and a figure a few tens of milliseconds. Only the object API is
used (no pyplot), so no global figure state is shared between threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

_LABEL_CHARS: Final = 40
_TITLE_CHARS: Final = 70


@dataclass(frozen=True, slots=True)
class ChartText:
    title: str
    axis: str  # under the bars: "Antal röster"
    labels: tuple[str, ...]  # one per answer, in order
    values: tuple[str, ...]  # beside each bar: "3 (60 %)"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_png(text: ChartText, counts: Sequence[int]) -> bytes:
    """A horizontal bar per answer, the first at the top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = len(counts)
    figure = Figure(figsize=(7.0, 1.2 + 0.42 * rows), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(rows))
    axes.barh(positions, list(counts), color="#c8102e")
    axes.set_yticks(positions, [_cut(label, _LABEL_CHARS) for label in text.labels])
    axes.invert_yaxis()
    axes.set_xlabel(text.axis)
    axes.set_title(_cut(text.title, _TITLE_CHARS), loc="left")
    top = max(counts, default=0)
    axes.set_xlim(0, max(1, top) * 1.3)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for position, count, value in zip(positions, counts, text.values, strict=True):
        axes.text(count + max(1, top) * 0.02, position, value, va="center")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
