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
    target = next(i for i in spec["objects"] if i["name"] == "target")
    assert target["kind"] == "imported" and target["source"] == "can.obj" and target["scale"] == 0.01
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


def _edit(path: list, value):
    """A copy of the good template with one value replaced (path of keys and indices)."""
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def _with_furniture(furniture: list) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["furniture"] = furniture
    return data


TABLE = {"kind": "table"}
MALFORMED = {
    "fov zero": (_edit(["camera", "fov_deg"], 0), "camera.fov_deg"),
    "fov 180": (_edit(["camera", "fov_deg"], [50, 180]), "camera.fov_deg"),
    "distance zero": (_edit(["camera", "distance"], [0, 3]), "camera.distance"),
    "light negative": (_edit(["lighting"], {"intensity": -1}), "lighting.intensity"),
    "no shirt colours": (_edit(["character"], {"clothing": {"shirt": []}}), "character.clothing.shirt"),
    "colour above 1": (_edit(["character"], {"clothing": {"hair": [[2, 0, 0]]}}), "character.clothing.hair"),
    "support listed after": (
        _with_furniture([{"name": "top", "variants": [TABLE], "support": "table"}, {"name": "table", "variants": [TABLE]}]),
        "furniture[0].support",
    ),
    "support is itself": (_with_furniture([{"name": "table", "variants": [TABLE], "support": "table"}]), "furniture[0].support"),
    "support names an object": (_edit(["objects", 0, "support"], "target"), "objects[0].support"),
    "object named floor": (_edit(["objects", 0, "name"], "floor"), "objects[0].name"),
    "object named char_": (_edit(["objects", 0, "name"], "char_shirt"), "objects[0].name"),
    "duplicate name": (_edit(["objects", 0, "name"], "table"), "objects[0].name"),
    "unknown placeholder": (_edit(["prompt"], "pick up the {thing}"), "prompt"),
    "capitalised placeholder": (_edit(["prompt"], "pick up the {Target}"), "prompt"),
    "focus names nothing": (_edit(["focus"], "nothing"), "focus"),
    "boolean size": (_edit(["objects", 0, "variants"], [{"kind": "box", "params": {"size_x": True}}]), "objects[0].variants[0].params.size_x"),
    "empty choice": (_edit(["objects", 0, "variants"], [{"kind": "box", "params": {"size_x": {"choice": []}}}]), "objects[0].variants[0].params.size_x"),
    "empty variants": (_edit(["objects", 0, "variants"], []), "objects[0].variants"),
    "range reversed": (_edit(["objects", 0, "placement", "x"], [0.1, -0.1]), "objects[0].placement.x"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_template_names_file_and_field(tmp_path, capsys, case):
    data, field = MALFORMED[case]
    code, err = run_cli(["compose", str(write_template(tmp_path, data)), "--out", str(tmp_path / "out"), "--width", "96", "--height", "54"], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "bad.yaml", f": {field}:")


def test_fractional_stair_count_is_rejected(tmp_path, capsys):
    data = yaml.safe_load((SCENES / "stairs_up.yaml").read_text())
    data["terrain"][0]["params"]["steps"] = [2, 5]
    code, err = run_cli(["compose", str(write_template(tmp_path, data)), "--out", str(tmp_path / "out")], capsys)
    assert_clean_failure(code, err, tmp_path / "out", "bad.yaml", "terrain[0].params.steps")


def test_usage_errors_are_one_line(capsys):
    for argv in (["compose", "scenes/pickup_table.yaml", "--seed", "-1"], ["compose"], ["compose", "x.yaml", "--bogus"]):
        code, err = run_cli(argv, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: grail compose:"), err


def test_objects_sharing_a_support_do_not_overlap(tmp_path):
    from grail.scene.compose import ComposeOptions, compose_sequence
    from grail.scene.spec import load_resolved

    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["furniture"][0]["variants"][0]["params"].update({"top_x": 0.7, "top_y": 0.9})
    near_centre = {"x": [-0.15, 0.15], "y": [-0.25, 0.25], "yaw_deg": [0, 90]}
    data["objects"] = [
        {"name": "big", "support": "table", "variants": [{"kind": "box", "params": {"size_x": 0.15, "size_y": 0.15, "size_z": 0.1}}], "placement": near_centre},
        {"name": "small", "support": "table", "variants": [{"kind": "cylinder", "params": {"radius": 0.04, "height": 0.1}}], "placement": near_centre},
    ]
    data["focus"] = "big"
    data["prompt"] = "A child picks up the {big} and the {small}."
    template = write_template(tmp_path, data)
    for seed in range(3):
        seq, _ = compose_sequence(template, seed, tmp_path / "out", ComposeOptions(96, 54))
        spec = load_resolved(seq.path / "scene/spec.yaml")
        big, small = spec.objects
        gap = np.linalg.norm(np.subtract(big.pose.pos, small.pose.pos)[:2])
        assert gap >= 0.075 * np.sqrt(2) + 0.04, (seed, gap)  # box half-diagonal + can radius: no contact
        assert abs(big.pose.pos[2] - small.pose.pos[2]) < 1e-3  # both rest on the table top

    data["objects"][1]["placement"] = data["objects"][0]["placement"] = {"x": 0.0, "y": 0.0}
    code_path = write_template(tmp_path, data)
    from grail.errors import GrailError

    with pytest.raises(GrailError, match="small overlaps big on table|big overlaps small on table"):
        compose_sequence(code_path, 0, tmp_path / "out2", ComposeOptions(96, 54))


def test_failed_seed_does_not_stop_the_others(tmp_path, capsys):
    data = _edit(["camera"], {**GOOD["camera"], "fov_deg": [15, 60], "max_tries": 1})  # seeds 4-7 draw too narrow a view
    out = tmp_path / "out"
    code, err = run_cli(["compose", str(write_template(tmp_path, data)), "--num", "6", "--seed", "0", "--out", str(out), "--width", "96", "--height", "54"], capsys)
    assert code == 1
    assert "seed 4: " in err and "seed 5: " in err and "camera" in err
    assert err.strip().splitlines()[-1].endswith("2 of 6 seeds failed: 4, 5")
    assert sorted(p.name for p in out.iterdir()) == ["bad_s00000", "bad_s00001", "bad_s00002", "bad_s00003"]
