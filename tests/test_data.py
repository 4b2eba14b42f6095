"""Data: the book's transforms, ImageFolder checks, summaries, the hot-dog download and safe extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets, transforms

from conftest import TINY_CLASSES, TINY_COUNTS, write_tiny_imagefolder
from ftcore.data import download
from ftcore.data.archives import safe_extract, unpack_uploaded_zip
from ftcore.data.dataset import check_image_folder, load_rgb, open_split
from ftcore.data.download import HOTDOG_SHA1, data_candidates, download_hotdog, fetch, find_data
from ftcore.data.summary import format_summary, summarize
from ftcore.data.transforms import EvalPreset, TrainPreset, augmentation_preview, resize_size_for
from ftcore.errors import FtcoreError
from ftcore.util.paths import cache_dir


def test_transforms_are_the_books():
    train = TrainPreset(224).transforms.transforms
    assert [type(t) for t in train] == [transforms.RandomResizedCrop, transforms.RandomHorizontalFlip,
                                        transforms.ToTensor, transforms.Normalize]
    assert train[0].size == (224, 224) and train[0].scale == (0.08, 1.0)
    assert tuple(train[3].mean) == (0.485, 0.456, 0.406)
    assert tuple(train[3].std) == (0.229, 0.224, 0.225)
    test = EvalPreset(224).transforms.transforms
    assert [type(t) for t in test] == [transforms.Resize, transforms.CenterCrop, transforms.ToTensor,
                                       transforms.Normalize]
    assert test[0].size == [256, 256] and test[1].size == (224, 224)


@pytest.mark.parametrize("size, resize", [(224, 256), (112, 128), (64, 73), (160, 183)])
def test_image_size_scales_the_test_resize(size, resize):
    assert resize_size_for(size) == resize
    assert EvalPreset(size).to_dict()["resize_size"] == resize


def test_eval_preset_round_trips_through_a_plain_dict(tiny_data):
    preset = EvalPreset(96)
    again = EvalPreset.from_dict(preset.to_dict())
    photo = load_rgb(str(tiny_data / "test" / "red" / "000.png"))
    assert again.to_dict() == preset.to_dict()
    assert torch.equal(again(photo), preset(photo)) and preset(photo).shape == (3, 96, 96)


def test_check_image_folder_accepts_a_tree_and_returns_sorted_classes(tiny_data):
    assert check_image_folder(tiny_data) == list(TINY_CLASSES)


@pytest.mark.parametrize("breakage, words", [
    ("missing", "does not exist"),
    ("file", "is a file"),
    ("no-test", "too few to hold any out for validation"),  # train/ alone holds out val: 1 photo cannot
    ("one-class", "at least two"),
    ("mismatch", "different class folders"),
    ("empty-class", "holds no images"),
    ("train-lacks", "has class folder 'green' that train/ lacks"),
])
def test_check_image_folder_names_what_is_wrong(tmp_path, breakage, words):
    root = tmp_path / "d"
    if breakage == "file":
        root.write_text("x")
    elif breakage != "missing":
        write_tiny_imagefolder(root, {"train": 1, "test": 1})
        if breakage == "no-test":
            for f in sorted((root / "test").rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            (root / "test").rmdir()
        elif breakage == "one-class":
            (root / "train" / "red" / "000.png").unlink()
            (root / "train" / "red").rmdir()
        elif breakage == "mismatch":
            (root / "test" / "red").rename(root / "test" / "green")
        elif breakage == "train-lacks":
            write_tiny_imagefolder(tmp_path / "green", {"test": 1})
            (tmp_path / "green" / "test" / "red").rename(root / "test" / "green")
        elif breakage == "empty-class":
            (root / "test" / "red" / "000.png").rename(root / "test" / "red" / "notes.txt")
    with pytest.raises(FtcoreError, match=words):
        check_image_folder(root)


def test_limit_keeps_the_first_n_of_each_class_in_imagefolder_order(tiny_data):
    full = datasets.ImageFolder(str(tiny_data / "train"))
    limited = open_split(tiny_data, "train", limit=3)
    expected = [s for s in full.samples if s[1] == 0][:3] + [s for s in full.samples if s[1] == 1][:3]
    assert limited.samples == expected and limited.targets == [0, 0, 0, 1, 1, 1]
    assert len(open_split(tiny_data, "test")) == 2 * TINY_COUNTS["test"]


def test_a_broken_image_names_its_file(tmp_path):
    root = write_tiny_imagefolder(tmp_path / "d", {"train": 2, "test": 1})
    bad = root / "train" / "red" / "001.png"
    bad.write_bytes(b"not a png at all")
    dataset = open_split(root, "train")
    with pytest.raises(FtcoreError, match="001.png"):
        [dataset[i] for i in range(len(dataset))]


def test_summary_counts_and_sizes(tiny_data):
    summary = summarize(tiny_data)
    assert summary.classes == list(TINY_CLASSES)
    assert summary.counts == {s: {c: n for c in TINY_CLASSES} for s, n in TINY_COUNTS.items()}
    assert summary.total("train") == 32 and len(summary.images) == 48 and summary.unreadable == []
    # make_photo: width 40 + 4 * (i % 5), height 36 + 6 * (i % 3)
    stats = summary.size_stats()
    assert (stats["width_min"], stats["width_max"], stats["height_min"], stats["height_max"]) == (40, 56, 36, 48)
    assert stats["aspect_min"] == pytest.approx(40 / 48) and stats["aspect_max"] == pytest.approx(56 / 36)
    text = format_summary(summary)
    assert "train: 32 images (blue 16 (50%), red 16 (50%))" in text
    assert "test: 16 images (blue 8 (50%), red 8 (50%))" in text


def test_summary_lists_unreadable_files(tmp_path):
    root = write_tiny_imagefolder(tmp_path / "d", {"train": 2, "test": 1})
    (root / "train" / "red" / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    summary = summarize(root)
    assert summary.counts["train"]["red"] == 3 and summary.unreadable == [str((root / "train/red/bad.jpg").resolve())]


def test_book_grid_is_the_books_indexing(tiny_data):
    train_imgs = datasets.ImageFolder(str(tiny_data / "train"))
    expected = [train_imgs.samples[i][0] for i in range(8)] + [train_imgs.samples[-i - 1][0] for i in range(8)]
    grid = summarize(tiny_data).book_grid()
    assert [Path(r.path).relative_to(tiny_data.resolve()) for r in grid] == \
        [Path(p).relative_to(tiny_data) for p in expected]
    assert [r.label for r in grid] == ["blue"] * 8 + ["red"] * 8


def test_book_grid_on_the_hotdog_set(shared_hotdog):
    grid = summarize(shared_hotdog).book_grid()
    assert [Path(r.path).name for r in grid[:2]] == ["0000.jpg", "0001.jpg"]
    assert [Path(r.path).name for r in grid[8:10]] == ["0999.jpg", "0998.jpg"]
    assert {r.label for r in grid[:8]} == {"hotdog"} and {r.label for r in grid[8:]} == {"not-hotdog"}


def test_augmentation_preview_gives_displayable_views(tiny_data):
    photo = tiny_data / "train" / "red" / "000.png"
    torch.manual_seed(0)
    views, test_view = augmentation_preview(photo, image_size=32, n=4)
    assert len(views) == 4 and all(v.shape == (32, 32, 3) and v.dtype == np.uint8 for v in views)
    assert any(not np.array_equal(views[0], v) for v in views[1:])  # random crops differ
    _, again = augmentation_preview(photo, image_size=32, n=1)
    assert np.array_equal(test_view, again)  # the test transform is deterministic
    # Undoing Normalize recovers the photo's own colours: red dominates.
    assert test_view[..., 0].mean() > test_view[..., 2].mean() + 100


# --------------------------------------------------------------------------------------------------
# Download and extraction, without the internet: a loopback HTTP server stands in for d2l's host.


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


def tree_as_zip(root: Path, prefix: str) -> bytes:
    return zip_bytes({f"{prefix}/{f.relative_to(root).as_posix()}": f.read_bytes()
                      for f in sorted(root.rglob("*")) if f.is_file()})


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/www on a loopback port; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_checks_sha1_and_unpacks_the_tree(tiny_data, http_server, tmp_path):
    www, base = http_server
    payload = tree_as_zip(tiny_data, "hotdog")
    (www / "hotdog.zip").write_bytes(payload)
    seen = []
    root = download_hotdog(tmp_path / "out" / "hotdog", url=f"{base}/hotdog.zip",
                                sha1=hashlib.sha1(payload).hexdigest(), progress=lambda d, t: seen.append((d, t)))
    assert root == tmp_path / "out" / "hotdog" and check_image_folder(root) == list(TINY_CLASSES)
    assert seen[-1] == (len(payload), len(payload))
    assert len(list((root / "train" / "red").iterdir())) == TINY_COUNTS["train"]


def test_download_with_wrong_sha1_fails_and_keeps_nothing(tiny_data, http_server, tmp_path):
    www, base = http_server
    (www / "hotdog.zip").write_bytes(tree_as_zip(tiny_data, "hotdog"))
    with pytest.raises(FtcoreError, match="expected fba480ff"):
        download_hotdog(tmp_path / "hotdog", url=f"{base}/hotdog.zip", sha1=HOTDOG_SHA1)
    assert not (cache_dir() / "downloads" / "hotdog.zip").exists() and not (tmp_path / "hotdog").exists()


def test_download_offline_is_one_clear_error(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(FtcoreError, match=r"could not download http://d2l-data.*Name or service not known"):
        download_hotdog(tmp_path / "hotdog")


@pytest.mark.parametrize("existing", ["file", "folder"])
def test_download_never_overwrites_what_is_there(tmp_path, existing, monkeypatch):
    monkeypatch.setattr(download, "fetch", lambda *a, **k: pytest.fail("nothing should be downloaded"))
    root = tmp_path / "mine"
    if existing == "file":
        root.write_text("keep me")
    else:
        root.mkdir()
        (root / "holiday.jpg").write_bytes(b"keep me")
    with pytest.raises(FtcoreError, match="already exists and is not an ImageFolder tree"):
        download_hotdog(root)
    assert (root.read_text() if existing == "file" else (root / "holiday.jpg").read_bytes().decode()) == "keep me"


def test_download_cut_short_is_an_error(tmp_path):
    class CutShort(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 100)  # then the connection closes

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), CutShort)
    threading.Thread(target=server.handle_request, daemon=True).start()
    with pytest.raises(FtcoreError, match="could not download"):
        fetch(f"http://127.0.0.1:{server.server_address[1]}/hotdog.zip", tmp_path / "hotdog.zip")
    server.server_close()
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary part is left


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "a/../../evil", "C:/evil"])
def test_safe_extract_refuses_escaping_entries(tmp_path, name):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"ok.txt": b"1", name: b"2"}))
    with pytest.raises(FtcoreError, match="unsafe entry"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_symlinks(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        link = zipfile.ZipInfo("link")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(FtcoreError, match="unsafe entry"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_refuses_what_is_not_a_zip(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK but not really")
    with pytest.raises(FtcoreError, match="not a readable zip"):
        safe_extract(archive, tmp_path / "out")


def test_uploaded_zip_with_a_nested_tree_is_found_and_unpacked_once(tiny_data):
    payload = tree_as_zip(tiny_data, "my photos/colours")
    root = unpack_uploaded_zip(payload)
    assert root.name == "colours" and check_image_folder(root) == list(TINY_CLASSES)
    assert unpack_uploaded_zip(payload) == root  # same content, same folder


def test_uploaded_zip_without_train_and_test_says_how_to_lay_it_out():
    with pytest.raises(FtcoreError, match="train/<class>"):
        unpack_uploaded_zip(zip_bytes({"photos/a.jpg": b"x"}))


def test_find_data_prefers_ftcore_data(monkeypatch, tiny_data):
    monkeypatch.setenv("FTCORE_DATA", str(tiny_data))
    assert find_data() == tiny_data
    assert data_candidates()[0] == ("$FTCORE_DATA", tiny_data)
