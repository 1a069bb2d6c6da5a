"""The compose stage against the on-disk contract, the MJCF and its own ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest
from PIL import Image

from conftest import SCENES, TEMPLATES, TEST_SIZE
from grail.scene.camera import PinholeCamera
from grail.scene.depth_check import depth_ray_errors
from grail.scene.spec import load_resolved, load_template

SEEDS = (0, 1, 2)
RENDER_FILES = ("rgb.png", "depth.npy", "depth.png", "mask_object.png", "mask_character.png", "mask_support.png", "overlay.png")


def _mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 127


def _character_world_vertices(scene: Path) -> np.ndarray:
    with np.load(scene / "character.npz") as z:
        T = z["T_world_root"]
        return z["vertices"].astype(float) @ T[:3, :3].T + T[:3, 3]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_template_composes_to_the_contract(composed, template, seed):
    seq = composed(template, seed)
    scene = seq / "scene"
    record = json.loads((seq / "sequence.json").read_text())
    assert record["stages"]["scene"]["status"] == "done"
    for name in ("spec.yaml", "scene.xml", "scene.usda", "camera.json", "character.npz"):
        assert (scene / name).is_file(), name
    for name in RENDER_FILES:
        assert (scene / "render" / name).is_file(), name
    assert list((scene / "meshes").glob("*_visual.obj"))

    spec = load_resolved(scene / "spec.yaml")
    tpl = load_template(SCENES / f"{template}.yaml")
    assert (spec.seed, spec.task, spec.quat_order) == (seed, tpl.task, "wxyz")
    assert "{" not in spec.prompt

    # Camera: OpenCV intrinsics consistent with the field of view; a rigid camera-to-world.
    cam_json = json.loads((scene / "camera.json").read_text())
    camera = PinholeCamera.from_json(cam_json)
    w, h = TEST_SIZE
    assert (camera.width, camera.height) == (w, h)
    np.testing.assert_allclose(cam_json["K"], camera.K, atol=1e-6)
    assert cam_json["K"][1][1] == pytest.approx((h / 2) / np.tan(np.radians(cam_json["fov_deg"]) / 2), rel=1e-6)
    R = np.asarray(cam_json["T_world_cam"])[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-6)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-6)

    # Renders: shapes and types, the character fully in frame where the camera says it is.
    rgb = np.asarray(Image.open(scene / "render" / "rgb.png"))
    depth = np.load(scene / "render" / "depth.npy")
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    assert depth.shape == (h, w) and depth.dtype == np.float32
    char_mask = _mask(scene / "render" / "mask_character.png")
    assert char_mask.sum() > 20
    uv, z = camera.project(_character_world_vertices(scene))
    assert np.all(z > 0)
    assert uv.min() >= 0 and uv[:, 0].max() <= w - 1 and uv[:, 1].max() <= h - 1
    rows, cols = np.nonzero(char_mask)
    assert abs(rows.min() - uv[:, 1].min()) < 3 and abs(rows.max() - uv[:, 1].max()) < 3
    assert abs(cols.min() - uv[:, 0].min()) < 3 and abs(cols.max() - uv[:, 0].max()) < 3
    info = record["stages"]["scene"]["info"]
    assert info["character_pixels"] == char_mask.sum()
    if tpl.objects:
        assert _mask(scene / "render" / "mask_object.png").sum() > 3
        # Not occluded by the character or furniture (sampled at <=256 px wide; checked here at full size).
        assert set(info["object_visibility"]) == {o.name for o in tpl.objects}
        assert min(info["object_visibility"].values()) >= tpl.camera.min_object_visibility - 0.05
    assert _mask(scene / "render" / "mask_support.png").sum() > 0.2 * w * h

    # Physics: the saved MJCF holds every item at rest; nothing sinks, floats or moves.
    model = mujoco.MjModel.from_xml_path(str(scene / "scene.xml"))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    start = data.xpos.copy()
    for _ in range(250):
        mujoco.mj_step(model, data)
    assert np.abs(data.xpos - start).max() < 2e-3
    assert data.ncon == 0 or -data.contact.dist[: data.ncon].min() < 3e-3
    assert [i.name for i in spec.objects] == [o.name for o in tpl.objects]
    assert [i.name for i in spec.furniture] == [f.name for f in tpl.furniture]
    assert [i.name for i in spec.terrain] == [t.name for t in tpl.terrain]
    for item in spec.items():
        if item.support is None:
            continue
        support = next(i for i in spec.furniture if i.name == item.support)
        body = model.body(item.name).id
        geom = model.geom(f"{item.name}_visual").id
        mesh = model.geom_dataid[geom]
        verts = model.mesh_vert[model.mesh_vertadr[mesh] : model.mesh_vertadr[mesh] + model.mesh_vertnum[mesh]]
        world = verts @ data.geom_xmat[geom].reshape(3, 3).T + data.geom_xpos[geom]
        top = data.xpos[model.body(support.name).id][2] + support.support_height
        assert abs(world[:, 2].min() - top) < 5e-3, (item.name, world[:, 2].min(), top)
        assert body >= 0


@pytest.mark.slow
@pytest.mark.parametrize("template", ["pickup_table", "stairs_up", "sit_chair"])
def test_depth_agrees_with_mjcf_ray_casts(tmp_path, template):
    from grail.scene.compose import ComposeOptions, compose_sequence

    # Large enough that thin table tops and chair legs cover pixels away from silhouette edges.
    seq, _ = compose_sequence(SCENES / f"{template}.yaml", 0, tmp_path, ComposeOptions(480, 270))
    errors, on_floor = depth_ray_errors(seq.path / "scene", samples=600)
    assert len(errors) > 100 and (~on_floor).sum() > 5
    assert np.median(errors) < 1e-3
    assert np.median(errors[~on_floor]) < 1e-3
    assert np.percentile(errors, 95) < 5e-3


def test_usd_holds_the_same_bodies(composed):
    from pxr import Usd, UsdGeom, UsdPhysics

    scene = composed("pickup_table", 0) / "scene"
    stage = Usd.Stage.Open(str(scene / "scene.usda"))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    rigid = [p for p in stage.Traverse() if p.HasAPI(UsdPhysics.RigidBodyAPI)]
    spec = load_resolved(scene / "spec.yaml")
    assert len(rigid) == sum(not i.static for i in spec.items())
    masses = sorted(UsdPhysics.MassAPI(p).GetMassAttr().Get() for p in rigid)
    np.testing.assert_allclose(masses, sorted(i.mass for i in spec.items() if not i.static), rtol=1e-6)


def test_same_seed_gives_identical_files(tmp_path):
    from grail.scene.compose import ComposeOptions, compose_sequence

    template = SCENES / "place_table.yaml"
    a, _ = compose_sequence(template, 7, tmp_path / "a", ComposeOptions(*TEST_SIZE))
    b, _ = compose_sequence(template, 7, tmp_path / "b", ComposeOptions(*TEST_SIZE))
    c, _ = compose_sequence(template, 8, tmp_path / "c", ComposeOptions(*TEST_SIZE))
    files_a = sorted(p.relative_to(a.path / "scene") for p in (a.path / "scene").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b.path / "scene") for p in (b.path / "scene").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 10
    for rel in files_a:
        assert (a.path / "scene" / rel).read_bytes() == (b.path / "scene" / rel).read_bytes(), rel
    assert (a.path / "scene/spec.yaml").read_text() != (c.path / "scene/spec.yaml").read_text().replace("s00008", "s00007")


def test_done_stage_is_skipped_and_force_redoes_it(tmp_path):
    from grail.scene.compose import ComposeOptions, compose_sequence

    template = SCENES / "curb_step.yaml"
    options = ComposeOptions(*TEST_SIZE)
    seq, first = compose_sequence(template, 0, tmp_path, options)
    assert not first.skipped
    stamp = (seq.path / "scene/spec.yaml").stat().st_mtime_ns
    _, again = compose_sequence(template, 0, tmp_path, options)
    assert again.skipped
    assert (seq.path / "scene/spec.yaml").stat().st_mtime_ns == stamp
    _, bigger = compose_sequence(template, 0, tmp_path, ComposeOptions(96, 54))
    assert not bigger.skipped  # a changed input reruns the stage
    _, forced = compose_sequence(template, 0, tmp_path, ComposeOptions(96, 54), force=True)
    assert not forced.skipped
    assert json.loads((seq.path / "sequence.json").read_text())["stages"]["scene"]["status"] == "done"
