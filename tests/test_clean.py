"""The photo check and the edits that fix what it finds: label suspects, duplicates and leaks found in copies of the
hot-dog photos with known mistakes put in (benchmarks.clean.noise), the command line's JSON, the embedding cache, the
edit log (a restart, undo, keep, two writers, a damaged file, owners), the photo folder left as it was, the cleaned
export, runs that train on the edits and record them, every user error as one line, and the check in a child
process."""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.clean.noise import Mistakes, noisy_copy
from conftest import REPO, SHARED_HOTDOG, SHARED_MOBILENET, wait_until, write_tiny_imagefolder
from ftcore.clean.check import check_dataset
from ftcore.clean.embeddings import Embedder, EmbeddingFile, embed_photos
from ftcore.clean.job import CheckJob
from ftcore.clean.report import load_report
from ftcore.clean.suspects import check_foldable
from ftcore.cli.main import main
from ftcore.data import edits as edits_module
from ftcore.data.cleaned import apply_edits
from ftcore.data.edits import EditKind, EditLog, Edits, edits_for_run, freeze, thaw
from ftcore.data.splits import resolve_splits
from ftcore.errors import FtcoreError
from ftcore.insight.evaluation import Evaluation

ARCH = "mobilenet_v2"
NOISY_SEEDS = (0, 1)  # two noisy copies, checked once for the module
PER_CLASS = {"train": 60, "test": 30}
FLIP, LEAKS, COPIES = 0.1, 3, 2  # crop_every=3: the third leak is also cropped
TOP_K_SHARE = 0.6  # the engine ranks about 80% of the flipped labels in the top k; a random ranking about 10%
FALSE_PAIRS = 2  # pairs found as one photo that were not put in, at most, per copy


