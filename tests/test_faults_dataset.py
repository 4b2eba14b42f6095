"""Bad dataset trees and downloads: each case ends in one sentence naming the thing, and a safe state.

Policy for broken photos: a run never skips them silently. The explorer and `ftcore data` decode every
photo, count the broken ones and name them; the Train page will not start while there are any; a run
that meets one anyway stops with a sentence naming the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import after_photo_check, encode, open_app, write_tiny_imagefolder
from ftcore.config import recipe
from ftcore.data import download, folders
from ftcore.data.dataset import check_image_folder, open_split
from ftcore.data.download import HOTDOG_SHA1, HOTDOG_URL, download_hotdog
from ftcore.data.images import open_image
from ftcore.data.summary import format_summary, summarize
from ftcore.data.transforms import EvalPreset
from ftcore.errors import FtcoreError
from ftcore.runs.process import ProcessJob
from ftcore.util.paths import cache_dir

EXPLORE, TRAIN = "app_pages/explore.py", "app_pages/train.py"


def noisy(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size and holds no pixels: a decompression bomb's first bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture
def tree(tmp_path) -> Path:
    """A small valid tree (2 + 2 train, 1 + 1 test photos) to break in each test."""
    return write_tiny_imagefolder(tmp_path / "d", {"train": 2, "test": 1})


# --------------------------------------------------------------------------------------------------
# The layout.


def test_a_missing_folder_is_named_with_what_to_do(tmp_path, tiny_data):
    missing = tmp_path / "nowhere"
    with pytest.raises(FtcoreError) as info:
        check_image_folder(missing)
    assert str(info.value) == (f"data folder {missing} does not exist; choose a folder of class folders, or one "
                               "holding train/<class>/ with test/ or val/ beside it, or download the hot-dog set")
    assert not missing.exists()
    at = open_app(EXPLORE, data_root=str(tiny_data))
    at.radio[0].set_value("Local folder").run()
    at.text_input[0].set_value(str(missing)).run()
    at.button[0].click().run()
    assert [e.value for e in at.error] == [str(info.value)]
    assert at.session_state["data_root"] == str(tiny_data)  # the tab keeps the data it had


def test_a_folder_of_photos_without_class_folders_says_the_layout(tmp_path):
    flat = tmp_path / "photos"
    flat.mkdir()
    noisy().save(flat / "a.png")
    with pytest.raises(FtcoreError, match=r"photos has 0 class folder\(s\); it needs at least two \(one subfolder"):
        check_image_folder(flat)
    write_tiny_imagefolder(tmp_path / "noclasses", {"train": 1, "test": 1})
    for split in ("train", "test"):  # photos straight in train/ and test/, no class folders
        for f in sorted((tmp_path / "noclasses" / split).rglob("*.png")):
            f.rename(tmp_path / "noclasses" / split / f"{f.parent.name}-{f.name}")
        for d in ("blue", "red"):
            (tmp_path / "noclasses" / split / d).rmdir()
    with pytest.raises(FtcoreError, match=r"train has 0 class folder\(s\); it needs at least two"):
        check_image_folder(tmp_path / "noclasses")


def test_an_empty_class_folder_is_named(tree):
    (tree / "test" / "red" / "000.png").unlink()
    with pytest.raises(FtcoreError) as info:
        check_image_folder(tree)
    assert str(info.value).startswith(f"class folder {tree / 'test' / 'red'} holds no images (")
    assert str(info.value).endswith("); add some or remove the folder")


def test_a_single_class_is_refused(tree):
    for split in ("train", "test"):
        for f in (tree / split / "red").iterdir():
            f.unlink()
        (tree / split / "red").rmdir()
    with pytest.raises(FtcoreError) as info:
        check_image_folder(tree)
    assert str(info.value) == (f"{tree / 'train'} has 1 class folder(s); it needs at least two (one subfolder of "
                               "images per class)")


def test_different_classes_in_train_and_test_are_listed(tree):
    (tree / "test" / "red").rename(tree / "test" / "green")
    with pytest.raises(FtcoreError) as info:
        check_image_folder(tree)
    assert str(info.value) == (f"train/ and test/ in {tree} have different class folders (['blue', 'red'] vs "
                               "['blue', 'green']); give both the same ones")


def test_hidden_and_macos_folders_are_not_classes(tree):
    for split in ("train", "test"):
        for junk in (".ipynb_checkpoints", "__MACOSX", ".git"):
            (tree / split / junk).mkdir()
            noisy().save(tree / split / junk / "copy.png")
    assert check_image_folder(tree) == ["blue", "red"]
    split = open_split(tree, "train")
    assert split.classes == ["blue", "red"] and len(split) == 4  # torchvision's own walk would add the junk


# --------------------------------------------------------------------------------------------------
# What lies beside the photos.


def test_non_image_files_beside_the_photos_are_ignored(tree):
    red = tree / "train" / "red"
    (red / "notes.txt").write_text("shot in June")
    (red / "Thumbs.db").write_bytes(b"\0" * 10)
    (red / "photo.jpg.txt").write_text("not a photo")
    (red / ".DS_Store").write_bytes(b"\0")
    (red / "._000.png").write_bytes(b"\0")  # macOS resource fork beside a photo
    (red / "raw").mkdir()
    (red / "raw" / "README").write_text("x")
    summary = summarize(tree)
    real = folders.real_root_of(tree)
    assert summary.counts["train"] == {"blue": 2, "red": 2} and summary.unreadable == []
    assert sorted(summary.ignored) == sorted(str(real / "train" / "red" / p)
                                             for p in ("notes.txt", "Thumbs.db", "photo.jpg.txt", "raw/README"))
    assert len(open_split(tree, "train")) == 4
    assert "ignored: 4 file(s) that are not photos" in format_summary(summary)


def broken_photos(folder: Path) -> dict[str, bytes]:
    """Four ways a photo file can be broken, written into `folder`; returns name -> bytes."""
    jpeg, png = encode(noisy(seed=1), "JPEG", quality=95), encode(noisy(seed=2), "PNG")
    files = {"cut.jpg": jpeg[: len(jpeg) * 2 // 3], "cut.png": png[: len(png) * 2 // 3],
             "text.jpg": b"this is a shopping list", "zero.png": b""}
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    return files


def test_broken_photos_are_counted_and_named_before_training(tree):
    broken_photos(tree / "train" / "red")
    summary = summarize(tree)
    real = folders.real_root_of(tree) / "train" / "red"
    expected = [str(real / n) for n in ("cut.jpg", "cut.png", "text.jpg", "zero.png")]
    assert summary.unreadable == expected and summary.counts["train"]["red"] == 6
    assert len(summary.images) == 6  # the 6 readable photos of the tree
    assert summary.reasons[expected[0]].startswith(f"{expected[0]} cannot be decoded (")
    assert summary.reasons[expected[2]] == f"{expected[2]} is not an image (UnidentifiedImageError); remove or " \
                                           "replace that file"
    assert summary.reasons[expected[3]] == f"{expected[3]} is empty (0 bytes); remove or replace that file"
    assert summary.unreadable_message() == ("4 photo(s) cannot be read and would stop training, e.g. "
                                            + summary.reasons[expected[0]])
    assert format_summary(summary).endswith("unreadable: " + summary.unreadable_message())


def test_a_run_meeting_a_broken_photo_stops_naming_it_and_saves_nothing(tree, tmp_path):
    bad = tree / "train" / "red" / "001.png"
    bad.write_bytes(encode(noisy(seed=3), "PNG")[:300])
    job = ProcessJob(recipe("scratch", data=str(tree), batch_size=4, image_size=32), tmp_path / "runs")
    assert job.start().join(timeout=120)
    snap = job.snapshot()
    assert snap.status == "failed" and not snap.has_model and "\n" not in snap.error
    assert snap.error.startswith(f"{folders.real_root_of(tree) / 'train' / 'red' / '001.png'} cannot be decoded (")
    assert snap.error.endswith("); remove or replace that file")
    assert not (job.folder / "checkpoint.pt").exists()


def test_the_app_shows_the_broken_photos_and_will_not_start(tree):
    broken_photos(tree / "test" / "blue")
    at = after_photo_check(open_app(EXPLORE, data_root=str(tree)))
    summary = summarize(tree)
    assert [e.value for e in at.error] == [summary.unreadable_message()]
    assert at.expander[0].label == "The 4 photo(s) that cannot be read"
    assert list(at.dataframe[0].value["photo"]) == summary.unreadable
    at = open_app(TRAIN, data_root=str(tree))
    assert summary.unreadable_message() in [e.value for e in at.error]
    start = next(b for b in at.button if b.label == "Start")
    assert start.disabled and "job" not in at.session_state


# --------------------------------------------------------------------------------------------------
# Odd but valid photos, bombs, links.


def upright_photo() -> Image.Image:
    """40 x 20, red above, blue below: which way up it is shows in its pixels."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:10, :, 0] = 255
    pixels[10:, :, 2] = 255
    return Image.fromarray(pixels)


