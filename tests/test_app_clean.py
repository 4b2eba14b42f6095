"""Check the photos in the dashboard (AppTest): the page draws a check's findings, each fix is one edit in the tab's
own log, Undo takes it back, and the tab's runs train on the edits unless it chose the folder as it is. The browser
test (tests/test_browser_clean.py) drives the check itself, the keyboard and the map."""

from __future__ import annotations

import pytest

from app import tab
from benchmarks.clean.noise import noisy_copy
from conftest import open_app
from ftcore.clean.check import check_dataset
from ftcore.clean.report import save_report
from ftcore.data.edits import EditKind, EditLog, thaw
from ftcore.runs.folder import owner_of

CHECK, TRAIN = "app_pages/check.py", "app_pages/train.py"
TAB = "0" * 32  # a well-formed tab id, so the owner of this tab's edits is known


@pytest.fixture
def checked(tmp_path, shared_hotdog, shared_mobilenet):
    """A small noisy copy of the hot dogs, checked (its report saved in this test's cache)."""
    made = noisy_copy(shared_hotdog, tmp_path / "noisy", {"train": 20, "test": 10}, 0.1, 1, 1, seed=2)
    report = check_dataset(made.root, "mobilenet_v2", str(shared_mobilenet))
    save_report(report)
    return made, report


def buttons(at, prefix: str) -> list:
    """The page's buttons whose label starts with `prefix`, in page order."""
    return [b for b in at.button if b.label.startswith(prefix)]


def test_the_page_shows_the_findings_and_a_fix_is_an_edit_of_this_tab(checked):
    made, report = checked
    at = open_app(CHECK, data_root=str(made.root), tab=TAB)
    assert f"Labels that look wrong ({len(report.suspects)} to look at)" in [h.value for h in at.subheader]
    assert any("A leak:" in w.value and "the test accuracy counts it twice" in w.value for w in at.warning)
    first = report.suspects[0]
    buttons(at, "Relabel as")[0].click().run()
    log = EditLog(made.root, owner_of(TAB))
    assert [(e.kind, e.path, e.to) for e in log.read()] == [(EditKind.RELABEL, first.path, first.suggested)]
    assert EditLog(made.root).read() == []  # not the shared log: another tab trains on the folder as it was
    assert f"Labels that look wrong ({len(report.suspects) - 1} to look at)" in [h.value for h in at.subheader]
    buttons(at, "Undo")[0].click().run()
    assert log.edits().empty and [e.kind for e in log.read()] == [EditKind.RELABEL, EditKind.UNDO]
    assert not at.exception


def test_train_on_the_cleaned_photos_starts_the_tabs_run_on_its_edits(checked):
    made, report = checked
    at = open_app(CHECK, data_root=str(made.root), tab=TAB)
    excluded = buttons(at, "Exclude")[0]
    excluded.click().run()
    buttons(at, "Train on the cleaned photos")[0].click().run()
    job = at.session_state[tab.JOB_KEY]
    try:
        assert thaw(job.config.edits).excluded == {report.suspects[0].path}
        assert job.snapshot().label.endswith("cleaned photos")
    finally:
        job.stop()
        assert job.join(timeout=120)


def test_the_folder_as_it_is_is_this_tabs_choice_and_survives_a_refresh(checked):
    made, _ = checked
    at = open_app(CHECK, data_root=str(made.root), tab=TAB)
    buttons(at, "Exclude")[0].click().run()
    at.toggle[0].set_value(True).run()
    assert at.session_state[tab.AS_IS_KEY] is True
    assert tab.AS_IS_KEY in tab.restored_keys()
    assert [b for b in buttons(at, "Train on the cleaned photos") if not b.disabled] == []