def clean(*args) -> tuple[int, str, str]:
    """`python -m ftcore clean ARGS` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["clean", *map(str, args)])
    return status, out.getvalue(), err.getvalue()


def tiny(folder: Path, train: int = 6, test: int = 3) -> Path:
    """A two-class set (blue, red) of `train` + `train` training and `test` + `test` test photos NNN.png."""
    return write_tiny_imagefolder(folder, {"train": train, "test": test})


def fingerprint(root: Path) -> dict[str, tuple]:
    """Every folder and file under `root` (relative, with '/') -> its sha256 and modification time."""
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            if p.is_file() else ("folder",) for p in sorted(root.rglob("*"))}


@dataclass
class Checked:
    """A noisy copy and what `clean --json` printed for it."""

    mistakes: Mistakes
    stdout: str
    found: dict


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> SimpleNamespace:
    """Copies of the hot-dog photos with known mistakes, each checked once by `clean --json` with its cache in
    `cache` (a test that reads the embeddings points FTCORE_CACHE there)."""
    if not SHARED_HOTDOG.is_dir() or not SHARED_MOBILENET.is_file():
        pytest.skip("../shared (the hot-dog photos and the mobilenet_v2 weights) is not on this machine")
    base = tmp_path_factory.mktemp("noisy")
    checked = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTCORE_CACHE", str(base / "cache"))
        for seed in NOISY_SEEDS:
            mistakes = noisy_copy(SHARED_HOTDOG, base / f"seed-{seed}", PER_CLASS, FLIP, LEAKS, COPIES, seed=seed)
            assert all((mistakes.root / p).is_file() for p in mistakes.flipped + [*itertools.chain(*mistakes.pairs)])
            status, out, err = clean("--data", mistakes.root, "--weights", SHARED_MOBILENET, "--json")
            assert status == 0, err
            checked.append(Checked(mistakes, out, json.loads(out)))
    return SimpleNamespace(cache=base / "cache", sets=checked)


# The check on photos with known mistakes


def test_the_check_finds_every_leak_and_copy_and_ranks_the_flipped_labels_first(noisy):
    hits = flipped = 0
    for case in noisy.sets:
        made, groups = case.mistakes, case.found["duplicates"]
        for pair in made.leaks + made.copies:
            group = next((g for g in groups if set(pair) <= set(g["paths"])), None)
            assert group is not None, f"{pair} was not found as one photo"
            leak = pair in made.leaks
            assert group["leak"] is leak and set(group["splits"]) == ({"train", "test"} if leak else {"train"})
        found = {frozenset(pair) for g in groups for pair in itertools.combinations(g["paths"], 2)}
        assert len(found - made.pairs) <= FALSE_PAIRS, found - made.pairs
        top = {s["path"] for s in case.found["suspects"][:len(made.flipped)]}
        hits, flipped = hits + len(top & set(made.flipped)), flipped + len(made.flipped)
    assert flipped == len(NOISY_SEEDS) * round(FLIP * 2 * PER_CLASS["train"])
    assert hits >= TOP_K_SHARE * flipped, f"{hits} of {flipped} flipped labels in the top k"


def test_the_json_is_one_object_of_relative_paths_with_the_most_suspect_first(noisy):
    case = noisy.sets[0]
    root, found = case.mistakes.root, case.found
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert case.stdout.count("\n") == 1 and set(found) == {"photos", "seconds", "suspects", "duplicates"}
    assert found["photos"] == len(files) == 2 * sum(PER_CLASS.values()) + LEAKS + COPIES
    assert isinstance(found["seconds"], int | float) and found["seconds"] > 0
    assert found["suspects"] and found["duplicates"]
    for s in found["suspects"]:
        assert set(s) == {"path", "given", "suggested", "score"}
        assert s["path"] in files and s["path"].startswith("train/") and s["given"] == s["path"].split("/")[1]
        assert s["suggested"] in {"hotdog", "not-hotdog"} and 0 <= s["score"] <= 1
    scores = [s["score"] for s in found["suspects"]]
    assert scores == sorted(scores)
    for g in found["duplicates"]:
        assert set(g) == {"paths", "splits", "leak", "similarity"}
        assert set(g["paths"]) <= files and [p.split("/")[0] for p in g["paths"]] == g["splits"]
        assert g["leak"] is (len(set(g["splits"])) > 1) and 0.85 <= g["similarity"] <= 1
    leaks = [g["leak"] for g in found["duplicates"]]
    assert leaks == sorted(leaks, reverse=True)  # leaks first


def test_a_second_check_embeds_only_the_photo_that_changed(noisy, monkeypatch):
    monkeypatch.setenv("FTCORE_CACHE", str(noisy.cache))  # where the module's check kept its embeddings
    splits = resolve_splits(noisy.sets[0].mistakes.root)
    paths = [path for role in splits.roles for path, _ in splits.samples[role]]
    embedder = Embedder(ARCH, str(SHARED_MOBILENET))
    file = EmbeddingFile(splits.root, embedder.key)
    real_call, embedded = Embedder.__call__, []

    def refuse(self, chunk):
        raise AssertionError(f"{len(chunk)} unchanged photo(s) embedded again")

    monkeypatch.setattr(Embedder, "__call__", refuse)
    first, unreadable = embed_photos(paths, embedder, file)
    assert first.shape[0] == len(paths) and np.abs(first).sum(axis=1).all() and not unreadable

    touched = paths[7]
    stat = os.stat(touched)
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    def record(self, chunk):
        embedded.append(list(chunk))
        return real_call(self, chunk)

    monkeypatch.setattr(Embedder, "__call__", record)
    again, _ = embed_photos(paths, embedder, file)
    assert embedded == [[touched]]
    np.testing.assert_allclose(again, first, atol=2e-2)  # the same bytes give the same vector


# The edit log


def test_edits_outlive_a_restart_and_undo_takes_back_the_newest_edit_in_force(tmp_path):
    root = tmp_path / "photos"
    EditLog(root).append(EditKind.RELABEL, "train/red/000.png", "blue")
    EditLog(root).append(EditKind.EXCLUDE, "train/red/001.png")
    log = EditLog(root)  # a restart: a new object reads the file
    assert [(e.seq, e.kind, e.path, e.to) for e in log.read()] == [
        (1, EditKind.RELABEL, "train/red/000.png", "blue"), (2, EditKind.EXCLUDE, "train/red/001.png", "")]
    assert log.undo().undoes == 2
    assert EditLog(root).edits() == Edits(relabeled={"train/red/000.png": "blue"})
    assert EditLog(root).undo().undoes == 1  # not edit 2 again
    assert EditLog(root).edits() == Edits()
    with pytest.raises(FtcoreError, match="no edit of .* to undo"):
        EditLog(root).undo()
    assert [(e.kind, e.undoes) for e in EditLog(root).read()] == [
        (EditKind.RELABEL, 0), (EditKind.EXCLUDE, 0), (EditKind.UNDO, 2), (EditKind.UNDO, 1)]
    assert len(log.path.read_text().splitlines()) == 4  # the undone edits keep their lines


def test_a_keep_after_a_relabel_leaves_the_photo_kept_not_relabeled(tmp_path):
    root = tmp_path / "photos"
    EditLog(root).append(EditKind.RELABEL, "train/red/000.png", "blue")
    EditLog(root).append(EditKind.KEEP, "train/red/000.png")
    assert EditLog(root).edits() == Edits(kept={"train/red/000.png"})
    assert edits_for_run(root) is None  # nothing for a run to change
    EditLog(root).undo()  # undoing the keep brings the relabel back
    assert EditLog(root).edits() == Edits(relabeled={"train/red/000.png": "blue"})


WRITER = """
import sys, time
from pathlib import Path
from ftcore.data.edits import EditKind, EditLog
root, name, go = sys.argv[1:]
Path(f"{go}.{name}").touch()
while not Path(go).exists():
    time.sleep(0.001)
