"""Your own photos in the dashboard (AppTest): the layout and splits on the explorer, the held-out share, the
builder's class names, and what the Train and Predict pages then say. The browser test drives uploads and the
webcam (tests/test_browser_photos.py)."""

from __future__ import annotations

import re
import shutil

from app import tab
from conftest import after_photo_check, open_app, write_tiny_imagefolder
from ftcore.config import recipe
from ftcore.data import builder, splits
from ftcore.train.loop import fit

EXPLORE, TRAIN, PREDICT = (f"app_pages/{name}.py" for name in ("explore", "train", "predict"))


def flat_folder(tmp_path, per_class: int = 20):
    """A folder of class folders (blue/, red/), as people keep photos on disk."""
    root = write_tiny_imagefolder(tmp_path / "tree", {"train": per_class})
    return shutil.move(str(root / "train"), str(tmp_path / "colours"))


def split_table(at) -> dict[str, dict]:
    """The explorer's counts table (Markdown): class -> {split: photos}; each class's share of its split, written
    beside its count ("17 (47%)"), is checked against the counts on the way."""
    table = next(m.value for m in at.markdown if m.value.startswith("| class |"))
    header, _, *rows = [[re.sub(r"\\(.)", r"\1", cell.strip()).strip("*") for cell in line.strip("|").split(" | ")]
                        for line in table.splitlines()]
    cells = {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in rows}
    counts = {name: {split: int(cell.split(" (")[0]) for split, cell in row.items()} for name, row in cells.items()}
    for name, row in cells.items():
        for split, cell in row.items():
            if name != "all":
                assert cell.endswith(f"({counts[name][split] / counts['all'][split]:.0%})"), (name, split, cell)
    return counts


def test_a_folder_of_class_folders_is_split_and_the_share_can_change(tmp_path):
    root = flat_folder(tmp_path)
    at = open_app(EXPLORE, data_root=root)
    assert "**Layout: class folders**" in [m.value.split(" (")[0] for m in at.markdown]
    expected = splits.resolve_splits(root, 0.2, 0)
    assert at.session_state[tab.SPLIT_KEY] == (0.2, 0)
    table = split_table(at)
    assert table["blue"] == {"train": expected.counts("train")["blue"], "val": expected.counts("val")["blue"]}
    assert table["all"] == {"train": len(expected.samples["train"]), "val": len(expected.samples["val"])}
    at.slider[0].set_value(40).run()
    wider = splits.resolve_splits(root, 0.4, 0)
    assert at.session_state[tab.SPLIT_KEY] == (0.4, 0)
    assert split_table(at)["all"] == {"train": len(wider.samples["train"]), "val": len(wider.samples["val"])}
    assert len(wider.samples["val"]) > len(expected.samples["val"])
    train = open_app(TRAIN, data_root=root, data_split=(0.4, 0))
    caption = next(c.value for c in train.caption if c.value.startswith("Data: "))
    assert f"{len(wider.samples['train'])} train / {len(wider.samples['val'])} val images (class folders layout, " \
           "validation held out of train)" in caption


def test_the_books_layout_keeps_test_until_asked_to_hold_out_val(tiny_data):
    at = open_app(EXPLORE, data_root=str(tiny_data))
    assert split_table(at)["all"] == {"train": 32, "test": 16}
    assert not at.slider  # the book's way: no validation share to choose
    at.toggle(key="carve-val").set_value(True).run()
    carved = splits.resolve_splits(tiny_data, 0.2, 0)
    assert at.session_state[tab.SPLIT_KEY] == (0.2, 0)
    assert split_table(at)["all"] == {"train": len(carved.samples["train"]), "val": len(carved.samples["val"]),
                                      "test": 16}
    at.toggle(key="carve-val").set_value(False).run()
    assert at.session_state[tab.SPLIT_KEY] == (None, 0) and split_table(at)["all"] == {"train": 32, "test": 16}


def test_a_train_val_tree_uses_its_own_val_folder(tmp_path):
    root = write_tiny_imagefolder(tmp_path / "tv", {"train": 6, "valid": 3})
    at = open_app(EXPLORE, data_root=str(root))
    assert not at.slider and "carve-val" not in [t.key for t in at.toggle]
    assert split_table(at)["all"] == {"train": 12, "val": 6}
    assert any("Validation comes from the data's own val/ folder" in c.value for c in at.caption)


def test_photos_in_two_splits_are_flagged_as_leakage(tmp_path):
    root = write_tiny_imagefolder(tmp_path / "leaky", {"train": 4, "test": 2})
    shutil.copy(root / "train" / "red" / "000.png", root / "test" / "red" / "copy.png")
    at = after_photo_check(open_app(EXPLORE, data_root=str(root)))
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("1 photo(s) sit in two splits with the same bytes, e.g. ") and "copy.png" in w
               for w in warnings), warnings


def test_the_builder_refuses_a_bad_class_name_and_keeps_the_others(tmp_path):
    at = open_app(EXPLORE, data_root=None)
    at.radio[0].set_value("Your own photos").run()
    at.text_input(key="builder-name").set_value("pets").run()
    refusals = {"cat": None, "Cat": "class names 'cat' and 'Cat' would be one class",
                "a/b": "class name 'a/b' cannot be a folder name", "  ": "class name", "dog": None}
    for name, refusal in refusals.items():
        next(t for t in at.text_input if t.label == "Class name").set_value(name)
        next(b for b in at.button if b.label == "Add class").click().run()
        errors = [e.value for e in at.error if "No data chosen" not in e.value]
        assert (errors == []) if refusal is None else (len(errors) == 1 and errors[0].startswith(refusal)), errors
    assert list(at.session_state["builder"].classes) == ["cat", "dog"]
    save = next(b for b in at.button if b.label.startswith("Save"))
    assert save.disabled  # no photos yet


def test_a_built_dataset_is_listed_and_used(tmp_path):
    photo = (write_tiny_imagefolder(tmp_path / "p", {"train": 3}) / "train").resolve()
    built = builder.save_dataset("colours", {name: [p.read_bytes() for p in sorted((photo / name).iterdir())]
                                             for name in ("blue", "red")})
    at = open_app(EXPLORE, data_root=None)
    at.radio[0].set_value("Your own photos").run()
    assert at.selectbox(key="built-choice").options == ["colours: blue 3, red 3"]
    next(b for b in at.button if b.label == "Use this dataset").click().run()
    assert at.session_state["data_root"] == str(built.path)
    assert "**Layout: class folders**" in [m.value.split(" (")[0] for m in at.markdown]


def test_predict_names_the_val_and_test_figures_of_a_val_chosen_run(tmp_path):
    root = write_tiny_imagefolder(tmp_path / "tvt", {"train": 8, "val": 4, "test": 4})
    result = fit(recipe("scratch", "resnet18", data=str(root), epochs=1, batch_size=8, image_size=32))
    from ftcore.runs import saved, snapshot

    run = saved.Run("run0000042", snapshot.run_label(result.config), result.config, result.history, result)
    at = open_app(PREDICT, runs=[run])
    last = result.history.final()
    assert f"Trained in this tab; val acc {last.val_acc:.3f}, test acc {result.history.test_acc:.3f}." in \
        [c.value for c in at.caption]
