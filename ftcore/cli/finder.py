"""The learning-rate finder's command: `lr-find` runs the range test on train's recipe, prints the suggestion and
why, and writes the curve."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import MODES, lr_text
from ..errors import FtcoreError
from ..lr_find.finding import FinderSettings, check_curve_path, trains_output_layer_only, write_curve
from ..lr_find.range_test import find_lr
from ..lr_find.stop import STOP_RULE_TEXT, StopRule
from ..lr_find.suggest import RULES, Rule
from .args import (
    add_exercise_arguments,
    add_run_arguments,
    config_from_args,
    flag,
    lr_epilog,
    preflight,
    refuse_under_torchrun,
)
from .report import FinderReporter, ctrl_c_stops


def add_lr_find(sub: argparse._SubParsersAction) -> None:
    """`lr-find`: the learning-rate range test on train's recipe."""
    defaults = FinderSettings()
    finder = sub.add_parser("lr-find", help="learning-rate range test on the run's recipe; prints the suggested lr",
                            epilog=lr_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(finder)
    add_exercise_arguments(finder)
    flag(finder, "--mode", choices=MODES)
    flag(finder, "--param-groups", action=argparse.BooleanOptionalAction, default=None)
    finder.add_argument("--steps", type=int, default=defaults.steps, metavar="K",
                        help=f"optimiser steps, the lr rising exponentially over them (default {defaults.steps}; a "
                        "dataset with fewer batches is cycled)")
    finder.add_argument("--start-lr", type=float, default=defaults.start_lr,
                        help=f"lr of the first step (default {defaults.start_lr:g})")
    finder.add_argument("--end-lr", type=float, default=defaults.end_lr,
                        help=f"lr the last step reaches (default {defaults.end_lr:g})")
    finder.add_argument("--rule", choices=list(Rule), default=defaults.rule,
                        help=f"how the suggestion is read off the curve (default {defaults.rule}: "
                        f"{RULES[Rule(defaults.rule)].describes}); the others are printed beside it")
    finder.add_argument("--stop-rule", choices=list(StopRule), default=defaults.stop_rule,
                        help=f"when the test ends early (default {defaults.stop_rule}: "
                        f"{STOP_RULE_TEXT[StopRule(defaults.stop_rule)]}; lowest: fastai's)")
    finder.add_argument("--out", metavar="FILE", help="where the curve goes: .csv (lr, loss, smoothed) or .json (the "
                        "whole finding) (default: runs/<arch>-<mode>-lr-find.csv, .json with --json)")
    finder.add_argument("--json", action="store_true", help="print the whole finding as JSON instead of lines")
    finder.set_defaults(run=cmd_lr_find)


def cmd_lr_find(args: argparse.Namespace) -> int:
    """`lr-find`: the range test; prints `suggested lr: X` and writes the curve."""
    refuse_under_torchrun("lr-find", "steps one process on one device")
    config = config_from_args(args, args.mode, None, args.param_groups)
    preflight(config)
    settings = FinderSettings(steps=args.steps, start_lr=args.start_lr, end_lr=args.end_lr, rule=args.rule,
                              stop_rule=args.stop_rule)
    settings.validate()
    out = check_curve_path(args.out or f"runs/{config.arch}-{config.mode}-lr-find{'.json' if args.json else '.csv'}")
    groups = (f"output layer at {config.head_lr_mult:g}x" if config.param_groups else "one lr for every layer")
    layers = "the output layer alone on cached features" if trains_output_layer_only(config) else "every layer"
    print(f"lr-find: {config.arch} {config.mode}, {layers}, {config.loss_reduction} loss, batch {config.batch_size}, "
          f"{groups}; {settings.steps} steps from {settings.start_lr:g} to {settings.end_lr:g}", file=sys.stderr,
          flush=True)
    reporter = FinderReporter()
    with ctrl_c_stops() as stop:
        finding = find_lr(config, settings, reporter, stop)
    if reporter.live:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    write_curve(finding, out)
    if args.json:
        print(json.dumps(finding.to_dict(), indent=2))
    elif finding.suggestion is not None:
        print(f"suggested lr: {finding.suggestion:.2g}")
        print(finding.why())
        print(f"other rules on the same curve: {finding.others()}", file=sys.stderr)
        print(f"lowest smoothed loss at lr {finding.minimum_lr:.2g}; {len(finding.lrs)} of {finding.steps} steps in "
              f"{finding.seconds:.0f} s{'; ' + finding.note if finding.note else ''}", file=sys.stderr)
    print(f"wrote the curve to {out}", file=sys.stderr)
    if finding.suggestion is None and not finding.stopped:
        raise FtcoreError(f"no learning rate to suggest, so keep lr {lr_text(config.lr)}: {finding.note}")
    return 0