log = EditLog(root)
print(" ".join(str(log.append(EditKind.EXCLUDE, f"train/{name}/{i:03d}.png").seq) for i in range(50)))
"""


def test_two_processes_appending_at_once_lose_no_edit(tmp_path):
    root, go = tmp_path / "photos", tmp_path / "go"
    writers = {name: subprocess.Popen([sys.executable, "-c", WRITER, str(root), name, str(go)], cwd=REPO,
                                      stdout=subprocess.PIPE, text=True) for name in ("red", "blue")}
    wait_until(lambda: all(Path(f"{go}.{name}").exists() for name in writers), "both writers", timeout=60)
    go.touch()  # both start appending at once
    seqs = {}
    for name, proc in writers.items():
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        seqs[name] = [int(s) for s in out.split()]
    assert sorted(seqs["red"] + seqs["blue"]) == list(range(1, 101))  # each append saw every earlier one
    log = EditLog(root).read()
    assert [e.seq for e in log] == list(range(1, 101))
    for name in writers:
        assert [e.path for e in log if f"/{name}/" in e.path] == [f"train/{name}/{i:03d}.png" for i in range(50)]
        assert [e.seq for e in log if f"/{name}/" in e.path] == seqs[name]


@pytest.mark.parametrize("line", [b'{"kind": "exclude", "path": "train/red/00', b'{"kind": "relabel", "path": "a.png"}',
                                  b'{"kind": "rename", "path": "a.png"}', b'["exclude", "a.png"]'],
                         ids=["cut short", "relabel without a class", "unknown kind", "not an object"])
def test_a_damaged_log_is_set_aside_whole_and_a_new_one_starts_empty(tmp_path, line):
    root = tmp_path / "photos"
    log = EditLog(root)
    log.append(EditKind.EXCLUDE, "train/red/000.png")
    log.append(EditKind.KEEP, "train/red/001.png")
    with log.path.open("ab") as f:
        f.write(line + b"\n")
    damaged = log.path.read_bytes()
    with pytest.raises(FtcoreError, match="damaged at line 3"):
        EditLog(root).read()
    aside = list(log.path.parent.glob("shared.damaged-*.jsonl"))
    assert [p.read_bytes() for p in aside] == [damaged] and not log.path.exists()
    assert EditLog(root).read() == [] and EditLog(root).edits() == Edits()
    assert EditLog(root).append(EditKind.EXCLUDE, "train/red/002.png").seq == 1


def test_two_logs_damaged_in_the_same_second_are_both_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(edits_module.time, "strftime", lambda *args: "20260101-120000")  # one clock second
    root, kept = tmp_path / "photos", []
    for n in range(2):
        log = EditLog(root)
        log.append(EditKind.EXCLUDE, f"train/red/00{n}.png")
        with log.path.open("ab") as f:
            f.write(b"not json\n")
        kept.append(log.path.read_bytes())
        with pytest.raises(FtcoreError):
            log.read()
    assert sorted(p.read_bytes() for p in log.path.parent.glob("shared.damaged-*.jsonl")) == sorted(kept)


def test_each_owner_edits_a_log_of_their_own(tmp_path):
    root = tmp_path / "photos"
    EditLog(root, "a").append(EditKind.EXCLUDE, "train/red/000.png")
    EditLog(root, "b").append(EditKind.RELABEL, "train/red/001.png", "blue")
    assert EditLog(root, "a").edits() == Edits(excluded={"train/red/000.png"})
    assert EditLog(root, "b").edits() == Edits(relabeled={"train/red/001.png": "blue"})
    assert EditLog(root).read() == [] and edits_for_run(root) is None  # the shared log
    assert EditLog(tmp_path / "other", "a").read() == []  # another data folder
    assert thaw(edits_for_run(root, "a")) == Edits(excluded={"train/red/000.png"})


def test_frozen_edits_are_named_by_their_content_and_read_back_whole(tmp_path):
    root = tmp_path / "photos"
    edits = Edits(relabeled={"train/red/000.png": "blue", "train/blue/001.png": "red"}, excluded={"test/red/002.png"})
    same = Edits(relabeled=dict(reversed(edits.relabeled.items())), excluded={"test/red/002.png"},
                 kept={"train/red/003.png"})  # another order, and a keep, which changes no training
    path = freeze(root, edits)
    assert freeze(root, same) == path and thaw(path) == edits
    assert freeze(root, Edits(excluded={"test/red/002.png"})) != path
    path.write_text(path.read_text().replace('"red"', '"blue"'))  # changed by hand: its sha256 no longer fits
    with pytest.raises(FtcoreError, match="not one the lab wrote"):
        thaw(path)
    with pytest.raises(FtcoreError, match="cannot be read"):
        thaw(tmp_path / "missing.json")


# The photos as edited


@pytest.mark.filterwarnings("ignore:The least populated class")  # 6 photos a class: scikit-learn's inner folds
def test_a_session_of_edits_and_an_export_leaves_every_photo_as_it_was(tmp_path, shared_mobilenet):
    root = tiny(tmp_path / "photos")
    before = fingerprint(root)
    session = [("--weights", shared_mobilenet, "--json"),
               ("--relabel", "train/red/000.png", "blue", "--exclude", "test/blue/002.png"),
               ("--keep", "train/blue/003.png"), ("--exclude", "train/red/001.png"), ("--undo",), ("--edits",),
               ("--export", tmp_path / "cleaned")]
    for args in session:
        status, _, err = clean("--data", root, *args)
        assert status == 0, err
    assert fingerprint(root) == before
    assert EditLog(root).edits() == Edits(relabeled={"train/red/000.png": "blue"}, excluded={"test/blue/002.png"},
                                          kept={"train/blue/003.png"})


def test_the_export_files_each_photo_under_its_class_as_edited_by_hard_links(tmp_path):
    root, out = tiny(tmp_path / "photos"), tmp_path / "cleaned"
    assert clean("--data", root, "--relabel", "train/red/000.png", "blue", "--exclude", "test/blue/002.png",
                 "--keep", "train/blue/003.png")[0] == 0
    status, stdout, err = clean("--data", root, "--export", out)
    assert status == 0, err
    assert "wrote 17 photos" in stdout and "as hard links: 1 relabeled, 1 left out" in stdout
    renamed = {"train/blue/000-relabeled.png": "train/red/000.png"}  # blue has a 000.png of its own
    sources = {name: name for name in fingerprint(root) if name.endswith(".png")}
    expected = {name: src for name, src in sources.items() if name not in {"test/blue/002.png", "train/red/000.png"}}
    exported = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}
    assert set(exported) == set(expected) | set(renamed)
    for name, path in exported.items():
        assert path.stat().st_ino == (root / {**expected, **renamed}[name]).stat().st_ino, name
    assert resolve_splits(out).counts("train") == {"blue": 7, "red": 5}
    assert resolve_splits(out).counts("test") == {"blue": 2, "red": 3}


def test_a_run_trains_on_the_edits_and_records_them_unless_told_as_is(tmp_path, shared_mobilenet):
    root = tiny(tmp_path / "photos")
    assert clean("--data", root, "--relabel", "train/red/000.png", "blue", "--exclude", "train/red/001.png")[0] == 0
    expected = Edits(relabeled={"train/red/000.png": "blue"}, excluded={"train/red/001.png"}).digest()
    metrics = {}
    for name, extra in (("edited", []), ("as-is", ["--as-is"])):
        out = tmp_path / name
        run = subprocess.run([sys.executable, "-m", "ftcore", "train", "--data", str(root), "--arch", ARCH,
                              "--epochs", "1", "--batch-size", "16", "--image-size", "64", "--weights",
                              str(shared_mobilenet), "--out", str(out), *extra], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        metrics[name] = json.loads((out / "metrics.json").read_text())
    edited, as_is = metrics["edited"], metrics["as-is"]
    assert edited["edits"] == {"relabeled": 1, "excluded": 1, "sha256": expected}
    assert thaw(edited["config"]["edits"]).digest() == expected
    assert edited["history"]["split"]["counts"] == {"train": {"blue": 7, "red": 4}, "test": {"blue": 3, "red": 3}}
    assert as_is["edits"] == {"relabeled": 0, "excluded": 0, "sha256": None} and not as_is["config"]["edits"]
    assert as_is["history"]["split"]["counts"] == {"train": {"blue": 6, "red": 6}, "test": {"blue": 3, "red": 3}}


def test_edits_that_leave_a_class_without_training_photos_are_refused(tmp_path):
    splits = resolve_splits(tiny(tmp_path / "photos", train=2, test=1))
    with pytest.raises(FtcoreError, match="class red .* has no training photo left"):
        apply_edits(splits, Edits(relabeled={"train/red/000.png": "blue"}, excluded={"train/red/001.png"}))
    kept = apply_edits(splits, Edits(relabeled={"train/red/000.png": "blue"}, excluded={"test/red/000.png"}))
    assert kept.counts("train") == {"blue": 3, "red": 1} and kept.counts("test") == {"blue": 1, "red": 0}
    assert kept.edits == {"relabeled": 1, "excluded": 1, "sha256": Edits(relabeled={"train/red/000.png": "blue"},
                                                                         excluded={"test/red/000.png"}).digest()}


# Mistakes a person makes


def one_class(tmp_path: Path) -> Path:
    """A train/test set whose only class is red."""
    root = tiny(tmp_path / "one")
    for split in ("train", "test"):
        shutil.rmtree(root / split / "blue")
    return root


def small_class(tmp_path: Path) -> Path:
    """A set whose class red has 3 training photos, 2 fewer than the check's 5 folds need."""
    root = tiny(tmp_path / "small")
    for i in (3, 4, 5):
        (root / "train" / "red" / f"{i:03d}.png").unlink()
    return root


