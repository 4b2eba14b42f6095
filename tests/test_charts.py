"""Charts: each figure carries exactly the numbers it is built from."""

from __future__ import annotations

import pytest

from ftcore.config import BOOK_RESULTS
from ftcore.data.summary import summarize
from ftcore.insight import charts
from ftcore.records import BatchRecord, EpochRecord, History, SteerRecord


def epochs(*accs) -> list[EpochRecord]:
    return [EpochRecord(i + 1, 1.0 / (i + 1), 0.5 + i / 10, acc, 32, 1.0) for i, acc in enumerate(accs)]


def test_class_counts(tiny_data):
    fig = charts.class_counts_figure(summarize(tiny_data))
    assert [t.name for t in fig.data] == ["train", "test"]
    assert list(fig.data[0].x) == ["blue", "red"] and list(fig.data[0].y) == [16, 16] and list(fig.data[1].y) == [8, 8]


def test_image_sizes_has_one_point_per_image(tiny_data):
    summary = summarize(tiny_data)
    fig = charts.image_sizes_figure(summary)
    assert [t.name for t in fig.data] == ["blue", "red"]
    assert sum(len(t.x) for t in fig.data) == len(summary.images) == 48
    assert sorted(zip(fig.data[1].x, fig.data[1].y, strict=True)) == \
        sorted((r.width, r.height) for r in summary.images if r.label == "red")


def test_epoch_curves_skip_missing_test_accuracy_and_show_the_book():
    fig = charts.epoch_curves_figure(epochs(0.7, None), 5, mode="finetune")
    loss, train_acc, test_acc, book = fig.data
    assert list(loss.x) == [1, 2] and list(loss.y) == [1.0, 0.5]
    assert list(test_acc.x) == [1] and list(test_acc.y) == [0.7]
    b = BOOK_RESULTS["finetune"]
    assert list(book.y) == [b["train_loss"], b["train_acc"], b["test_acc"]] and list(book.x) == [5, 5, 5]
    assert len(charts.epoch_curves_figure(epochs(0.7), 5).data) == 3  # no book markers without a mode


def test_epoch_curves_can_show_each_classs_held_out_accuracy():
    records = [EpochRecord(1, 0.9, 0.6, 0.7, 32, 1.0, class_acc=[0.95, 0.45]),
               EpochRecord(2, 0.5, 0.8, None, 32, 1.0),  # stopped before its evaluation
               EpochRecord(3, 0.4, 0.9, 0.8, 32, 1.0, class_acc=[0.9, 0.7])]
    fig = charts.epoch_curves_figure(records, 3, heldout="val", classes=["hotdog", "not-hotdog"])
    hotdog, other = fig.data[3:]
    assert (hotdog.name, list(hotdog.x), list(hotdog.y)) == ("val acc: hotdog", [1, 3], [0.95, 0.9])
    assert (other.name, list(other.y)) == ("val acc: not-hotdog", [0.45, 0.7])
    assert len(charts.epoch_curves_figure(records, 3).data) == 3  # off unless asked


def test_batch_loss():
    fig = charts.batch_loss_figure([BatchRecord(0.5, 0.9, 0.5), BatchRecord(1.0, 0.4, 0.75)])
    assert list(fig.data[0].x) == [0.5, 1.0] and list(fig.data[0].y) == [0.9, 0.4]
    assert list(fig.data[1].y) == [0.5, 0.75]


def test_compare_runs_overlays_each_run_and_the_books_finals():
    runs = [("fine", History(epochs=epochs(0.8, 0.9))), ("scratch", History(epochs=epochs(0.6)))]
    fig = charts.compare_runs_figure(runs)
    assert [t.name for t in fig.data] == ["fine", "fine", "scratch", "scratch"]
    assert list(fig.data[0].y) == [0.8, 0.9] and list(fig.data[1].y) == [1.0, 0.5]
    lines = sorted(shape.y0 for shape in fig.layout.shapes)
    expected = sorted(BOOK_RESULTS[m][k] for m in BOOK_RESULTS for k in ("test_acc", "train_loss"))
    assert lines == pytest.approx(expected)


def test_compare_runs_marks_where_a_run_was_steered_in_its_colour():
    steered = History(epochs=epochs(0.8, 0.9), steering=[SteerRecord(epoch=1.25, lr=2e-3, head_lr=2e-2),
                                                          SteerRecord(epoch=1.5, lr=0.0, head_lr=2e-2)])
    fig = charts.compare_runs_figure([("plain", History(epochs=epochs(0.7))), ("steered", steered)])
    marks = [shape for shape in fig.layout.shapes if shape.x0 == shape.x1]  # vertical: the changes
    assert [shape.x0 for shape in marks] == [1.25, 1.5]
    assert {shape.line.color for shape in marks} == {fig.data[2].line.color}  # the steered run's colour
    assert [a.text for a in fig.layout.annotations if a.text in ("lr 2e-3", "frozen")] == ["lr 2e-3", "frozen"]


