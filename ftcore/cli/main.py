"""`python -m ftcore train|compare|predict|bench|evaluate|export|sweep|lr-find|data|clean|steer`: every command's
parser, and the one rule for what goes wrong (a user's mistake is one `error: ...` line and exit status 2)."""

from __future__ import annotations

import sys

import torch

from ..devices import distributed
from ..errors import FtcoreError, user_message
from ..train.memory import is_out_of_memory
from . import bench, clean, data, finder, insight, steer, training
from .args import Parser


def build_parser() -> Parser:
    """The whole command line, its commands in the order --help lists them."""
    parser = Parser(prog="python -m ftcore", description="Fine-tuning lab: d2l 13.2 fine-tuning from the shell.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (training.add_train, training.add_compare, insight.add_predict, bench.add_bench, insight.add_evaluate,
                insight.add_export, training.add_sweep, finder.add_lr_find, data.add_data, clean.add_clean,
                steer.add_steer):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print `error: ...` and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except FtcoreError as e:
        print(f"error: {user_message(e)}", file=sys.stderr)
        return 2
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):  # CPU allocators raise a plain RuntimeError when memory runs out
            raise
        print("error: out of memory on the device; lower --batch-size, --micro-batch or --image-size",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\naborted", file=sys.stderr)
        return 130
    finally:
        distributed.teardown()
