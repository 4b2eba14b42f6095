"""Command line: `python -m ftcore train|compare|predict|data|bench|evaluate|export|sweep|lr-find`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from . import distributed, export
from .archs import ARCHITECTURES, locate_weights
from .bench import run_bench, run_time_to_accuracy
from .checkpoints import load_checkpoint, prepare_out_dir, save_run
from .config import (
    ALL_MODE_PRESETS,
    BOOK_RESULTS,
    BOOK_SETUP,
    HEAD_INITS,
    LOSS_REDUCTIONS,
    MODES,
    PRECISIONS,
    PRESET_DESCRIPTIONS,
    PRESETS,
    TrainConfig,
    lr_text,
    recipe,
)
from .data import SPLITS, check_image_folder, download_hotdog, find_data, format_summary, summarize
from .devices import ISA_CAPS, resolve_devices
from .errors import FtcoreError, user_message
from .evaluation import evaluate_model, format_evaluation
from .experiments import head_init_status, lr_sweep_configs, parse_lrs
from .lesson import scaled_down_text
from .lr_finder import find_lr
from .lr_finding import (
    STOP_RULE_TEXT,
    FinderSettings,
    StopRule,
    check_curve_path,
    trains_output_layer_only,
    write_curve,
)
from .lr_rules import RULES, Rule
from .memory import is_out_of_memory
from .paths import atomic_write
from .predict import format_prediction, open_image, rank_classes
from .records import BatchEnded, EpochEnded, History, LrStep, RunStarted
from .resume import load_state, save_state
from .runs.folder import CHECKPOINT_FILE, METRICS_FILE, STATE_FILE
from .runs.process import ProcessJob
from .runs.status import KEPT, Status
from .training import TrainedModel, TrainingDiverged, fit

CLUSTER_POLL_SECONDS = 0.5  # how often `train --cluster` reads the run's folder for new lines
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


def flag(p: argparse.ArgumentParser, name: str, field_name: str | None = None, **kwargs) -> None:
    """Add --name for TrainConfig's field (its default and help come from the config), with argparse extras."""
    field_name = field_name or name.removeprefix("--").replace("-", "_")
    text = TrainConfig.help(field_name)
    kwargs.setdefault("default", TrainConfig.default(field_name))
    default = kwargs["default"]
    if "(default" in text or isinstance(TrainConfig.default(field_name), bool):
        shown = ""
    elif default is None:
        shown = " (default: the preset's)" if TrainConfig.default(field_name) is not None else ""
    else:
        shown = f" (default: {default:g})" if isinstance(default, float) else f" (default: {default})"
    p.add_argument(name, help=text + shown, **kwargs)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Flags shared by `train`, `compare`, `sweep` and `lr-find`: TrainConfig's fields (or the preset's, where it
    sets one)."""
    p.add_argument("--data", metavar="DIR", help=TrainConfig.help("data") + " (default: the hot-dog set "
                   "`python -m ftcore data` finds)")
    add_split_arguments(p)
    flag(p, "--arch", choices=list(ARCHITECTURES), default=None)
    p.add_argument("--preset", choices=list(PRESETS), default="book",
                   help="; ".join(f"{name}: {text}" for name, text in PRESET_DESCRIPTIONS.items()) + " (default: book)")
    flag(p, "--epochs", type=int, default=None)
    flag(p, "--head-epochs", type=int, default=None)
    flag(p, "--head-views", type=int, default=None)
    flag(p, "--decode-once", action=argparse.BooleanOptionalAction)
    flag(p, "--batch-size", type=int, default=None)
    flag(p, "--loss-reduction", choices=LOSS_REDUCTIONS)
    flag(p, "--weight-decay", type=float)
    flag(p, "--weights", metavar="FILE")
    flag(p, "--image-size", type=int, default=None)
    flag(p, "--limit", type=int, metavar="N")
    flag(p, "--device")
    flag(p, "--precision", choices=PRECISIONS)
    flag(p, "--micro-batch", type=int, metavar="N")
    flag(p, "--workers", "num_workers", type=int)
    flag(p, "--seed", type=int)


def add_split_arguments(p: argparse.ArgumentParser) -> None:
    """--val-fraction and --split-seed: how validation photos are held out where the data has no val/."""
    flag(p, "--val-fraction", type=float, metavar="F")
    flag(p, "--split-seed", type=int, metavar="N")


def build_parser() -> Parser:
    """The whole command line."""
    parser = Parser(prog="python -m ftcore", description="Fine-tuning lab: d2l 13.2 fine-tuning from the shell.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = sub.add_parser("train", help="fine-tune (or train from scratch) and save the run",
                           epilog=lr_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(train)
    add_exercise_arguments(train)
    flag(train, "--mode", choices=MODES)
    flag(train, "--lr", type=float, default=None)
    flag(train, "--param-groups", action=argparse.BooleanOptionalAction, default=None)
    train.add_argument("--out", metavar="DIR", help="where checkpoint.pt and metrics.json go, and resume.pt after "
                       "every epoch until the run ends (default: runs/<arch>-<mode>)")
    train.add_argument("--resume", metavar="DIR", help="continue the interrupted run saved in DIR (its --out) after "
                       "its last finished epoch, with its own settings (other flags are ignored)")
    train.add_argument("--cluster", metavar="ADDRESS", help="train as a job on the Ray cluster whose head's dashboard "
                       "is at ADDRESS (e.g. 127.0.0.1:8265; needs pip install \".[cluster]\"); --out must then be on "
                       "storage every machine of the cluster sees")

    compare = sub.add_parser("compare", help="run the fine-tune and the scratch recipe and compare with the book",
                             epilog=lr_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(compare)
    add_exercise_arguments(compare)
    compare.add_argument("--out", metavar="DIR", help="runs go to DIR/finetune and DIR/scratch "
                         "(default: runs/<arch>-compare)")

    predict = sub.add_parser("predict", help="classify photos with a saved checkpoint")
    predict.add_argument("--checkpoint", required=True, metavar="FILE", help="checkpoint.pt from a training run")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="photos to classify")
    predict.add_argument("--json", action="store_true", help="print JSON instead of lines")

    bench = sub.add_parser("bench", help="time the book's loop against ftcore's trainer, side by side")
    bench.add_argument("--data", metavar="DIR", help="ImageFolder root (default: the hot-dog set)")
    bench.add_argument("--arch", default="mobilenet_v2", choices=list(ARCHITECTURES),
                       help="architecture (default: mobilenet_v2, whose ImageNet weights ship with the shared data)")
    bench.add_argument("--weights", metavar="FILE", help="ImageNet weights file (default: as for train)")
    bench.add_argument("--mode", choices=MODES, default="finetune", help="recipe to time (default: finetune); "
                       "scratch needs no ImageNet weights and runs at the same speed")
    bench.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    bench.add_argument("--limit", type=int, default=None, metavar="N", help="images per class and split "
                       "(0 = all; default 100 for the speed table, all for --time-to-accuracy)")
    bench.add_argument("--batch-size", type=int, default=None, metavar="N", help="images per SGD step on both "
                       "sides (default: the book's 128)")
    bench.add_argument("--cpu-isa", choices=list(ISA_CAPS), default="native", help="native: this CPU's best "
                       "kernels; avx2: ATen's and oneDNN's kernels capped at AVX2 (no AVX-512, no native bf16), to "
                       "time this machine as a CPU without them; the table names the kernels that ran")
    bench.add_argument("--repeats", type=int, default=2, help="alternating rounds of reference, ftcore (default 2)")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (both sides use it)")
    bench.add_argument("--precision", choices=PRECISIONS, default=None, help="ftcore's precision (default: auto)")
    bench.add_argument("--micro-batch", type=int, default=0, metavar="N", help="ftcore's images per "
                       "forward/backward (default 0: auto, the whole batch where it fits, as the book); 16 is "
                       "faster on a CPU in fp32 but changes BatchNorm's batch")
    bench.add_argument("--time-to-accuracy", action="store_true", help="instead: seconds from process start to "
                       "--target test accuracy for the book's loop (5 epochs) and each --presets (all photos)")
    bench.add_argument("--target", type=float, default=0.90, help="test accuracy to reach (default 0.90)")
    bench.add_argument("--presets", default="book,quick,best", help="ftcore presets to time (default: all)")
    bench.add_argument("--seeds", default=None, help="time to accuracy: comma-separated seeds, each run once per "
                       "seed, with the mean and range over them (default 0)")
    bench.add_argument("--no-reference", dest="reference", action="store_false",
                       help="skip the book's loop in --time-to-accuracy (it is the slowest run)")
    bench.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")

    add_insight_commands(sub)
    add_lr_find_command(sub)

    data = sub.add_parser("data", help="locate or download the data and print its summary")
    data.add_argument("--download", action="store_true", help="download d2l's hotdog.zip (sha1-checked)")
    data.add_argument("--root", metavar="DIR", help="the dataset folder to summarise, in any layout (or to download "
                      "into)")
    add_split_arguments(data)
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
        if not distributed.context().is_main:  # under torchrun only rank 0 speaks
            return
        if isinstance(event, RunStarted):
            sizes = " / ".join(f"{n} {split}" for split, n in (event.sizes or {"train": event.train_size,
                                                                               "test": event.test_size}).items())
            print(f"{self.prefix}{sizes} images, classes "
                  f"{', '.join(event.classes)}; {event.weights}; devices {', '.join(event.devices)}",
                  file=sys.stderr, flush=True)
            if event.batchnorm:
                print(f"{self.prefix}{event.batchnorm}", file=sys.stderr, flush=True)
        elif isinstance(event, BatchEnded) and self.live:
            print(f"\r{self.prefix}epoch {event.epoch}/{self.epochs} batch {event.step}/{event.steps}: "
                  f"loss {event.record.loss:.3f} ({event.examples_per_sec:.1f} examples/sec)",
                  end="", file=sys.stderr, flush=True)
        elif isinstance(event, EpochEnded):
            if self.live:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            r = event.record
            stage = " (output layer)" if r.stage == "head" else ""
            heldout = event.history.heldout
            print(f"{self.prefix}epoch {r.epoch:g}/{self.epochs}{stage}: loss {r.train_loss:.3f}, train acc "
                  f"{r.train_acc:.3f}, {heldout} acc {fmt_acc(r.heldout_acc)}", flush=True)


@contextmanager
def ctrl_c_stops() -> Iterator[threading.Event]:
    """An Event the first Ctrl-C sets (the work stops after its current batch or step); a second aborts."""
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this batch; Ctrl-C again to abort", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        yield stop
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def run_with_ctrl_c(config: TrainConfig, prefix: str = "", out: Path | None = None,
                    resume_from: dict | None = None) -> TrainedModel:
    """`fit` where the first Ctrl-C stops after the current batch (keeping the model) and a second aborts; with
    `out`, the run's state is saved there after every epoch (for `train --resume`)."""
    def keep_state(state: dict) -> None:
        if out is not None and distributed.context().is_main:
            save_state(state, out)

    with ctrl_c_stops() as stop:
        return fit(config, Reporter(config.total_epochs, prefix), stop, resume_from, keep_state)


