"""The steering command: `steer FOLDER` asks the run training in FOLDER (a run's folder, or a `train --out` folder)
for other learning rates from its next batch, waits until the run has read the ask and says what came of it."""

from __future__ import annotations

import argparse

from ..errors import FtcoreError
from ..records import SteerRecord
from ..runs.steering import Outcome, ask, wait_for_answer
from ..train.steering import describe, rates_text

DEFAULT_TIMEOUT_SECONDS = 300.0  # a batch of the book's recipe on a small CPU takes seconds; a queued run, longer


def add_steer(sub: argparse._SubParsersAction) -> None:
    """`steer`: change a running run's learning rates."""
    steer = sub.add_parser("steer", help="change the learning rates of a run while it trains, from its next batch")
    steer.add_argument("folder", metavar="FOLDER", help="the run's folder, or the folder `train --out` writes to")
    steer.add_argument("--lr", type=float, help="the copied layers' new learning rate (the output layer keeps its "
                       "factor)")
    factor = steer.add_mutually_exclusive_group()
    factor.add_argument("--head-factor", type=float, metavar="F", help="the output layer at F times the copied "
                        "layers' rate (the book's 10x: 10)")
    factor.add_argument("--no-param-groups", action="store_true", help="one rate for every layer (a factor of 1)")
    freeze = steer.add_mutually_exclusive_group()
    freeze.add_argument("--freeze", action="store_true", help="freeze the copied layers (their rate set to 0)")
    freeze.add_argument("--unfreeze", action="store_true", help="unfreeze them (back to their rate before)")
    steer.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="S",
                       help=f"how long to wait for the run's next batch (default {DEFAULT_TIMEOUT_SECONDS:g} s)")
    steer.set_defaults(run=cmd_steer)


def cmd_steer(args: argparse.Namespace) -> int:
    """`steer`: ask, wait for the run's next batch, print what came of the ask."""
    head_factor = 1.0 if args.no_param_groups else args.head_factor
    freeze = True if args.freeze else False if args.unfreeze else None
    if args.lr is None and head_factor is None and freeze is None:
        raise FtcoreError("say what to change: --lr, --head-factor, --no-param-groups, --freeze or --unfreeze")
    asked, wanted, state = ask(args.folder, args.lr, head_factor, freeze)
    if asked is None:
        print(f"the run already trains at {rates_text(wanted)}; nothing to change" if wanted == state.rates else
              f"the run is already asked for {rates_text(wanted)}; it takes them at its next batch")
        return 0
    answer = wait_for_answer(args.folder, asked.seq, args.timeout)
    if answer is None:
        raise FtcoreError(f"the run in {args.folder} took no batch within {args.timeout:g} s; ask {asked.seq} stays "
                          "in its log and applies at its next batch (--timeout waits longer)")
    if answer.outcome == Outcome.REFUSED:
        raise FtcoreError(f"the run refused ask {asked.seq}: {answer.reason}")
    if answer.outcome == Outcome.REPLACED:
        print(f"ask {asked.seq} was replaced: {answer.reason}, and the run took that one")
    elif answer.outcome == Outcome.UNCHANGED:
        print(f"the run already trains at {rates_text(wanted)}; nothing changed")
    elif answer.outcome == Outcome.APPLIED:
        print(f"applied {describe(SteerRecord(epoch=answer.epoch, lr=wanted.lr, head_lr=wanted.head_lr))}")
    else:
        raise FtcoreError(f"ask {asked.seq} was {answer.text()}")
    return 0
