"""Evaluation against hand-computed answers: confusion matrix, per-class metrics, worst photos, and agreement
with the training loop's own test accuracy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ftcore.config import recipe
from ftcore.errors import FtcoreError
from ftcore.insight.evaluation import (
    Evaluation,
    accuracy,
    balanced_accuracy,
    class_metrics,
    confusion_matrix,
    evaluate_photos,
    format_evaluation,
)
from ftcore.models.checkpoint import load_checkpoint
from ftcore.runs import saved, snapshot
from ftcore.runs.saved import save_run
from ftcore.train.loop import fit

# Six photos of three classes, predicted: 0 0 1 | 1 2 | 2 (true classes: 0 0 0 | 1 1 | 2).
TARGETS = np.array([0, 0, 0, 1, 1, 2])
PREDICTIONS = np.array([0, 1, 0, 1, 2, 2])


def test_confusion_matrix_by_hand():
    assert confusion_matrix(TARGETS, PREDICTIONS, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_per_class_metrics_and_accuracy_by_hand():
    confusion = confusion_matrix(TARGETS, PREDICTIONS, 3)
    metrics = class_metrics(confusion, ["a", "b", "c"])
    # precision = diagonal / column sum, recall = diagonal / row sum, f1 = 2pr / (p + r)
    assert [m.precision for m in metrics] == pytest.approx([2 / 2, 1 / 2, 1 / 2])
    assert [m.recall for m in metrics] == pytest.approx([2 / 3, 1 / 2, 1 / 1])
    assert [m.f1 for m in metrics] == pytest.approx([0.8, 0.5, 2 / 3])
    assert [m.support for m in metrics] == [3, 2, 1]
    assert accuracy(confusion) == pytest.approx(4 / 6)
    assert balanced_accuracy(confusion) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)  # the mean recall


def test_balanced_accuracy_shows_what_accuracy_hides_on_unequal_classes():
    """90 photos of a and 10 of b, every one called a: accuracy 0.9, balanced accuracy 0.5 (chance); a class
    without photos here is left out of the mean."""
    lopsided = confusion_matrix([0] * 90 + [1] * 10, [0] * 100, 3)
    assert accuracy(lopsided) == pytest.approx(0.9) and balanced_accuracy(lopsided) == pytest.approx(0.5)
    assert balanced_accuracy(np.zeros((2, 2), dtype=int)) == 0.0


def test_a_class_never_predicted_has_precision_0_not_a_division_error():
    metrics = class_metrics(confusion_matrix([0, 1], [0, 0], 2), ["a", "b"])
    assert (metrics[1].precision, metrics[1].recall, metrics[1].f1, metrics[1].support) == (0.0, 0.0, 0.0, 1)
    assert accuracy(np.zeros((2, 2), dtype=int)) == 0.0


def hand_evaluation() -> Evaluation:
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.05, 0.95], [0.3, 0.7], [0.8, 0.2]])
    return Evaluation(["cat", "dog"], [f"p{i}.jpg" for i in range(5)], np.array([0, 0, 0, 1, 1]), probabilities)


def test_worst_photos_are_the_highest_losses_with_their_probabilities():
    ev = hand_evaluation()
    np.testing.assert_allclose(ev.losses, -np.log([0.9, 0.4, 0.05, 0.7, 0.2]))
    worst = ev.worst(3)
    assert [o.path for o in worst] == ["p2.jpg", "p4.jpg", "p1.jpg"]  # losses 3.00, 1.61, 0.92
    assert (worst[0].true, worst[0].predicted, worst[0].probability, worst[0].true_probability) == \
        ("cat", "dog", 0.95, 0.05)
    assert worst[0].loss == pytest.approx(-math.log(0.05)) and not worst[0].correct


def test_cell_lists_its_photos_highest_loss_first():
    ev = hand_evaluation()
    assert ev.confusion.tolist() == [[1, 2], [1, 1]]
    assert [o.path for o in ev.cell(0, 1)] == ["p2.jpg", "p1.jpg"]
    assert [o.path for o in ev.cell(1, 1)] == ["p3.jpg"] and ev.cell(1, 0)[0].path == "p4.jpg"


def test_to_dict_and_text_carry_the_same_numbers():
    ev = hand_evaluation()
    d = ev.to_dict(top=2)
    assert d["accuracy"] == pytest.approx(0.4) and d["confusion"]["matrix"] == [[1, 2], [1, 1]]
    assert d["balanced_accuracy"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert [w["path"] for w in d["worst"]] == ["p2.jpg", "p4.jpg"]
    assert d["per_class"][0] == {"name": "cat", "precision": 0.5, "recall": pytest.approx(1 / 3),
                                 "f1": pytest.approx(0.4), "support": 3}
    text = format_evaluation(ev, top=2)
    assert "accuracy 0.400, balanced accuracy 0.417 (the mean of the classes' recalls) on 5 test photos" \
        in text and "cat           0.500   0.333  0.400        3" in text
    assert "p2.jpg: true cat, predicted dog p 0.950, loss 2.996 (wrong)" in text


@pytest.fixture(scope="module")
def tiny_run(tiny_data):
    trained = fit(recipe("scratch", data=str(tiny_data), epochs=1, batch_size=8, image_size=32))
    return saved.Run("eval-run", snapshot.run_label(trained.config), trained.config, trained.history, trained)


def test_evaluating_a_run_agrees_with_the_training_loops_test_accuracy(tiny_run, tiny_data):
    subject = tiny_run.trained
    ev = evaluate_photos(subject.model, subject.classes, subject.eval_transform, str(tiny_data), arch=subject.arch)
    assert len(ev.paths) == 16 and ev.accuracy == pytest.approx(tiny_run.history.final().test_acc)
    assert all(Path(path).parent.name == ev.classes[t] for path, t in zip(ev.paths, ev.targets, strict=True))
    assert ev.confusion.sum() == 16 and ev.probabilities.sum(axis=1) == pytest.approx(np.ones(16))
    assert ev.features.shape == (16, 512)


def test_a_checkpoint_evaluates_like_its_run(tiny_run, tiny_data, tmp_path):
    path, _ = save_run(tiny_run.trained, tmp_path)
    subject = load_checkpoint(path)
    assert subject.arch == "resnet18" and subject.classes == ["blue", "red"] and subject.weights.path is None
    ev = evaluate_photos(subject.model, subject.classes, subject.eval_transform, str(tiny_data), limit=4)
    assert len(ev.paths) == 8 and ev.accuracy == pytest.approx(
        evaluate_photos(tiny_run.trained.model, subject.classes, subject.eval_transform, str(tiny_data),
                       limit=4).accuracy)


def test_data_with_other_classes_is_refused(tiny_run, tmp_path):
    from conftest import write_tiny_imagefolder

    other = write_tiny_imagefolder(tmp_path / "other", {"train": 1, "test": 1})
    (other / "train" / "red").rename(other / "train" / "green")
    (other / "test" / "red").rename(other / "test" / "green")
    with pytest.raises(FtcoreError, match="has classes blue, green but the model was trained on blue, red"):
        evaluate_photos(tiny_run.trained.model, ["blue", "red"], tiny_run.trained.eval_transform, str(other))
