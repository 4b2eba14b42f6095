"""The training commands: `train` (one run, on this machine or a Ray cluster, resumable), `compare` (the book's
fine-tune and scratch recipes beside its numbers) and `sweep` (one run per learning rate)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import BOOK_RESULTS, BOOK_SETUP, MODES, TrainConfig
from ..data.edits import thaw
from ..devices import distributed
from ..errors import FtcoreError
from ..lab.experiments import lr_sweep_configs, parse_lrs
from ..lab.lesson import scaled_down_text
from ..models.trained import TrainedModel
from ..records import KEPT, Event, History, StateCaptured, Status, SteerRecord
from ..runs.cluster import RayBackend
from ..runs.folder import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    REQUEST_FILE,
    STATE_FILE,
    event_from_dict,
    prepare_out_dir,
    read_events,
)
from ..runs.process import ProcessJob
from ..runs.saved import load_saved_run, save_run
from ..runs.steering import FolderSteering
from ..train.loop import fit
from ..train.progress import TrainingDiverged
from ..train.resume import load_state, save_state
from ..train.steering import Replay, SteeringSource, changes_text, read_steering
from .args import (
    add_exercise_arguments,
    add_run_arguments,
    config_from_args,
    flag,
    lr_epilog,
    preflight,
    refuse_under_torchrun,
)
from .report import Reporter, book_devices, closing_line, ctrl_c_stops, fmt_acc

CLUSTER_POLL_SECONDS = 0.5  # how often `train --cluster` reads the run's folder for new lines


def add_train(sub: argparse._SubParsersAction) -> None:
    """`train`: one run, saved with the book's closing lines."""
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
    train.add_argument("--steering", metavar="FILE", help="apply a steered run's changes of the learning rates at the "
                       "same points: FILE is its metrics.json, or a JSON list of changes (epoch, lr, head_lr); the run "
                       "is then not steered live")
    train.add_argument("--cluster", metavar="ADDRESS", help="train as a job on the Ray cluster whose head's dashboard "
                       "is at ADDRESS (e.g. 127.0.0.1:8265; needs pip install \".[cluster]\"); --out must then be on "
                       "storage every machine of the cluster sees")
    train.set_defaults(run=cmd_train)


def add_compare(sub: argparse._SubParsersAction) -> None:
    """`compare`: the fine-tune and the scratch recipe, beside the book's numbers."""
    compare = sub.add_parser("compare", help="run the fine-tune and the scratch recipe and compare with the book",
                             epilog=lr_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(compare)
    add_exercise_arguments(compare)
    compare.add_argument("--out", metavar="DIR", help="runs go to DIR/finetune and DIR/scratch "
                         "(default: runs/<arch>-compare)")
    compare.set_defaults(run=cmd_compare)


def add_sweep(sub: argparse._SubParsersAction) -> None:
    """`sweep`: one run per learning rate."""
    sweep = sub.add_parser("sweep", help="train once per learning rate and print each final test accuracy",
                           epilog=lr_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--lrs", required=True, metavar="LR,LR,...", help="learning rates of the copied layers, "
                       "comma-separated (e.g. 1e-5,5e-5,5e-4,5e-3)")
    add_run_arguments(sweep)
    add_exercise_arguments(sweep)
    flag(sweep, "--mode", choices=MODES)
    flag(sweep, "--param-groups", action=argparse.BooleanOptionalAction, default=None)
    sweep.add_argument("--out", metavar="DIR", help="each run goes to DIR/lr-<lr> (default: runs/<arch>-sweep)")
    sweep.set_defaults(run=cmd_sweep)


def run_with_ctrl_c(config: TrainConfig, prefix: str = "", out: Path | None = None,
                    resume_from: dict | None = None, replay: list[SteerRecord] | None = None) -> TrainedModel:
    """`fit` where the first Ctrl-C stops after the current batch (keeping the model) and a second aborts; with
    `out`, the run's state is saved there after every epoch (for `train --resume`) and `ftcore steer OUT` steers it
    while it trains; with `replay`, the changes of a steered run are applied at the same points instead."""
    reporter = Reporter(config.total_epochs, prefix)
    if config.edits and distributed.context().is_main:
        edits = thaw(config.edits)
        print(f"{prefix}photos as edited with `ftcore clean`: {len(edits.relabeled)} relabeled, "
              f"{len(edits.excluded)} excluded (--as-is trains on the folder as it is)", file=sys.stderr, flush=True)

    def sink(event: Event) -> None:
        if isinstance(event, StateCaptured):
            if out is not None and distributed.context().is_main:
                save_state(event.state, out / STATE_FILE)
        else:
            reporter(event)

    steering: SteeringSource | None = None
    if replay is not None:
        steering = Replay(replay)
    elif out is not None and distributed.launch_rank() == 0:
        steering = FolderSteering(out, config, History.from_dict(resume_from["history"]) if resume_from else None)
    trained = None
    try:
        with ctrl_c_stops() as stop:
            trained = fit(config, sink, stop, resume_from, capture_state=out is not None, steering=steering)
    finally:
        if isinstance(steering, FolderSteering):  # a run that finished answers what it never reached
            steering.close(finished=trained is not None and not trained.history.stopped)
    missed = steering.missed(trained.history.steering, trained.history.batches[-1].epoch if trained.history.batches
                             else 0.0) \
        if isinstance(steering, Replay) and distributed.context().is_main else []
    if missed:
        print(f"{len(missed)} of the steering file's changes fell where no batch of this run started "
              f"({changes_text(missed)}); a replay applies a change where the steered run did, so give it that "
              "run's settings (batch size, photos, epochs)", file=sys.stderr)
    return trained


def cmd_train(args: argparse.Namespace) -> int:
    """`train`: one run (or the rest of an interrupted one), the book's closing lines, checkpoint.pt and
    metrics.json."""
    if args.cluster:
        return train_on_cluster(args)
    if args.resume:
        out = Path(args.resume).expanduser()
        state = load_state(out / STATE_FILE)
        config = TrainConfig.from_dict(state["config"])
        preflight(config)
        print(f"resuming {out} after epoch {state['epoch']}/{config.total_epochs}", file=sys.stderr)
    else:
        config, state = config_from_args(args, args.mode, args.lr, args.param_groups), None
        preflight(config)
        out = prepare_out_dir(args.out or f"runs/{config.arch}-{config.mode}")
        if args.preset == "lesson":
            print(scaled_down_text(), file=sys.stderr)
    replay = read_steering(args.steering) if args.steering else None
    trained = run_with_ctrl_c(config, out=out, resume_from=state, replay=replay)
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
    refuse_under_torchrun("train --cluster", "sends the run to the cluster")
    if args.steering:
        raise FtcoreError("--steering replays a run's changes on this machine; drop --cluster to replay it")
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
    reporter, offset, said = Reporter(job.config.total_epochs), 0, ""
    with ctrl_c_stops() as stop, ended_on_abort(job):
        job.start(backend)
        while True:
            snap = job.snapshot()
            events, offset = read_events(out, offset)
            for event in events:
                if (record := event_from_dict(event)) is not None:
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
