"""Dataset layouts and the held-out split: which layout a folder is, which photos each role gets, the hash rule
that holds validation out of train, what the CLI prints and saves for each layout, the refused trees, and class
names matched across datasets.

Expected values are computed here independently of ftcore: counts from what the test wrote, and the held-out
photos from the hash rule itself (sha1 of "seed/class/relpath", first 16 hex digits over 2**64 < fraction)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_CLASSES, make_photo, write_tiny_imagefolder
from ftcore.cli.main import main
from ftcore.data.archives import unpack_uploaded_zip
from ftcore.data.dataset import open_split
from ftcore.data.splits import match_classes, resolve_splits
from ftcore.data.summary import format_summary, summarize
from ftcore.errors import FtcoreError

QUICK = ["--mode", "scratch", "--epochs", "1", "--batch-size", "8", "--image-size", "32", "--device", "cpu"]
NUM = r"\d+\.\d{3}"
ACC = r"[01]\.\d{3}"


# --------------------------------------------------------------------------------------------------
# Helpers: the hash rule re-implemented, and trees of placeholder photos (listing needs no pixels).


def counted(n: int, total: int, label: str) -> str:
    """A class as `ftcore data` lists it: its photos and its share of the split."""
    return f"{label} {n} ({n / total:.0%})"


def hash_position(seed: int, class_name: str, relpath: str) -> float:
    """Where a photo falls in [0, 1): sha1 of "seed/class/relpath", first 16 hex digits over 2**64."""
    return int(hashlib.sha1(f"{seed}/{class_name}/{relpath}".encode()).hexdigest()[:16], 16) / 2**64


def expected_held(relpaths: list[str], class_name: str, fraction: float, seed: int = 0) -> set[str]:
    """The photos of one class that the rule holds out, with one photo kept on each side."""
    key = {p: hash_position(seed, class_name, p) for p in relpaths}
    held = {p for p in relpaths if key[p] < fraction}
    if not held:
        held = {min(relpaths, key=key.__getitem__)}
    elif len(held) == len(relpaths):
        held.discard(max(relpaths, key=key.__getitem__))
    return held


def touch_photos(folder: Path, names) -> None:
    """Empty files with photo names: enough for listing and splitting, which never decode."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def names(n: int, start: int = 0) -> list[str]:
    return [f"{i:03d}.png" for i in range(start, start + n)]


def relpaths_by_class(splits, role: str) -> dict[str, set[str]]:
    """Class -> the role's photos, as paths inside the class folder."""
    out = {name: set() for name in splits.classes}
    for path, index in splits.samples[role]:
        class_name = splits.classes[index]
        class_dir = next(p for p in Path(path).parents if p.name == class_name)
        out[class_name].add(Path(path).relative_to(class_dir).as_posix())
    return out


def flat_tree(tmp_path: Path, per_class: int) -> Path:
    """A folder of class folders with real photos: train/ of a generated tree, copied to be the root."""
    source = write_tiny_imagefolder(tmp_path / "source", {"train": per_class})
    return Path(shutil.copytree(source / "train", tmp_path / "flat"))


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) with its stdout and stderr captured (for module-scoped runs, where capsys is not available)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------------------------------
# 1. Each layout on a small generated tree.

LAYOUT_CASES = {
    # name: (splits written, roles, heldout, final_test, layout, role -> folder, summary's second line)
    "book": ({"train": 6, "test": 3}, ["train", "test"], "test", None, "train/test",
             {"train": "train", "test": "test"}, "layout: train/test (the book's)"),
    "train/val": ({"train": 6, "val": 3}, ["train", "val"], "val", None, "train/val",
                  {"train": "train", "val": "val"},
                  "layout: train/val (as PyTorch's tutorial, ImageNet and most Kaggle sets)"),
    "valid alias": ({"train": 6, "valid": 3, "test": 2}, ["train", "val", "test"], "val", "test", "train/val/test",
                    {"train": "train", "val": "valid", "test": "test"}, "layout: train/val/test (as Ultralytics)"),
    "validation": ({"train": 6, "validation": 3}, ["train", "val"], "val", None, "train/val",
                   {"train": "train", "val": "validation"},
                   "layout: train/val (as PyTorch's tutorial, ImageNet and most Kaggle sets)"),
    "train alone": ({"train": 10}, ["train", "val"], "val", None, "train", {"train": "train", "val": "train"},
                    "layout: train (train/ alone; validation held out of it); val: about 20% of each class held "
                    "out of train/ (split seed 0)"),
    "class folders": ({"": 10}, ["train", "val"], "val", None, "class folders", {"train": "", "val": ""},
                      "layout: class folders (one folder per class; validation held out of them); val: about 20% "
                      "of each class held out of the class folders (split seed 0)"),
}