def test_odd_modes_and_exif_rotation_become_upright_rgb(tree):
    odd = tree / "train" / "red"
    base = noisy(40, 20, seed=4)
    files = {
        "grey.png": encode(base.convert("L"), "PNG"),
        "palette.png": encode(base.convert("P"), "PNG"),
        "clear.png": encode(Image.new("RGBA", (40, 20), (255, 0, 0, 0)), "PNG"),
        "print.jpg": encode(base.convert("CMYK"), "JPEG"),
        "deep.png": encode(Image.fromarray(np.full((20, 40), 65535, dtype=np.uint16)), "PNG"),
    }
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to display": the stored pixels lie on their side
    files["phone.jpg"] = encode(upright_photo().transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95)
    for name, payload in files.items():
        (odd / name).write_bytes(payload)
    assert Image.open(odd / "deep.png").mode.startswith("I;16")
    decoded = {name: open_image(odd / name) for name in files}
    assert {im.mode for im in decoded.values()} == {"RGB"} and {im.size for im in decoded.values()} == {(40, 20)}
    assert np.asarray(decoded["clear.png"]).min() == 255 and np.asarray(decoded["deep.png"]).min() == 255
    phone = np.asarray(decoded["phone.jpg"]).astype(int)
    assert phone[2, 20, 0] > 200 > phone[2, 20, 2] and phone[17, 20, 2] > 200 > phone[17, 20, 0]  # red on top
    summary = summarize(tree)
    assert summary.unreadable == [] and {(r.width, r.height) for r in summary.images if "red" in r.path
                                         and Path(r.path).name in files} == {(40, 20)}
    split = open_split(tree, "train", EvalPreset(32))
    tensors = [split[i][0] for i in range(len(split))]
    assert len(tensors) == 2 + 2 + len(files) and all(t.shape == (3, 32, 32) and t.dtype == torch.float32
                                                      for t in tensors)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_decompression_bomb_is_refused_quickly_without_eating_memory(tree):
    red = tree / "train" / "red"
    (red / "bomb.png").write_bytes(png_header_claiming(11000, 10000))  # 110 MP: past ours, under PIL's guard
    (red / "huge.png").write_bytes(png_header_claiming(30000, 30000))  # past PIL's own guard too
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = summarize(tree)
    split = open_split(tree, "train")
    errors = []
    for i, (path, _) in enumerate(split.samples):
        if Path(path).name in ("bomb.png", "huge.png"):
            with pytest.raises(FtcoreError) as info:
                split[i]
            errors.append(str(info.value))
    # decoding the bomb would take 330 MB of RGB (and seconds): the peak grew by less than a third of that
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100 * 1024  # KiB
    bomb = str(folders.real_root_of(tree) / "train" / "red" / "bomb.png")
    assert errors[0] == f"{bomb} is 11000x10000 pixels, more than the 100 megapixels allowed; shrink it first"
    assert "more than the 100 megapixels allowed" in errors[1] or "larger than the 100 megapixels" in errors[1]
    assert [Path(p).name for p in summary.unreadable] == ["bomb.png", "huge.png"]