def full_folder(tmp_path: Path) -> Path:
    """A folder that holds a file already."""
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    return tmp_path / "full"


BAD_INPUTS = {  # what a person types (given the data folder and a scratch folder) -> what the one line says
    "unknown path": (lambda root, tmp: ["--data", root, "--exclude", "train/red/nope.png"],
                     ["photo train/red/nope.png is not in data folder"]),
    "unknown class": (lambda root, tmp: ["--data", root, "--relabel", "train/red/000.png", "green"],
                      ["class 'green' is not one of the classes", "blue, red"]),
    "its own class": (lambda root, tmp: ["--data", root, "--relabel", "train/red/000.png", "red"],
                      ["train/red/000.png is already filed under red"]),
    "a bad edit after a good one": (lambda root, tmp: ["--data", root, "--exclude", "train/red/001.png",
                                                       "--relabel", "train/red/000.png", "green"], ["'green'"]),
    "one class": (lambda root, tmp: ["--data", one_class(tmp)], ["1 class folder", "at least two"]),
    "a class of 3 photos": (lambda root, tmp: ["--data", small_class(tmp)],
                            ["class red has 3 training photo(s)", "add 2 more"]),
    "export into the data folder": (lambda root, tmp: ["--data", root, "--export", root / "cleaned"],
                                    ["is inside the data folder"]),
    "export into a full folder": (lambda root, tmp: ["--data", root, "--export", full_folder(tmp)],
                                  ["already exists and is not an empty folder"]),
    "nothing to undo": (lambda root, tmp: ["--data", root, "--undo"], ["there is no edit of", "to undo"]),
    "a missing data folder": (lambda root, tmp: ["--data", tmp / "missing"], ["missing does not exist"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_mistake_is_one_error_line_with_status_2_and_changes_nothing(tmp_path, case):
    root = tiny(tmp_path / "photos")
    before = fingerprint(root)
    argv, words = BAD_INPUTS[case]
    status, out, err = clean(*argv(root, tmp_path))
    assert status == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(w in err for w in words), err
    assert EditLog(root).read() == [] and fingerprint(root) == before  # every edit is checked before one is written


def test_the_check_refuses_labels_of_one_class_or_too_few_per_class():
    with pytest.raises(FtcoreError, match="one class only"):
        check_foldable(np.zeros(8, dtype=int), ["blue", "red"])
    with pytest.raises(FtcoreError, match="class blue has 4 training photo.*add 1 more"):
        check_foldable(np.array([0] * 4 + [1] * 9), ["blue", "red"])
    check_foldable(np.array([0] * 5 + [1] * 5), ["blue", "red"])


# The check in a process of its own


def test_a_check_job_finishes_in_a_child_process_and_saves_its_report(tmp_path, shared_mobilenet):
    root = tiny(tmp_path / "photos")
    job = CheckJob(root, ARCH, str(shared_mobilenet)).start()
    assert job.join(timeout=120) and job.finished
    assert job.error == ""
    report = load_report(root, ARCH)
    assert report is not None and len(report.photos) == 18 and report.classes == ["blue", "red"]


def test_a_check_job_of_one_class_ends_with_the_reason(tmp_path):
    root = one_class(tmp_path)
    with pytest.raises(FtcoreError) as refused:
        resolve_splits(root)
    job = CheckJob(root, ARCH).start()
    assert job.join(timeout=120) and job.finished
    assert job.error == str(refused.value) and load_report(root, ARCH) is None


def test_photos_held_out_of_the_training_folders_are_judged_too(tmp_path, shared_mobilenet):
    """Class folders hold out a fifth for validation: those photos are the user's sorting too, so they count."""
    tree = write_tiny_imagefolder(tmp_path / "tree", {"train": 5})
    root = shutil.move(str(tree / "train"), str(tmp_path / "flat"))
    splits = resolve_splits(root)
    assert all(count < 5 for count in splits.counts("train").values())  # train alone is too small to fold
    report = check_dataset(root, ARCH, str(shared_mobilenet))
    assert {p.split for p in report.photos} == {"train", "val"} and len(report.photos) == 10


def test_the_accuracy_without_the_leaked_photos_leaves_them_out_of_the_score():
    ev = Evaluation(classes=["a", "b"], paths=["/d/1", "/d/2", "/d/3", "/d/4"], targets=np.array([0, 0, 1, 1]),
                    probabilities=np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7]]))
    assert ev.accuracy == 0.75
    assert ev.accuracy_without({"/d/2"}) == (1.0, 1)
    assert ev.accuracy_without(set()) == (0.75, 0)