@pytest.mark.parametrize("case", list(LAYOUT_CASES))
def test_each_layout_resolves_to_its_roles_and_counts(case, tmp_path):
    written, roles, heldout, final_test, layout, folders, layout_line = LAYOUT_CASES[case]
    if "" in written:  # a flat folder of class folders
        root = flat_tree(tmp_path, written[""])
    else:
        root = write_tiny_imagefolder(tmp_path / "data", written)
    splits = resolve_splits(root)
    assert splits.layout == layout
    assert splits.roles == roles
    assert (splits.heldout, splits.final_test) == (heldout, final_test)
    assert splits.folders == folders
    assert splits.classes == list(TINY_CLASSES)

    # Expected photos per role and class, from what was written (and the hash rule where val is held out).
    real = root.resolve()
    expected: dict[str, dict[str, list[str]]] = {}
    for role in roles:
        source = next(split for split in written if folders[role] == split)
        expected[role] = {}
        for label in TINY_CLASSES:
            photos = names(written[source])
            if folders["train"] == folders.get("val") and role in ("train", "val"):
                held = expected_held(photos, label, 0.2)
                photos = [p for p in photos if (p in held) == (role == "val")]
            expected[role][label] = photos
    assert splits.val_fraction == (0.2 if folders["train"] == folders.get("val") else 0.0)
    for role in roles:
        assert splits.counts(role) == {label: len(expected[role][label]) for label in TINY_CLASSES}
        # ImageFolder's order: class by class, then file name; each path under the role's folder
        assert splits.samples[role] == [(str(real / folders[role] / label / name), index)
                                        for index, label in enumerate(TINY_CLASSES)
                                        for name in expected[role][label]]

    lines = format_summary(summarize(root)).splitlines()
    assert lines[0] == f"data: {real}"
    assert lines[1] == layout_line
    split_lines = [line for line in lines if re.match(r"^\w+: \d+ images \(", line)]
    assert split_lines == [f"{role}: {sum(map(len, expected[role].values()))} images ("
                           + ", ".join(counted(len(expected[role][label]), sum(map(len, expected[role].values())),
                                               label) for label in TINY_CLASSES) + ")"
                           for role in roles]


def test_open_split_serves_the_roles_photos(tmp_path):
    root = write_tiny_imagefolder(tmp_path / "data", {"train": 3, "valid": 2, "test": 1})
    val = open_split(root, "val")
    assert (len(val), val.classes, val.targets) == (4, ["blue", "red"], [0, 0, 1, 1])
    image, target = val[3]
    assert target == 1 and image.size == (44, 42)  # make_photo's size for index 1
    with pytest.raises(FtcoreError, match="has no val split"):
        open_split(write_tiny_imagefolder(tmp_path / "book", {"train": 2, "test": 1}), "val")


# --------------------------------------------------------------------------------------------------
# 2. The held-out split.


def test_held_out_photos_follow_the_hash_rule_and_are_stratified(tmp_path):
    root = tmp_path / "flat"
    for label in ("blue", "red"):
        touch_photos(root / label, names(500))
    splits = resolve_splits(root, 0.2, split_seed=0)
    val, train = relpaths_by_class(splits, "val"), relpaths_by_class(splits, "train")
    for label in ("blue", "red"):
        assert val[label] == {p for p in names(500) if hash_position(0, label, p) < 0.2}
        assert 0.15 <= len(val[label]) / 500 <= 0.25
        assert val[label] | train[label] == set(names(500)) and not val[label] & train[label]
    all_paths = sorted(p for role in ("train", "val") for p, _ in splits.samples[role])
    assert len(all_paths) == len(set(all_paths)) == 1000  # each photo in exactly one of train and val