def test_links_leading_out_of_the_tree_are_not_followed(tree, tmp_path):
    outside = tmp_path / "private"
    (outside / "secret").mkdir(parents=True)
    noisy().save(outside / "secret" / "passport.png")
    for split in ("train", "test"):
        (tree / split / "secret").symlink_to(outside / "secret", target_is_directory=True)
    red = tree / "train" / "red"
    (red / "leak.png").symlink_to(outside / "secret" / "passport.png")
    (red / "zero.png").symlink_to("/dev/zero")  # outside, and a device that would never end
    (red / "loop").symlink_to(tree, target_is_directory=True)  # a folder link back up: never entered
    (red / "twin.png").symlink_to(red / "000.png")  # a link inside the tree is fine
    os.mkfifo(red / "pipe.png")  # opening a FIFO would block forever
    assert check_image_folder(tree) == ["blue", "red"]
    summary = summarize(tree)
    real = folders.real_root_of(tree)
    assert summary.counts["train"] == {"blue": 2, "red": 3} and summary.unreadable == []
    assert sorted(Path(p).name for p in summary.ignored) == ["leak.png", "pipe.png", "zero.png"]
    split = open_split(tree, "train")
    assert split.classes == ["blue", "red"] and len(split) == 5
    assert all(Path(os.path.realpath(p)).is_relative_to(real) for p, _ in split.samples)


