"""Every photo of a dataset as the vector the chosen network's output layer receives, computed once and kept on disk.

The vectors come from the network's copied (ImageNet) layers through the network's own test transform, in chunks so
that 20,000 photos never sit decoded in memory at once. They are kept in `<cache>/embeddings/<key>.npz`, one file
per dataset folder, network, weights file and image size, each photo keyed by its path, size and modification time:
a second check re-reads only the photos that changed. This module is the only one that writes or reads that file.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import load_rgb
from ..data.decoded import DecodedEvalBatches, decode_split
from ..data.transforms import eval_preset
from ..errors import FtcoreError
from ..models.build import build_model, fused_for_inference
from ..train.features import CPU_FEATURE_BATCH, extract_features
from ..util.paths import atomic_write, cache_dir

EMBEDDING_FORMAT = 1  # the file's version; a file of another version is read as empty
CHUNK = 128  # photos decoded and embedded at a time: memory stays small, progress and saves come often
EMBEDDING_SIZE = 224  # the crop every photo is embedded at: the networks' ImageNet size


def stamp_of(path: str) -> tuple[int, int]:
    """(size, modification time in ns) of a file: what says it changed since it was embedded."""
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime_ns


class EmbeddingFile:
    """One dataset's embeddings by one network on disk, keyed by photo path and stamp."""

    def __init__(self, root: str | Path, network_key: str, folder: Path | None = None) -> None:
        self.root = str(Path(root).resolve())
        name = hashlib.sha1(f"{self.root}\n{network_key}".encode()).hexdigest()[:20]
        self.path = (folder or cache_dir() / "embeddings") / f"{name}.npz"

    def load(self) -> dict[str, tuple[tuple[int, int], np.ndarray]]:
        """path -> (stamp, vector) as last saved; empty when there is no file or one this version cannot read."""
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                if int(saved["format"]) != EMBEDDING_FORMAT or str(saved["root"]) != self.root:
                    return {}
                return {str(p): ((int(s[0]), int(s[1])), v)
                        for p, s, v in zip(saved["paths"], saved["stamps"], saved["vectors"], strict=True)}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def save(self, known: dict[str, tuple[tuple[int, int], np.ndarray]]) -> None:
        """Write every photo's vector (a failed write is skipped: those photos are embedded again next time)."""
        paths = list(known)
        vectors = np.stack([known[p][1] for p in paths]) if paths else np.zeros((0, 0), np.float16)
        buffer = io.BytesIO()
        np.savez(buffer, format=EMBEDDING_FORMAT, root=self.root, paths=np.array(paths, dtype=str),
                 stamps=np.array([known[p][0] for p in paths], dtype=np.int64).reshape(-1, 2), vectors=vectors)
        try:
            with atomic_write(self.path) as out:
                out.write(buffer.getvalue())
        except OSError:
            pass


class Embedder:
    """The chosen network's copied layers, ready to embed photos on the CPU (BatchNorm folded in)."""

    def __init__(self, arch: str, weights: str | None = None) -> None:
        net, source = build_model(arch, 2, pretrained=True, weights_file=weights)
        self.arch, self.model = arch, fused_for_inference(net)
        self.preset = eval_preset(arch, EMBEDDING_SIZE)
        self.key = f"{arch}\n{source.sha256}\n{EMBEDDING_SIZE}"  # what the vectors depend on, besides the photo

    def __call__(self, paths: Sequence[str]) -> tuple[np.ndarray, dict[str, str]]:
        """Vectors of the readable photos of `paths` (float16 rows, in order), and path -> why for the others."""
        try:
            decoded = decode_split([(p, 0) for p in paths], load_rgb, "eval", EMBEDDING_SIZE, preset=self.preset)
        except FtcoreError:  # a broken photo among them: find it, and embed the others
            problems = {}
            for path in paths:
                try:
                    load_rgb(path)
                except FtcoreError as e:
                    problems[path] = str(e)
            vectors, _ = self([p for p in paths if p not in problems])
            return vectors, problems
        batches = DecodedEvalBatches(decoded, CPU_FEATURE_BATCH, torch.device("cpu"), preset=self.preset)
        features, _ = extract_features(self.model, self.arch, batches, torch.device("cpu"))
        return features.numpy().astype(np.float16), {}


def embed_photos(paths: Sequence[str], embedder: Embedder, file: EmbeddingFile,
                 progress: Callable[[int, int], None] | None = None,
                 stop: threading.Event | None = None) -> tuple[np.ndarray | None, dict[str, str]]:
    """The vector of every photo in `paths` (float32 rows in that order; zeros for a photo the decoder refuses),
    reusing the saved ones of unchanged files, and path -> why for the refused photos; None for the vectors when
    `stop` is set first. `progress(done, total)` follows the photos as they are read or embedded."""
    known = file.load()
    stamps = {p: stamp_of(p) for p in paths}
    todo = [p for p in paths if p not in known or known[p][0] != stamps[p]]
    problems: dict[str, str] = {}
    if progress is not None:
        progress(len(paths) - len(todo), len(paths))
    for start in range(0, len(todo), CHUNK):
        if stop is not None and stop.is_set():
            file.save(known)
            return None, problems
        chunk = todo[start:start + CHUNK]
        vectors, refused = embedder(chunk)
        problems.update(refused)
        for path, vector in zip([p for p in chunk if p not in refused], vectors, strict=True):
            known[path] = (stamps[path], vector)
        file.save(known)
        if progress is not None:
            progress(len(paths) - len(todo) + start + len(chunk), len(paths))
    current = {p: known[p] for p in paths if p in known}
    if len(current) != len(known):
        file.save(current)  # only the dataset's photos of now: removed files leave the file
    width = next(iter(current.values()))[1].shape[0] if current else 0
    matrix = np.zeros((len(paths), width), np.float32)
    for row, path in enumerate(paths):
        if path in current:
            matrix[row] = current[path][1]
    return matrix, problems
