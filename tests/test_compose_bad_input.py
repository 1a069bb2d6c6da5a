"""Every bad input ends with one line naming the file and field, exit 1, and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml

from conftest import REPO, SCENES
from grail.cli import main

GOOD = yaml.safe_load((SCENES / "pickup_table.yaml").read_text())


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def write_template(tmp_path: Path, data) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def with_target(variant: dict) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["objects"][0]["variants"] = [variant]
    return data


def assert_clean_failure(code: int, err: str, out: Path, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists() or not any(out.iterdir()), "bad input left output behind"


def test_malformed_yaml(tmp_path, capsys):
    path = write_template(tmp_path, "task: pickup\nobjects: [unclosed\n")
    code, err = run_cli(["compose", str(path), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "bad.yaml", "malformed YAML", "line")


def test_unknown_key(tmp_path, capsys):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["camera"]["zoom"] = 2
    code, err = run_cli(["compose", str(write_template(tmp_path, data)), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "bad.yaml", "camera.zoom")


def test_bad_range(tmp_path, capsys):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["camera"]["distance"] = [4.0, 2.0]
    code, err = run_cli(["compose", str(write_template(tmp_path, data)), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "bad.yaml", "camera.distance", "above high")


def test_unknown_asset(tmp_path, capsys):
    path = write_template(tmp_path, with_target({"kind": "spaceship"}))
    code, err = run_cli(["compose", str(path), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "bad.yaml", "objects[0].variants[0]", "spaceship")


def test_bad_asset_parameter(tmp_path, capsys):
    path = write_template(tmp_path, with_target({"kind": "box", "params": {"size_x": -0.1}}))
    code, err = run_cli(["compose", str(path), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "bad.yaml", "size_x")


def test_zero_volume_mesh(tmp_path, capsys):
    plane = trimesh.Trimesh(vertices=[[0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [0, 0.1, 0]], faces=[[0, 1, 2], [0, 2, 3]])
    plane.export(tmp_path / "flat.obj")
    path = write_template(tmp_path, with_target({"kind": "mesh", "path": "flat.obj", "unit": "m", "category": "tabletop"}))
    code, err = run_cli(["compose", str(path), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "flat.obj")


def test_absurd_scale_mesh(tmp_path, capsys):
    trimesh.creation.box([0.2, 0.2, 0.2]).export(tmp_path / "cube.stl")
    path = write_template(tmp_path, with_target({"kind": "mesh", "path": "cube.stl", "scale": 100.0, "category": "tabletop"}))
    code, err = run_cli(["compose", str(path), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "cube.stl")


def test_unreadable_mesh(tmp_path, capsys):
    (tmp_path / "junk.glb").write_bytes(np.random.default_rng(0).bytes(2048))
    path = write_template(tmp_path, with_target({"kind": "mesh", "path": "junk.glb", "unit": "cm", "category": "tabletop"}))
    code, err = run_cli(["compose", str(path), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "junk.glb")


def test_user_mesh_composes(tmp_path, capsys):
    trimesh.creation.cylinder(radius=4.0, height=12.0).export(tmp_path / "can.obj")  # centimetres
    path = write_template(tmp_path, with_target({"kind": "mesh", "path": "can.obj", "unit": "cm", "category": "tabletop"}))
    main(["compose", str(path), "--out", str(tmp_path / "out"), "--width", "96", "--height", "54"])
    spec = yaml.safe_load(next((tmp_path / "out").glob("*/scene/spec.yaml")).read_text())
    target = next(i for i in spec["items"] if i["name"] == "target")
    assert target["kind"] == "imported" and target["source"] == "can.obj"
    assert target["mass"] == pytest.approx(np.pi * 0.04**2 * 0.12 * 500.0, rel=0.03)


def test_unsatisfiable_camera(tmp_path, capsys):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["camera"].update({"fov_deg": [10, 12], "distance": [1.0, 1.2], "max_tries": 20})
    code, err = run_cli(["compose", str(write_template(tmp_path, data)), "--out", str(tmp_path / "out"), "--width", "96", "--height", "54"], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "bad.yaml", "camera", "no camera met the constraints")


def test_output_path_is_a_file(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a directory")
    code, err = run_cli(["compose", str(SCENES / "curb_step.yaml"), "--out", str(out)], capsys)
    assert code == 1 and "taken" in err and "--out" in err
    assert out.read_text() == "not a directory"


def test_missing_template(tmp_path, capsys):
    code, err = run_cli(["compose", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "nope.yaml", "no such file")


def test_real_process_exit_code_and_help(tmp_path):
    bad = write_template(tmp_path, "task: [")
    proc = subprocess.run([sys.executable, "-m", "grail.cli", "compose", str(bad), "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1
    for sub in (["--help"], ["compose", "--help"], ["run", "--help"], ["status", "--help"], ["assets", "--help"], ["character", "--help"]):
        help_proc = subprocess.run([sys.executable, "-m", "grail.cli", *sub], capture_output=True, text=True, cwd=REPO)
        assert help_proc.returncode == 0 and "Usage" in help_proc.stdout, sub
