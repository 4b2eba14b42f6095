"""Sessions and the server: tabs isolated, runs saved and reused after a restart, memory bounded, exposure."""

from __future__ import annotations

import gc
import io
import json
import re
import shutil
import tomllib

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from torchvision.models import ResNet

from app import jobs
from app import paths as app_paths
from conftest import REPO, set_small_scratch_run, trained_model
from ftcore.config import recipe
from ftcore.data.images import open_image
from ftcore.errors import FtcoreError
from ftcore.insight.predict import probabilities, rank_classes
from ftcore.models.build import build_model
from ftcore.models.metrics import read_metrics
from ftcore.models.trained import TrainedModel
from ftcore.records import History
from ftcore.runs import saved
from ftcore.runs.folder import new_run_id, owner_of
from ftcore.runs.process import ProcessJob
from ftcore.runs.saved import Run, list_saved_runs, save_run
from ftcore.util.lru import LruStore
from ftcore.util.user_paths import resolve_user_path

HOME = REPO / "streamlit_app.py"
EXPLORE, TRAIN, PREDICT = "app_pages/explore.py", "app_pages/train.py", "app_pages/predict.py"


def tab(**state) -> AppTest:
    """A new browser tab: the entry script runs first (it gives the tab its id), on Home."""
    at = AppTest.from_file(str(HOME), default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    return checked(at.run())


def checked(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def png(color) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((40, 50, 3), color, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def small(tiny_data, **overrides):
    return recipe("scratch", data=str(tiny_data), **{"epochs": 1, "batch_size": 8, "image_size": 32, "limit": 4,
                                                     **overrides})


@pytest.fixture
def fresh_models(monkeypatch) -> LruStore:
    """An empty process-wide model cache of 3, as a freshly started server has."""
    cache = LruStore(3)
    monkeypatch.setattr(saved, "MODELS", cache)
    return cache


# --------------------------------------------------------------------------------------------------
# Two tabs at once.


def test_two_sessions_training_at_once_are_isolated(tiny_data, fresh_models):
    tabs = [checked(tab(data_root=str(tiny_data)).switch_page(TRAIN).run()) for _ in range(2)]
    started = []
    for at, seed in zip(tabs, (1, 2), strict=True):
        set_small_scratch_run(at, 2)
        at.number_input(key="seed").set_value(seed).run()
        at.number_input(key="limit").set_value(4).run()
        button(at, "Start").click().run()
        started.append(at.session_state["job"])
    assert started[0] is not started[1] and started[0].id != started[1].id
    for job in started:
        assert job.join(timeout=300) and job.snapshot().status == "finished"
    for at, job in zip(tabs, started, strict=True):
        checked(at.run())
        assert [r.id for r in at.session_state["runs"]] == [job.id]  # each tab sees its own run only
    folders = sorted(p.name for p in jobs.runs_dir().iterdir())
    assert folders == sorted(job.id for job in started)
    models = [job.to_run().trained.model for job in started]
    for job, model in zip(started, models, strict=True):  # each folder holds the model its own tab trained
        on_disk = torch.load(jobs.runs_dir() / job.id / "checkpoint.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(on_disk[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(models[0].fc.weight, models[1].fc.weight)
    assert [json.loads((jobs.runs_dir() / job.id / "metrics.json").read_text())["config"]["seed"]
            for job in started] == [1, 2]


def test_run_ids_are_unique_and_a_saved_run_is_never_overwritten(tiny_data, tmp_path):
    ids = {new_run_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", i) for i in ids)
    runs_dir = tmp_path / "runs"
    first = ProcessJob(small(tiny_data), runs_dir, job_id="same-id").start()
    assert first.join(timeout=120)
    kept = (runs_dir / "same-id" / "checkpoint.pt").read_bytes()
    second = ProcessJob(small(tiny_data, seed=5), runs_dir, job_id="same-id")
    with pytest.raises(FtcoreError, match=f"^a run named same-id already exists in {runs_dir}; it was kept, so "
                                          "start this one under another name$"):
        second.start()
    assert (runs_dir / "same-id" / "checkpoint.pt").read_bytes() == kept
    assert sorted(p.name for p in runs_dir.iterdir()) == ["same-id"]  # nothing else written either


# --------------------------------------------------------------------------------------------------
# Runs on disk.


def test_finished_runs_are_saved_and_their_tab_finds_them_again_after_a_restart(tiny_data, fresh_models):
    first = tab()
    tab_id = first.query_params["tab"]
    job = ProcessJob(small(tiny_data), jobs.runs_dir(), owner=owner_of(tab_id)).start()  # as that tab's Start does
    assert job.join(timeout=120)
    snap = job.snapshot()
    folder = jobs.runs_dir() / job.id
    assert snap.saved_to == str(folder) and {"checkpoint.pt", "metrics.json"} <= {p.name for p in folder.iterdir()}
    trained = job.to_run().trained
    metrics = json.loads((folder / "metrics.json").read_text())
    assert read_metrics(folder / "metrics.json")[1].to_dict() == trained.history.to_dict()
    assert metrics["edits"] == {"relabeled": 0, "excluded": 0, "sha256": None}  # trained on the folder as it is
    photos = [open_image(png((220, 30, 30))), open_image(png((30, 30, 220)))]
    expected = probabilities(trained, photos)
    del job, snap, trained
    fresh_models.clear()  # the server restarts: no model in memory, no tab remembered

    (saved,), problems = list_saved_runs(jobs.runs_dir())
    assert problems == [] and saved.id == folder.name and not saved.in_memory
    torch.testing.assert_close(probabilities(saved.trained, photos), expected)
    assert tab().switch_page(PREDICT).run().selectbox[0].value != f"saved:{saved.id}"  # another tab: not its run

    at = AppTest.from_file(str(HOME), default_timeout=120)
    at.query_params["tab"] = tab_id  # the same tab, reloaded after the restart
    checked(at.run())
    checked(at.switch_page(PREDICT).run())
    assert at.selectbox[0].value == f"saved:{saved.id}"  # its saved runs are offered by id
    at.file_uploader[0].upload("red.png", png((220, 30, 30)), "image/png").run()
    assert len(checked(at).get("plotly_chart")) == 1
    at.switch_page(TRAIN).run()
    checked(at)
    assert at.expander[-1].label == "Saved runs of this tab (1)"
    at.multiselect(key="saved-runs").set_value([0]).run()
    button(at, "Add to this tab's runs").click().run()
    checked(at)
    assert [r.id for r in at.session_state["runs"]] == [folder.name]
    assert at.dataframe[0].value["run"][0] == saved.label  # compared with this tab's runs


def test_an_unreadable_run_folder_is_named_and_the_others_still_listed(tiny_data, tmp_path):
    runs_dir = tmp_path / "runs"
    job = ProcessJob(small(tiny_data), runs_dir).start()
    assert job.join(timeout=120)
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "metrics.json").write_text("{not json")
    (runs_dir / ".saving-x-123").mkdir()  # a run being written: not listed
    runs, problems = list_saved_runs(runs_dir)
    assert [r.id for r in runs] == [job.id]
    assert problems == [f"saved run {runs_dir / 'broken'} cannot be read (JSONDecodeError); delete that folder"]


def untrained_model() -> TrainedModel:
    return trained_model(build_model("resnet18", 2, pretrained=False)[0], ["blue", "red"])


def test_only_a_few_models_stay_in_memory_and_the_rest_reload_from_disk(tmp_path, fresh_models):
    runs_dir = tmp_path / "runs"
    save_run(untrained_model(), runs_dir / "run-0")
    for i in range(1, 6):
        shutil.copytree(runs_dir / "run-0", runs_dir / f"run-{i}")
    runs, _ = list_saved_runs(runs_dir)
    for run in runs:
        assert isinstance(run.trained.model, ResNet)
        assert len(fresh_models.ids()) <= 3
    assert fresh_models.ids() == ["run-3", "run-4", "run-5"]
    assert not runs[0].in_memory and runs[5].in_memory
    reloaded = runs[0].trained  # on demand, from its folder
    assert fresh_models.ids() == ["run-4", "run-5", "run-0"]
    assert torch.equal(reloaded.model.fc.weight, runs[5].trained.model.fc.weight)
    unsaved = Run("unsaved", "tiny", reloaded.config, History(), untrained_model())
    for run in runs:
        assert run.trained.classes == ["blue", "red"]
    assert unsaved.in_memory  # no folder to reload it from, so it keeps its model


def test_a_long_session_of_train_and_predict_keeps_at_most_three_models(tiny_data, fresh_models):
    gc.collect()
    before = sum(isinstance(o, ResNet) for o in gc.get_objects())
    fused_before = sum(isinstance(o, torch.fx.GraphModule) for o in gc.get_objects())
    session: list[Run] = []
    for seed in range(6):
        job = ProcessJob(small(tiny_data, seed=seed), jobs.runs_dir()).start()
        assert job.join(timeout=120)
        session.append(job.to_run())
        rank_classes(session[-1].trained, [open_image(png((seed * 40, 0, 0)))])
        del job
    gc.collect()
    assert sum(isinstance(o, ResNet) for o in gc.get_objects()) - before <= 3
    assert sum(isinstance(o, torch.fx.GraphModule) for o in gc.get_objects()) - fused_before <= 1  # one fused copy
    assert all(run.history.final() is not None for run in session)  # every run's history is still at hand


# --------------------------------------------------------------------------------------------------
# Exposure: localhost by default; served on a network, typed paths stay inside FTCORE_DATA_ROOT.


def test_the_app_listens_on_localhost_only_by_default():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    readme = (REPO / "README.md").read_text()
    assert "### Serving on a network" in readme and "FTCORE_DATA_ROOT" in readme


def test_paths_outside_the_data_root_are_refused(tmp_path):
    root = tmp_path / "datasets"
    (root / "hotdog").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (root / "escape").symlink_to(tmp_path / "private", target_is_directory=True)
    real = root.resolve()
    assert resolve_user_path("hotdog", root) == real / "hotdog"
    assert resolve_user_path(str(root / "hotdog"), root) == real / "hotdog"
    assert resolve_user_path("/anything/at/all", None) == resolve_user_path("/anything/at/all")
    for text in ("../private", "hotdog/../../private", "~/photos"):
        with pytest.raises(FtcoreError) as info:
            resolve_user_path(text, root)
        assert str(info.value) == (f"{text} uses '..' or '~'; give a path inside {real}, the folder this server "
                                   "reads from")
    for text in ("/etc", "escape", str(tmp_path / "private")):
        with pytest.raises(FtcoreError) as info:
            resolve_user_path(text, root)
        assert str(info.value) == (f"{text} is outside {real}, the only folder this server reads from; give a path "
                                   "inside it")


def test_served_on_a_network_without_a_data_root_no_folder_can_be_typed(tiny_data, monkeypatch):
    monkeypatch.setattr(app_paths, "served_on_network", lambda: True)
    monkeypatch.delenv("FTCORE_DATA_ROOT", raising=False)
    at = checked(tab(data_root=str(tiny_data)).switch_page(EXPLORE).run())
    at.radio[0].set_value("Local folder").run()
    checked(at)
    assert len(at.text_input) == 0
    assert [w.value for w in at.warning] == ["This app is served on a network, so it reads no folder typed in here; "
                                             "set FTCORE_DATA_ROOT to the folder holding the datasets and restart it "
                                             "(README, \"Serving on a network\")."]


def test_served_on_a_network_the_folder_picker_stays_inside_the_data_root(tiny_data, tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    shutil.copytree(tiny_data, root / "colours")
    monkeypatch.setattr(app_paths, "served_on_network", lambda: True)
    monkeypatch.setenv("FTCORE_DATA_ROOT", str(root))
    at = checked(tab(data_root=None).switch_page(EXPLORE).run())
    at.radio[0].set_value("Local folder").run()
    refusals = ((str(tiny_data), f"{tiny_data} is outside {root.resolve()}"), ("../colours", "../colours uses '..'"))
    for text, error in refusals:
        at.text_input[0].set_value(text).run()
        at.button[0].click().run()
        checked(at)
        assert at.error[0].value.startswith(error) and at.session_state["data_root"] is None
    at.text_input[0].set_value("colours").run()
    at.button[0].click().run()
    checked(at)
    assert at.session_state["data_root"] == str(root.resolve() / "colours")
    at.switch_page(TRAIN).run()  # the weights file field obeys the same rule
    at.radio(key="mode").set_value("scratch").run()
    at.text_input(key="weights").set_value("/etc/passwd").run()
    button(at, "Start").click().run()
    checked(at)
    assert any(e.value.startswith(f"/etc/passwd is outside {root.resolve()}") for e in at.error)
    assert "job" not in at.session_state
