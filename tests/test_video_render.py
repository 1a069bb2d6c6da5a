"""Video rendering of a composed scene with the character, and the MP4 writer/reader."""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest
from PIL import Image

from conftest import TEST_SIZE
from grail.character.model import CharacterModel
from grail.errors import GrailError
from grail.rotations import quat_from_matrix
from grail.scene.camera import PinholeCamera
from grail.scene.spec import load_resolved
from grail.render.video_io import VideoWriter, read_frames, read_video_info
from grail.rotations import quats_from_matrices
from grail.video.render import VideoRenderer, build_render_model, joint_mask_agreement

W, H = TEST_SIZE  # the compose size of the `composed` fixture


def _scene(composed, template="pickup_table"):
    scene = composed(template, 0) / "scene"
    with np.load(scene / "character.npz") as z:
        character = CharacterModel.from_arrays(z)
        T_world_root = np.array(z["T_world_root"])
    colors = {k: tuple(v) for k, v in load_resolved(scene / "spec.yaml").character.colors.items()}
    return scene, character, colors, T_world_root


def _mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 127


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _rest_joints(character: CharacterModel, T: np.ndarray) -> tuple[list[str], np.ndarray]:
    names = sorted(character.joints)
    p = np.stack([character.joints[n] for n in names])
    return names, p @ T[:3, :3].T + T[:3, 3]


def test_quaternions_match_the_scalar_conversion():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    R = np.zeros((len(q), 9))
    for i, qi in enumerate(q):
        mujoco.mju_quat2Mat(R[i], qi)
    R = R.reshape(-1, 3, 3)
    expected = np.stack([quat_from_matrix(r) for r in R])
    assert np.allclose(quats_from_matrices(R), expected, atol=1e-12)


def test_render_model_has_the_character_and_absolute_meshdir(composed, tmp_path, monkeypatch):
    scene, character, colors, _ = _scene(composed)
    monkeypatch.chdir(tmp_path)  # mesh paths must not depend on the working directory
    model = build_render_model(scene, character, colors)
    assert model.nmocap == len(character.bone_names)
    assert model.nskin >= 4
    assert model.camera("scene_cam").id >= 0
    assert model.body("target").id >= 0


def test_rest_pose_matches_the_compose_render(composed):
    scene, character, colors, T = _scene(composed)
    with VideoRenderer(scene, character, colors, W, H) as r:
        bone_world = r.rest_pose(T)
        rgb = r.frame(bone_world)
        mask, seg, depth = r.segmentation_and_depth(bone_world)
        assert np.array_equal(r.character_mask(bone_world), mask)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    assert mask.shape == (H, W) and mask.dtype == bool and depth.dtype == np.float32
    assert seg.ids.shape == (H, W)
    assert _iou(mask, _mask(scene / "render" / "mask_character.png")) > 0.95
    reference = np.asarray(Image.open(scene / "render" / "rgb.png")).astype(int)
    assert np.abs(rgb.astype(int) - reference).mean() < 2.0  # same lights and materials
    assert np.allclose(depth, np.load(scene / "render" / "depth.npy"), atol=1e-3)


def test_object_poses_move_the_object_and_reset(composed):
    scene, character, colors, T = _scene(composed)
    with VideoRenderer(scene, character, colors, W, H) as r:
        bone_world = r.rest_pose(T)
        gid = r.model.geom("target_visual").id
        bid = r.model.body("target").id
        pos0, quat0 = r.data.xpos[bid].copy(), r.data.xquat[bid].copy()

        def centroid(poses):
            _, seg, _ = r.segmentation_and_depth(bone_world, poses)
            v, u = np.nonzero(seg.geom_mask([gid]))
            assert len(u) > 5
            return np.array([u.mean(), v.mean()])

        c0 = centroid(None)
        right = r.camera.R_world_cam[:, 0]
        c1 = centroid({"target": (pos0 + 0.15 * right, quat0)})
        depth_m = r.camera.world_to_camera(pos0[None])[0, 2]
        expected = r.camera.K[0, 0] * 0.15 / depth_m
        assert c1[0] - c0[0] > 0.5 * expected and abs(c1[1] - c0[1]) < 0.5 * expected
        assert np.allclose(r.data.xpos[bid], pos0 + 0.15 * right)
        # a frame that does not name the object shows it at its scene pose again
        assert np.allclose(centroid({}), c0)
        with pytest.raises(GrailError, match="not a body"):
            r.frame(bone_world, {"nonexistent": (pos0, quat0)})
        with pytest.raises(GrailError) as err:
            r.frame(bone_world[:-1])
        assert err.value.field == "bone_world"
        bad = bone_world.copy()
        bad[0, 0, 3] = np.nan
        with pytest.raises(GrailError, match="NaN"):
            r.frame(bad)


def test_static_bodies_cannot_move(composed):
    scene, character, colors, T = _scene(composed, "stairs_up")
    with VideoRenderer(scene, character, colors, W, H) as r:
        assert r.model.body("stairs").id >= 0 and "stairs" not in r.object_qpos
        with pytest.raises(GrailError, match="static") as err:
            r.frame(r.rest_pose(T), {"stairs": (np.zeros(3), np.array([1.0, 0, 0, 0]))})
        assert err.value.field == "object_poses"


