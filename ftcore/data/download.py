"""Finding the hot-dog photos on this machine, and fetching d2l's hotdog.zip (sha1-checked) where they are not."""

from __future__ import annotations

import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import FtcoreError
from ..util.paths import atomic_write, cache_dir, shared_dir
from .archives import extract_image_folder_zip
from .dataset import is_image_folder
from .photo_check import sha1_of

# d2l's data hub entry for the hot-dog set: 1000+1000 train, 400+400 test photos.
HOTDOG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip"
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"


def default_hotdog_dir() -> Path:
    """Where `download_hotdog` puts the set: <cache>/data/hotdog."""
    return cache_dir() / "data" / "hotdog"


def data_candidates() -> list[tuple[str, Path]]:
    """Places the hot-dog data may already be, in the order they are tried, with a label each."""
    candidates = []
    if os.environ.get("FTCORE_DATA"):
        candidates.append(("$FTCORE_DATA", Path(os.environ["FTCORE_DATA"]).expanduser()))
    candidates.append(("download cache", default_hotdog_dir()))
    shared = shared_dir()
    if shared is not None:
        candidates.append(("shared folder beside the checkout", shared / "data" / "hotdog"))
    return candidates


def find_data() -> Path | None:
    """The first candidate folder that is a usable ImageFolder tree, or None."""
    for _, path in data_candidates():
        if is_image_folder(path):
            return path
    return None


def fetch(url: str, dest: Path, progress: Callable[[int, int | None], None] | None = None,
          timeout: float = 30.0) -> Path:
    """Download `url` to `dest` (atomically), calling progress(bytes_done, bytes_total)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dest) as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            if total is not None and done != total:
                raise OSError(f"connection closed after {done} of {total} bytes")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise FtcoreError(f"could not download {url} ({reason}); check the internet connection, or fetch "
                          "the file by hand and use its unpacked folder as the data") from None
    return dest


def download_hotdog(root: str | Path | None = None, url: str = HOTDOG_URL, sha1: str = HOTDOG_SHA1,
                    progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Fetch d2l's hotdog.zip (sha1-checked), unpack it safely into `root`, and return `root`."""
    root = Path(root).expanduser() if root else default_hotdog_dir()
    if is_image_folder(root):
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):  # never overwrite what the user has
        raise FtcoreError(f"{root} already exists and is not an ImageFolder tree; download into a new or "
                          "empty folder")
    archive = cache_dir() / "downloads" / "hotdog.zip"
    if not archive.exists() or sha1_of(archive) != sha1:
        fetch(url, archive, progress)
        actual = sha1_of(archive)
        if actual != sha1:
            archive.unlink(missing_ok=True)
            raise FtcoreError(f"downloaded hotdog.zip has sha1 {actual}, expected {sha1}; "
                              "the download was damaged, so run it again")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".extract-") as tmp:
        found = extract_image_folder_zip(archive, tmp)
        try:
            if root.is_dir():
                root.rmdir()  # empty, checked above
            found.rename(root)
        except OSError:
            if not is_image_folder(root):  # not another download that finished first
                raise FtcoreError(f"could not move the unpacked photos into {root}; check that it is "
                                  "writable") from None
    return root
