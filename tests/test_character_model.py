"""Anny character mesh, regions, MuJoCo skins, segmentation mask and posing."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest

from grail.character import (
    DEFAULT_G1_SHAPE, REGIONS, build_character, character_mask, character_mjcf, pose_character,
)

H, W = 128, 96
SCENE = ('<light pos="2 0 3" dir="-1 0 -1.5"/><light pos="0 0 4" dir="0 0 -1"/>'
         '<camera name="front" pos="3.0 0 0.66" xyaxes="0 1 0 0 0 1" fovy="35"/>')


@pytest.fixture(scope="module")
def char():
    return build_character(DEFAULT_G1_SHAPE)


@pytest.fixture(scope="module")
def sim(char):
    mj = character_mjcf(char)
    m = mujoco.MjModel.from_xml_string(mj.model_xml(extra_worldbody=SCENE))
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    r = mujoco.Renderer(m, H, W)
    yield mj, m, d, r
    r.close()


def _render(m, d, r, seg=False):
    if seg:
        r.enable_segmentation_rendering()
    r.update_scene(d, "front")
    img = r.render().copy()
    if seg:
        r.disable_segmentation_rendering()
    return img


def test_geometry(char):
    v = char.vertices
    assert v.shape[1] == 3 and char.faces.shape[1] == 3
    assert abs(v[:, 2].min()) < 1e-9
    assert char.height_m == pytest.approx(1.32, abs=0.01)
    assert np.linalg.norm(char.joints["pelvis"][:2]) < 1e-9
    head = v[v[:, 2] > char.joints["head"][2]]
    assert head[:, 0].max() > abs(head[:, 0].min())  # nose forward (+X)
    feet = v[v[:, 2] < 0.03]
    assert feet[:, 0].max() > 0.12  # toes at +X
    assert char.joints["left_hip"][1] > 0 > char.joints["right_hip"][1]  # left is +Y
    assert np.allclose(char.skin_bone_weights.sum(1), 1)
    assert np.abs(char.lbs(char.bone_rest) - v).max() < 1e-9


def test_regions(char):
    zs = {}
    for r, name in enumerate(REGIONS):
        f = char.face_region == r
        assert f.any(), name
        zs[name] = char.vertices[char.faces[f]].reshape(-1, 3)[:, 2]
    assert zs["shoes"].max() < 0.15
    assert zs["hair"].min() > 1.1
    assert np.median(zs["shoes"]) < np.median(zs["trousers"]) < np.median(zs["shirt"])
    assert np.median(zs["shirt"]) < np.median(zs["hair"])


def test_render_mask_and_colours(char, sim):
    mj, m, d, r = sim
    seg = _render(m, d, r, seg=True)
    mask = character_mask(seg, m)
    assert mask.sum() > 200
    # project vertices with the camera
    cam = m.camera("front").id
    pos, R = d.cam_xpos[cam], d.cam_xmat[cam].reshape(3, 3)
    pc = (char.vertices - pos) @ R  # camera frame (x right, y up, -z forward)
    f = 0.5 * H / np.tan(np.deg2rad(m.cam_fovy[cam]) / 2)
    u = W / 2 + f * pc[:, 0] / -pc[:, 2]
    vv = H / 2 - f * pc[:, 1] / -pc[:, 2]
    ys, xs = np.nonzero(mask)
    for a, b in ((u.min(), xs.min()), (u.max(), xs.max() + 1), (vv.min(), ys.min()),
                 (vv.max(), ys.max() + 1)):
        assert abs(a - b) < 3, (a, b)
    rgb = _render(m, d, r)
    # every region skin is visible in the segmentation; colours of regions differ in RGB
    regions_seen = {mj.skin_regions[i] for i in np.unique(seg[..., 0][mask])}
    assert len(regions_seen) >= 4, regions_seen
    means = [rgb[mask & (seg[..., 0] == i)].mean(0) for i in np.unique(seg[..., 0][mask])]
    distinct = sum(all(np.abs(a - b).sum() > 30 for b in means[:k]) for k, a in enumerate(means))
    assert distinct >= 4


def test_pose_moves_skin(char, sim):
    mj, m, d, r = sim
    seg0 = character_mask(_render(m, d, r, seg=True), m)
    T = char.bone_rest.copy()
    # raise the left arm: rotate the arm chain about the shoulder (world X axis)
    sh = char.joints["left_shoulder"]
    ang = np.deg2rad(150)
    Rx = np.array([[1, 0, 0], [0, np.cos(ang), -np.sin(ang)], [0, np.sin(ang), np.cos(ang)]])
    G = np.eye(4)
    G[:3, :3] = Rx
    G[:3, 3] = sh - Rx @ sh
    for j, n in enumerate(char.bone_names):
        if n.endswith(".L") and n.startswith(("upperarm", "lowerarm", "wrist")):
            T[j] = G @ T[j]
    pose_character(m, d, char, T)
    mujoco.mj_forward(m, d)
    seg1 = character_mask(_render(m, d, r, seg=True), m)
    pose_character(m, d, char, char.bone_rest)
    mujoco.mj_forward(m, d)
    assert (seg0 ^ seg1).sum() > 30
    ys, _ = np.nonzero(seg1)
    ys0, _ = np.nonzero(seg0)
    assert ys.min() < ys0.min()  # the raised hand is above the head now


def test_save_preview(char):
    """Writes /tmp/character_front.png (a 320x480 preview)."""
    import PIL.Image

    mj = character_mjcf(char)
    m = mujoco.MjModel.from_xml_string(mj.model_xml(
        extra_worldbody=SCENE + '<geom type="plane" size="3 3 .1" rgba=".6 .7 .6 1"/>'))
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    r = mujoco.Renderer(m, 480, 320)
    try:
        r.update_scene(d, "front")
        PIL.Image.fromarray(r.render()).save("/tmp/character_front.png")
    finally:
        r.close()
