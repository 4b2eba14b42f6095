"""What only torch can tell the pages, asked of a child process by a server that has not loaded torch: the answer
is the one torch gives here, and the Train page draws, then shows it, without loading torch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from ftcore import probe
from ftcore.devices.placement import available_devices
from ftcore.models.output_layer import head_init_status


def test_a_child_process_finds_what_torch_finds_here(random_resnet18_file, monkeypatch):
    question = ("resnet18", str(random_resnet18_file), ["hotdog", "blue"])
    here = probe.answer(question)
    assert here == probe.TorchFacts(available_devices(), head_init_status(*question))
    assert here.head_init[0] is True and here.head_init[1].startswith("hotdog = ImageNet row 934")
    monkeypatch.setattr(probe, "answer", lambda *args: pytest.fail("answered here, not by the child"))
    assert probe.ask(question, in_child=True) == here


def test_a_child_that_cannot_start_leaves_the_answer_to_this_process(monkeypatch, caplog):
    monkeypatch.setattr(probe.sys, "executable", str(REPO / "no-such-python"))
    with caplog.at_level(logging.WARNING, logger=probe.__name__):
        assert probe.ask(None, in_child=True) == probe.TorchFacts(available_devices(), None)
    assert "asking a child process for torch's facts failed" in caplog.text


def test_the_train_page_draws_then_shows_torchs_facts_without_loading_torch(tiny_data):
    # a fresh server: the page draws its controls, then a child process finds the devices
    code = f"""
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(REPO / "streamlit_app.py")!r}, default_timeout=120)
at.session_state["data_root"] = {str(tiny_data)!r}
at.switch_page("app_pages/train.py").run()
drawn = {{"train": [e.message for e in at.exception], "devices": list(at.radio(key="device").options),
         "captions": [c.value for c in at.caption]}}
drawn["torch"] = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
print(json.dumps(drawn))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    drawn = json.loads(done.stdout.strip().splitlines()[-1])
    assert drawn["train"] == [] and drawn["torch"] == []
    assert drawn["devices"] == available_devices()  # found by the child, shown after the first draw
    assert not any("Checking whether the weights" in c for c in drawn["captions"])


def test_sessions_that_open_the_train_page_at_once_start_one_child(monkeypatch):
    from app import torch_facts
    from ftcore.util.lru import LruStore

    monkeypatch.setattr(torch_facts, "TORCH_FACTS", LruStore(64))  # a server process that has found nothing yet
    asked = []

    def slow_ask(head_init=None):
        asked.append(head_init)
        time.sleep(0.3)  # a child importing torch, while the other sessions arrive
        return probe.TorchFacts(devices=["auto", "cpu"], head_init=(False, "why"))

    monkeypatch.setattr(probe, "ask", slow_ask)
    sessions = [threading.Thread(target=torch_facts.find_torch_facts, args=("resnet18", None, ["a", "b"]))
                for _ in range(6)]
    for session in sessions:
        session.start()
    for session in sessions:
        session.join()
    assert asked == [("resnet18", None, ["a", "b"])]
    assert torch_facts.device_names() == ["auto", "cpu"]
    assert torch_facts.head_init_status("resnet18", None, ["a", "b"]) == (False, "why")
    torch_facts.find_torch_facts("resnet18", None, ["a", "c"])  # other classes: only their head init is asked
    assert asked[-1] == ("resnet18", None, ["a", "c"]) and len(asked) == 2
