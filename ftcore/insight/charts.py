"""Charts: pure Plotly figure builders (no Streamlit), so the app, notebooks and tests share them."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import BOOK_RESULTS, lr_words
from ..data.summary import DatasetSummary
from ..records import BatchRecord, EpochRecord, History, Status, SteerRecord
from ..train.steering import Rates, rates_text
from .chart_text import from_to, number, plural, runs_summary, say, steering_words

# Okabe and Ito's colours, which the common colour blindnesses still tell apart, ordered so that neighbours differ
# most (blue against orange, never red against green); black last.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
# Each run also draws with a dash and a marker of its own, so runs are told apart without colour at all.
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
RUN_MARKERS = ("circle", "square", "diamond", "triangle-up", "x", "star")
# One colour per metric, the same in every chart.
COLORS = {"train_loss": OKABE_ITO[0], "train_acc": OKABE_ITO[3], "test_acc": OKABE_ITO[2], "book": "#767676"}
LAYOUT = {"margin": {"l": 40, "r": 20, "t": 50, "b": 40}, "legend": {"orientation": "h", "y": -0.2}}


def run_style(i: int) -> tuple[str, str, str]:
    """The colour, dash and marker of the i-th run of a chart."""
    return OKABE_ITO[i % len(OKABE_ITO)], RUN_DASHES[i % len(RUN_DASHES)], RUN_MARKERS[i % len(RUN_MARKERS)]


def class_counts_figure(summary: DatasetSummary) -> go.Figure:
    """Grouped bars: images per class, one bar group per split."""
    fig = go.Figure([go.Bar(name=split, x=summary.classes, y=[summary.counts[split][c] for c in summary.classes],
                            text=[summary.counts[split][c] for c in summary.classes], textposition="auto")
                     for split in summary.splits])
    fig.update_layout(title="Images per class", barmode="group", yaxis_title="images", **LAYOUT)
    return say(fig, "Images per class: " + "; ".join(
        f"{split} " + ", ".join(f"{c} {summary.counts[split][c]:,}" for c in summary.classes)
        for split in summary.splits))


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
    if not summary.images:
        return say(fig, "Image width against height: no photo measured yet")
    widths, heights = [r.width for r in summary.images], [r.height for r in summary.images]
    return say(fig, f"Image width against height of {plural(len(summary.images), 'photo')}: widths "
                    f"{min(widths):,} to {max(widths):,} pixels, heights {min(heights):,} to {max(heights):,}")


def mark_changes(fig: go.Figure, steering: Sequence[SteerRecord], color: str = "#555", short: bool = False,
                 **where) -> None:
    """A vertical line where each change of a run's learning rates applied, labelled with the rates from there on
    (only the copied layers' where `short`)."""
    for record in steering:
        rates = Rates.of(record)
        label = (f"lr {lr_words(record.lr)}" if record.lr > 0 else "frozen") if short else rates_text(rates)
        fig.add_vline(x=record.epoch, line={"dash": "dot", "color": color, "width": 1}, annotation_text=label,
                      annotation_textangle=-90, annotation_font_size=10, annotation_font_color=color, **where)


def epoch_curves_figure(epochs: Sequence[EpochRecord], total_epochs: int, mode: str | None = None,
                        heldout: str = "test", steering: Sequence[SteerRecord] = (),
                        classes: Sequence[str] = ()) -> go.Figure:
    """Train loss, train acc and held-out acc (test, the book's plot, or val) per epoch, with the book's final
    values if `mode`, a line where each change of the learning rates applied, and, given `classes`, each class's
    held-out accuracy (its recall) dotted."""
    x = [e.epoch for e in epochs]
    fig = go.Figure()
    for key, name in (("train_loss", "train loss"), ("train_acc", "train acc"), ("heldout_acc", f"{heldout} acc")):
        points = [(xi, getattr(e, key)) for xi, e in zip(x, epochs, strict=True) if getattr(e, key) is not None]
        fig.add_trace(go.Scatter(name=name, x=[p[0] for p in points], y=[p[1] for p in points],
                                 mode="lines+markers", line={"color": COLORS.get(key, COLORS["test_acc"])}))
    for index, name in enumerate(classes):
        points = [(e.epoch, e.class_acc[index]) for e in epochs
                  if e.class_acc is not None and index < len(e.class_acc) and e.class_acc[index] is not None]
        fig.add_trace(go.Scatter(name=f"{heldout} acc: {name}", x=[p[0] for p in points], y=[p[1] for p in points],
                                 mode="lines+markers", line={"dash": "dot", "width": 1.5}, marker={"size": 5}))
    if mode in BOOK_RESULTS:
        book = BOOK_RESULTS[mode]
        fig.add_trace(go.Scatter(name="book (epoch 5)", x=[5, 5, 5], mode="markers",
                                 y=[book["train_loss"], book["train_acc"], book["test_acc"]],
                                 marker={"symbol": "x", "size": 10, "color": COLORS["book"]}))
    mark_changes(fig, steering)
    fig.update_layout(title="Per epoch", xaxis={"title": "epoch", "range": [0, max(total_epochs, 5) + 0.2]},
                      yaxis={"title": "loss / accuracy", "rangemode": "tozero"}, **LAYOUT)
    return say(fig, f"Per epoch, {len(epochs)} of {plural(total_epochs, 'epoch')}: " + ", ".join(
        from_to(trace.name, trace.y) for trace in fig.data if not trace.name.startswith("book")) + steering_words(
        steering))


def batch_loss_figure(batches: Sequence[BatchRecord], steering: Sequence[SteerRecord] = ()) -> go.Figure:
    """Loss and accuracy of every optimiser step against epoch progress, and a line where each change of the
    learning rates applied."""
    x = [b.epoch for b in batches]
    fig = go.Figure([
        go.Scatter(name="batch loss", x=x, y=[b.loss for b in batches], mode="lines",
                   line={"color": COLORS["train_loss"]}),
        go.Scatter(name="batch acc", x=x, y=[b.acc for b in batches], mode="lines",
                   line={"color": COLORS["train_acc"], "dash": "dot"}),
    ])
    mark_changes(fig, steering)
    fig.update_layout(title="Per batch", xaxis_title="epoch", yaxis={"title": "loss / accuracy",
                                                                      "rangemode": "tozero"}, **LAYOUT)
    return say(fig, f"Per batch, {plural(len(batches), 'batch', 'batches')}: "
                    f"{from_to('loss', [b.loss for b in batches])}, {from_to('accuracy', [b.acc for b in batches])}"
                    + steering_words(steering))


def compare_runs_figure(runs: Sequence[tuple[str, History]]) -> go.Figure:
    """Held-out accuracy (val where the data has it, else test) and train loss per epoch of several runs,
    against the book's final numbers, and in each run's colour a line where each of its changes of rates applied."""
    splits = sorted({history.heldout for _, history in runs}, reverse=True) or ["test"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{' or '.join(splits)} accuracy", "train loss"))
    for i, (label, history) in enumerate(runs):
        color, dash, symbol = run_style(i)
        tested = [e for e in history.epochs if e.heldout_acc is not None]
        fig.add_trace(go.Scatter(name=label, legendgroup=label, x=[e.epoch for e in tested],
                                 y=[e.heldout_acc for e in tested], mode="lines+markers",
                                 line={"color": color, "dash": dash}, marker={"symbol": symbol}), row=1, col=1)
        fig.add_trace(go.Scatter(name=label, legendgroup=label, showlegend=False, x=[e.epoch for e in history.epochs],
                                 y=[e.train_loss for e in history.epochs], mode="lines+markers",
                                 line={"color": color, "dash": dash}, marker={"symbol": symbol}), row=1, col=2)
        mark_changes(fig, history.steering, color, short=True, row=1, col=2)
    for mode, book in BOOK_RESULTS.items():
        name = f"book {'fine-tune' if mode == 'finetune' else 'scratch'}"
        for col, key in ((1, "test_acc"), (2, "train_loss")):
            fig.add_hline(y=book[key], line={"dash": "dash" if mode == "finetune" else "dot",
                                             "color": COLORS["book"]},
                          annotation_text=f"{name} {book[key]:.3f}", row=1, col=col)
    fig.update_layout(title="Runs compared (dashed/dotted: the book's final values, ResNet-18)", **LAYOUT)
    fig.update_xaxes(title_text="epoch")
    return say(fig, runs_summary([(label, h.epochs, [e.train_loss for e in h.epochs], h.steering)
                                  for label, h in runs], "train loss"))


def probabilities_figure(ranked: Sequence[tuple[str, float]]) -> go.Figure:
    """Horizontal bars of class probabilities, most likely on top."""
    labels = [label for label, _ in ranked][::-1]
    values = [p for _, p in ranked][::-1]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[f"{p:.3f}" for p in values],
                           textposition="auto", marker={"color": COLORS["test_acc"]}))
    fig.update_layout(xaxis={"range": [0, 1], "title": "probability"}, height=80 + 40 * len(labels),
                      margin={"l": 10, "r": 10, "t": 10, "b": 40})
    return say(fig, "Class probabilities: " + ", ".join(f"{label} {p:.3f}" for label, p in ranked))


