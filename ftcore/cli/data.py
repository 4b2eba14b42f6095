"""The data command: `data` locates (or downloads) the hot-dog set, or reads any dataset folder, and prints its
summary."""

from __future__ import annotations

import argparse
import sys

from ..data.download import download_hotdog, find_data
from ..data.summary import format_summary, summarize
from ..errors import FtcoreError
from .args import add_split_arguments


def add_data(sub: argparse._SubParsersAction) -> None:
    """`data`: locate or download the data and print its summary."""
    data = sub.add_parser("data", help="locate or download the data and print its summary")
    data.add_argument("--download", action="store_true", help="download d2l's hotdog.zip (sha1-checked)")
    data.add_argument("--root", metavar="DIR", help="the dataset folder to summarise, in any layout (or to download "
                      "into)")
    add_split_arguments(data)
    data.set_defaults(run=cmd_data)


def cmd_data(args: argparse.Namespace) -> int:
    """`data`: download and/or locate the data and print its summary."""
    if args.download:
        def progress(done: int, total: int | None) -> None:
            if sys.stderr.isatty():
                of = f" of {total / 1e6:.1f}" if total else ""
                print(f"\rdownloading hotdog.zip: {done / 1e6:.1f}{of} MB", end="", file=sys.stderr, flush=True)

        root = download_hotdog(args.root, progress=progress)
        print(file=sys.stderr)
    else:
        root = args.root or find_data()
        if root is None:
            raise FtcoreError("no hot-dog data found on this machine; run `python -m ftcore data --download` "
                              "or pass --root DIR")
    print(format_summary(summarize(root, args.val_fraction, args.split_seed)))
    return 0
