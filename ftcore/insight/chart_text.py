"""Charts in words: the sentence a screen reader reads for a chart, and a chart's numbers as table rows.

A chart's builder knows what its figures mean, so it writes the sentence (`say`) and the figure carries it in its
layout's `meta`; the table is read back from the figure's own traces, so it always holds what is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ..config import lr_words
from ..records import EpochRecord, SteerRecord
from ..train.steering import changes_text

SUMMARY = "summary"  # the key of the sentence in a figure's layout.meta


def say(fig: go.Figure, sentence: str) -> go.Figure:
    """Give `fig` the one sentence that says what it shows; returns it."""
    fig.update_layout(meta={SUMMARY: sentence})
    return fig


def summary_of(fig: go.Figure) -> str:
    """The sentence a chart's builder gave it (its title where it gave none)."""
    meta = fig.layout.meta
    if isinstance(meta, dict) and meta.get(SUMMARY):
        return meta[SUMMARY]
    return fig.layout.title.text or "a chart"


def number(value: float) -> str:
    """A figure as a sentence says it: 0.77, 1e-4 or 1,200."""
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if value != 0 and (abs(value) < 0.01 or abs(value) >= 1000):
        return lr_words(value)
    return f"{value:.2f}"


def from_to(label: str, values: Sequence[float | None]) -> str:
    """'train loss 0.69 to 0.31' (first and last measured value), or 'train loss not measured yet'."""
    measured = [v for v in values if v is not None]
    if not measured:
        return f"{label} not measured yet"
    return f"{label} {number(measured[0])}" if len(measured) == 1 else \
        f"{label} {number(measured[0])} to {number(measured[-1])}"


def steering_words(steering: Sequence[SteerRecord], who: str = "") -> str:
    """Where each change of a run's rates applied, in words, as the run's caption says it: '; fine-tune steered at
    epoch 1.25: lr 1e-4, output layer 1e-3' ('' when it was never steered)."""
    return f"; {who + ' ' if who else ''}steered {changes_text(steering)}" if steering else ""


def plural(count: int, noun: str, nouns: str = "") -> str:
    """'1 epoch', '2 epochs'; `nouns` where the plural is not noun + s ('batches')."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def runs_summary(runs: Sequence[tuple[str, Sequence[EpochRecord], Sequence[float], Sequence[SteerRecord]]],
                 loss_name: str = "train loss") -> str:
    """One sentence that says what a chart of runs shows, for a screen reader: each run's held-out accuracy, first
    to last ("test accuracy: fine-tune 0.67 to 0.77, scratch 0.50 to 0.50 over 2 epochs"), then each run's loss,
    then where each was steered, in words. `runs`: (label, epochs, losses, steering)."""
    split = "val" if any(e.val_acc is not None for _, epochs, _, _ in runs for e in epochs) else "test"
    if not runs:
        return f"{split} accuracy: no run yet"
    longest = max(sum(1 for e in epochs if e.heldout_acc is not None) for _, epochs, _, _ in runs)
    accuracy = ", ".join(from_to(label, [e.heldout_acc for e in epochs]) for label, epochs, _, _ in runs)
    losses = ", ".join(from_to(label, values) for label, _, values, _ in runs)
    steered = "".join(steering_words(steering, label) for label, _, _, steering in runs)
    return f"{split} accuracy: {accuracy} over {plural(longest, 'epoch')}; {loss_name}: {losses}{steered}"


def _axis_title(fig: go.Figure, axis: str) -> str:
    """The title of the layout axis a trace draws on ('x', 'x2', 'y' ...), or '' where it has none."""
    name = axis[0] + "axis" + axis[1:]
    layout_axis = fig.layout[name] if name in fig.layout else None
    return (layout_axis.title.text or "") if layout_axis is not None else ""


def _panel_titles(fig: go.Figure) -> dict[str, str]:
    """x axis ('x', 'x2' ...) -> the subplot title above it, for figures made of panels side by side."""
    titles = [a for a in fig.layout.annotations if a.xref == "paper" and a.yref == "paper" and a.text]
    panels = {}
    for name in [key for key in fig.layout if key.startswith("xaxis")]:
        domain = fig.layout[name].domain or (0, 1)
        inside = [a.text for a in titles if a.x is not None and domain[0] <= a.x <= domain[1]]
        if len(titles) > 1 and inside:
            panels["x" + name.removeprefix("xaxis")] = inside[0]
    return panels


def _is_number(text: object) -> bool:
    """Whether a point's text is only its value written out ("0.930")."""
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _untitled(values: list, fallback: str) -> str:
    """The column name of an axis without a title: 'category' where it holds names (classes, blocks)."""
    return "category" if values and isinstance(values[0], str) else fallback


def table_of(fig: go.Figure) -> list[dict]:
    """Every drawn number of a chart as rows: one row per point (series, panel where there are panels, x, y and
    the point's label), or for a heatmap one row per row of cells."""
    panels = _panel_titles(fig)
    rows: list[dict] = []
    for trace in fig.data:
        if isinstance(trace, go.Heatmap):
            x_title, y_title = _axis_title(fig, "x") or "column", _axis_title(fig, "y") or "row"
            rows += [{y_title: y, **{f"{x_title} {x}": value for x, value in zip(trace.x, line, strict=True)}}
                     for y, line in zip(trace.y, trace.z, strict=True)]
            continue
        if trace.opacity == 0 or (trace.marker is not None and trace.marker.opacity == 0):
            continue  # an invisible layer that only takes clicks draws no number
        x_axis, y_axis = trace.xaxis or "x", trace.yaxis or "y"
        xs, ys = list(trace.x or []), list(trace.y or [])
        x_title = _axis_title(fig, x_axis) or _untitled(xs, "x")
        y_title = _axis_title(fig, y_axis) or _untitled(ys, "value" if x_title != "value" else "y")
        labels = trace.text if isinstance(trace.text, (list, tuple)) else None
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            row = {"series": trace.name or ""}
            if x_axis in panels:
                row["panel"] = panels[x_axis]
            row[x_title] = x
            row[y_title if y_title != x_title else f"{y_title} (y)"] = y
            if labels is not None and i < len(labels) and not _is_number(labels[i]):
                row["label"] = labels[i]  # a photo's name or a failure's reason; a number drawn as text is y
            rows.append(row)
    return rows
