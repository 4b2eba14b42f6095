"""What only torch can tell the pages: the devices to train on, and whether weights carry ImageNet's output layer.

Importing torch takes seconds and holds the interpreter for most of them. A server that has not loaded torch yet
asks a child process instead, at the lowest priority, so that the browser loading a page is not kept waiting on
the server; a process that has loaded torch answers itself.

    python -m ftcore.probe '["resnet18", "weights.pth", ["hotdog", "not-hotdog"]]'   # prints the answer as JSON
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass

from .devices.priority import yield_cpu
from .errors import FtcoreError
from .util.paths import REPO_ROOT, child_environment

CHILD_TIMEOUT_SECONDS = 300  # importing torch on a busy machine; past it, the asking process finds out itself

HeadInitQuestion = tuple[str, "str | None", "list[str]"]  # architecture, weights file (None: found), classes


@dataclass(frozen=True)
class TorchFacts:
    """The facts a page draws without at first and shows once found."""

    devices: list[str]  # devices.placement.available_devices: `auto` first, for menus
    head_init: tuple[bool, str] | None  # models.output_layer.head_init_status for the question asked; None: not asked


def answer(head_init: HeadInitQuestion | None = None) -> TorchFacts:
    """The facts, found in this process (it loads torch); weights torch cannot read make the head init unavailable,
    with why."""
    # torch loads here, in the process that answers: the server that asks must not load it
    from .devices.placement import available_devices
    from .models.output_layer import head_init_status

    status = None
    if head_init is not None:
        try:
            status = head_init_status(*head_init)
        except FtcoreError as e:
            status = (False, str(e))
    return TorchFacts(devices=available_devices(), head_init=status)


def ask(head_init: HeadInitQuestion | None = None, in_child: bool | None = None) -> TorchFacts:
    """The facts from a child process while this one has not loaded torch (or with `in_child`), else found here;
    found here too when the child fails."""
    if in_child is False or (in_child is None and "torch" in sys.modules):
        return answer(head_init)
    try:
        done = subprocess.run([sys.executable, "-m", __name__, json.dumps(head_init)], cwd=REPO_ROOT,
                              env=child_environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_SECONDS)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-1000:])
        found = json.loads(done.stdout.strip().splitlines()[-1])
        status = found["head_init"]
        return TorchFacts(devices=[str(d) for d in found["devices"]],
                          head_init=None if status is None else (bool(status[0]), str(status[1])))
    except (OSError, subprocess.SubprocessError, RuntimeError, ValueError, KeyError, IndexError) as e:
        logging.getLogger(__name__).warning("asking a child process for torch's facts failed (%s); asking here", e)
        return answer(head_init)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one JSON argument, the head-init question ([arch, weights, classes]) or null."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ftcore.probe '[ARCH, WEIGHTS, [CLASSES...]]' (or null)", file=sys.stderr)
        return 2
    yield_cpu()  # before torch loads: the server and its pages come first
    question = json.loads(args[0])
    facts = answer(None if question is None else (str(question[0]), question[1], [str(c) for c in question[2]]))
    print(json.dumps({"devices": facts.devices, "head_init": facts.head_init}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
