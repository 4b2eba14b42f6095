"""Near-duplicates: photos that are one photo, resized, re-saved or lightly cropped; across splits, leaks.

Pairs are found in two steps (benchmarks.clean.quality measured both): the networks' vectors find every candidate
pair quickly, searched in blocks so that 20,000 photos fit in memory, and perceptual hashes (imagehash's pHash)
confirm each candidate. Neither alone separates a leak from two shots of one scene: a cropped copy's vectors can be
less alike than two shots of a burst, and so can its plain hash; so each photo is also hashed with its edges
trimmed, and a pair counts when either photo, trimmed or not, hashes close to the other one whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.dataset import load_rgb

CANDIDATE_SIMILARITY = 0.85  # cosine of two photos' vectors from which the pair is looked at more closely
SAME_PHOTO_BITS = 8  # the most bits of their 64-bit pHashes in which two versions of one photo differ
TRIMS = (0.0, 0.05, 0.1)  # shares of each side trimmed before hashing: a copy cropped that much still matches
BLOCK = 1024  # rows of the similarity matrix computed at a time (1,024 x 20,000 floats: 80 MB)


@dataclass(frozen=True)
class DuplicateGroup:
    """Photos that are one photo."""

    members: list[int]  # rows of the photos, in order
    similarity: float  # the lowest cosine of the pairs that joined the group
    leak: bool  # True when the group spans two splits


def candidate_pairs(vectors: np.ndarray, threshold: float = CANDIDATE_SIMILARITY,
                    block: int = BLOCK) -> list[tuple[int, int, float]]:
    """(i, j, cosine) for every pair i < j at or above `threshold`."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    pairs = []
    for start in range(0, len(unit), block):
        similar = unit[start:start + block] @ unit.T
        rows, cols = np.nonzero(similar >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if start + r < c:
                pairs.append((start + r, c, float(similar[r, c])))
    return pairs


def perceptual_hashes(path: str) -> list:
    """The 64-bit pHashes of a photo, upright as displayed, whole and with each of TRIMS off its sides."""
    import imagehash  # here: only the few photos of candidate pairs are hashed

    image = load_rgb(path)
    w, h = image.size
    return [imagehash.phash(image.crop((round(w * t), round(h * t), w - round(w * t), h - round(h * t))))
            for t in TRIMS]


def hash_distance(a: list, b: list) -> int:
    """Bits apart of two photos' hashes: the least over one photo whole against the other whole or trimmed."""
    return min(min(x - b[0] for x in a), min(a[0] - y for y in b))


def duplicate_groups(paths: list[str], roles: list[str], vectors: np.ndarray) -> list[DuplicateGroup]:
    """Groups of photos that are one photo, leaks first, then the most alike."""
    pairs = candidate_pairs(vectors)
    hashes = {i: perceptual_hashes(paths[i]) for i in sorted({i for pair in pairs for i in pair[:2]})}
    parent = list(range(len(paths)))

    def top(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lowest: dict[int, float] = {}
    for i, j, similarity in pairs:
        if hash_distance(hashes[i], hashes[j]) <= SAME_PHOTO_BITS:
            a, b = top(i), top(j)
            parent[max(a, b)] = min(a, b)
            lowest[min(a, b)] = min(similarity, lowest.get(a, 1.0), lowest.get(b, 1.0))
    members: dict[int, list[int]] = {}
    for i in range(len(paths)):
        members.setdefault(top(i), []).append(i)
    groups = [DuplicateGroup(members=rows, similarity=round(lowest[head], 4),
                             leak=len({roles[i] for i in rows}) > 1)
              for head, rows in members.items() if len(rows) > 1]
    return sorted(groups, key=lambda g: (not g.leak, -g.similarity, g.members))