def config_from_args(args: argparse.Namespace, mode: str, lr: float | None = None,
                     param_groups: bool | None = None) -> TrainConfig:
    """A TrainConfig: the book's recipe for `mode`, with the flags the user gave on top. The preset and the
    output-layer epochs apply to fine-tuning only (`compare` runs its scratch side with the book's recipe)."""
    data = args.data or find_data()
    if data is None:
        raise FtcoreError("no data given and no hot-dog set found; pass --data DIR or run "
                          "`python -m ftcore data --download`")
    preset, head_epochs, head_views = ((args.preset, args.head_epochs, args.head_views)
                                       if mode == "finetune" or args.command == "train"
                                       or args.preset in ALL_MODE_PRESETS else ("book", None, None))
    config = recipe(mode, args.arch, preset, data=str(data), lr=lr, param_groups=param_groups,
                    epochs=args.epochs, head_epochs=head_epochs, head_views=head_views,
                    decode_once=args.decode_once,
                    batch_size=args.batch_size, loss_reduction=args.loss_reduction, weight_decay=args.weight_decay,
                    image_size=args.image_size, limit=args.limit, device=args.device, precision=args.precision,
                    micro_batch=args.micro_batch, num_workers=args.workers, seed=args.seed, weights=args.weights,
                    val_fraction=args.val_fraction, split_seed=args.split_seed,
                    **exercise_overrides(args, mode))
    if (head_views or 0) > 0 and mode != "finetune":  # a negative count is the config's own error
        raise FtcoreError("--head-views applies to fine-tuning only; drop it or use --mode finetune")
    if (head_views or 0) > 0 and not config.head_epochs:
        raise FtcoreError("--head-views adds photos to the output-layer epochs, and this run has none; give "
                          "--head-epochs N too, or pick --preset quick or best")
    return config


