"""Builder: names, photo checks, and datasets saved and extended all-or-nothing under <cache>/datasets."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from PIL import Image

from ftcore.data import builder
from ftcore.errors import FtcoreError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Every test writes under its own tmp_path only."""
    monkeypatch.setenv("FTCORE_CACHE", str(tmp_path))
    return tmp_path


def photo(color: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    """A tiny solid-colour photo; different colours give different bytes."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(out, format=fmt)
    return out.getvalue()


RED, GREEN, BLUE, GREY = photo((200, 0, 0)), photo((0, 200, 0)), photo((0, 0, 200)), photo((90, 90, 90))
PNG = photo((10, 120, 240), "PNG")


def content_name(data: bytes, suffix: str) -> str:
    return hashlib.sha1(data).hexdigest()[:20] + suffix


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under folder, relative path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_datasets_dir_follows_the_cache(cache):
    assert builder.datasets_dir() == cache / "datasets"
    assert builder.dataset_path(" birds ") == cache / "datasets" / "birds"


def test_save_writes_content_named_photos_and_lists_them(cache):
    built = builder.save_dataset(" snacks ", {"hot dog": [RED, GREEN, RED], "not-hotdog": [BLUE, PNG]})
    root = cache / "datasets" / "snacks"
    assert tree(root) == {
        f"hot dog/{content_name(RED, '.jpg')}": RED,
        f"hot dog/{content_name(GREEN, '.jpg')}": GREEN,
        f"not-hotdog/{content_name(BLUE, '.jpg')}": BLUE,
        f"not-hotdog/{content_name(PNG, '.png')}": PNG,
    }
    assert built == builder.BuiltDataset("snacks", root, {"hot dog": 2, "not-hotdog": 2})
    assert list(built.counts) == ["hot dog", "not-hotdog"] and built.total == 4
    assert builder.list_built() == [built]
    assert sorted(os.listdir(cache / "datasets")) == ["snacks"]  # no .building-* left behind
    assert os.stat(root).st_mode & 0o777 == 0o755


def test_photo_file_name_is_content_addressed_by_format():
    assert builder.photo_file_name(RED) == content_name(RED, ".jpg")
    assert builder.photo_file_name(PNG) == content_name(PNG, ".png")
    assert builder.photo_file_name(photo((1, 2, 3), "WEBP")).endswith(".webp")
    with pytest.raises(FtcoreError, match=r"^the data is a GIF; use a JPEG, PNG or WebP photo$"):
        builder.photo_file_name(photo((1, 2, 3), "GIF"))
    with pytest.raises(FtcoreError, match=r"^the data is not a photo; "):
        builder.photo_file_name(b"hello")


def test_list_built_sorts_skips_hidden_and_counts_empty_classes(cache):
    builder.save_dataset("b", {"x": [RED], "y": [GREEN]})
    builder.save_dataset("a", {"x": [BLUE], "y": [GREY]})
    (cache / "datasets" / ".building-abc" / "x").mkdir(parents=True)
    (cache / "datasets" / "a" / "z").mkdir()
    (cache / "datasets" / "a" / "x" / "notes.txt").write_text("not a photo")
    (cache / "datasets" / "a" / "x" / ".half.jpg-1.part").write_bytes(RED)
    assert [(d.name, d.counts) for d in builder.list_built()] == [
        ("a", {"x": 1, "y": 1, "z": 0}), ("b", {"x": 1, "y": 1})]


def test_list_built_without_any_dataset():
    assert builder.list_built() == []


@pytest.mark.parametrize("photos, message", [
    ({"a/b": [RED], "c": [GREEN]}, "class name 'a/b' cannot be a folder name (it holds '/')"),
    ({"Hot dog": [RED], "hot_dog": [GREEN]}, "class names 'Hot dog' and 'hot_dog' would be one class"),
    ({"Cat": [RED], "cat": [GREEN]}, "class names 'Cat' and 'cat' would be one class"),
    ({"cat": [RED], "dog": []}, "class 'dog' has no photos yet; add at least one, or remove the class"),
    ({"cat": [RED]}, "a dataset needs at least 2 classes, and this one has 1"),
    ({"cat": [RED], "dog": [b"GIF89a not really"]}, "photo 1 of class 'dog' is not a photo"),
    ({"cat": [RED], "dog": [GREEN, photo((0, 0, 0), "BMP")]}, "photo 2 of class 'dog' is a BMP"),
])
def test_refused_save_leaves_nothing(cache, photos, message):
    with pytest.raises(FtcoreError) as refused:
        builder.save_dataset("pets", photos)
    assert message in str(refused.value)
    assert not (cache / "datasets").exists() or os.listdir(cache / "datasets") == []


def test_refused_dataset_names_and_existing_dataset(cache):
    with pytest.raises(FtcoreError, match=r"^dataset name '\.\.' cannot start with '\.'"):
        builder.save_dataset("..", {"a": [RED], "b": [GREEN]})
    first = builder.save_dataset("pets", {"cat": [RED], "dog": [GREEN]})
    before = tree(cache)
    with pytest.raises(FtcoreError, match=r"^a dataset named 'pets' already exists; pick another name, or add"):
        builder.save_dataset("pets", {"cow": [BLUE], "hen": [GREY]})
    assert tree(cache) == before and builder.list_built() == [first]


def test_a_crash_during_save_leaves_no_dataset(cache, monkeypatch):
    real_write, written = builder._write_photo, []

    def write_then_fail(dest: Path, data: bytes) -> None:
        if written:
            raise OSError(28, "No space left on device")
        real_write(dest, data)
        written.append(dest)

    monkeypatch.setattr(builder, "_write_photo", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        builder.save_dataset("pets", {"cat": [RED, BLUE], "dog": [GREEN]})
    assert len(written) == 1 and written[0].parent.parent.name.startswith(".building-")
    assert os.listdir(cache / "datasets") == []


def test_check_photos_keeps_good_files_and_explains_the_others():
    text = b"just some notes\n"
    gif = photo((5, 5, 5), "GIF")
    truncated = RED[: len(RED) // 2]
    checks = builder.check_photos([("a.jpg", RED), ("notes.txt", text), ("b.png", PNG), ("empty.jpg", b""),
                                   ("anim.gif", gif), ("cut.jpg", truncated)])
    assert [c.name for c in checks] == ["a.jpg", "notes.txt", "b.png", "empty.jpg", "anim.gif", "cut.jpg"]
    assert [c.data for c in checks] == [RED, None, PNG, None, None, None]
    assert checks[0].error is None and checks[2].error is None
    assert checks[1].error.startswith("notes.txt is not an image") and checks[1].error.endswith(
        "; use a JPEG, PNG or WebP photo")
    assert checks[3].error == "empty.jpg is empty; use a JPEG, PNG or WebP photo"
    assert checks[4].error == "anim.gif is a GIF; use a JPEG, PNG or WebP photo"
    assert checks[5].error.startswith("cut.jpg cannot be decoded")


def test_add_to_dataset_extends_skips_and_creates(cache):
    builder.save_dataset("snacks", {"hot-dog": [RED], "other": [GREEN]})
    root = cache / "datasets" / "snacks"
    stamp = (root / "hot-dog" / content_name(RED, ".jpg")).stat().st_mtime_ns
    built = builder.add_to_dataset("snacks", {"hot-dog": [RED, BLUE, BLUE], "pizza": [GREY, PNG], "other": []})
    assert built.counts == {"hot-dog": 2, "other": 1, "pizza": 2} and built.total == 5
    assert tree(root) == {
        f"hot-dog/{content_name(RED, '.jpg')}": RED,
        f"hot-dog/{content_name(BLUE, '.jpg')}": BLUE,
        f"other/{content_name(GREEN, '.jpg')}": GREEN,
        f"pizza/{content_name(GREY, '.jpg')}": GREY,
        f"pizza/{content_name(PNG, '.png')}": PNG,
    }
    assert (root / "hot-dog" / content_name(RED, ".jpg")).stat().st_mtime_ns == stamp  # skipped, not rewritten
    assert builder.list_built() == [built]


@pytest.mark.parametrize("photos, message", [
    ({"Hot Dog": [BLUE]}, "class name 'Hot Dog' clashes with the existing class 'hot-dog'; use 'hot-dog'"),
    ({"pizza": [BLUE], "Pizza": [GREY]}, "class names 'pizza' and 'Pizza' would be one class"),
    ({"pizza": []}, "class 'pizza' has no photos yet"),
    ({"pizza": [GREY], "hot-dog": [b"nope"]}, "photo 1 of class 'hot-dog' is not a photo"),
    ({"pi:zza": [GREY]}, "class name 'pi:zza' cannot be a folder name (it holds ':')"),
])
def test_refused_add_changes_nothing(cache, photos, message):
    builder.save_dataset("snacks", {"hot-dog": [RED], "other": [GREEN]})
    before = tree(cache)
    with pytest.raises(FtcoreError) as refused:
        builder.add_to_dataset("snacks", photos)
    assert message in str(refused.value)
    assert tree(cache) == before


def test_add_to_a_missing_dataset_is_refused():
    with pytest.raises(FtcoreError, match=r"^no built dataset named 'ghosts'; save it first$"):
        builder.add_to_dataset("ghosts", {"boo": [RED]})


@pytest.mark.parametrize("name, held", [
    ("", "is empty"), ("  ", "is empty"), (".", "cannot start with '.'"), ("..", "cannot start with '.'"),
    (".hidden", "cannot start with '.'"), ("a/b", "(it holds '/')"), ("a\\b", "(it holds '\\')"),
    ("a:b", "(it holds ':')"), ("why?", "(it holds '?')"), ("tab\there", "control character U+0009"),
    ("nul\x00byte", "control character U+0000"), ("CON", "reserved device name on Windows"),
    ("nul", "reserved device name on Windows"), ("com7", "reserved device name on Windows"),
    ("lpt1.photos", "reserved device name on Windows"), ("x" * 65, "65 characters long, more than the 64"),
    ("dots.", "cannot end with '.'"),
])
def test_check_name_refuses(name, held):
    with pytest.raises(FtcoreError) as refused:
        builder.check_name(name)
    message = str(refused.value)
    assert message.startswith("class name") and held in message
    assert message.count(";") == 1 and "\n" not in message  # one sentence: what is wrong; what to do


@pytest.mark.parametrize("name", ["hot dog", "not-hotdog", "Ünïcode", " padded ", "x" * 64, "console", "v1.2"])
def test_check_name_accepts(name):
    assert builder.check_name(name) == name.strip()


def test_check_name_names_what_it_checks():
    with pytest.raises(FtcoreError, match=r"^dataset name 'a/b' cannot be a folder name \(it holds '/'\); use "):
        builder.check_name("a/b", "dataset name")


def test_check_class_names_strips_and_compares_like_matching_elsewhere():
    assert builder.check_class_names([" cat ", "dog", "Ünïcode"]) == ["cat", "dog", "Ünïcode"]
    with pytest.raises(FtcoreError, match="'hot dog' and 'HOT-DOG' would be one class"):
        builder.check_class_names(["hot dog", "HOT-DOG"])
    with pytest.raises(FtcoreError, match="'a' and 'a' would be one class"):
        builder.check_class_names(["a", " a"])
    composed, decomposed = "caf\u00e9", "cafe\u0301"  # macOS may store either; they are one folder there
    with pytest.raises(FtcoreError, match="would be one class"):
        builder.check_class_names([composed, decomposed])
    with pytest.raises(FtcoreError, match=r"^a dataset needs at least 2 classes, and this one has 0; add"):
        builder.check_class_names([])


def test_a_built_dataset_trains_with_a_held_out_validation_split(cache, tmp_path):
    from conftest import write_tiny_imagefolder
    from ftcore.config import recipe
    from ftcore.data.splits import resolve_splits
    from ftcore.train.loop import fit

    source = write_tiny_imagefolder(tmp_path / "src", {"train": 10}) / "train"
    built = builder.save_dataset("colours", {name: [p.read_bytes() for p in sorted((source / name).iterdir())]
                                             for name in ("blue", "red")})
    history = fit(recipe("scratch", "resnet18", data=str(built.path), epochs=2, batch_size=6, image_size=32)).history
    expected = resolve_splits(built.path)
    assert history.heldout == "val" and history.split["layout"] == "class folders"
    assert history.split["counts"]["val"] == expected.counts("val") and history.final().val_acc is not None
    assert history.final().examples == len(expected.samples["train"])


def test_pending_photos_take_each_upload_and_photo_once_and_save_them(cache):
    pending = builder.PendingPhotos()
    pending.add_class("red")
    pending.add_class("blue")
    with pytest.raises(FtcoreError, match="'Red' would be one class"):
        pending.add_class("Red")
    red, blue = photo((200, 0, 0)), photo((0, 0, 200))
    pending.take("red", [("u1", "a.jpg", red), ("u2", "same.jpg", red), ("u3", "notes.txt", b"not a photo")])
    pending.take("red", [("u1", "a.jpg", red)])  # the same upload seen on the next rerun
    assert list(pending.classes["red"]) == [content_name(red, ".jpg")] and pending.waiting == 1
    assert len(pending.refused) == 1 and pending.refused[0].startswith("notes.txt")
    assert not pending.ready({})  # blue has no photo yet
    pending.take("blue", [("u4", "b.jpg", blue)])
    assert pending.ready({})
    built = pending.save("colours", new=True)
    assert built.counts == {"blue": 1, "red": 1} and pending.classes == {} and pending.refused == []
