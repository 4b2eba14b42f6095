"""Uploads: hostile zips, photos that are not photos, huge photos and many at once; each one clear answer."""

from __future__ import annotations

import io
import struct
import tomllib
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from app import choices
from conftest import REPO, encode, open_app, trained_model
from ftcore.data import archives
from ftcore.data.archives import unpack_uploaded_zip
from ftcore.errors import FtcoreError
from ftcore.insight.predict import classify_photos
from ftcore.models.trained import TrainedModel
from ftcore.util.paths import cache_dir

EXPLORE, PREDICT = "app_pages/explore.py", "app_pages/predict.py"


def photo(color=(220, 40, 40), size=(50, 40)) -> bytes:
    return encode(Image.new("RGB", size, color), "PNG")


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


def dataset_entries(prefix: str = "set") -> dict[str, bytes]:
    return {f"{prefix}/{split}/{label}/{i}.png": photo(color)
            for split in ("train", "test") for label, color in (("blue", (0, 0, 200)), ("red", (200, 0, 0)))
            for i in range(2)}


def cache_contents() -> list[str]:
    """Everything under the cache, as paths relative to it."""
    root = cache_dir()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


class Constant(torch.nn.Module):
    """Logits [1, 3] for every photo; counts how many photos each forward pass gets."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(len(x))
        return torch.tensor([[1.0, 3.0]]).repeat(len(x), 1) + self.w


def constant_model() -> TrainedModel:
    return trained_model(Constant(), ["blue", "red"])


# --------------------------------------------------------------------------------------------------
# Zipped datasets.


@pytest.mark.parametrize("entry", ["../evil.png", "set/../../evil.png", "/tmp/evil.png", "C:/evil.png",
                                   "..\\evil.png"])
def test_zip_slip_is_refused_and_nothing_is_written(entry, tmp_path):
    payload = zip_of({**dataset_entries(), entry: photo()})
    with pytest.raises(FtcoreError) as info:
        unpack_uploaded_zip(payload)
    assert str(info.value) == (f"the archive holds an unsafe entry {entry!r} (absolute path, '..' or link); nothing "
                               "was extracted, so rebuild the zip from the folder itself")
    assert cache_contents() == ["uploads"] and not Path("/tmp/evil.png").exists()
    assert not (cache_dir().parent / "evil.png").exists()


def test_a_link_inside_a_zip_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, payload in dataset_entries().items():
            zf.writestr(name, payload)
        link = zipfile.ZipInfo("set/train/red/passwd.png")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(FtcoreError, match="unsafe entry 'set/train/red/passwd.png'"):
        unpack_uploaded_zip(buffer.getvalue())
    assert cache_contents() == ["uploads"]


def test_the_explorer_refuses_a_zip_slip_upload_and_keeps_its_data(tiny_data):
    at = open_app(EXPLORE, data_root=str(tiny_data))
    at.radio[0].set_value("Upload a .zip").run()
    at.file_uploader[0].upload("photos.zip", zip_of({**dataset_entries(), "../evil.png": photo()}),
                               "application/zip").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["the archive holds an unsafe entry '../evil.png' (absolute path, '..' or "
                                           "link); nothing was extracted, so rebuild the zip from the folder itself"]
    assert at.session_state["data_root"] == str(tiny_data) and cache_contents() == ["uploads"]


def test_a_zip_bomb_is_refused_by_its_unpacked_size(monkeypatch):
    monkeypatch.setattr(archives, "MAX_EXTRACTED_BYTES", 1024**2)
    payload = zip_of({**dataset_entries(), "set/train/red/zeros.png": b"\0" * (3 * 1024**2)})
    assert len(payload) < 30_000  # 3 MiB of zeros compress to almost nothing
    with pytest.raises(FtcoreError) as info:
        unpack_uploaded_zip(payload)
    assert str(info.value) == ("the archive would unpack to 3.0 MiB, more than the 1.0 MiB allowed; use a local "
                               "folder instead")
    assert cache_contents() == ["uploads"]


def test_a_zip_bomb_is_refused_by_its_number_of_files(monkeypatch):
    monkeypatch.setattr(archives, "MAX_EXTRACTED_FILES", 10)
    payload = zip_of({**dataset_entries(), **{f"set/train/red/x{i}.png": b"" for i in range(3)}})
    with pytest.raises(FtcoreError) as info:
        unpack_uploaded_zip(payload)
    assert str(info.value) == "the uploaded zip holds 11 entries, more than the 10 allowed; use a local folder instead"
    assert cache_contents() == ["uploads"]


def test_a_zip_that_lies_about_its_sizes_stops_at_the_declared_size_and_keeps_nothing():
    payload = bytearray(zip_of({**dataset_entries(), "set/train/red/big.png": b"\0" * 1024**2}))
    central = payload.rfind(b"PK\x01\x02")  # the last entry's central-directory record: claim 100 bytes
    payload[central + 24:central + 28] = struct.pack("<I", 100)
    local = payload.rfind(b"PK\x03\x04")
    payload[local + 22:local + 26] = struct.pack("<I", 100)
    with pytest.raises(FtcoreError) as info:
        unpack_uploaded_zip(bytes(payload))
    assert str(info.value).startswith("the uploaded zip could not be unpacked (BadZipFile: Bad CRC-32 for file ")
    assert cache_contents() == ["uploads"]


def test_a_zip_without_a_dataset_keeps_no_copy():
    with pytest.raises(FtcoreError, match="no dataset found in .*; zip a folder of <class>/ folders"):
        unpack_uploaded_zip(zip_of({"holiday/a.png": photo()}))
    assert cache_contents() == ["uploads"]


# --------------------------------------------------------------------------------------------------
# Photos on the Predict page.


def test_a_jpg_that_is_not_an_image_is_named_and_the_others_are_classified():
    model = constant_model()
    results = classify_photos(model, [("cat.jpg", b"GIF89a but not really"), ("red.png", photo())])
    assert results[0].error == "cat.jpg is not an image (UnidentifiedImageError); use a JPEG, PNG or WebP photo"
    assert results[0].ranked is None and results[0].thumbnail is None
    assert results[1].error is None and [c for c, _ in results[1].ranked] == ["red", "blue"]


def test_an_empty_file_is_named():
    (result,) = classify_photos(constant_model(), [("empty.png", b"")])
    assert result.error == "empty.png is empty; use a JPEG, PNG or WebP photo" and result.ranked is None


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_very_large_photos_are_classified_or_refused_by_size():
    def claiming(width: int, height: int) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")

    big = encode(Image.new("RGB", (4000, 3000), (200, 20, 20)), "JPEG")  # 12 MP, a phone photo
    results = classify_photos(constant_model(), [("phone.jpg", big), ("poster.png", claiming(12000, 9000))])
    assert results[0].ranked is not None and max(Image.open(io.BytesIO(results[0].thumbnail)).size) == 320
    assert results[1].error == ("poster.png is 12000x9000 pixels, more than the 100 megapixels allowed; shrink it "
                                "first")


def test_many_photos_are_classified_a_batch_at_a_time():
    model = constant_model()
    photos = [(f"{i}.png", photo((i, 0, 0))) for i in range(70)] + [("bad.jpg", b"nope")]
    results = classify_photos(model, photos, batch=32)
    assert [r.name for r in results] == [name for name, _ in photos]
    assert all(r.ranked for r in results[:70]) and results[70].error.startswith("bad.jpg is not an image")
    assert model.model.batches == [32, 32, 6]  # never more than one batch of decoded photos held at once


def test_the_predict_page_classifies_at_most_its_limit_and_says_so(monkeypatch, tiny_data):
    from ftcore.config import recipe
    from ftcore.runs import saved
    from ftcore.train.loop import fit

    result = fit(recipe("scratch", data=str(tiny_data), epochs=1, batch_size=16, image_size=32, limit=4))
    run = saved.Run("run-limit", "tiny", result.config, result.history, result)
    monkeypatch.setattr(choices, "MAX_PHOTOS", 3)
    at = open_app(PREDICT, runs=[run])
    for i in range(5):
        at.file_uploader[0].upload(f"{i}.png", photo((40 * i, 0, 0)), "image/png")
    at.file_uploader[0].upload("fake.jpg", b"not a photo", "image/jpeg")
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert warnings[0] == ("6 photos uploaded; the first 3 are classified. Remove some, or classify the rest in "
                           "another go.")
    # one epoch on 4 photos per class learns nothing: the page also says its model is at chance, and nothing else
    assert len(warnings) == 1 + (result.history.chance_note(2) is not None)
    assert len(at.get("plotly_chart")) == 3 and not at.error


def test_the_upload_limit_is_set_deliberately_and_stated_in_the_docs():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 512
    errors = (REPO / "docs" / "errors.md").read_text()
    assert "`server.maxUploadSize = 512`" in errors and "512 MB" in errors