def refuse_under_torchrun(command: str,
                          why: str = "runs several trainings one after another") -> None:
    """`compare`, `sweep` and `lr-find` are one-process commands; under torchrun only `train` is supported."""
    if distributed.launched_by_torchrun():
        raise FtcoreError(f"`{command}` {why} and is not supported under torchrun; run it as `python -m ftcore`, "
                          "or use torchrun with `train`")


def preflight(config: TrainConfig) -> None:
    """Catch the common mistakes (bad values, data folder, missing weights file) before anything is written."""
    config.validate()
    classes = check_image_folder(config.data, config.val_fraction, config.split_seed)
    if config.mode == "finetune":
        locate_weights(config.arch, config.weights)
    if config.head_init == "imagenet" and locate_weights(config.arch, config.weights) is not None:
        usable, sentence = head_init_status(config.arch, config.weights, classes)
        if not usable:
            raise FtcoreError(f"the new output layer cannot start from ImageNet rows: {sentence}; "
                              "use --head-init xavier")


def closing_line(history: History) -> str:
    """The book's closing line; with a val split, the val accuracy and then the test split's, measured once."""
    last = history.final()
    measured = history.accuracy_text() or f"{history.heldout} acc n/a"
    if history.heldout == "val" and history.test_acc is None and history.split.get("counts", {}).get("test"):
        measured += ", test acc n/a"  # stopped before the end: the test photos were never measured
    return f"loss {last.train_loss:.3f}, train acc {last.train_acc:.3f}, {measured}"