def test_held_out_split_is_deterministic_per_seed(tmp_path):
    root = tmp_path / "flat"
    for label in ("blue", "red"):
        touch_photos(root / label, names(200))
    first, again = resolve_splits(root, 0.2, 7), resolve_splits(root, 0.2, 7)
    assert first.samples == again.samples
    other = resolve_splits(root, 0.2, 8)
    assert relpaths_by_class(other, "val")["blue"] != relpaths_by_class(first, "val")["blue"]
    assert relpaths_by_class(other, "val")["blue"] == {p for p in names(200) if hash_position(8, "blue", p) < 0.2}
    assert first.describe().endswith("held out of the class folders (split seed 7)")


def test_adding_photos_never_moves_the_ones_already_placed(tmp_path):
    root = tmp_path / "data"
    for label in ("blue", "red"):
        touch_photos(root / "train" / label, names(200))
    before = {role: relpaths_by_class(resolve_splits(root, 0.3, 3), role) for role in ("train", "val")}
    for label in ("blue", "red"):
        touch_photos(root / "train" / label, names(60, start=200))
        touch_photos(root / "train" / label / "more", names(5))  # a subfolder: hashed as more/NNN.png
    after = {role: relpaths_by_class(resolve_splits(root, 0.3, 3), role) for role in ("train", "val")}
    for label in ("blue", "red"):
        for role in ("train", "val"):
            assert before[role][label] <= after[role][label]
        new = names(60, start=200) + [f"more/{n}" for n in names(5)]
        assert after["val"][label] - before["val"][label] == {p for p in new if hash_position(3, label, p) < 0.3}


def test_split_does_not_depend_on_the_order_files_were_created(tmp_path):
    forward, backward = tmp_path / "forward", tmp_path / "backward"
    for label in ("blue", "red"):
        touch_photos(forward / label, names(120))
        touch_photos(backward / label, list(reversed(names(120))))
    a, b = resolve_splits(forward), resolve_splits(backward)
    for role in ("train", "val"):
        assert [Path(p).relative_to(forward.resolve()) for p, _ in a.samples[role]] == \
               [Path(p).relative_to(backward.resolve()) for p, _ in b.samples[role]]
        assert [i for _, i in a.samples[role]] == [i for _, i in b.samples[role]]


@pytest.mark.parametrize(("count", "fraction"), [(2, 0.2), (2, 0.5), (3, 0.01), (3, 0.99)])
def test_each_side_keeps_at_least_one_photo(count, fraction, tmp_path):
    root = tmp_path / "flat"
    for label in ("blue", "red"):
        touch_photos(root / label, names(count))
    splits = resolve_splits(root, fraction)
    val, train = relpaths_by_class(splits, "val"), relpaths_by_class(splits, "train")
    for label in ("blue", "red"):
        assert val[label] and train[label]
        assert val[label] == expected_held(names(count), label, fraction)
        ranked = sorted(names(count), key=lambda p, label=label: hash_position(0, label, p))
        if fraction == 0.01:  # nothing hashes below 0.01 here: the lowest hash is held out alone
            assert val[label] == {ranked[0]}
        if fraction == 0.99:  # everything hashes below 0.99 here: the highest hash returns to train alone
            assert train[label] == {ranked[-1]}


# --------------------------------------------------------------------------------------------------
# 3. Carving val out of the book's layout.


def test_val_carved_out_of_the_books_train(tmp_path):
    root = write_tiny_imagefolder(tmp_path / "book", {"train": 12, "test": 4})
    plain, carved = resolve_splits(root), resolve_splits(root, 0.25)
    assert carved.layout == "train/test"
    assert carved.roles == ["train", "val", "test"]
    assert (carved.heldout, carved.final_test, carved.held_out_of_train) == ("val", "test", True)
    assert carved.folders == {"train": "train", "val": "train", "test": "test"}
    assert carved.samples["test"] == plain.samples["test"]
    assert sorted(carved.samples["train"] + carved.samples["val"]) == sorted(plain.samples["train"])
    val = relpaths_by_class(carved, "val")
    assert val == {label: expected_held(names(12), label, 0.25) for label in TINY_CLASSES}
    assert carved.describe() == ("layout: train/test (the book's); val: about 25% of each class held out of "
                                 "train/ (split seed 0)")
    assert (plain.heldout, plain.final_test, plain.roles) == ("test", None, ["train", "test"])


