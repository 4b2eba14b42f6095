"""The path policy: which files and folders a user may type. Anywhere on a local app; only inside
$FTCORE_DATA_ROOT on an app served to a network, and none at all there without it."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from ftcore.errors import FtcoreError
from ftcore.util.paths import PRIVATE_UMASK
from ftcore.util.user_paths import resolve_user_path

DATA_ROOT_ENV = "FTCORE_DATA_ROOT"  # set when serving on a network: the only folder users may pick from
LOCAL_ADDRESSES = ("localhost", "127.0.0.1", "::1")


def allowed_data_root() -> Path | None:
    """$FTCORE_DATA_ROOT: when set, the only folder whose contents users may pick (for serving)."""
    value = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def served_on_network() -> bool:
    """True unless the server listens on this machine only (server.address localhost, as config.toml sets)."""
    return str(st.get_option("server.address") or "") not in LOCAL_ADDRESSES


def keep_files_private() -> None:
    """On a server others reach, make every file and folder it writes from now on (run folders and everything in
    them, uploads, built datasets, caches) readable by its own account only; its runs inherit the same umask."""
    if served_on_network():
        os.umask(PRIVATE_UMASK)


def folder_picking_refusal() -> str | None:
    """Why typed paths are refused here (served on a network without a data root), else None."""
    if served_on_network() and allowed_data_root() is None:
        return (f"this app is served on a network, so it reads no folder typed in here; set {DATA_ROOT_ENV} to "
                "the folder holding the datasets and restart it (README, \"Serving on a network\")")
    return None


def user_path(text: str) -> Path:
    """A file or folder a user typed, refused when it lies outside what this server may read."""
    refusal = folder_picking_refusal()
    if refusal:
        raise FtcoreError(refusal)
    return resolve_user_path(text, allowed_data_root())