# --------------------------------------------------------------------------------------------------
# The hot-dog download: checked, and never leaves half a dataset behind.


class FakeResponse(io.BytesIO):
    """What urlopen returns: the body, and a Content-Length that may promise more than comes."""

    def __init__(self, body: bytes, length: int | None = None):
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body) if length is None else length)}


def serve(monkeypatch, body: bytes, length: int | None = None) -> None:
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout=None: FakeResponse(body, length))


def tree_zip(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(root.rglob("*.png")):
            zf.write(f, f"hotdog/{f.relative_to(root).as_posix()}")
    return buffer.getvalue()


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_a_download_with_the_wrong_sha1_is_deleted_and_named(monkeypatch, tree, tmp_path):
    payload = tree_zip(tree)
    serve(monkeypatch, payload)
    target = tmp_path / "out" / "hotdog"
    with pytest.raises(FtcoreError) as info:
        download_hotdog(target)
    assert str(info.value) == (f"downloaded hotdog.zip has sha1 {hashlib.sha1(payload).hexdigest()}, expected "
                               f"{HOTDOG_SHA1}; the download was damaged, so run it again")
    assert not target.exists() and leftovers(cache_dir()) == ["downloads"]


def test_an_interrupted_download_leaves_nothing_and_says_so(monkeypatch, tmp_path):
    serve(monkeypatch, b"PK" * 50, length=1000)
    target = tmp_path / "out" / "hotdog"
    with pytest.raises(FtcoreError) as info:
        download_hotdog(target)
    assert str(info.value).startswith(f"could not download {HOTDOG_URL} (connection closed after 100 of 1000 "
                                      "bytes); check the internet connection")
    assert not target.exists() and leftovers(cache_dir()) == ["downloads"]


def test_a_download_that_cannot_be_unpacked_leaves_no_half_dataset(monkeypatch, tree, tmp_path):
    payload = bytearray(tree_zip(tree))
    last = payload.rfind(b"PK\x03\x04")  # damage the last photo's compressed bytes: its CRC no longer matches
    payload[last + 60] ^= 0xFF
    serve(monkeypatch, bytes(payload))
    target = tmp_path / "out" / "hotdog"
    with pytest.raises(FtcoreError) as info:
        download_hotdog(target, sha1=hashlib.sha1(bytes(payload)).hexdigest())
    assert str(info.value).startswith("hotdog.zip could not be unpacked (")
    assert str(info.value).endswith("nothing was kept, so check the archive (and the free disk space) and try again")
    assert not target.exists() and leftovers(tmp_path / "out") == []
