"""Zipped datasets, downloaded or uploaded: unpacked safely (no absolute paths, `..`, links, zip bombs) and only
once complete."""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import FtcoreError
from ..util.paths import cache_dir
from .splits import find_dataset_root

# An uploaded or downloaded archive may not unpack to more than this, nor hold more entries (zip bombs).
MAX_EXTRACTED_BYTES = 4 * 1024**3
MAX_EXTRACTED_FILES = 100_000


def binary_size(n: int) -> str:
    """A byte count as people read it: 3.0 MiB, 4.0 GiB."""
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def safe_extract(archive: str | Path | io.BytesIO, dest: str | Path, name: str | None = None) -> Path:
    """Unpack a zip into `dest`, refusing absolute paths, `..`, links, too many entries and archives that
    unpack too large; when unpacking fails half-way, whatever it wrote into a new `dest` is removed."""
    dest = Path(dest)
    name = name or Path(str(archive)).name
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise FtcoreError(f"{name} is not a readable zip archive ({e}); upload or download it again") from None
    with zf:
        entries = zf.infolist()
        if len(entries) > MAX_EXTRACTED_FILES:
            raise FtcoreError(f"{name} holds {len(entries)} entries, more than the {MAX_EXTRACTED_FILES} allowed; "
                              "use a local folder instead")
        total = 0
        for info in entries:
            entry = PurePosixPath(info.filename.replace("\\", "/"))
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            if entry.is_absolute() or ".." in entry.parts or ":" in info.filename or is_link:
                raise FtcoreError(f"the archive holds an unsafe entry {info.filename!r} (absolute path, '..' "
                                  "or link); nothing was extracted, so rebuild the zip from the folder itself")
            total += info.file_size  # zipfile stops each entry at its declared size, so the sum is a real cap
        if total > MAX_EXTRACTED_BYTES:
            raise FtcoreError(f"the archive would unpack to {binary_size(total)}, more than the "
                              f"{binary_size(MAX_EXTRACTED_BYTES)} allowed; use a local folder instead")
        created = not dest.exists()
        try:
            dest.mkdir(parents=True, exist_ok=True)
            zf.extractall(dest)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError,
                zlib.error) as e:  # damaged entries, encryption, unknown compression, a full disk
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            raise FtcoreError(f"{name} could not be unpacked ({type(e).__name__}: {str(e)[:100]}); nothing was "
                              "kept, so check the archive (and the free disk space) and try again") from None
    return dest


def extract_image_folder_zip(archive: str | Path, dest: str | Path) -> Path:
    """Safely unpack a zipped dataset into `dest` and return the folder that holds it (any layout)."""
    return find_dataset_root(safe_extract(archive, dest))


def unpack_uploaded_zip(data: bytes) -> Path:
    """Unpack an uploaded zip of a dataset (any layout) under the cache (once per content) and return its root.

    The archive is read from memory; only its checked contents reach the disk, through a temporary folder
    that becomes <cache>/uploads/<sha1> once complete, so a refused or broken upload leaves nothing behind."""
    uploads = cache_dir() / "uploads"
    dest = uploads / hashlib.sha1(data).hexdigest()[:20]
    if not dest.exists():
        uploads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=uploads, prefix=".extract-") as tmp:
            safe_extract(io.BytesIO(data), Path(tmp) / "tree", name="the uploaded zip")
            try:
                (Path(tmp) / "tree").rename(dest)
            except OSError:
                if not dest.is_dir():  # not another tab that unpacked the same upload first
                    raise FtcoreError(f"could not store the unpacked upload in {uploads}; check that it is "
                                      "writable") from None
    try:
        return find_dataset_root(dest)
    except FtcoreError:
        shutil.rmtree(dest, ignore_errors=True)  # not a dataset: keep no copy of it
        raise