def cmd_train(args: argparse.Namespace) -> int:
    """`train`: one run (or the rest of an interrupted one), the book's closing lines, checkpoint.pt and
    metrics.json."""
    if args.cluster:
        return train_on_cluster(args)
    if args.resume:
        out = Path(args.resume).expanduser()
        state = load_state(out)
        config = TrainConfig.from_dict(state["config"])
        preflight(config)
        print(f"resuming {out} after epoch {state['epoch']}/{config.total_epochs}", file=sys.stderr)
    else:
        config, state = config_from_args(args, args.mode, args.lr, args.param_groups), None
        preflight(config)
        out = prepare_out_dir(args.out or f"runs/{config.arch}-{config.mode}")
        if args.preset == "lesson":
            print(scaled_down_text(), file=sys.stderr)
    trained = run_with_ctrl_c(config, out=out, resume_from=state)
    if not distributed.context().is_main:  # under torchrun rank 0 alone prints and writes the run
        return 0
    last = trained.history.final()
    if last is not None:
        print(closing_line(trained.history))
        what = "" if any(e.stage == "full" for e in trained.history.epochs) else \
            " through the frozen copied layers (forward only)"
        print(f"{trained.history.examples_per_sec:.1f} examples/sec{what} on {book_devices(trained.history.devices)}")
    checkpoint, metrics = save_run(trained, out)
    if not trained.history.stopped:
        (out / STATE_FILE).unlink(missing_ok=True)  # finished: nothing left to resume
    stopped = f" (stopped early; `train --resume {out}` goes on)" if trained.history.stopped else ""
    print(f"saved {checkpoint} and {metrics}{stopped}", file=sys.stderr)
    return 0


@contextmanager
def ended_on_abort(job: ProcessJob) -> Iterator[None]:
    """A second Ctrl-C aborts the command, and ends the run's job on the cluster with it."""
    try:
        yield
    except KeyboardInterrupt:
        job.terminate()
        raise