# --------------------------------------------------------------------------------------------------
# Evaluation, explanations and experiments.


def confusion_matrix_figure(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> go.Figure:
    """Counts heatmap (rows: true class, columns: predicted), with one clickable point per cell.

    Plotly reports no selection for heatmap cells, so an invisible marker sits at each cell's centre and takes
    every hover and click (hoverdistance -1: the nearest centre, so anywhere in a cell picks that cell);
    a selected point's customdata is [true index, predicted index]."""
    n = len(classes)
    cells = [(t, p) for t in range(n) for p in range(n)]
    invisible = {"marker": {"opacity": 0}}
    fig = go.Figure([
        go.Heatmap(z=[list(row) for row in confusion], x=list(classes), y=list(classes), colorscale="Blues",
                   text=[[str(int(v)) for v in row] for row in confusion], texttemplate="%{text}",
                   hoverinfo="skip", showscale=False),
        go.Scatter(x=[classes[p] for _, p in cells], y=[classes[t] for t, _ in cells], mode="markers",
                   customdata=[[t, p, int(confusion[t][p])] for t, p in cells], name="cells", showlegend=False,
                   marker={"size": 12, "opacity": 0}, selected=invisible, unselected=invisible,
                   hovertemplate="true %{y}, predicted %{x}: %{customdata[2]} photos (click to see them)"
                                 "<extra></extra>"),
    ])
    fig.update_layout(title="Confusion matrix (click a cell to see its photos)", clickmode="event+select",
                      hovermode="closest", hoverdistance=-1, margin={"l": 40, "r": 20, "t": 50, "b": 40},
                      xaxis={"title": "predicted class", "range": [-0.5, n - 0.5]},
                      yaxis={"title": "true class", "range": [n - 0.5, -0.5]}, height=160 + 70 * n)
    return say(fig, "Confusion matrix: " + "; ".join(
        f"of {sum(row):,} {classes[t]} photos, " + ", ".join(f"{int(count):,} predicted {classes[p]}"
                                                                for p, count in enumerate(row))
        for t, row in enumerate(confusion)))


def feature_map_figure(panels: Sequence[tuple[str, Sequence[Sequence[float]], Sequence[float]]],
                       labels: Sequence[int], classes: Sequence[str], names: Sequence[str] = ()) -> go.Figure:
    """Side-by-side 2-D PCA scatters of the same photos' features, one colour per class.

    Each panel is (title, N x 2 coordinates, share of variance of the two components)."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[
        f"{title} (PCA: {ratio[0]:.0%} + {ratio[1]:.0%} of the variance)" for title, _, ratio in panels])
    for col, (_, coords, _) in enumerate(panels, start=1):
        for k, name in enumerate(classes):
            rows = [i for i, label in enumerate(labels) if label == k]
            fig.add_trace(go.Scattergl(
                name=name, legendgroup=name, showlegend=col == 1, mode="markers",
                x=[coords[i][0] for i in rows], y=[coords[i][1] for i in rows],
                text=[names[i] for i in rows] if names else None,
                hovertemplate=f"{name}<br>%{{text}}<extra></extra>" if names else f"{name}<extra></extra>",
                marker={"size": 6, "opacity": 0.7, "color": run_style(k)[0], "symbol": run_style(k)[2]}),
                row=1, col=col)
    fig.update_layout(title="Penultimate-layer features of the test photos, projected to 2-D", **LAYOUT)
    fig.update_xaxes(title_text="component 1")
    fig.update_yaxes(title_text="component 2")
    counts = ", ".join(f"{sum(1 for label in labels if label == k):,} {name}" for k, name in enumerate(classes))
    return say(fig, f"The features of {plural(len(labels), 'test photo')} ({counts}) projected to 2-D, one panel "
                    "each: " + "; ".join(f"{title}, whose two components hold {ratio[0]:.0%} and {ratio[1]:.0%} of "
                                         "the variance" for title, _, ratio in panels))


def weight_change_figure(series: Sequence[tuple[str, Sequence]]) -> go.Figure:
    """Grouped bars of each block's relative weight change (log scale), one colour per run.

    `series` holds (run label, list of explain.BlockChange) pairs, blocks in model order."""
    fig = go.Figure()
    for i, (label, changes) in enumerate(series):
        fig.add_trace(go.Bar(name=label, x=[c.block for c in changes], y=[c.relative_change for c in changes],
                             customdata=[c.parameters for c in changes],
                             hovertemplate="%{x}: %{y:.2e} (%{customdata} weights)<extra>" + label + "</extra>",
                             marker={"color": run_style(i)[0],
                                     "pattern": {"shape": ("", "/", ".", "x", "-", "+")[i % 6]}}))
    fig.update_layout(title="What training changed: ||W after - W before|| / ||W before|| per block",
                      barmode="group", xaxis_title="block (input side left, output layer right)",
                      yaxis={"title": "relative change (log scale)", "type": "log", "dtick": 1,
                             "exponentformat": "power"}, **LAYOUT)
    return say(fig, "Relative weight change per block: " + "; ".join(
        f"{label} " + (f"{number(changes[0].relative_change)} in {changes[0].block} to "
                       f"{number(changes[-1].relative_change)} in {changes[-1].block}" if changes else "no block")
        for label, changes in series))


def lr_sweep_figure(points: Sequence, mode: str = "finetune", heldout: str = "test") -> go.Figure:
    """Final held-out accuracy (`heldout`: test or val) against learning rate (log axis); runs that diverged or
    failed are marked at 0.

    `points` are experiments.SweepPoint (lr, heldout_acc, status, error)."""
    done = sorted((p for p in points if p.heldout_acc is not None), key=lambda p: p.lr)
    failed = [p for p in points if p.heldout_acc is None and p.status == Status.FAILED]
    fig = go.Figure([go.Scatter(name=f"final {heldout} acc", x=[p.lr for p in done], y=[p.heldout_acc for p in done],
                                mode="lines+markers+text", text=[f"{p.heldout_acc:.3f}" for p in done],
                                textposition="top center", line={"color": COLORS["test_acc"]})])
    if failed:
        fig.add_trace(go.Scatter(name="diverged / failed", x=[p.lr for p in failed], y=[0] * len(failed),
                                 mode="markers", marker={"symbol": "x", "size": 12, "color": COLORS["train_acc"]},
                                 text=[p.error or "" for p in failed],
                                 hovertemplate="lr %{x:.0e}: %{text}<extra></extra>"))
    if mode in BOOK_RESULTS:
        book_lr = 5e-5 if mode == "finetune" else 5e-4
        fig.add_trace(go.Scatter(name=f"book ({'fine-tune' if mode == 'finetune' else 'scratch'}, ResNet-18)",
                                 x=[book_lr], y=[BOOK_RESULTS[mode]["test_acc"]], mode="markers",
                                 marker={"symbol": "x", "size": 10, "color": COLORS["book"]}))
    fig.update_layout(title=f"Learning-rate sweep: final {heldout} accuracy", xaxis={"title": "learning rate (log)",
                      "type": "log", "exponentformat": "power"}, yaxis={"title": f"{heldout} accuracy",
                                                                        "range": [0, 1.05]},
                      **LAYOUT)
    return say(fig, f"Final {heldout} accuracy by learning rate: " + (", ".join(
        f"lr {lr_words(p.lr)} {p.heldout_acc:.3f}" for p in done) or "no run finished yet") + "".join(
        f"; lr {lr_words(p.lr)} failed" for p in failed))


def runs_progress_figure(series: Sequence[tuple[str, Sequence[EpochRecord], Sequence[BatchRecord]]],
                         title: str | None = None,
                         steering: Sequence[Sequence[SteerRecord]] = ()) -> go.Figure:
    """Several runs as they progress: held-out accuracy per epoch and loss per batch, with the book's final values
    (without them under another `title`: a scaled-down recipe is not the book's), and on the loss, a line in the
    run's colour where each change of its learning rates applied (`steering`, one list per run)."""
    validated = any(e.val_acc is not None for _, epochs, _ in series for e in epochs)
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{'val' if validated else 'test'} accuracy per epoch",
                                                        "train loss per batch"))
    for i, (label, epochs, batches) in enumerate(series):
        color, dash, symbol = run_style(i)
        tested = [e for e in epochs if e.heldout_acc is not None]
        fig.add_trace(go.Scatter(name=label, legendgroup=label, x=[e.epoch for e in tested],
                                 y=[e.heldout_acc for e in tested], mode="lines+markers",
                                 line={"color": color, "dash": dash}, marker={"symbol": symbol, "size": 8}),
                      row=1, col=1)
        fig.add_trace(go.Scatter(name=label, legendgroup=label, showlegend=False, x=[b.epoch for b in batches],
                                 y=[b.loss for b in batches], mode="lines",
                                 line={"color": color, "width": 1.5, "dash": dash}), row=1, col=2)
        mark_changes(fig, steering[i] if i < len(steering) else (), color, short=True, row=1, col=2)
    for mode, book in BOOK_RESULTS.items() if title is None else ():
        name = f"book {'fine-tune' if mode == 'finetune' else 'scratch'}"
        for col, key in ((1, "test_acc"), (2, "train_loss")):
            fig.add_hline(y=book[key], line={"dash": "dash" if mode == "finetune" else "dot", "color": COLORS["book"]},
                          annotation_text=f"{name} {book[key]:.3f}", row=1, col=col)
    fig.update_layout(title=title or "Fine-tune vs scratch (dashed/dotted: the book's final values, ResNet-18)",
                      **LAYOUT)
    fig.update_xaxes(title_text="epoch")
    return say(fig, runs_summary([(label, epochs, [b.loss for b in batches], steering[i] if i < len(steering) else ())
                                  for i, (label, epochs, batches) in enumerate(series)], "train loss per batch"))