# --------------------------------------------------------------------------------------------------
# 4. The CLI: `data`, and `train` on each kind of layout with what metrics.json records.


def test_cli_data_prints_the_layout_line(tmp_path, capsys):
    flat = flat_tree(tmp_path, 5)
    assert main(["data", "--root", str(flat)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("layout: class folders (one folder per class; validation held out of them); val: about 20% "
                        "of each class held out of the class folders (split seed 0)")
    held = {label: expected_held(names(5), label, 0.2) for label in TINY_CLASSES}
    train, val = 10 - sum(map(len, held.values())), sum(map(len, held.values()))
    assert lines[3] == f"train: {train} images ({counted(5 - len(held['blue']), train, 'blue')}, " \
                       f"{counted(5 - len(held['red']), train, 'red')})"
    assert lines[4] == f"val: {val} images ({counted(len(held['blue']), val, 'blue')}, " \
                       f"{counted(len(held['red']), val, 'red')})"
    assert main(["data", "--root", str(flat), "--val-fraction", "0.5", "--split-seed", "4"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("about 50% of each class held out of the class "
                                                            "folders (split seed 4)")


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """Three tiny scratch runs through main(): the book's layout, the book's with --val-fraction 0.25, and a
    train/val/test tree. Each is (exit code, stdout, stderr, out folder)."""
    base = tmp_path_factory.mktemp("layout-runs")
    three = write_tiny_imagefolder(base / "three", {"train": 8, "val": 4, "test": 4})
    results = {}
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse isolated cache is not set up yet
        mp.setenv("FTCORE_CACHE", str(base / "cache"))
        mp.setenv("TORCH_HOME", str(base / "torch"))
        mp.delenv("FTCORE_WEIGHTS", raising=False)
        mp.delenv("FTCORE_DATA", raising=False)
        for name, data_dir, extra in (("book", tiny_data, []), ("carved", tiny_data, ["--val-fraction", "0.25"]),
                                      ("three", three, [])):
            out = base / name
            results[name] = (*run_main(["train", "--data", str(data_dir), *QUICK, *extra, "--out", str(out)]), out)
    results["three_root"] = three
    return results


def metrics_of(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_train_on_the_books_layout_prints_the_books_lines(runs):
    code, out, err, folder = runs["book"]
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(rf"epoch 1/1: loss {NUM}, train acc {ACC}, test acc {ACC}", lines[0]), lines
    assert re.fullmatch(rf"loss {NUM}, train acc {ACC}, test acc {ACC}", lines[1]), lines
    assert lines[1] == lines[0].split(": ", 1)[1]
    assert len(lines) == 3 and "val" not in out
    assert "32 train / 16 test images" in err
    history = metrics_of(folder)["history"]
    assert history["split"]["layout"] == "train/test" and history["split"]["val_photos"] == []
    assert history["split"]["counts"] == {"train": {"blue": 16, "red": 16}, "test": {"blue": 8, "red": 8}}
    assert history["heldout"] == "test" and history["test_acc"] is None
    assert lines[1].endswith(f"test acc {history['epochs'][0]['test_acc']:.3f}")


def test_train_with_val_carved_from_the_books_layout(runs, tiny_data):
    code, out, err, folder = runs["carved"]
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(rf"epoch 1/1: loss {NUM}, train acc {ACC}, val acc {ACC}", lines[0]), lines
    assert re.fullmatch(rf"loss {NUM}, train acc {ACC}, val acc {ACC}, test acc {ACC}", lines[1]), lines
    history = metrics_of(folder)["history"]
    split = history["split"]
    expected = resolve_splits(tiny_data, 0.25)
    assert split["layout"] == "train/test" and split["val_fraction"] == 0.25 and split["split_seed"] == 0
    assert split["val_photos"] == [str(Path(p).relative_to(Path(expected.root))) for p, _ in expected.samples["val"]]
    assert split["val_photos"] == [f"train/{label}/{name}" for label in TINY_CLASSES
                                   for name in sorted(expected_held(names(16), label, 0.25))]
    assert split["counts"]["test"] == {"blue": 8, "red": 8}
    assert sum(split["counts"]["train"].values()) + sum(split["counts"]["val"].values()) == 32
    assert history["heldout"] == "val" and isinstance(history["test_acc"], float)
    assert 0 <= history["test_acc"] <= 1
    assert lines[1].endswith(f", test acc {history['test_acc']:.3f}")
    assert lines[1].split(", test acc")[0] == lines[0].split(": ", 1)[1]


def test_train_on_a_train_val_test_tree_prints_val_then_test(runs):
    code, out, err, folder = runs["three"]
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(rf"epoch 1/1: loss {NUM}, train acc {ACC}, val acc {ACC}", lines[0]), lines
    assert re.fullmatch(rf"loss {NUM}, train acc {ACC}, val acc {ACC}, test acc {ACC}", lines[1]), lines
    assert "16 train / 8 val / 8 test images" in err
    history = metrics_of(folder)["history"]
    assert history["split"]["layout"] == "train/val/test" and history["split"]["val_photos"] == []
    assert history["split"]["folders"] == {"train": "train", "val": "val", "test": "test"}
    assert history["epochs"][0]["test_acc"] is None and history["epochs"][0]["val_acc"] is not None
    assert lines[1].endswith(f"val acc {history['epochs'][0]['val_acc']:.3f}, test acc {history['test_acc']:.3f}")


# --------------------------------------------------------------------------------------------------
# 5. Refused trees: one sentence each.


def build_refused(case: str, root: Path) -> tuple[float | None, str]:
    """Write the tree of one refused case under `root`; return the validation share to ask for and the words."""
    if case == "one photo in a class":
        touch_photos(root / "blue", names(3))
        touch_photos(root / "red", names(1))
        return None, "has 1 photo, too few to hold any out"
    if case == "different classes":
        for label in ("blue", "green", "red"):
            touch_photos(root / "train" / label, names(2))
        for label in ("blue", "red"):
            touch_photos(root / "val" / label, names(2))
        return None, r"train/ and val/ in .* have different class folders"
    if case == "empty class folder":
        touch_photos(root / "train" / "blue", names(2))
        touch_photos(root / "train" / "red", [])
        touch_photos(root / "test" / "blue", names(1))
        touch_photos(root / "test" / "red", names(1))
        return None, r"class folder .*red holds no images"
    if case in ("val class train lacks", "test class train lacks"):
        split = case.split()[0]
        for label in ("blue", "red"):
            touch_photos(root / "train" / label, names(2))
        for label in ("blue", "red", "zebra"):
            touch_photos(root / split / label, names(1))
        return None, f"{split}/ in .* has class folder 'zebra' that train/ lacks"
    if case == "val and valid":
        for split in ("train", "val", "valid"):
            for label in ("blue", "red"):
                touch_photos(root / split / label, names(2))
        return None, "holds both val/ and valid/"
    if case == "test without train":
        for label in ("blue", "red"):
            touch_photos(root / "test" / label, names(2))
        return None, "has test/ but no train/ folder"
    if case == "share on a train/val tree":
        for split in ("train", "val"):
            for label in ("blue", "red"):
                touch_photos(root / split / label, names(2))
        return 0.2, "has its own val/ split"
    if case == "share above 1":
        for label in ("blue", "red"):
            touch_photos(root / label, names(3))
        return 1.5, r"must be at least 0 and below 1 \(got 1\.5\)"
    if case == "no share on class folders":
        for label in ("blue", "red"):
            touch_photos(root / label, names(3))
        return 0.0, "give a validation share above 0"
    raise AssertionError(case)


REFUSED = ["one photo in a class", "different classes", "empty class folder", "val class train lacks",
           "test class train lacks", "val and valid", "test without train", "share on a train/val tree",
           "share above 1", "no share on class folders"]


@pytest.mark.parametrize("case", REFUSED)
def test_refused_tree_is_one_sentence(case, tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    fraction, words = build_refused(case, root)
    with pytest.raises(FtcoreError, match=words) as caught:
        resolve_splits(root, fraction)
    assert "\n" not in str(caught.value)
    argv = ["data", "--root", str(root)] + ([] if fraction is None else ["--val-fraction", str(fraction)])
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and len(captured.err.splitlines()) == 1
    assert re.search(words, captured.err)


def test_train_refuses_a_share_on_a_tree_with_its_own_val(tmp_path, capsys):
    root = write_tiny_imagefolder(tmp_path / "tv", {"train": 2, "val": 1})
    assert main(["train", "--data", str(root), *QUICK, "--val-fraction", "0.2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has its own val/ split" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()  # refused before anything was written


# --------------------------------------------------------------------------------------------------
# 6. Class names across datasets.


def test_match_classes_equal_up_to_case_and_separators():
    assert match_classes(["hotdog", "not-hotdog"], ["hotdog", "not-hotdog"], "x") == ([0, 1], "")
    mapping, note = match_classes(["hotdog", "not-hotdog"], ["Hotdog", "not_hotdog"], "x")
    assert mapping == [0, 1]
    assert note == "classes matched by name: Hotdog is taken as hotdog, not_hotdog is taken as not-hotdog"
    data_classes = sorted(["Not-Hotdog", "hotdog"])  # upper case sorts first: the order differs from the model's
    assert data_classes == ["Not-Hotdog", "hotdog"]
    mapping, note = match_classes(["hotdog", "not-hotdog"], data_classes, "x")
    assert mapping == [1, 0] and note == "classes matched by name: Not-Hotdog is taken as not-hotdog"


@pytest.mark.parametrize("data_classes", [["cat", "dog"], ["hotdog"], ["hotdog", "not-hotdog", "pizza"],
                                          ["hot dog", "hot-dog"]])
def test_match_classes_refuses_other_classes(data_classes):
    with pytest.raises(FtcoreError, match="the model was trained on hotdog, not-hotdog"):
        match_classes(["hotdog", "not-hotdog"], data_classes, "x")


def evaluation_lines(out: str) -> tuple[list[str], list[str]]:
    """The note lines before the per-class table, and the table through the confusion matrix."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("class "))
    end = next(i for i, line in enumerate(lines) if line.startswith("worst "))
    return lines[:start], lines[start:end]


@pytest.mark.parametrize(("old", "new"), [("red", "RED"), ("blue", "Blue_")])
def test_evaluate_on_a_copy_with_renamed_classes(old, new, runs, tiny_data, tmp_path, capsys):
    checkpoint = str(runs["book"][3] / "checkpoint.pt")
    copy = Path(shutil.copytree(tiny_data, tmp_path / "copy"))
    for split in ("train", "test"):
        (copy / split / old).rename(copy / split / new)
    assert main(["evaluate", "--checkpoint", checkpoint, "--data", str(tiny_data), "--device", "cpu"]) == 0
    original = capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", checkpoint, "--data", str(copy), "--device", "cpu"]) == 0
    renamed = capsys.readouterr().out
    note, table = evaluation_lines(renamed)
    assert note == [f"classes matched by name: {new} is taken as {old}"]
    assert evaluation_lines(original) == ([], table)  # same per-class figures, accuracy and confusion matrix
    accuracy = [line for line in table if line.startswith("accuracy ")]
    assert len(accuracy) == 1 and re.fullmatch(rf"accuracy {ACC}, balanced accuracy {ACC} \(the mean of the "
                                                  r"classes' recalls\) on 16 test photos", accuracy[0])


# --------------------------------------------------------------------------------------------------
# 7. A zipped flat folder.


def test_zipped_flat_folder_unpacks_to_class_folders():
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for label in TINY_CLASSES:
            for i in range(5):
                photo = io.BytesIO()
                make_photo(label, i, rng).save(photo, format="PNG")
                zf.writestr(f"pets/{label}/{i:03d}.png", photo.getvalue())
    root = unpack_uploaded_zip(buffer.getvalue())
    assert root.name == "pets" and root.parent.parent.name == "uploads"
    splits = resolve_splits(root)
    assert splits.layout == "class folders" and splits.roles == ["train", "val"]
    assert relpaths_by_class(splits, "val") == {label: expected_held(names(5), label, 0.2) for label in TINY_CLASSES}
    assert unpack_uploaded_zip(buffer.getvalue()) == root  # the same upload again: the same folder
