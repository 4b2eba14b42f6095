"""Known mistakes put into a copy of a photo set: labels flipped, test photos leaked into train after a resize and a
JPEG re-save, and exact copies; what the check of the photos is measured against (benchmarks.clean.quality and the
tests). The source folder is only read."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

LEAK_SCALE = 0.9  # a leaked test photo is resized to this share of its sides, then saved again as JPEG
LEAK_QUALITY = 85  # the JPEG quality of that re-save
CROP_SHARE = 0.05  # a cropped leak loses this share of each side


@dataclass
class Mistakes:
    """What was put into the copy, as paths relative to its root with '/'."""

    root: Path
    flipped: list[str] = field(default_factory=list)  # training photos filed under a class they are not
    original: dict[str, str] = field(default_factory=dict)  # flipped photo -> the class it was filed under
    leaks: list[tuple[str, str]] = field(default_factory=list)  # (test photo, its resized copy in train)
    copies: list[tuple[str, str]] = field(default_factory=list)  # (photo, its byte-identical copy in the same split)

    @property
    def pairs(self) -> set[frozenset[str]]:
        """Every pair of photos that are the same photo."""
        return {frozenset(pair) for pair in self.leaks + self.copies}


def noisy_copy(source: Path, out: Path, per_class: dict[str, int], flip: float, leaks: int, copies: int,
               seed: int = 0, crop_every: int = 3, skip: frozenset[str] = frozenset()) -> Mistakes:
    """Copy the first `per_class[split]` photos of each class of `source` (train/ and test/ of class folders; those
    in `skip`, relative paths, passed over) into `out`, then flip the labels of a share `flip` of the training
    photos, leak `leaks` test photos into train (each resized and re-saved; every `crop_every`-th also cropped
    lightly), and copy `copies` training photos byte for byte under new names."""
    rng = random.Random(seed)
    classes = sorted(d.name for d in (source / "train").iterdir() if d.is_dir())
    made = Mistakes(out)
    for split, count in per_class.items():
        for name in classes:
            (out / split / name).mkdir(parents=True, exist_ok=True)
            kept = [p for p in sorted((source / split / name).iterdir()) if f"{split}/{name}/{p.name}" not in skip]
            for photo in kept[:count]:
                shutil.copyfile(photo, out / split / name / photo.name)
    train = sorted(p.relative_to(out).as_posix() for p in (out / "train").glob("*/*"))
    for i, rel in enumerate(rng.sample(train, round(flip * len(train)))):
        given = rel.split("/")[1]
        moved = f"train/{rng.choice([c for c in classes if c != given])}/flipped-{i}-{Path(rel).name}"
        (out / rel).rename(out / moved)
        made.flipped.append(moved)
        made.original[moved] = given
    test = sorted(p.relative_to(out).as_posix() for p in (out / "test").glob("*/*"))
    for i, rel in enumerate(rng.sample(test, leaks)):
        with Image.open(out / rel) as photo:
            image = photo.convert("RGB")
        w, h = image.size
        if i % crop_every == crop_every - 1:
            dx, dy = round(w * CROP_SHARE), round(h * CROP_SHARE)
            image = image.crop((dx, dy, w - dx, h - dy))
        image = image.resize((round(image.width * LEAK_SCALE), round(image.height * LEAK_SCALE)), Image.BILINEAR)
        leaked = f"train/{rel.split('/')[1]}/leaked-{i}.jpg"
        image.save(out / leaked, format="JPEG", quality=LEAK_QUALITY)
        made.leaks.append((rel, leaked))
    flipped = set(made.flipped)
    for i, rel in enumerate(rng.sample([p for p in train if p not in flipped and (out / p).exists()], copies)):
        copy = f"{Path(rel).parent.as_posix()}/copy-{i}{Path(rel).suffix}"
        shutil.copyfile(out / rel, out / copy)
        made.copies.append((rel, copy))
    return made
