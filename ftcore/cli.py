"""Command line: `python -m ftcore train|compare|predict|data`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

import torch

from .checkpoints import prepare_out_dir, save_run
from .data import check_image_folder, download_hotdog, find_data, format_summary, summarize
from .devices import PRECISIONS
from .errors import FtcoreError, user_message
from .models import ARCHITECTURES, locate_weights
from .predict import Predictor, format_prediction, open_image
from .training import (
    BOOK_RESULTS,
    BOOK_SETUP,
    LOSS_REDUCTIONS,
    MODES,
    BatchEnded,
    EpochEnded,
    RunStarted,
    TrainConfig,
    TrainResult,
    fit,
    recipe,
)

PREDICT_BATCH = 32  # photos per forward pass in `predict`


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one `error: ...` line with exit status 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print one line and exit 2."""
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def lr_epilog() -> str:
    """The per-architecture default learning rates, and whose they are."""
    lines = ["default learning rates (summed loss; fine-tune lr / scratch lr):"]
    for spec in ARCHITECTURES.values():
        lines.append(f"  {spec.name:13s} {spec.finetune_lr:g} / {spec.scratch_lr:g}  ({spec.lr_source})")
    lines.append("book defaults: batch 128, 5 epochs, SGD weight decay 0.001, summed loss, param groups on for "
                 "fine-tune (output layer at 10x lr) and off for scratch.")
    return "\n".join(lines)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Flags shared by `train` and `compare`."""
    p.add_argument("--data", metavar="DIR", help="ImageFolder root with train/ and test/ (default: the hot-dog "
                   "set found by `python -m ftcore data`)")
    p.add_argument("--arch", default="resnet18", choices=list(ARCHITECTURES), help="architecture (default: resnet18)")
    p.add_argument("--epochs", type=int, default=5, help="epochs (book: 5)")
    p.add_argument("--batch-size", type=int, default=128, help="images per SGD step (book: 128)")
    p.add_argument("--loss-reduction", choices=LOSS_REDUCTIONS, default="sum",
                   help="backprop the sum of per-example losses (book) or their mean (lrs then need ~batch-size x)")
    p.add_argument("--weight-decay", type=float, default=1e-3, help="SGD weight decay (book: 0.001)")
    p.add_argument("--weights", metavar="FILE", help="ImageNet weights file (default: $FTCORE_WEIGHTS, "
                   "torchvision's cache, then its download)")
    p.add_argument("--image-size", type=int, default=224, help="crop size; test resize is 256/224 of it (book: 224)")
    p.add_argument("--limit", type=int, metavar="N", help="keep at most N images per class and split")
    p.add_argument("--device", default="auto", help="auto (all GPUs, else MPS, else CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16 autocast is ~2x faster for "
                   "ResNets on CPUs with AVX512-BF16 (book: fp32)")
    p.add_argument("--micro-batch", type=int, default=0, metavar="N", help="images per forward/backward within a "
                   "step, same summed gradient (default 0: 16 on CPU, whole batch on GPU)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def build_parser() -> Parser:
    """The whole command line."""
    parser = Parser(prog="python -m ftcore", description="Fine-tuning lab: d2l 13.2 fine-tuning from the shell.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = sub.add_parser("train", help="fine-tune (or train from scratch) and save the run",
                           epilog=lr_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(train)
    train.add_argument("--mode", choices=MODES, default="finetune", help="finetune (ImageNet weights) or scratch")
    train.add_argument("--lr", type=float, help="lr of all but the output layer (default: per arch and mode, below)")
    train.add_argument("--param-groups", action=argparse.BooleanOptionalAction, default=None,
                       help="output layer at 10x lr (default: on for finetune, off for scratch, as the book)")
    train.add_argument("--out", metavar="DIR", help="where checkpoint.pt and metrics.json go "
                       "(default: runs/<arch>-<mode>)")

    compare = sub.add_parser("compare", help="run the fine-tune and the scratch recipe and compare with the book",
                             epilog=lr_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(compare)
    compare.add_argument("--out", metavar="DIR", help="runs go to DIR/finetune and DIR/scratch "
                         "(default: runs/<arch>-compare)")

    predict = sub.add_parser("predict", help="classify photos with a saved checkpoint")
    predict.add_argument("--checkpoint", required=True, metavar="FILE", help="checkpoint.pt from a training run")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="photos to classify")
    predict.add_argument("--json", action="store_true", help="print JSON instead of lines")

    data = sub.add_parser("data", help="locate or download the data and print its summary")
    data.add_argument("--download", action="store_true", help="download d2l's hotdog.zip (sha1-checked)")
    data.add_argument("--root", metavar="DIR", help="the ImageFolder root to summarise (or to download into)")
    return parser


# --------------------------------------------------------------------------------------------------
# Training output, in the book's words.


def fmt_acc(value: float | None) -> str:
    """An accuracy with three decimals, or n/a."""
    return "n/a" if value is None else f"{value:.3f}"


def book_devices(devices: list[str]) -> str:
    """Devices as the book prints them: [device(type='cuda', index=0), ...]."""
    return str([torch.device(d) for d in devices])


class Reporter:
    """Prints one line per epoch on stdout and, on a terminal, a live batch counter on stderr."""

    def __init__(self, epochs: int, prefix: str = ""):
        self.epochs, self.prefix = epochs, prefix
        self.live = sys.stderr.isatty()

    def __call__(self, event: object) -> None:
        if isinstance(event, RunStarted):
            print(f"{self.prefix}{event.train_size} train / {event.test_size} test images, classes "
                  f"{', '.join(event.classes)}; {event.weights}; devices {', '.join(event.devices)}",
                  file=sys.stderr, flush=True)
        elif isinstance(event, BatchEnded) and self.live:
            print(f"\r{self.prefix}epoch {event.epoch}/{self.epochs} batch {event.step}/{event.steps}: "
                  f"loss {event.record.loss:.3f} ({event.examples_per_sec:.1f} examples/sec)",
                  end="", file=sys.stderr, flush=True)
        elif isinstance(event, EpochEnded):
            if self.live:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            r = event.record
            print(f"{self.prefix}epoch {r.epoch:g}/{self.epochs}: loss {r.train_loss:.3f}, train acc "
                  f"{r.train_acc:.3f}, test acc {fmt_acc(r.test_acc)}", flush=True)


def run_with_ctrl_c(config: TrainConfig, prefix: str = "") -> TrainResult:
    """`fit` where the first Ctrl-C stops after the current batch (keeping the model) and a second aborts."""
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this batch; Ctrl-C again to abort", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return fit(config, Reporter(config.epochs, prefix), stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def config_from_args(args: argparse.Namespace, mode: str, lr: float | None = None,
                     param_groups: bool | None = None) -> TrainConfig:
    """A TrainConfig: the book's recipe for `mode`, with the flags the user gave on top."""
    data = args.data or find_data()
    if data is None:
        raise FtcoreError("no data given and no hot-dog set found; pass --data DIR or run "
                          "`python -m ftcore data --download`")
    return recipe(mode, args.arch, data=str(data), lr=lr, param_groups=param_groups, epochs=args.epochs,
                  batch_size=args.batch_size, loss_reduction=args.loss_reduction, weight_decay=args.weight_decay,
                  image_size=args.image_size, limit=args.limit, device=args.device, precision=args.precision,
                  micro_batch=args.micro_batch, num_workers=args.workers, seed=args.seed, weights=args.weights)


