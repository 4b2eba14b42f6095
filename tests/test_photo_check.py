"""The photo check: what decoding every photo finds, kept on disk by path, size and modification time, run in
the background while the explorer and the Train page draw from the file listing."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest
import streamlit as st
from PIL import Image

from conftest import after_photo_check, open_app, write_tiny_imagefolder
from ftcore.data import photo_check
from ftcore.data.photo_check import FactsFile, PhotoCheck, check_photos
from ftcore.data.summary import list_dataset, summarize

EXPLORE, TRAIN = "app_pages/explore.py", "app_pages/train.py"


@pytest.fixture
def tree(tmp_path):
    """3 + 3 train and 2 + 2 test photos, one of them broken and one the same bytes in train and test."""
    root = write_tiny_imagefolder(tmp_path / "d", {"train": 3, "test": 2})
    (root / "train" / "red" / "cut.png").write_bytes((root / "train" / "red" / "000.png").read_bytes()[:40])
    shutil.copy(root / "train" / "blue" / "000.png", root / "test" / "blue" / "copy.png")
    return root


def facts_file(root, tmp_path) -> FactsFile:
    return FactsFile(list_dataset(root).root, tmp_path / "facts")


def no_decoding(monkeypatch):
    """Fail the test if any photo is decoded or hashed."""
    def refuse(*args, **kwargs):
        raise AssertionError("a photo was read again")

    monkeypatch.setattr(photo_check, "image_size", refuse)
    monkeypatch.setattr(photo_check, "sha1_of", refuse)


def test_the_listing_counts_every_photo_without_reading_one(tree, monkeypatch):
    no_decoding(monkeypatch)
    listing = list_dataset(tree)
    assert listing.counts == {"train": {"blue": 3, "red": 4}, "test": {"blue": 3, "red": 2}}
    assert not listing.checked and listing.size_stats() == {} and not listing.unreadable
    assert len(listing.photos()) == 12 and len(listing.book_grid()) == 14


def test_the_check_finds_what_the_full_scan_found_and_a_second_one_reads_nothing(tree, tmp_path, monkeypatch):
    listing = list_dataset(tree)
    seen = []
    findings = check_photos(listing.photos(), facts_file(tree, tmp_path), lambda done, total: seen.append(done))
    assert seen == list(range(1, 13))
    full = listing.with_findings(findings)
    assert [p.rsplit("/", 1)[-1] for p in full.unreadable] == ["cut.png"]
    assert "cut.png" in full.unreadable_message() and "remove or replace that file" in full.unreadable_message()
    assert [(a.rsplit("/", 2)[-2], b.rsplit("/", 1)[-1]) for a, b in full.duplicates] == [("blue", "copy.png")]
    assert len(full.images) == 11 and all((r.width, r.height) == Image.open(r.path).size for r in full.images)
    no_decoding(monkeypatch)
    again = check_photos(listing.photos(), facts_file(tree, tmp_path))
    assert again.reused == 12 and again.unreadable == findings.unreadable and again.sizes == findings.sizes


def test_a_changed_photo_is_read_again_and_a_removed_one_leaves_the_file(tree, tmp_path):
    facts = facts_file(tree, tmp_path)
    check_photos(list_dataset(tree).photos(), facts)
    broken = tree / "train" / "red" / "cut.png"
    shutil.copy(tree / "train" / "red" / "001.png", broken)  # fixed: new size and mtime
    (tree / "test" / "blue" / "copy.png").unlink()
    findings = check_photos(list_dataset(tree).photos(), facts)
    assert findings.reused == 10 and not findings.unreadable and not findings.duplicates
    assert str(broken.resolve()) in findings.sizes
    assert len(json.loads(facts.path.read_text())["photos"]) == 11


def test_a_stopped_check_keeps_what_it_read_and_a_damaged_file_is_read_as_empty(tree, tmp_path, monkeypatch):
    facts = facts_file(tree, tmp_path)
    stop = threading.Event()
    assert check_photos(list_dataset(tree).photos(), facts, lambda done, total: done == 5 and stop.set(),
                        stop) is None
    assert len(facts.load()) == 5
    facts.path.write_text("{not json")
    assert facts.load() == {}
    assert check_photos(list_dataset(tree).photos(), facts).reused == 0


def test_the_background_check_reports_its_progress_and_ends(tree, tmp_path):
    listing = list_dataset(tree)
    check = PhotoCheck(listing.photos(), facts_file(tree, tmp_path)).start()
    assert check.join(60) and check.done and not check.error
    assert check.done_count == check.total == 12 and check.findings.unreadable


def test_the_explorer_draws_from_the_listing_at_once_then_shows_what_the_check_found(tree, monkeypatch):
    started = threading.Event()
    release = threading.Event()
    real_run = PhotoCheck._run

    def held_run(self):  # the check waits until the test lets it go, as a long scan would
        started.set()
        release.wait(60)
        real_run(self)

    monkeypatch.setattr(PhotoCheck, "_run", held_run)
    st.cache_resource.clear()
    at = open_app(EXPLORE, data_root=str(tree))
    assert started.is_set()
    assert [m.value for m in at.metric] == ["2", "7", "5", "checking..."]  # counts from the listing
    unread = [c.value for c in at.caption if c.value.endswith("cut.png` cannot be read")]
    assert len(at.get("image")) + len(unread) == 14 and unread  # the grid of 7 train photos shows each twice
    assert any("Checking every photo in the background: 0 of 12" in p.proto.text for p in at.get("progress"))
    assert not at.error and not at.warning  # nothing claimed before it is known
    assert not at.get("plotly_chart")  # the charts wait for the check: loading Plotly would hold the grid back
    train = open_app(TRAIN, data_root=str(tree))  # the Train page does not wait for the check either
    assert next(b for b in train.button if b.label == "Start").disabled is False
    release.set()
    at = after_photo_check(at)
    stats = summarize(tree).size_stats()
    assert at.metric[-1].value == f"{stats['aspect_min']:.2f}-{stats['aspect_max']:.2f}"
    assert [e.value for e in at.error] == [summarize(tree).unreadable_message()]
    assert any(w.value.startswith("1 photo(s) sit in two splits") for w in at.warning)
    assert len(at.get("plotly_chart")) == 2  # the counts per class, and the sizes of the photos it could read


def test_a_restarted_server_reads_the_check_from_disk(tree, monkeypatch):
    st.cache_resource.clear()
    after_photo_check(open_app(EXPLORE, data_root=str(tree)))
    st.cache_resource.clear()
    st.cache_data.clear()  # a new server process: nothing in memory, the facts on disk
    no_decoding(monkeypatch)
    at = after_photo_check(open_app(EXPLORE, data_root=str(tree)))
    assert [e.value for e in at.error] == [summarize(tree).unreadable_message()]


def test_start_before_the_check_ends_meets_the_broken_photo_with_the_same_sentence(tree, monkeypatch):
    monkeypatch.setattr(PhotoCheck, "start", lambda self: self)  # a scan that has not got far yet
    st.cache_resource.clear()
    at = open_app(TRAIN, data_root=str(tree))
    at.select_slider(key="size").set_value(64).run()  # the smallest size the slider offers
    at.select_slider(key="batch").set_value(8).run()
    at.radio(key="mode").set_value("scratch").run()
    next(b for b in at.button if b.label == "Start").click().run()
    job = at.session_state["job"]
    assert job.join(120)
    sentence = summarize(tree).reasons[next(iter(summarize(tree).reasons))]
    assert sentence in job.snapshot().error
    assert os.path.basename(next(iter(summarize(tree).reasons))) in job.snapshot().error


def test_a_check_that_fails_says_so_once_and_the_page_keeps_its_counts(tree, monkeypatch):
    def fail(path, known=None):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(photo_check, "read_facts", fail)
    st.cache_resource.clear()
    at = after_photo_check(open_app(EXPLORE, data_root=str(tree)))
    assert [e.value for e in at.error] == ["The photo check stopped: the disk went away; the counts come from the "
                                           "file listing, and a run that meets a photo it cannot read stops and "
                                           "names it."]
    assert [m.value for m in at.metric] == ["2", "7", "5", "n/a"] and not at.get("progress")
    assert [i.value for i in at.info] == ["No charts: they come with the photo check, which stopped (above).",
                                          "No preview: it comes with the photo check, which stopped (above)."]
    assert not at.get("plotly_chart")