def lr_finder_figure(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
                     suggestion: float | None = None, current_lr: float | None = None,
                     loss_reduction: str = "sum") -> go.Figure:
    """Loss per photo against the learning rate (log x): every step, their moving average, the suggestion and the
    slider's current value."""
    fig = go.Figure([
        go.Scatter(name="loss at each step", x=list(lrs), y=list(losses), mode="markers",
                   marker={"size": 4, "color": COLORS["train_loss"], "opacity": 0.35}),
        go.Scatter(name="smoothed", x=list(lrs), y=list(smoothed), mode="lines",
                   line={"color": COLORS["train_loss"], "width": 2}),
    ])
    for lr, label, color, dash in ((suggestion, "suggested", COLORS["test_acc"], "solid"),
                                   (current_lr, "slider", COLORS["book"], "dot")):
        if lr is not None:
            fig.add_vline(x=lr, line={"color": color, "dash": dash, "width": 2},
                          annotation={"text": f"{label} {lr:.1e}", "textangle": -90, "yanchor": "top"})
    finite = [v for v in smoothed if v == v]
    top = max(finite[: max(1, len(finite) // 3)] or [1.0]) * 2  # diverging tails would squash the curve
    fig.update_layout(title="Learning-rate finder: loss per photo as the lr rises", xaxis_title=(
        "learning rate of the copied layers (log scale)" + (", mean loss" if loss_reduction == "mean" else
                                                              ", summed loss")),
        yaxis_title="loss per photo", xaxis_type="log", yaxis_range=[0, top], **LAYOUT)
    if not finite:
        return say(fig, "Learning-rate finder: no step measured yet")
    lowest = min(range(len(smoothed)), key=lambda i: smoothed[i] if smoothed[i] == smoothed[i] else float("inf"))
    return say(fig, f"Learning-rate finder, {plural(len(lrs), 'step')} from lr {lr_words(lrs[0])} to "
                    f"{lr_words(lrs[-1])}: smoothed loss lowest, {smoothed[lowest]:.2f}, at lr {lr_words(lrs[lowest])}"
                    + (f"; suggested lr {lr_words(suggestion)}" if suggestion is not None else ""))