def test_scaled_resolution_scales_the_intrinsics(composed):
    scene, character, colors, T = _scene(composed)
    base = PinholeCamera.from_json(json.loads((scene / "camera.json").read_text()))
    w, h = 160, 90
    with VideoRenderer(scene, character, colors, w, h) as r:
        assert (r.camera.width, r.camera.height) == (w, h)
        assert np.isclose(r.camera.K[0, 0], base.K[0, 0] * h / H)
        assert np.isclose(r.camera.K[1, 1], base.K[1, 1] * h / H)
        assert np.isclose(r.camera.K[0, 2], (w - 1) / 2) and np.isclose(r.camera.K[1, 2], (h - 1) / 2)
        assert np.isclose(r.model.cam_fovy[r.model.camera("scene_cam").id], base.fov_deg)
        rgb = r.frame(r.rest_pose(T))
        mask, _, _ = r.segmentation_and_depth(r.rest_pose(T))
    assert rgb.shape == (h, w, 3)
    full = _mask(scene / "render" / "mask_character.png")
    s = h / H
    assert mask.sum() == pytest.approx(full.sum() * s * s, rel=0.15)
    v, u = np.nonzero(mask)
    V, U = np.nonzero(full)
    # pixel centres at integers: x_small = (x_full + 0.5) * s - 0.5
    assert np.allclose([u.mean(), v.mean()], [(U.mean() + 0.5) * s - 0.5, (V.mean() + 0.5) * s - 0.5], atol=1.0)
    with pytest.raises(GrailError) as err:
        VideoRenderer(scene, character, colors, W, H - 4)  # aspect off by ~4 %
    assert err.value.field == "width"


def test_joint_mask_agreement(composed):
    scene, character, colors, T = _scene(composed)
    with VideoRenderer(scene, character, colors, W, H) as r:
        mask, _, depth = r.segmentation_and_depth(r.rest_pose(T))
        camera = r.camera
    names, joints = _rest_joints(character, T)
    good = joint_mask_agreement(joints[None], camera, mask[None], depth[None], [0], names=names)
    assert good["visible"] >= 0.7 * len(names)
    assert good["fraction"] >= 0.98, good
    shifted = joints + 0.5 * camera.R_world_cam[:, 0]  # 0.5 m to the camera's right
    bad = joint_mask_agreement(shifted[None], camera, mask[None], depth[None], [0], names=names)
    assert bad["visible"] > 0 and bad["fraction"] < 0.3, bad
    assert sum(bad["misses"].values()) == bad["visible"] - bad["inside"]
    # zero tolerance is stricter, never looser
    strict = joint_mask_agreement(joints[None], camera, mask[None], depth[None], [0], tolerance_px=0)
    assert strict["inside"] <= good["inside"]
    # a wall of non-character depth right in front of the camera occludes every joint
    wall = np.full_like(depth, 0.1)
    occluded = joint_mask_agreement(joints[None], camera, np.zeros_like(mask)[None], wall[None], [0])
    assert occluded["visible"] == 0 and occluded["fraction"] == 0.0
    with pytest.raises(GrailError):
        joint_mask_agreement(joints[None], camera, mask[None], depth[None], [1])


def test_encode_and_read_back(tmp_path):
    w, h, n = 64, 48, 10
    rng = np.random.default_rng(0)
    base = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    frames = [np.roll(base, 2 * i, axis=1) for i in range(n)]  # even shifts: yuv420p keeps 2x2 chroma
    path = tmp_path / "v.mp4"
    with VideoWriter(path, 24, w, h) as writer:
        for f in frames:
            writer.write(f)
    assert read_video_info(path) == {"frames": n, "fps": 24.0, "width": w, "height": h}
    decoded = list(read_frames(path))
    assert len(decoded) == n and decoded[0].shape == (h, w, 3) and decoded[0].dtype == np.uint8
    errors = [np.abs(decoded[3].astype(int) - f).mean() for f in frames]
    assert errors[3] < 6 and int(np.argmin(errors)) == 3  # frames come back in order
    with pytest.raises(GrailError) as err:
        with VideoWriter(tmp_path / "bad.mp4", 24, w, h) as writer:
            writer.write(np.zeros((h, w + 2, 3), np.uint8))
    assert err.value.field == "frame" and not (tmp_path / "bad.mp4").exists()


@pytest.mark.parametrize("size,field", [((191, 108), "width"), ((192, 107), "height")])
def test_odd_sizes_are_rejected(tmp_path, size, field):
    with pytest.raises(GrailError) as err:
        VideoWriter(tmp_path / "odd.mp4", 24, *size)
    assert err.value.field == field


def test_missing_or_corrupt_video_names_the_file(tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(GrailError) as err:
        read_video_info(missing)
    assert err.value.file == str(missing)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    with pytest.raises(GrailError) as err:
        read_video_info(corrupt)
    assert err.value.file == str(corrupt)
    with pytest.raises(GrailError) as err:
        list(read_frames(corrupt))
    assert err.value.file == str(corrupt)
