"""This browser tab's state: its id in the URL, the registry that gives a refreshed tab its state back, and its
choice of data and of how validation is held out.

A browser refresh starts a new Streamlit session. So that it finds its run again, each tab carries a random id in
its URL (`?tab=...`), and a process-wide registry maps that id to the tab's data choice, job and runs; a new
session whose URL names a known id takes them over. The id is also what owns the tab's runs (`owner`): a URL
that names an id the registry does not know (the server restarted) keeps it, and finds that tab's runs on disk
again. It is 128 random bits, so nobody finds another's by guessing (docs/errors.md says what holding it allows).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import streamlit as st

from ftcore.config import TrainConfig
from ftcore.data.download import find_data
from ftcore.runs.folder import owner_of
from ftcore.util.lru import LruStore

# The session-state keys of a tab's state: its data, split, job, runs, series of runs and lr finder.
DATA_KEY, JOB_KEY, RUNS_KEY, TAB_KEY = "data_root", "job", "runs", "tab"
SPLIT_KEY = "data_split"  # this tab's (val_fraction, split_seed): how validation is held out of its data
FINDER_KEY = "lr_finder"  # this tab's learning-rate finder (a FinderJob), running or done
EXPERIMENT_KEY = "experiment"  # this tab's series of runs (an Experiment), running or done
AS_IS_KEY = "train-as-is"  # True: this tab's runs train on the data folder as it is, without its photo edits
ASKS_KEY = "steer-asks"  # this tab's asks of its runs while they trained, as (run id, runs.steering.Ask), oldest first
TAB_PARAM = "tab"  # the URL query parameter that carries the tab's id
MAX_TABS = 256  # tabs the registry remembers for a refresh (their runs are on disk anyway)


def restored_keys() -> tuple[str, ...]:
    """The session-state keys a refreshed tab gets back: its data choice, job, runs, series, lr finder, asks, and
    whether it trains on its photo edits."""
    return (DATA_KEY, SPLIT_KEY, JOB_KEY, RUNS_KEY, EXPERIMENT_KEY, FINDER_KEY, ASKS_KEY, AS_IS_KEY)


@st.cache_resource
def tab_registry() -> LruStore[dict]:
    """Tab id -> that tab's restorable session state, for the whole server process (shared by every session);
    the most recently used MAX_TABS tabs are kept (their runs are on disk anyway)."""
    return LruStore(MAX_TABS)


def attach_tab() -> str:
    """Give this session its tab id (from the URL when the registry knows it, restoring that tab's state;
    else a new one) and keep it in the URL; call first on every run of the app."""
    tab = st.session_state.get(TAB_KEY)
    if tab is None:
        asked = st.query_params.get(TAB_PARAM)
        known = isinstance(asked, str) and re.fullmatch(r"[0-9a-f]{32}", asked) is not None
        tab = asked if known else uuid.uuid4().hex  # a known-looking id owns its runs even after a restart
        for key, value in (tab_registry().get(tab) or {}).items():
            if key not in st.session_state:
                st.session_state[key] = list(value) if isinstance(value, list) else value
        st.session_state[TAB_KEY] = tab
    if st.query_params.get(TAB_PARAM) != tab:
        st.query_params[TAB_PARAM] = tab  # navigation clears query parameters; put it back
    remember()
    return tab


def owner() -> str:
    """What this tab's runs record as their owner (runs.folder.owner_of its id, never the id itself)."""
    return owner_of(st.session_state[TAB_KEY])


def remember() -> None:
    """Copy this session's data choice, job, runs, series of runs and lr finder into the registry under its tab id."""
    tab = st.session_state.get(TAB_KEY)
    if tab is not None:
        state = {key: st.session_state[key] for key in restored_keys() if key in st.session_state}
        tab_registry().put(tab, {key: list(v) if isinstance(v, list) else v for key, v in state.items()})


def data_root() -> str | None:
    """The data this session works on: its own choice, else the hot-dog set found on this machine."""
    if DATA_KEY not in st.session_state:
        found = find_data()
        st.session_state[DATA_KEY] = str(found) if found else None
        remember()
    return st.session_state[DATA_KEY]


def set_data_root(root: str | Path) -> None:
    """Use `root` (already checked) from now on in this session, with the layout's own validation split."""
    st.session_state[DATA_KEY] = str(root)
    st.session_state[SPLIT_KEY] = (None, 0)
    remember()


def data_split() -> tuple[float | None, int]:
    """This session's (val_fraction, split_seed) for its data: (None, 0) takes the layout's default."""
    return st.session_state.get(SPLIT_KEY, (None, 0))


def set_data_split(val_fraction: float | None, split_seed: int) -> None:
    """Hold out `val_fraction` of each class (None: the layout's default) with `split_seed`, from now on."""
    st.session_state[SPLIT_KEY] = (val_fraction, int(split_seed))
    remember()


def split_for(root: str, config: TrainConfig) -> tuple[float | None, int]:
    """The split to evaluate a run on `root` with: the run's own on its own data, else this session's."""
    same = Path(root).expanduser().resolve() == Path(config.data).expanduser().resolve()
    return (config.val_fraction, config.split_seed) if same else data_split()
