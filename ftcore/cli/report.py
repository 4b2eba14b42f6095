"""What the commands print: the book's lines per epoch, a live batch (or finder step) counter on a terminal, the
book's closing line, and Ctrl-C that stops after the current batch."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..devices import distributed
from ..records import BatchEnded, EpochEnded, History, LrStep, RunStarted, Steered
from ..train.steering import describe


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
        self.heldout = "test"  # the split every epoch is measured on, as the run's start says

    def __call__(self, event: object) -> None:
        if not distributed.context().is_main:  # under torchrun only rank 0 speaks
            return
        if isinstance(event, RunStarted):
            self.heldout = event.heldout
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
        elif isinstance(event, Steered):  # on stderr: stdout keeps the book's lines
            if self.live:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            print(f"{self.prefix}steered {describe(event.record)}", file=sys.stderr, flush=True)
        elif isinstance(event, EpochEnded):
            if self.live:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            r = event.record
            stage = " (output layer)" if r.stage == "head" else ""
            print(f"{self.prefix}epoch {r.epoch:g}/{self.epochs}{stage}: loss {r.train_loss:.3f}, train acc "
                  f"{r.train_acc:.3f}, {self.heldout} acc {fmt_acc(r.heldout_acc)}", flush=True)


class FinderReporter:
    """A live step counter on stderr, on a terminal."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def __call__(self, step: LrStep) -> None:
        """Overwrite the counter line with this step."""
        if self.live:
            print(f"\rstep {step.step}/{step.steps}: lr {step.lr:.1e}, loss {step.loss:.3f} per photo",
                  end="", file=sys.stderr, flush=True)


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


def closing_line(history: History) -> str:
    """The book's closing line; with a val split, the val accuracy and then the test split's, measured once."""
    last = history.final()
    measured = history.accuracy_text() or f"{history.heldout} acc n/a"
    if history.heldout == "val" and history.test_acc is None and history.split.get("counts", {}).get("test"):
        measured += ", test acc n/a"  # stopped before the end: the test photos were never measured
    return f"loss {last.train_loss:.3f}, train acc {last.train_acc:.3f}, {measured}"
