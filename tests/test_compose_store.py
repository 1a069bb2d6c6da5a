"""The compose stage through the sequence store: real kills, resume, and the SMPL-X character."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO, SCENES
from synthetic_smplx import write_synthetic_smplx

SCENE_FILES = ("spec.yaml", "scene.xml", "scene.usda", "camera.json", "character.npz", "render/rgb.png", "render/depth.npy")


def _assert_no_partial_state(root: Path) -> dict[str, str]:
    """Every sequence.json parses; a scene/ directory exists only when complete."""
    status = {}
    for seq in sorted(root.glob("*/")):
        record_path = seq / "sequence.json"
        if record_path.exists():
            record = json.loads(record_path.read_text())  # never corrupt
            status[seq.name] = record["stages"].get("scene", {}).get("status", "pending")
        if (seq / "scene").exists():
            for name in SCENE_FILES:
                assert (seq / "scene" / name).is_file(), (seq, name)
            np.load(seq / "scene/render/depth.npy")
    return status


@pytest.mark.slow
def test_killed_compose_resumes_without_redoing_finished_scenes(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grail.cli", "compose", str(SCENES / "pickup_ground.yaml"), "--num", "4", "--out", str(out), "--width", "160", "--height", "90"]
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Kill as soon as the first scene is committed: the second one is then mid-stage.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "pickup_ground_s00000" / "scene").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _assert_no_partial_state(out)
    assert before.get("pickup_ground_s00000") == "done"
    done_before = sorted(k for k, v in before.items() if v == "done")
    assert len(done_before) < 4, "killed too late to test resuming"
    stamps = {k: (out / k / "scene/spec.yaml").stat().st_mtime_ns for k in done_before}

    rerun = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    after = _assert_no_partial_state(out)
    assert sorted(after) == [f"pickup_ground_s0000{i}" for i in range(4)]
    assert set(after.values()) == {"done"}
    for k in done_before:  # finished scenes were skipped, not redone
        assert (out / k / "scene/spec.yaml").stat().st_mtime_ns == stamps[k]
        assert f"{k}: scene skipped" in rerun.stderr + rerun.stdout
    assert not list(out.glob("*/.tmp-*")) and not list(out.glob("*/.trash-*"))


def test_smplx_character_composes(tmp_path):
    from grail.scene.compose import ComposeOptions, compose_sequence

    model = write_synthetic_smplx(tmp_path / "SMPLX_NEUTRAL.npz")
    data = yaml.safe_load((SCENES / "pickup_ground.yaml").read_text())
    data["character"].update({"model": "smplx", "model_path": str(model)})
    template = tmp_path / "smplx_ground.yaml"
    template.write_text(yaml.safe_dump(data))
    seq, result = compose_sequence(template, 0, tmp_path / "out", ComposeOptions(160, 90))
    spec = yaml.safe_load((seq.path / "scene/spec.yaml").read_text())
    assert spec["character"]["model"] == "smplx"
    assert 1.0 < spec["character"]["height_m"] < 1.6
    with np.load(seq.path / "scene/character.npz") as z:
        assert z["vertices"].shape == (10475, 3)
    assert (np.asarray(Image.open(seq.path / "scene/render/mask_character.png")) > 0).sum() > 20


def test_smplx_without_model_file_is_rejected(tmp_path, capsys):
    from grail.cli import main

    data = yaml.safe_load((SCENES / "pickup_ground.yaml").read_text())
    data["character"].update({"model": "smplx", "model_path": str(tmp_path / "missing.npz")})
    template = tmp_path / "t.yaml"
    template.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as exc:
        main(["compose", str(template), "--out", str(tmp_path / "out"), "--width", "96", "--height", "54"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 1 and len(err.splitlines()) == 1
    assert "missing.npz" in err and "character.model_path" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_same_seed_is_identical_across_processes(tmp_path):
    """Determinism must not depend on what a process already cached in memory."""
    from grail.scene.compose import ComposeOptions, compose_sequence

    in_process, _ = compose_sequence(SCENES / "sit_chair.yaml", 11, tmp_path / "a", ComposeOptions(160, 90))
    cmd = [sys.executable, "-m", "grail.cli", "compose", str(SCENES / "sit_chair.yaml"), "--seed", "11", "--out", str(tmp_path / "b"), "--width", "160", "--height", "90"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    assert proc.returncode == 0, proc.stderr
    a, b = in_process.path / "scene", tmp_path / "b" / in_process.id / "scene"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
