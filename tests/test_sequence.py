"""The on-disk sequence store: atomic stages, skip-when-done, --force, failures, crash safety."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import grail
from grail.errors import GrailError
from grail.sequence import (
    RECORD_NAME,
    Sequence,
    StageResult,
    hash_bytes,
    hash_file,
    hash_tree,
    register_stage,
)

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_stage_worker.py"
_spec = importlib.util.spec_from_file_location("_stage_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

SPEC = hash_bytes(b"spec")


def writer(files: dict[str, str], calls: list | None = None, info: dict | None = None):
    def fn(out: Path):
        if calls is not None:
            calls.append(out)
        for rel, text in files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text(text)
        return info

    return fn


def leftovers(seq: Sequence) -> list[str]:
    return sorted(p.name for p in seq.path.iterdir() if p.name.startswith((".tmp-", ".trash-")))


# ----------------------------------------------------------------------------- hashing


def test_hashes(tmp_path):
    a = tmp_path / "a"
    (a / "sub").mkdir(parents=True)
    (a / "x.txt").write_text("x")
    (a / "sub" / "y.txt").write_text("y")
    assert hash_file(a / "x.txt") == hash_bytes(b"x")
    h = hash_tree(a)
    assert len(h) == 64 and hash_tree(a) == h
    (a / "sub" / "y.txt").write_text("Y")
    assert hash_tree(a) != h
    (a / "sub" / "y.txt").write_text("y")
    (a / "sub" / "y.txt").rename(a / "sub" / "z.txt")
    assert hash_tree(a) != h
    with pytest.raises(GrailError, match="not found"):
        hash_tree(tmp_path / "missing")
    with pytest.raises(GrailError):
        hash_file(a)


# ----------------------------------------------------------------------------- create / open / names


def test_create_writes_record(tmp_path):
    seq = Sequence.create(tmp_path / "out", "seq_001", SPEC)
    assert seq.path == tmp_path / "out" / "seq_001" and seq.id == "seq_001"
    rec = json.loads((seq.path / RECORD_NAME).read_text())
    assert rec == seq.record()
    assert rec["id"] == "seq_001" and rec["spec_hash"] == SPEC
    assert rec["grail_version"] == grail.__version__
    assert rec["created"].endswith("Z") and rec["stages"] == {}
    assert set(rec["versions"]) >= {"python", "numpy", "mujoco", "torch"}
    assert seq.status("scene") == "pending"
    # reopening keeps the record; a new spec hash is recorded
    assert Sequence.create(tmp_path / "out", "seq_001", SPEC).record()["created"] == rec["created"]
    assert Sequence.create(tmp_path / "out", "seq_001", "other").record()["spec_hash"] == "other"
    with pytest.raises(GrailError, match="already exists"):
        Sequence.create(tmp_path / "out", "seq_001", SPEC, exist_ok=False)
    assert Sequence.open(seq.path).record()["id"] == "seq_001"


@pytest.mark.parametrize("bad", ["", ".", "..", ".hidden", "a/b", "a b", "x" * 200, "é", "-x", "a\\b"])
def test_bad_sequence_id(tmp_path, bad):
    with pytest.raises(GrailError, match="bad sequence id") as e:
        Sequence.create(tmp_path, bad, SPEC)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_root_is_a_file(tmp_path):
    root = tmp_path / "out"
    root.write_text("not a dir")
    with pytest.raises(GrailError) as e:
        Sequence.create(root, "s", SPEC)
    assert str(root) in str(e.value) and "not a directory" in str(e.value)


def test_open_missing_or_not_a_sequence(tmp_path):
    with pytest.raises(GrailError, match="not a sequence directory"):
        Sequence.open(tmp_path / "nope")
    with pytest.raises(GrailError, match="sequence.json is missing"):
        Sequence.open(tmp_path)


def test_corrupt_record(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    rec_path = seq.path / RECORD_NAME
    rec_path.write_text('{"format": 1, "id": "s",')  # a user's half-finished edit
    with pytest.raises(GrailError) as e:
        Sequence.open(seq.path)
    assert str(rec_path) in str(e.value) and "not valid JSON" in str(e.value)
    with pytest.raises(GrailError, match="not valid JSON"):
        seq.run_stage("scene", writer({"a": "a"}), {})
    assert not (seq.path / "scene").exists()

    good = {"format": 1, "id": "s", "spec_hash": SPEC, "stages": {"scene": {"status": "finished"}}}
    rec_path.write_text(json.dumps(good))
    with pytest.raises(GrailError) as e:
        Sequence.open(seq.path)
    assert str(e.value).startswith(f"{rec_path}: stages.scene.status: 'finished'")
    good["stages"]["scene"] = {"status": "done", "outputs": {"../../etc/passwd": 1}}
    rec_path.write_text(json.dumps(good))
    with pytest.raises(GrailError, match="stages.scene.outputs"):
        Sequence.open(seq.path)
    good["stages"] = {}
    good["id"] = "t"
    rec_path.write_text(json.dumps(good))
    with pytest.raises(GrailError, match=": id: 't' does not match"):
        Sequence.open(seq.path)


def test_stage_names(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    with pytest.raises(GrailError, match="unknown stage 'bogus'"):
        seq.run_stage("bogus", writer({}), {})
    with pytest.raises(GrailError, match="bad stage name"):
        register_stage("../x")
    register_stage("extra_stage")
    assert not seq.run_stage("extra_stage", writer({"a": "1"}), {}).skipped
    assert seq.status("extra_stage") == "done"


# ----------------------------------------------------------------------------- running stages


def test_run_and_skip_when_done(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    calls: list[Path] = []
    fn = writer({"spec.yaml": "a: 1\n", "meshes/box.obj": "v 0 0 0\n"}, calls, info={"objects": 1})
    res = seq.run_stage("scene", fn, {"spec": SPEC})
    assert isinstance(res, StageResult)
    assert res == StageResult("scene", False, res.seconds, seq.path / "scene")
    # fn ran in a private tmp dir inside the sequence, which is gone now
    assert calls[0].parent == seq.path and calls[0].name.startswith(".tmp-scene-")
    assert (seq.path / "scene" / "meshes" / "box.obj").read_text() == "v 0 0 0\n"
    entry = seq.record()["stages"]["scene"]
    assert entry["status"] == "done" and entry["error"] is None
    assert entry["outputs"] == {"meshes/box.obj": 8, "spec.yaml": 5}
    assert entry["input_hashes"] == {"spec": SPEC} and entry["info"] == {"objects": 1}
    assert entry["started"] <= entry["finished"] and entry["seconds"] >= 0
    assert seq.is_done("scene", {"spec": SPEC}) and seq.status("scene") == "done"

    res2 = seq.run_stage("scene", fn, {"spec": SPEC})
    assert res2.skipped and len(calls) == 1
    assert leftovers(seq) == []


def test_changed_input_hash_reruns(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    calls: list[Path] = []
    seq.run_stage("video", writer({"v.txt": "1"}, calls), {"scene": "h1"})
    assert not seq.is_done("video", {"scene": "h2"})
    assert not seq.is_done("video", {"scene": "h1", "extra": "x"})
    assert not seq.run_stage("video", writer({"v.txt": "22"}, calls), {"scene": "h2"}).skipped
    assert len(calls) == 2 and (seq.path / "video" / "v.txt").read_text() == "22"
    assert seq.record()["stages"]["video"]["input_hashes"] == {"scene": "h2"}
    assert seq.run_stage("video", writer({}, calls), {"scene": "h2"}).skipped


def test_force_replaces_stage_dir(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    seq.run_stage("scene", writer({"old.txt": "old", "keep.txt": "1"}), {"spec": SPEC})
    res = seq.run_stage("scene", writer({"new.txt": "new", "keep.txt": "2"}), {"spec": SPEC}, force=True)
    assert not res.skipped
    assert sorted(p.name for p in (seq.path / "scene").iterdir()) == ["keep.txt", "new.txt"]
    assert (seq.path / "scene" / "keep.txt").read_text() == "2"
    assert seq.record()["stages"]["scene"]["outputs"] == {"keep.txt": 1, "new.txt": 3}
    assert leftovers(seq) == []


def test_missing_or_damaged_outputs_are_redone(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    fn = writer({"a.txt": "aaaa", "d/b.txt": "bb"})
    seq.run_stage("recon", fn, {})
    (seq.path / "recon" / "d" / "b.txt").write_text("b")  # truncated
    assert seq.status("recon") == "pending" and not seq.is_done("recon", {})
    assert not seq.run_stage("recon", fn, {}).skipped
    assert seq.is_done("recon", {})
    os.rename(seq.path / "recon", tmp_path / "elsewhere")  # json says done, dir gone
    assert seq.status("recon") == "pending"
    assert not seq.run_stage("recon", fn, {}).skipped
    assert (seq.path / "recon" / "a.txt").read_text() == "aaaa"


def test_failure_is_recorded_and_leaves_nothing(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)

    def boom(out: Path):
        (out / "half.npz").write_bytes(b"\0" * 100)
        raise ValueError("NaN pose at frame 3\n  in joint 'left_knee'")

    with pytest.raises(ValueError, match="NaN pose"):
        seq.run_stage("robot", boom, {"recon": "h"})
    entry = seq.record()["stages"]["robot"]
    assert entry["status"] == "failed" and seq.status("robot") == "failed"
    assert entry["error"] == "ValueError: NaN pose at frame 3 in joint 'left_knee'"
    assert entry["finished"] and entry["outputs"] == {}
    assert not (seq.path / "robot").exists() and leftovers(seq) == []
    assert not seq.is_done("robot", {"recon": "h"})

    def bad_input(out: Path):
        raise GrailError("fps 25 does not match 30", file="video/video.json", field="fps")

    with pytest.raises(GrailError):
        seq.run_stage("robot", bad_input, {"recon": "h"})
    assert seq.record()["stages"]["robot"]["error"] == "video/video.json: fps: fps 25 does not match 30"

    with pytest.raises(ValueError):  # info must be strict JSON
        seq.run_stage("robot", writer({"a": "a"}, info={"x": float("nan")}), {})
    assert seq.status("robot") == "failed" and not (seq.path / "robot").exists()


def test_failed_forced_rerun_keeps_previous_output(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    seq.run_stage("scene", writer({"good.txt": "good"}, info={"v": 1}), {"spec": SPEC})

    def fails(out: Path):
        (out / "good.txt").write_text("partial")
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        seq.run_stage("scene", fails, {"spec": SPEC}, force=True)
    assert (seq.path / "scene" / "good.txt").read_text() == "good"
    assert leftovers(seq) == []
    entry = seq.record()["stages"]["scene"]
    assert entry["status"] == "failed" and entry["error"] == "RuntimeError: renderer crashed"
    assert entry["outputs"] == {"good.txt": 4} and entry["info"] == {"v": 1}  # what is on disk
    # the last attempt failed, so a plain rerun tries again
    assert not seq.run_stage("scene", writer({"good.txt": "again"}), {"spec": SPEC}).skipped
    assert (seq.path / "scene" / "good.txt").read_text() == "again"


def test_keyboard_interrupt_is_recorded(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)

    def interrupted(out: Path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        seq.run_stage("video", interrupted, {})
    assert seq.record()["stages"]["video"]["error"] == "KeyboardInterrupt"
    assert leftovers(seq) == []


def test_concurrent_use_is_refused_and_tmp_survives(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    seen: dict[str, object] = {}

    def inner(out: Path):
        (out / "a.txt").write_text("a")
        other = Sequence.open(seq.path)  # must not clean up our live tmp dir
        seen["tmp_alive"] = out.exists()
        seen["status"] = other.status("scene")
        with pytest.raises(GrailError, match="in use"):
            other.run_stage("video", writer({}), {})

    seq.run_stage("scene", inner, {})
    assert seen == {"tmp_alive": True, "status": "running"}
    assert seq.is_done("scene", {})


# ----------------------------------------------------------------------------- recovery on open


def test_open_cleans_up_after_a_crash(tmp_path):
    seq = Sequence.create(tmp_path, "s", SPEC)
    seq.run_stage("scene", writer({"a.txt": "a"}), {"spec": SPEC})
    seq.run_stage("video", writer({"v.txt": "v"}), {"scene": "h"})
    rec = seq.record()
    rec["stages"]["recon"] = dict(rec["stages"]["video"], status="running", outputs={})
    (seq.path / RECORD_NAME).write_text(json.dumps(rec))
    (seq.path / ".tmp-recon-0badf00d" / "sub").mkdir(parents=True)
    (seq.path / ".tmp-recon-0badf00d" / "sub" / "half.npz").write_bytes(b"x")
    (seq.path / ".tmp-sequence.json-12345678").write_text('{"trunc')
    (seq.path / ".trash-video-deadbeef").mkdir()  # video/ exists: the trash is an old copy
    # killed between "scene -> trash" and "tmp -> scene" during a --force rerun: restore it
    os.rename(seq.path / "scene", seq.path / ".trash-scene-cafebabe")
    assert seq.status("scene") == "pending"

    seq = Sequence.open(seq.path)
    assert leftovers(seq) == []
    assert (seq.path / "scene" / "a.txt").read_text() == "a"
    assert seq.is_done("scene", {"spec": SPEC}) and seq.is_done("video", {"scene": "h"})
    entry = seq.record()["stages"]["recon"]
    assert entry["status"] == "failed" and "interrupted" in entry["error"]
    assert not seq.is_done("recon", entry["input_hashes"])


# ----------------------------------------------------------------------------- real SIGKILLs


def _start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(root), "k", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )


def _finish(root: Path, *args: str) -> dict[str, bool]:
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(root), "k", *args],
        capture_output=True, text=True, timeout=60, cwd=HERE.parent,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])["skipped"]


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def _kill_at_marker(proc: subprocess.Popen, marker: str) -> None:
    for line in proc.stdout:
        if line.strip() == marker:
            break
    _kill(proc)


def _complete(stage_dir: Path, expected: dict[str, int]) -> bool:
    return all((stage_dir / rel).is_file() and (stage_dir / rel).stat().st_size == size
               for rel, size in expected.items())


def _check_after_kill(seq_dir: Path, stages: list[str], expected) -> set[str]:
    """Invariants that must hold at any kill moment; returns the stages recorded done."""
    rec_path = seq_dir / RECORD_NAME
    if not rec_path.exists():  # killed before the record was first written
        assert not any((seq_dir / s).exists() for s in stages)
        return set()
    rec = json.loads(rec_path.read_text())  # always parses
    assert rec["id"] == seq_dir.name
    done = {s for s, e in rec["stages"].items() if e["status"] == "done"}
    for s in stages:
        if (seq_dir / s).exists():  # a stage directory is never half-written
            assert _complete(seq_dir / s, expected(s)), s
        if s in done:
            assert _complete(seq_dir / s, expected(s)), s
            assert rec["stages"][s]["outputs"] == expected(s)
    return done


def _check_finished(seq_dir: Path, stages: list[str], expected) -> None:
    rec = json.loads((seq_dir / RECORD_NAME).read_text())
    for s in stages:
        assert rec["stages"][s]["status"] == "done"
        assert _complete(seq_dir / s, expected(s))
    assert not [p for p in seq_dir.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


@pytest.mark.slow
def test_sigkill_at_many_moments_then_resume(tmp_path):
    rng = random.Random(20260605)
    stages = list(worker.STAGES)
    t0 = time.monotonic()
    _finish(tmp_path / "warm")
    full = time.monotonic() - t0  # one complete run, process start included

    # (kind, moment): markers hit chosen moments; offsets land anywhere, also inside json writes
    plans = [("marker", m) for m in ("created", "scene:half", "scene:written",
                                     "scene:end", "video:half", "video:written")]
    plans += [("offset", rng.uniform(0.0, full * 1.1)) for _ in range(5)]
    plans += [("offset", 0.0)]
    for i, (kind, when) in enumerate(plans):
        root = tmp_path / f"r{i}"
        kills = 2 if i % 4 == 0 else 1  # some runs are killed twice before they may finish
        done: set[str] = set()
        for k in range(kills):
            proc = _start(root)
            if kind == "marker":
                _kill_at_marker(proc, when)
            else:
                time.sleep(when if k == 0 else rng.uniform(0.0, full))
                _kill(proc)
            done = _check_after_kill(root / "k", stages, worker.expected_files)
        skipped = _finish(root)
        assert skipped == {s: s in done for s in stages}, (kind, when, done)
        _check_finished(root / "k", stages, worker.expected_files)


@pytest.mark.slow
def test_sigkill_during_forced_rerun_keeps_a_complete_stage(tmp_path):
    rng = random.Random(7)
    stages = list(worker.STAGES)
    _finish(tmp_path)
    moments = ["scene:written", "scene:end", "video:written"] + [rng.uniform(0.1, 0.6) for _ in range(2)]
    for when in moments:
        proc = _start(tmp_path, "--force")
        if isinstance(when, str):
            _kill_at_marker(proc, when)
        else:
            time.sleep(when)
            _kill(proc)
        _check_after_kill(tmp_path / "k", stages, worker.expected_files)
        Sequence.open(tmp_path / "k")  # recovery: the old or the new output is in place, whole
        for s in stages:
            assert _complete(tmp_path / "k" / s, worker.expected_files(s)), (when, s)
    _finish(tmp_path)
    _check_finished(tmp_path / "k", stages, worker.expected_files)


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 3, 4])
def test_sigkill_between_record_write_and_rename(tmp_path, k):
    """Killed at the k-th os.replace: a new sequence.json is in its temp file, not renamed yet."""
    stages = list(worker.STAGES)
    proc = subprocess.run([sys.executable, str(WORKER), str(tmp_path), "k", "--kill-at-replace", str(k)],
                          capture_output=True, timeout=60, cwd=HERE.parent)
    assert proc.returncode == -signal.SIGKILL
    seq_dir = tmp_path / "k"
    assert [p.name for p in seq_dir.glob(".tmp-sequence.json-*")]  # the kill did land there
    done = _check_after_kill(seq_dir, stages, worker.expected_files)
    # replaces: 1 create, 2 scene running, 3 scene done, 4 video running, 5 video done
    assert done == ({"scene"} if k >= 4 else set())
    assert _finish(tmp_path) == {s: s in done for s in stages}
    _check_finished(seq_dir, stages, worker.expected_files)


@pytest.mark.slow
def test_sigkill_while_writing_the_record(tmp_path):
    """Many tiny stages: most of the run is sequence.json writes, so random kills land in them."""
    rng = random.Random(99)
    n = 20
    stages = worker.many_stage_names(n)
    expected = lambda s: {"x.txt": len(s)}  # noqa: E731
    root = tmp_path / "r"
    warm = _start(tmp_path / "warm", "--many", str(n))
    for line in warm.stdout:
        if line.strip() == "created":
            break
    t0 = time.monotonic()
    assert warm.wait(timeout=60) == 0
    full = time.monotonic() - t0  # how long the stages take after the "created" marker
    in_record_write = 0
    for i in range(8):  # all but the first run --force, so every run has all its stages to do
        proc = _start(root, "--many", str(n), *(["--force"] if i else []))
        for line in proc.stdout:
            if line.strip() == "created":
                break
        time.sleep(rng.uniform(0.0, full * 0.9))
        _kill(proc)
        in_record_write += bool(list((root / "k").glob(".tmp-sequence.json-*")))
        done = _check_after_kill(root / "k", stages, expected)
    print(f"kills inside a sequence.json write: {in_record_write}/8")
    skipped = _finish(root, "--many", str(n))
    assert skipped == {s: s in done for s in stages}
    _check_finished(root / "k", stages, expected)
