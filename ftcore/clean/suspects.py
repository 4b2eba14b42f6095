"""Label suspects: the photos whose label a classifier that never saw them finds least likely.

Each photo's class probabilities come from a classifier fitted on the other folds' vectors (k-fold, so every photo
is judged out of sample): a support-vector machine on the vectors scaled to length 1, which ranked the flipped labels
of benchmarks.clean.quality at least as high as a logistic regression or a nearest-neighbour vote in every trial.
Suspects are the photos cleanlab's confident learning flags, or that the classifier gives another class, ranked by
cleanlab's label-quality score.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import FtcoreError

FOLDS = 5  # k of the k-fold: each photo is judged by a classifier fitted on the other four fifths
REGULARIZATION = 1.0  # the support-vector machine's C (scikit-learn's default; 3 ranked worse)
CALIBRATION_FOLDS = 5  # the folds that turn the machine's scores into probabilities within each fit (fewer where a
# class has fewer photos in the fit: a class of FOLDS photos has four there)
SEED = 0  # the folds' shuffle: the same photos give the same suspects


@dataclass(frozen=True)
class Suspect:
    """A photo whose label looks wrong."""

    index: int  # its row among the photos judged
    given: int  # the class it is filed under
    suggested: int  # the class the classifier finds likeliest
    score: float  # cleanlab's label quality, 0 to 1: the lower, the more suspect
    confidence: float  # the classifier's probability of the suggested class


def check_foldable(labels: np.ndarray, classes: list[str], folds: int = FOLDS) -> None:
    """Refuse a set with one class, or a class with too few photos to split into `folds` folds."""
    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        raise FtcoreError("the photos to check have one class only; the check compares classes, so it needs at "
                          "least two class folders with photos")
    counts = np.bincount(labels, minlength=len(classes))
    for i, name in enumerate(classes):
        if counts[i] < folds:
            raise FtcoreError(f"class {name} has {counts[i]} training photo(s), too few for the check, which needs "
                              f"at least {folds} per class to judge each photo out of sample; add "
                              f"{folds - counts[i]} more")


def out_of_sample_probabilities(vectors: np.ndarray, labels: np.ndarray, num_classes: int,
                                folds: int = FOLDS) -> np.ndarray:
    """Each photo's class probabilities from a classifier fitted on the other folds (rows: photos)."""
    # here: listing and editing photos needs no scikit-learn
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    probabilities = np.zeros((len(labels), num_classes))
    for fit, judge in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(unit, labels):
        folds_inside = min(CALIBRATION_FOLDS, int(np.bincount(labels[fit])[np.unique(labels[fit])].min()))
        model = CalibratedClassifierCV(SVC(C=REGULARIZATION), cv=folds_inside, ensemble=False).fit(
            unit[fit], labels[fit])
        probabilities[np.ix_(judge, model.classes_)] = model.predict_proba(unit[judge])
    return probabilities


def label_suspects(vectors: np.ndarray, labels: np.ndarray, classes: list[str]) -> list[Suspect]:
    """The photos confident learning flags or the classifier gives another class, most suspect first."""
    # here: as above, and cleanlab imports pandas
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    check_foldable(labels, classes)
    probabilities = out_of_sample_probabilities(vectors, labels, len(classes))
    with warnings.catch_warnings():  # cleanlab warns of classes it finds no issue in, which is no news here
        warnings.simplefilter("ignore")
        flagged = find_label_issues(labels, probabilities, n_jobs=1)  # its pool of processes costs more here
        scores = get_label_quality_scores(labels, probabilities)
    suspect = flagged | (probabilities.argmax(axis=1) != labels)
    order = sorted(np.flatnonzero(suspect), key=lambda i: (scores[i], i))
    return [Suspect(index=int(i), given=int(labels[i]), suggested=int(probabilities[i].argmax()),
                    score=float(scores[i]), confidence=float(probabilities[i].max())) for i in order]
