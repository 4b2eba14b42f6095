"""Facts only torch can find out (the devices, whether weights carry ImageNet's output layer), kept for the whole
server process once found. A page draws with what is known, then asks for the rest and reruns: on a cold server its
controls show before torch has loaded, since a child process answers (`ftcore.probe`)."""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from ftcore import probe
from ftcore.config import TrainConfig
from ftcore.errors import FtcoreError
from ftcore.models.weights import locate_weights
from ftcore.util.lru import LruStore

TORCH_FACTS: LruStore[object] = LruStore(64)
_TORCH_FACTS_LOCK = threading.Lock()


def head_init_status(arch: str, weights: str | None, classes: list[str]) -> tuple[bool, str] | None:
    """models.output_layer.head_init_status as last found for these weights (until the file changes) and classes,
    or None before `find_torch_facts` has read the weights (it takes torch: pages draw first and ask after)."""
    return TORCH_FACTS.get(_head_init_key(arch, weights, classes))


def _head_init_key(arch: str, weights: str | None, classes: list[str]) -> str:
    try:
        source = locate_weights(arch, weights)
    except FtcoreError as e:
        return f"head-init {arch} {e}"
    try:
        stamp = Path(source.path).stat().st_mtime_ns if source is not None else 0
    except OSError:  # gone since it was found: checked again once it is back
        stamp = -1
    return repr(("head-init", arch, source.path if source else None, stamp, tuple(classes)))


def device_names() -> list[str] | None:
    """The devices this machine can train on, `auto` first, once `find_torch_facts` has asked torch; else None."""
    return TORCH_FACTS.get("devices")


def find_torch_facts(arch: str, weights: str | None, classes: list[str] | None) -> None:
    """Ask torch (probe.ask: a child process while this server has not loaded it) for the devices and, given
    `classes`, whether these weights can start the output layer from ImageNet's rows; what is known already is
    not asked again."""
    with _TORCH_FACTS_LOCK:  # a class opening the page at once starts one child, not one each
        key = _head_init_key(arch, weights, classes) if classes is not None else None
        head_init = key is not None and TORCH_FACTS.get(key) is None
        if device_names() is not None and not head_init:
            return
        facts = probe.ask((arch, weights, classes) if head_init else None)
        TORCH_FACTS.put("devices", facts.devices)
        if head_init:
            TORCH_FACTS.put(key, facts.head_init)


def find_what_was_missing(config: TrainConfig, classes: list[str]) -> None:
    """Find what the page drew without, since only torch knows it: the devices, and whether the weights carry
    ImageNet's output layer. Then draw the page again with them (once per server process and set of weights)."""
    head_init = config.mode == "finetune" and head_init_status(config.arch, config.weights, classes) is None
    if device_names() is None or head_init:
        find_torch_facts(config.arch, config.weights, classes if head_init else None)
        st.rerun()