def train_on_cluster(args: argparse.Namespace) -> int:
    """`train --cluster`: the run as a Ray job whose folder is --out; the book's lines as its events arrive."""
    from .runs.cluster import RayBackend
    from .runs.folder import REQUEST_FILE, event_from_dict, read_events
    from .runs.saved import load_saved_run

    refuse_under_torchrun("train --cluster", "sends the run to the cluster")
    if args.resume:
        out = Path(args.resume).expanduser().resolve()
        if not (out / REQUEST_FILE).is_file():
            raise FtcoreError(f"{out} was not trained on a cluster; resume it without --cluster")
        job = ProcessJob.resumed(out)
        print(f"resuming {out} on the cluster", file=sys.stderr)
    else:
        config = config_from_args(args, args.mode, args.lr, args.param_groups)
        preflight(config)
        out = prepare_out_dir(args.out or f"runs/{config.arch}-{config.mode}").resolve()
        job = ProcessJob(config, out.parent, out.name)
    backend = RayBackend(args.cluster, out.parent)
    reporter, history, offset, said = Reporter(job.config.total_epochs), History(), 0, ""
    with ctrl_c_stops() as stop, ended_on_abort(job):
        job.start(backend)
        while True:
            snap = job.snapshot()
            events, offset = read_events(out, offset)
            for event in events:
                if (record := event_from_dict(event, history)) is not None:
                    reporter(record)
            if snap.queue_note and snap.queue_note != said:
                said = snap.queue_note
                print(said, file=sys.stderr, flush=True)
            if stop.is_set() and not job.stop_asked:
                backend.stop(job)
            if snap.done:
                break
            time.sleep(CLUSTER_POLL_SECONDS)
    if snap.status not in KEPT:
        raise FtcoreError(snap.error or f"the run ended {snap.status.value}")
    trained = load_saved_run(out)
    print(closing_line(trained.history))
    print(f"{trained.history.examples_per_sec:.1f} examples/sec on {book_devices(trained.history.devices)}")
    stopped = f" (stopped early; `train --resume {out} --cluster {args.cluster}` goes on)" \
        if snap.status == Status.STOPPED else ""
    print(f"saved {out / CHECKPOINT_FILE} and {out / METRICS_FILE}{stopped}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """`compare`: the fine-tune recipe, then the scratch recipe, side by side with the book."""
    refuse_under_torchrun("compare")
    configs = {mode: config_from_args(args, mode) for mode in MODES}
    for config in configs.values():
        preflight(config)
    arch = configs["finetune"].arch
    out = prepare_out_dir(args.out or f"runs/{arch}-{'lesson' if args.preset == 'lesson' else 'compare'}")
    if args.preset == "lesson":
        print(scaled_down_text(), file=sys.stderr)
    rows = []
    for mode, config in configs.items():
        print(f"[{mode}] lr {config.lr:g}, param groups {'on' if config.param_groups else 'off'}", file=sys.stderr)
        start = time.perf_counter()
        trained = run_with_ctrl_c(config, prefix=f"[{mode}] ")
        wall = time.perf_counter() - start
        save_run(trained, out / mode)
        rows.append((f"{mode} ({config.arch}, here)", trained.history, trained.history.examples_per_sec, wall))
        if trained.history.stopped:
            break
    print(f"\n{'run':32s} {'loss':>6s} {'train acc':>9s} {'test acc':>8s} {'examples/sec':>12s} {'wall':>8s}")
    for name, history, speed, wall in rows:
        last = history.final()
        if last is not None:
            print(f"{name:32s} {last.train_loss:6.3f} {last.train_acc:9.3f} {fmt_acc(history.final_test()):>8s} "
                  f"{speed:12.1f} {wall:7.0f}s")
    if args.preset == "lesson":  # the book's numbers are for its full recipe, not this scaled-down one
        print(f"the full recipe: `compare` without --preset lesson; runs saved in {out}/", file=sys.stderr)
        return 0
    for mode, book in BOOK_RESULTS.items():
        print(f"{mode + ' (book)':32s} {book['train_loss']:6.3f} {book['train_acc']:9.3f} "
              f"{book['test_acc']:8.3f} {book['examples_per_sec']:12.1f}")
    print(f"book: {BOOK_SETUP}; runs saved in {out}/", file=sys.stderr)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """`predict`: `IMAGE: class p, class p` per photo, or JSON."""
    trained = load_checkpoint(args.checkpoint)
    images = [open_image(path) for path in args.images]  # every photo is checked before any output
    ranked = [pairs for start in range(0, len(images), PREDICT_BATCH)
              for pairs in rank_classes(trained, images[start:start + PREDICT_BATCH])]
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
    print(format_summary(summarize(root, args.val_fraction, args.split_seed)))
    return 0


def bench_seeds(text: str | None, time_to_accuracy: bool) -> list[int]:
    """The seeds of `bench --seeds 0,1,2` (default [0]); only time to accuracy runs several."""
    if text is None:
        return [0]
    if not time_to_accuracy:
        raise FtcoreError("--seeds applies to --time-to-accuracy only; the speed table repeats with --repeats")
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise FtcoreError(f"--seeds must be whole numbers separated by commas (got {text!r})") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise FtcoreError(f"--seeds must name at least one seed, each once (got {text!r})")
    return seeds


def cmd_bench(args: argparse.Namespace) -> int:
    """`bench`: the side-by-side speed table, or time to accuracy."""
    data = args.data or find_data()
    if data is None:
        raise FtcoreError("no data given and no hot-dog set found; pass --data DIR or run "
                          "`python -m ftcore data --download`")
    check_image_folder(data)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise FtcoreError(f"unknown preset {unknown[0]!r} in --presets; choose from {', '.join(PRESETS)}")
    seeds = bench_seeds(args.seeds, args.time_to_accuracy)
    limit = args.limit if args.limit is not None else (0 if args.time_to_accuracy else 100)
    if args.batch_size is not None and args.batch_size < 1:
        raise FtcoreError("--batch-size must be at least 1")
    if args.epochs < 1 or args.repeats < 1:
        raise FtcoreError("--epochs and --repeats must be at least 1")
    if limit < 0 or args.micro_batch < 0:
        raise FtcoreError("--limit and --micro-batch must be 0 or more (0: all photos; auto micro-batch)")
    arch_mode = recipe(args.mode if not args.time_to_accuracy else "finetune", args.arch, data=str(data),
                       weights=args.weights)
    preflight(arch_mode)
    if args.time_to_accuracy:
        report = run_time_to_accuracy(str(data), args.arch, args.weights, args.target, presets, args.reference,
                                      limit or None, args.device, seeds, args.micro_batch, isa=args.cpu_isa)
    else:
        report = run_bench(str(data), args.arch, args.weights, args.mode, args.epochs, limit or None,
                           args.repeats, args.device, args.precision, args.micro_batch, batch_size=args.batch_size,
                           isa=args.cpu_isa)
    if args.json:
        with atomic_write(Path(args.json)) as f:
            f.write(json.dumps(report, indent=2).encode())
    return 0


# --------------------------------------------------------------------------------------------------
# The book's exercises as flags, evaluation, export, the lr sweep and the lr finder.


def add_exercise_arguments(p: argparse.ArgumentParser) -> None:
    """The book's exercises: feature-extractor mode and the ImageNet head init (fine-tune only)."""
    flag(p, "--freeze-body", action="store_true", default=None)
    flag(p, "--head-init", choices=HEAD_INITS, default=None)


def exercise_overrides(args: argparse.Namespace, mode: str) -> dict:
    """--freeze-body/--head-init as recipe overrides; `compare` applies them to its fine-tune run only."""
    if args.command == "compare" and mode != "finetune":
        return {}
    return {"freeze_body": getattr(args, "freeze_body", None), "head_init": getattr(args, "head_init", None)}


def add_insight_commands(sub: argparse._SubParsersAction) -> None:
    """`evaluate`, `export` and `sweep`."""
    evaluate = sub.add_parser("evaluate", help="per-class metrics, confusion matrix and worst photos of a checkpoint")
    evaluate.add_argument("--checkpoint", required=True, metavar="FILE", help="checkpoint.pt from a training run")
    evaluate.add_argument("--data", metavar="DIR", help="dataset folder (default: the run's own data, with the "
                          "run's held-out split, else the hot-dog set)")
    evaluate.add_argument("--split", choices=SPLITS, default=None, help="which split to evaluate (default: test, "
                          "else val)")
    evaluate.add_argument("--limit", type=int, metavar="N", help="at most N photos per class")
    add_split_arguments(evaluate)
    evaluate.add_argument("--top", type=int, default=8, metavar="K", help="worst photos to list (default 8)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of tables")

    export_cmd = sub.add_parser("export", help="export a checkpoint's model as TorchScript or ONNX")
    export_cmd.add_argument("--checkpoint", required=True, metavar="FILE", help="checkpoint.pt from a training run")
    export_cmd.add_argument("--format", choices=export.FORMATS, default="torchscript",
                        help="torchscript (default) or onnx (needs the onnx package)")
    export_cmd.add_argument("--out", metavar="FILE", help="where to write it (default: model.pt / model.onnx beside "
                        "the checkpoint)")

    sweep = sub.add_parser("sweep", help="train once per learning rate and print each final test accuracy",
                           epilog=lr_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--lrs", required=True, metavar="LR,LR,...", help="learning rates of the copied layers, "
                       "comma-separated (e.g. 1e-5,5e-5,5e-4,5e-3)")
    add_run_arguments(sweep)
    add_exercise_arguments(sweep)
    flag(sweep, "--mode", choices=MODES)
    flag(sweep, "--param-groups", action=argparse.BooleanOptionalAction, default=None)
    sweep.add_argument("--out", metavar="DIR", help="each run goes to DIR/lr-<lr> (default: runs/<arch>-sweep)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`evaluate`: per-class table, accuracy, confusion matrix and the worst photos (or JSON)."""
    trained = load_checkpoint(args.checkpoint)
    data = args.data or (trained.config.data if Path(trained.config.data).is_dir() else find_data())
    if data is None:
        raise FtcoreError("no data given and the run's own data folder is gone; pass --data DIR")
    if args.top < 0:
        raise FtcoreError(f"--top must be 0 or more (got {args.top})")
    model = trained.model.to(resolve_devices(args.device)[0])
    val_fraction, split_seed = args.val_fraction, args.split_seed
    if val_fraction is None and Path(data).expanduser().resolve() == Path(trained.config.data).resolve():
        val_fraction, split_seed = trained.config.val_fraction, trained.config.split_seed  # the run's split
    evaluation = evaluate_model(model, trained.classes, trained.eval_transform, str(data), args.split,
                                args.limit, trained.arch, val_fraction=val_fraction, split_seed=split_seed)
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "data": str(data),
                          **evaluation.to_dict(args.top)}, indent=2))
    else:
        print(format_evaluation(evaluation, args.top))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`export`: TorchScript or ONNX, and what input it expects."""
    trained = load_checkpoint(args.checkpoint)
    out = args.out or Path(args.checkpoint).expanduser().parent / f"model{export.SUFFIXES[args.format]}"
    path = export.save_export(trained.model, trained.eval_transform, trained.classes, trained.arch,
                       args.format, out)
    print(f"wrote {path} ({args.format})")
    print(export.input_note(trained.eval_transform, trained.classes))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """`sweep`: one run per learning rate, then final test accuracy against lr."""
    refuse_under_torchrun("sweep")
    lrs = parse_lrs(args.lrs)
    configs = lr_sweep_configs(config_from_args(args, args.mode, lrs[0], args.param_groups), lrs)
    preflight(configs[0])
    out = prepare_out_dir(args.out or f"runs/{configs[0].arch}-sweep")
    rows, heldout = [], "test"
    for config in configs:
        print(f"[lr {config.lr:g}] {config.mode}, param groups {'on' if config.param_groups else 'off'}",
              file=sys.stderr)
        try:
            trained = run_with_ctrl_c(config, prefix=f"[lr {config.lr:g}] ")
        except TrainingDiverged as e:
            rows.append((config.lr, f"diverged (epoch {e.epoch}, batch {e.step})"))
            continue
        save_run(trained, out / f"lr-{config.lr:g}")
        heldout = trained.history.heldout
        rows.append((config.lr, fmt_acc(trained.history.final_heldout())))
        if trained.history.stopped:
            break
    print(f"\n{'lr':>10s}  {heldout} acc")
    for lr, outcome in rows:
        print(f"{lr:10.0e}  {outcome}")
    print(f"runs saved in {out}/", file=sys.stderr)
    return 0


def add_lr_find_command(sub: argparse._SubParsersAction) -> None:
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


class FinderReporter:
    """A live step counter on stderr, on a terminal."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def __call__(self, step: LrStep) -> None:
        """Overwrite the counter line with this step."""
        if self.live:
            print(f"\rstep {step.step}/{step.steps}: lr {step.lr:.1e}, loss {step.loss:.3f} per photo",
                  end="", file=sys.stderr, flush=True)


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


COMMANDS = {"train": cmd_train, "compare": cmd_compare, "predict": cmd_predict, "data": cmd_data, "bench": cmd_bench,
            "evaluate": cmd_evaluate, "export": cmd_export, "sweep": cmd_sweep, "lr-find": cmd_lr_find}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print `error: ...` and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
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
