"""The clean command: check a dataset's photos for wrong labels, duplicates and leaks, edit them in its edit log (the
photos themselves are never touched), list or undo those edits, and export the cleaned copy."""

from __future__ import annotations

import argparse
import json
import sys

from ..clean.check import check_dataset
from ..clean.report import CheckReport
from ..config import CHECK_ARCH
from ..data.cleaned import apply_edits, check_edit, export_cleaned
from ..data.edits import EditKind, EditLog, fold
from ..data.splits import resolve_splits


def add_clean(sub: argparse._SubParsersAction) -> None:
    """`clean`: the check of the photos, and the edits that fix what it finds."""
    clean = sub.add_parser("clean", help="find mislabeled, duplicated and leaked photos; relabel, exclude or keep "
                           "them in the dataset's edit log (the photos are never changed); export the cleaned copy")
    clean.add_argument("--data", metavar="DIR", required=True, help="the dataset folder, in any layout")
    clean.add_argument("--arch", default=CHECK_ARCH, metavar="NAME", help="the network whose ImageNet layers "
                       f"embed the photos (default: {CHECK_ARCH})")
    clean.add_argument("--weights", metavar="FILE", help="its ImageNet weights file (default: found as training "
                       "finds them)")
    clean.add_argument("--json", action="store_true", help="print the check as one JSON object")
    clean.add_argument("--relabel", nargs=2, action="append", default=[], metavar=("PATH", "CLASS"),
                       help="file the photo at PATH (inside DIR) under CLASS; repeats")
    clean.add_argument("--exclude", action="append", default=[], metavar="PATH", help="leave the photo out of "
                       "training and measuring; repeats")
    clean.add_argument("--keep", action="append", default=[], metavar="PATH", help="the photo's label looks right: "
                       "take it off the suspects, voiding earlier edits of it; repeats")
    clean.add_argument("--undo", action="store_true", help="take back the last edit")
    clean.add_argument("--edits", action="store_true", help="list every edit, and what is in force")
    clean.add_argument("--export", metavar="OUT", help="write the photos as edited into the new folder OUT (hard "
                       "links where possible)")
    clean.set_defaults(run=cmd_clean)


def report_lines(report: CheckReport) -> list[str]:
    """The check as a person reads it: suspects, then duplicate groups (leaks first), then the summary."""
    lines = [f"label suspects, most suspect first ({len(report.suspects)}):"] if report.suspects else []
    lines += [f"  {s.path}: filed as {s.given}, looks like {s.suggested} ({s.confidence:.0%}; label quality "
              f"{s.score:.3f})" for s in report.suspects]
    if report.duplicates:
        lines.append(f"duplicates, leaks first ({len(report.duplicates)}):")
    for group in report.duplicates:
        kind = "LEAK, counted twice by the test" if group.leak else "copy"
        photos = " = ".join(f"{p} ({s})" for p, s in zip(group.paths, group.splits, strict=True))
        lines.append(f"  {kind}: {photos}, similarity {group.similarity:.3f}")
    lines += [f"unreadable, not checked: {path}: {why}" for path, why in report.unreadable.items()]
    return [*lines, report.summary()]


def cmd_clean(args: argparse.Namespace) -> int:
    """`clean`: edit, list, undo or export when asked; otherwise check the photos."""
    splits = resolve_splits(args.data)
    log = EditLog(args.data)
    asked = [(EditKind.RELABEL, check_edit(splits, path, to), to) for path, to in args.relabel]
    asked += [(EditKind.EXCLUDE, check_edit(splits, path), "") for path in args.exclude]
    asked += [(EditKind.KEEP, check_edit(splits, path), "") for path in args.keep]
    for kind, path, to in asked:  # every edit is checked before the first is written
        print(log.append(kind, path, to).text())
    undo = log.undo() if args.undo else None
    entries = log.read()
    if undo is not None:
        print(f"{undo.text()}: {entries[undo.undoes - 1].text()}")
    edits = fold(entries)
    if args.edits:
        for edit in entries:
            print(edit.text())
        print(f"in force: {len(edits.relabeled)} relabeled, {len(edits.excluded)} excluded, {len(edits.kept)} "
              "marked as looking right")
    if args.export:
        apply_edits(splits, edits)  # refuses edits that would leave a class without training photos
        out, written, linked = export_cleaned(splits, edits, args.export)
        how = "hard links" if linked else "copies (hard links were not possible)"
        print(f"wrote {written} photos to {out} as {how}: {len(edits.relabeled)} relabeled, "
              f"{len(edits.excluded)} left out")
    if asked or args.undo or args.edits or args.export:
        return 0

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rembedding photos: {done}/{total}", end="", file=sys.stderr, flush=True)

    report = check_dataset(args.data, args.arch, args.weights, progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(json.dumps(report.to_json()) if args.json else "\n".join(report_lines(report)))
    return 0
