"""Charts: pure Plotly figure builders (no Streamlit), so the app, notebooks and tests share them."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .data import SPLITS, DatasetSummary
from .training import BOOK_RESULTS, BatchRecord, EpochRecord, History

# One colour per metric, the same in every chart.
COLORS = {"train_loss": "#636efa", "train_acc": "#ef553b", "test_acc": "#00cc96", "book": "#7f7f7f"}
LAYOUT = {"margin": {"l": 40, "r": 20, "t": 50, "b": 40}, "legend": {"orientation": "h", "y": -0.2}}


def class_counts_figure(summary: DatasetSummary) -> go.Figure:
    """Grouped bars: images per class, one bar group per split."""
    fig = go.Figure([go.Bar(name=split, x=summary.classes, y=[summary.counts[split][c] for c in summary.classes],
                            text=[summary.counts[split][c] for c in summary.classes], textposition="auto")
                     for split in SPLITS])
    fig.update_layout(title="Images per class", barmode="group", yaxis_title="images", **LAYOUT)
    return fig


def image_sizes_figure(summary: DatasetSummary) -> go.Figure:
    """Scatter of width against height, one trace per class: sizes and aspect ratios vary."""
    fig = go.Figure()
    for label in summary.classes:
        records = [r for r in summary.images if r.label == label]
        fig.add_trace(go.Scattergl(
            name=label, mode="markers", x=[r.width for r in records], y=[r.height for r in records],
            text=[f"{r.split}/{r.label}/{r.path.rsplit('/', 1)[-1]}" for r in records],
            hovertemplate="%{text}<br>%{x} x %{y} px<extra></extra>", marker={"size": 5, "opacity": 0.6}))
    fig.update_layout(title="Image width vs height (pixels)", xaxis_title="width", yaxis_title="height", **LAYOUT)
    return fig


def epoch_curves_figure(epochs: Sequence[EpochRecord], total_epochs: int, mode: str | None = None) -> go.Figure:
    """Train loss, train acc and test acc per epoch (the book's plot), with the book's final values if `mode`."""
    x = [e.epoch for e in epochs]
    fig = go.Figure()
    for key, name in (("train_loss", "train loss"), ("train_acc", "train acc"), ("test_acc", "test acc")):
        points = [(xi, getattr(e, key)) for xi, e in zip(x, epochs, strict=True) if getattr(e, key) is not None]
        fig.add_trace(go.Scatter(name=name, x=[p[0] for p in points], y=[p[1] for p in points],
                                 mode="lines+markers", line={"color": COLORS[key]}))
    if mode in BOOK_RESULTS:
        book = BOOK_RESULTS[mode]
        fig.add_trace(go.Scatter(name="book (epoch 5)", x=[5, 5, 5], mode="markers",
                                 y=[book["train_loss"], book["train_acc"], book["test_acc"]],
                                 marker={"symbol": "x", "size": 10, "color": COLORS["book"]}))
    fig.update_layout(title="Per epoch", xaxis={"title": "epoch", "range": [0, max(total_epochs, 5) + 0.2]},
                      yaxis={"title": "loss / accuracy", "rangemode": "tozero"}, **LAYOUT)
    return fig


def batch_loss_figure(batches: Sequence[BatchRecord]) -> go.Figure:
    """Loss and accuracy of every optimiser step against epoch progress."""
    x = [b.epoch for b in batches]
    fig = go.Figure([
        go.Scatter(name="batch loss", x=x, y=[b.loss for b in batches], mode="lines",
                   line={"color": COLORS["train_loss"]}),
        go.Scatter(name="batch acc", x=x, y=[b.acc for b in batches], mode="lines",
                   line={"color": COLORS["train_acc"], "dash": "dot"}),
    ])
    fig.update_layout(title="Per batch", xaxis_title="epoch", yaxis={"title": "loss / accuracy",
                                                                      "rangemode": "tozero"}, **LAYOUT)
    return fig


def compare_runs_figure(runs: Sequence[tuple[str, History]]) -> go.Figure:
    """Test accuracy and train loss per epoch of several runs, against the book's final numbers."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("test accuracy", "train loss"))
    for i, (label, history) in enumerate(runs):
        color = f"hsl({(i * 137) % 360}, 65%, 45%)"
        tested = [e for e in history.epochs if e.test_acc is not None]
        fig.add_trace(go.Scatter(name=label, legendgroup=label, x=[e.epoch for e in tested],
                                 y=[e.test_acc for e in tested], mode="lines+markers", line={"color": color}),
                      row=1, col=1)
        fig.add_trace(go.Scatter(name=label, legendgroup=label, showlegend=False, x=[e.epoch for e in history.epochs],
                                 y=[e.train_loss for e in history.epochs], mode="lines+markers",
                                 line={"color": color}), row=1, col=2)
    for mode, book in BOOK_RESULTS.items():
        name = f"book {'fine-tune' if mode == 'finetune' else 'scratch'}"
        for col, key in ((1, "test_acc"), (2, "train_loss")):
            fig.add_hline(y=book[key], line={"dash": "dash" if mode == "finetune" else "dot",
                                             "color": COLORS["book"]},
                          annotation_text=f"{name} {book[key]:.3f}", row=1, col=col)
    fig.update_layout(title="Runs compared (dashed/dotted: the book's final values, ResNet-18)", **LAYOUT)
    fig.update_xaxes(title_text="epoch")
    return fig


def probabilities_figure(ranked: Sequence[tuple[str, float]]) -> go.Figure:
    """Horizontal bars of class probabilities, most likely on top."""
    labels = [label for label, _ in ranked][::-1]
    values = [p for _, p in ranked][::-1]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[f"{p:.3f}" for p in values],
                           textposition="auto", marker={"color": COLORS["test_acc"]}))
    fig.update_layout(xaxis={"range": [0, 1], "title": "probability"}, height=80 + 40 * len(labels),
                      margin={"l": 10, "r": 10, "t": 10, "b": 40})
    return fig