def preflight(config: TrainConfig) -> None:
    """Catch the common mistakes (bad values, data folder, missing weights file) before anything is written."""
    config.validate()
    check_image_folder(config.data)
    if config.mode == "finetune":
        locate_weights(config.arch, config.weights)


def cmd_train(args: argparse.Namespace) -> int:
    """`train`: one run, the book's closing lines, checkpoint.pt and metrics.json."""
    config = config_from_args(args, args.mode, args.lr, args.param_groups)
    preflight(config)
    out = prepare_out_dir(args.out or f"runs/{config.arch}-{config.mode}")
    result = run_with_ctrl_c(config)
    last = result.history.final()
    if last is not None:
        print(f"loss {last.train_loss:.3f}, train acc {last.train_acc:.3f}, test acc {fmt_acc(last.test_acc)}")
        print(f"{result.history.examples_per_sec:.1f} examples/sec on {book_devices(result.history.devices)}")
    checkpoint, metrics = save_run(result, out)
    stopped = " (stopped early)" if result.history.stopped else ""
    print(f"saved {checkpoint} and {metrics}{stopped}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """`compare`: the fine-tune recipe, then the scratch recipe, side by side with the book."""
    configs = {mode: config_from_args(args, mode) for mode in MODES}
    for config in configs.values():
        preflight(config)
    out = prepare_out_dir(args.out or f"runs/{args.arch}-compare")
    rows = []
    for mode, config in configs.items():
        print(f"[{mode}] lr {config.lr:g}, param groups {'on' if config.param_groups else 'off'}", file=sys.stderr)
        start = time.perf_counter()
        result = run_with_ctrl_c(config, prefix=f"[{mode}] ")
        wall = time.perf_counter() - start
        save_run(result, out / mode)
        rows.append((f"{mode} ({config.arch}, here)", result.history.final(), result.history.examples_per_sec, wall))
        if result.history.stopped:
            break
    print(f"\n{'run':32s} {'loss':>6s} {'train acc':>9s} {'test acc':>8s} {'examples/sec':>12s} {'wall':>8s}")
    for name, last, speed, wall in rows:
        if last is not None:
            print(f"{name:32s} {last.train_loss:6.3f} {last.train_acc:9.3f} {fmt_acc(last.test_acc):>8s} "
                  f"{speed:12.1f} {wall:7.0f}s")
    for mode, book in BOOK_RESULTS.items():
        print(f"{mode + ' (book)':32s} {book['train_loss']:6.3f} {book['train_acc']:9.3f} "
              f"{book['test_acc']:8.3f} {book['examples_per_sec']:12.1f}")
    print(f"book: {BOOK_SETUP}; runs saved in {out}/", file=sys.stderr)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """`predict`: `IMAGE: class p, class p` per photo, or JSON."""
    predictor = Predictor.from_checkpoint(args.checkpoint)
    images = [open_image(path) for path in args.images]  # every photo is checked before any output
    ranked = [pairs for start in range(0, len(images), PREDICT_BATCH)
              for pairs in predictor.predict(images[start:start + PREDICT_BATCH])]
    if args.json:
        print(json.dumps([{"image": name, "probabilities": dict(pairs), "prediction": pairs[0][0]}
                          for name, pairs in zip(args.images, ranked, strict=True)], indent=2))
    else:
        for name, pairs in zip(args.images, ranked, strict=True):
            print(format_prediction(name, pairs))
    return 0


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
    print(format_summary(summarize(root)))
    return 0


COMMANDS = {"train": cmd_train, "compare": cmd_compare, "predict": cmd_predict, "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print `error: ...` and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FtcoreError as e:
        print(f"error: {user_message(e)}", file=sys.stderr)
        return 2
    except torch.OutOfMemoryError:
        print("error: out of memory on the device; lower --batch-size or --micro-batch", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\naborted", file=sys.stderr)
        return 130