def test_probabilities_most_likely_on_top():
    fig = charts.probabilities_figure([("hotdog", 0.9), ("not-hotdog", 0.1)])
    bar = fig.data[0]
    assert list(bar.y) == ["not-hotdog", "hotdog"] and list(bar.x) == [0.1, 0.9]
    assert tuple(fig.layout.xaxis.range) == (0, 1)


# --------------------------------------------------------------------------------------------------
# Evaluation, explanations and experiments.


def test_confusion_matrix_carries_counts_and_one_clickable_point_per_cell():
    from ftcore.insight.charts import confusion_matrix_figure

    fig = confusion_matrix_figure([[5, 2], [1, 7]], ["hotdog", "not-hotdog"]).to_plotly_json()
    heatmap, cells = fig["data"]
    assert heatmap["z"] == [[5, 2], [1, 7]] and heatmap["hoverinfo"] == "skip"
    assert [list(c) for c in cells["customdata"]] == [[0, 0, 5], [0, 1, 2], [1, 0, 1], [1, 1, 7]]
    assert list(cells["x"]) == ["hotdog", "not-hotdog"] * 2 and list(cells["y"]) == ["hotdog"] * 2 + ["not-hotdog"] * 2
    assert fig["layout"]["yaxis"]["range"] == [1.5, -0.5]  # first class on top, as a table reads


def test_feature_map_has_one_trace_per_class_and_panel():
    fig = charts.feature_map_figure([("before", [[0, 0], [1, 1], [2, 2]], [0.5, 0.2]),
                                     ("after", [[3, 3], [4, 4], [5, 5]], [0.9, 0.05])],
                                    [0, 1, 0], ["a", "b"], ["x.jpg", "y.jpg", "z.jpg"])
    assert [(t.name, list(t.x)) for t in fig.data] == [("a", [0, 2]), ("b", [1]), ("a", [3, 5]), ("b", [4])]
    assert "50% + 20%" in fig.layout.annotations[0].text and "90% + 5%" in fig.layout.annotations[1].text


def test_weight_change_bars_per_run_on_a_log_axis():
    from ftcore.insight.explain import BlockChange

    fig = charts.weight_change_figure([("fine-tune", [BlockChange("conv1", 1e-3, 10), BlockChange("fc", 0.5, 4)]),
                                       ("scratch", [BlockChange("conv1", 0.2, 10), BlockChange("fc", 0.3, 4)])])
    assert [(t.name, list(t.x), list(t.y)) for t in fig.data] == [("fine-tune", ["conv1", "fc"], [1e-3, 0.5]),
                                                                    ("scratch", ["conv1", "fc"], [0.2, 0.3])]
    assert fig.layout.yaxis.type == "log"


def test_lr_sweep_sorts_by_lr_marks_failures_and_the_book():
    from ftcore.runs.series import SweepPoint

    points = [SweepPoint(5e-4, 0.7, "finished"), SweepPoint(1e-5, 0.8, "finished"),
              SweepPoint(1e-1, None, "failed", "training diverged")]
    fig = charts.lr_sweep_figure(points, "finetune")
    done, failed, book = fig.data
    assert list(done.x) == [1e-5, 5e-4] and list(done.y) == [0.8, 0.7] and fig.layout.xaxis.type == "log"
    assert list(failed.x) == [1e-1] and list(failed.y) == [0] and list(failed.text) == ["training diverged"]
    assert list(book.x) == [5e-5] and list(book.y) == [BOOK_RESULTS["finetune"]["test_acc"]]


def test_runs_progress_draws_each_run_and_the_books_finals():
    fig = charts.runs_progress_figure([("ft", epochs(0.8, 0.9), [BatchRecord(0.5, 0.7, 0.6)]),
                                       ("sc", epochs(0.5), [])])
    assert [list(t.y) for t in fig.data] == [[0.8, 0.9], [0.7], [0.5], []]
    texts = [a.text for a in fig.layout.annotations]
    assert any("book fine-tune 0.939" in t for t in texts) and any("book scratch 0.374" in t for t in texts)


def test_runs_are_told_apart_by_dash_and_marker_as_well_as_by_colour_blind_safe_colours():
    fig = charts.runs_progress_figure([("fine-tune", epochs(0.6), []), ("scratch", epochs(0.5), [])], title="t")
    first, second = fig.data[0], fig.data[2]  # each run's accuracy trace (its loss trace follows it)
    assert {first.line.color, second.line.color} <= set(charts.OKABE_ITO)
    assert first.line.dash != second.line.dash and first.marker.symbol != second.marker.symbol


def test_the_accuracy_summary_states_each_runs_first_and_last_figures():
    assert charts.accuracy_summary([("fine-tune", epochs(0.67, 0.77)), ("scratch", epochs(0.5, 0.5))]) == \
        "test accuracy: fine-tune 0.67 to 0.77, scratch 0.50 to 0.50 over 2 epochs"
    assert charts.accuracy_summary([("a", [])]) == "test accuracy: a not measured yet over 0 epochs"
