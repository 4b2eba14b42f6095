"""Charts: each figure carries exactly the numbers it is built from."""

from __future__ import annotations

import numpy as np
import pytest

from ftcore.config import BOOK_RESULTS
from ftcore.data.summary import summarize
from ftcore.insight import chart_text, charts
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


# --------------------------------------------------------------------------------------------------
# Charts in words, and told apart without colour.


def test_a_chart_of_runs_says_each_runs_first_and_last_figures_and_its_steering_in_words():
    fig = charts.runs_progress_figure([("fine-tune", epochs(0.67, 0.77), [BatchRecord(0.5, 0.69, 0.5),
                                                                          BatchRecord(1.0, 0.31, 0.9)]),
                                       ("scratch", epochs(0.5, 0.5), [])], title="lesson",
                                      steering=[[SteerRecord(epoch=1.25, lr=1e-4, head_lr=1e-3)], []])
    assert chart_text.summary_of(fig) == (
        "test accuracy: fine-tune 0.67 to 0.77, scratch 0.50 to 0.50 over 2 epochs; train loss per batch: "
        "fine-tune 0.69 to 0.31, scratch not measured yet; fine-tune steered at epoch 1.25: lr 1e-4, output "
        "layer 1e-3")
    assert chart_text.summary_of(charts.runs_progress_figure([])) == "test accuracy: no run yet"


@pytest.mark.parametrize("build, sentence", [
    (lambda: charts.probabilities_figure([("hotdog", 0.912), ("not-hotdog", 0.088)]),
     "Class probabilities: hotdog 0.912, not-hotdog 0.088"),
    (lambda: charts.confusion_matrix_figure([[5, 2], [1, 7]], ["hotdog", "not-hotdog"]),
     "Confusion matrix: of 7 hotdog photos, 5 predicted hotdog, 2 predicted not-hotdog; of 8 not-hotdog photos, "
     "1 predicted hotdog, 7 predicted not-hotdog"),
    (lambda: charts.batch_loss_figure([BatchRecord(0.5, 0.9, 0.5), BatchRecord(1.0, 0.4, 0.75)],
                                      [SteerRecord(epoch=0.75, lr=0.0, head_lr=2e-2)]),
     "Per batch, 2 batches: loss 0.90 to 0.40, accuracy 0.50 to 0.75; steered at epoch 0.75: copied layers "
     "frozen, output layer 2e-2"),
    (lambda: charts.epoch_curves_figure(epochs(0.7, None), 5, mode="finetune"),
     "Per epoch, 2 of 5 epochs: train loss 1 to 0.50, train acc 0.50 to 0.60, test acc 0.70"),
    (lambda: charts.lr_finder_figure([1e-6, 1e-4, 1e-2], [0.7, 0.3, 9.0], [0.7, 0.5, 3.0], 1e-4),
     "Learning-rate finder, 3 steps from lr 1e-6 to 1e-2: smoothed loss lowest, 0.50, at lr 1e-4; suggested lr 1e-4"),
])
def test_each_chart_says_its_figures_in_one_sentence(build, sentence):
    assert chart_text.summary_of(build()) == sentence


def test_the_dataset_weight_and_sweep_charts_say_their_figures(tiny_data):
    from ftcore.insight.explain import BlockChange
    from ftcore.runs.series import SweepPoint

    assert chart_text.summary_of(charts.class_counts_figure(summarize(tiny_data))) == \
        "Images per class: train blue 16, red 16; test blue 8, red 8"
    assert chart_text.summary_of(charts.image_sizes_figure(summarize(tiny_data))).startswith(
        "Image width against height of 48 photos: widths ")
    assert chart_text.summary_of(charts.weight_change_figure([("ft", [BlockChange("conv1", 1e-3, 10),
                                                                       BlockChange("fc", 0.5, 4)])])) == \
        "Relative weight change per block: ft 1e-3 in conv1 to 0.50 in fc"
    sweep = charts.lr_sweep_figure([SweepPoint(1e-5, 0.8, "finished"), SweepPoint(1e-1, None, "failed", "nan")])
    assert chart_text.summary_of(sweep) == "Final test accuracy by learning rate: lr 1e-5 0.800; lr 1e-1 failed"


def test_a_charts_table_holds_every_number_it_draws_and_no_invisible_layer():
    fig = charts.runs_progress_figure([("ft", epochs(0.8, 0.9), [BatchRecord(0.5, 0.7, 0.6)]), ("sc", epochs(0.5), [])],
                                      title="t")
    rows = chart_text.table_of(fig)
    assert [(r["series"], r["panel"], r["epoch"], r["value"]) for r in rows] == [
        ("ft", "test accuracy per epoch", 1, 0.8), ("ft", "test accuracy per epoch", 2, 0.9),
        ("ft", "train loss per batch", 0.5, 0.7), ("sc", "test accuracy per epoch", 1, 0.5)]
    confusion = chart_text.table_of(charts.confusion_matrix_figure([[5, 2], [1, 7]], ["a", "b"]))
    assert confusion == [{"true class": "a", "predicted class a": 5, "predicted class b": 2},
                         {"true class": "b", "predicted class a": 1, "predicted class b": 7}]
    bars = chart_text.table_of(charts.probabilities_figure([("a", 0.9), ("b", 0.1)]))
    assert bars == [{"series": "", "probability": 0.1, "category": "b"},
                    {"series": "", "probability": 0.9, "category": "a"}]


def test_runs_are_told_apart_by_dash_and_marker_as_well_as_by_colour_blind_safe_colours():
    fig = charts.runs_progress_figure([("fine-tune", epochs(0.6), []), ("scratch", epochs(0.5), [])], title="t")
    first, second = fig.data[0], fig.data[2]  # each run's accuracy trace (its loss trace follows it)
    assert {first.line.color, second.line.color} <= set(charts.OKABE_ITO)
    assert first.line.dash != second.line.dash and first.marker.symbol != second.marker.symbol


# Machado, Oliveira and Fernandes (2009): what a person with deuteranopia sees, as a matrix on linear RGB
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]])
APART = 20  # CIE76 colour difference that reads as two colours at a glance (2.3 is the barely noticeable one)


def seen_with_deuteranopia(hex_colour: str) -> np.ndarray:
    """The colour's CIELAB coordinates as a person with deuteranopia sees it."""
    srgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(DEUTERANOPIA @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ seen
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
    f = np.where(xyz / np.array([0.95047, 1.0, 1.08883]) > 216 / 24389, f,
                 (24389 / 27 * xyz / np.array([0.95047, 1.0, 1.08883]) + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_the_lessons_runs_stay_apart_for_a_person_with_deuteranopia():
    lesson = [charts.run_style(i)[0] for i in range(3)]  # the lesson compares up to three runs
    gaps = [np.linalg.norm(seen_with_deuteranopia(a) - seen_with_deuteranopia(b))
            for i, a in enumerate(lesson) for b in lesson[i + 1:]]
    assert min(gaps) > APART
    # the red against green the lesson used to draw falls together, so the measure can tell
    assert np.linalg.norm(seen_with_deuteranopia("#d62728") - seen_with_deuteranopia("#2ca02c")) < APART
