"""Consistency metrics of a procedural video (grail.video.metrics) on hand-built ground truth, and
the scene geometry queries they rest on (grail.video.geometry) against analytic values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from grail.assets.procedural import make_terrain, surface_height
from grail.character.model import CharacterModel
from grail.scene.spec import load_resolved
from grail.video import metrics as M
from grail.rotations import matrices_from_quats, quats_from_matrices
from grail.video.geometry import ConvexPart, SceneGeometry
from grail.video.gt import CONTACT_NAMES, GroundTruth

FRAMES = 12
FPS = 24.0


# ---- fixtures and builders --------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_scene(composed) -> Path:
    return composed("pickup_table", 0) / "scene"


@pytest.fixture(scope="module")
def stairs_scene(composed) -> Path:
    return composed("stairs_up", 0) / "scene"


@pytest.fixture(scope="module")
def table_geometry(table_scene) -> SceneGeometry:
    return SceneGeometry.load(table_scene)


@pytest.fixture(scope="module")
def character(table_scene) -> tuple[CharacterModel, np.ndarray]:
    with np.load(table_scene / "character.npz") as z:
        return CharacterModel.from_arrays(z), np.array(z["T_world_root"])


def rest_gt(scene: Path, character: CharacterModel, T_world_root: np.ndarray, frames: int = FRAMES,
            offset: np.ndarray | None = None) -> GroundTruth:
    """The character standing in its rest pose at the layout placement for `frames` frames, both
    feet in contact, objects at their spec poses; `offset` (T,3) translates the whole body."""
    bones = np.repeat((T_world_root @ character.bone_rest)[None], frames, axis=0)
    if offset is not None:
        bones[:, :, :3, 3] += offset[:, None]
    J = len(character.bone_names)
    quats = quats_from_matrices(bones[0, :, :3, :3])
    names = sorted(character.joints)
    rest_joint_pos = np.stack([character.joints[n] for n in names]) @ T_world_root[:3, :3].T + T_world_root[:3, 3]
    joint_pos = rest_joint_pos[None] + (np.zeros((frames, 1, 3)) if offset is None else offset[:, None])
    spec = load_resolved(scene / "spec.yaml")
    O = len(spec.objects)
    contact = np.zeros((frames, len(CONTACT_NAMES)), bool)
    contact[:, :2] = True
    gt = GroundTruth(
        fps=FPS, bone_names=list(character.bone_names), bone_parents=character.bone_parents,
        bone_pos_w=bones[:, :, :3, 3], bone_quat_w=np.repeat(quats[None], frames, axis=0),
        root_pos=bones[:, 0, :3, 3], root_quat=np.tile([1.0, 0, 0, 0], (frames, 1)),
        joint_rot=np.tile([1.0, 0, 0, 0], (frames, J, 1)), joint_names=names, joint_pos=joint_pos,
        object_names=[o.name for o in spec.objects],
        object_pos=np.repeat(np.array([o.pose.pos for o in spec.objects], float)[None], frames, axis=0).reshape(frames, O, 3),
        object_quat=np.repeat(np.array([o.pose.quat for o in spec.objects], float)[None], frames, axis=0).reshape(frames, O, 4),
        object_held=np.zeros((frames, O), bool), contact_names=list(CONTACT_NAMES), contact=contact,
        contact_object=np.full((frames, len(CONTACT_NAMES)), -1), phase=np.array(["stand"] * frames),
    )
    gt.validate()
    return gt


@pytest.fixture(scope="module")
def standing(table_scene, character, table_geometry) -> dict:
    gt = rest_gt(table_scene, *character)
    return M.consistency_metrics(gt, character[0], table_geometry)


# ---- geometry ---------------------------------------------------------------------------------


def test_penetration_inside_box_part_is_analytic(table_scene, table_geometry):
    spec = load_resolved(table_scene / "spec.yaml")
    table = spec.furniture[0]
    R, pos = matrices_from_quats(np.array(table.pose.quat)), np.array(table.pose.pos)
    import trimesh

    top = trimesh.load(table_scene / table.collision[0], force="mesh", process=False)
    lo, hi = top.bounds  # the table top: a box in the table frame
    local = np.random.default_rng(0).uniform(lo, hi, (500, 3))
    expected = np.minimum(local - lo, hi - local).min(axis=1)
    world = local @ R.T + pos
    depth, owner = table_geometry.deepest(world)
    np.testing.assert_allclose(depth, expected, atol=1e-9)
    assert {table_geometry.static_names[i] for i in owner} == {"table"}
    assert np.all(table_geometry.penetration(world, exclude={"table"}) == 0.0)
    # below the floor: depth -z; above everything: 0
    np.testing.assert_allclose(table_geometry.penetration(np.array([[5.0, 5.0, -0.02], [5.0, 5.0, 0.3]])), [0.02, 0.0])


def test_support_height_on_table_top_and_floor(table_scene, table_geometry):
    table = load_resolved(table_scene / "spec.yaml").furniture[0]
    centre = np.array(table.pose.pos)
    top = centre[2] + table.params["height"]
    xy = np.array([centre[:2], centre[:2] + [0.1, -0.05], [centre[0] + 2.0, centre[1]]])
    np.testing.assert_allclose(table_geometry.support_height(xy), [top, top, 0.0], atol=1e-5)
    # under the table top (a foot on the floor), the floor carries it
    np.testing.assert_allclose(table_geometry.support_height(xy[:1], z=np.array([0.0])), [0.0])


def test_support_height_on_stairs_matches_surface_height(stairs_scene):
    spec = load_resolved(stairs_scene / "spec.yaml")
    stairs = spec.terrain[0]
    assert stairs.pose.pos == (0.0, 0.0, 0.0) and stairs.kind == "stairs_up"
    geometry = SceneGeometry.load(stairs_scene)
    asset = make_terrain(stairs.kind, {k: v for k, v in stairs.params.items()})
    p = stairs.params
    # tread centres and points away from the step edges, plus the landing and the floor beyond
    x = np.concatenate([(np.arange(p["steps"] - 1) + 0.5) * p["run"], (np.arange(p["steps"] - 1) + 0.2) * p["run"],
                        [(p["steps"] - 1) * p["run"] + p["landing"] / 2, -0.3]])
    xy = np.c_[x, np.linspace(-0.3, 0.3, len(x))]
    expected = surface_height(asset, xy)
    np.testing.assert_allclose(geometry.support_height(xy), expected, atol=2e-6)  # spec params: 6 decimals
    assert expected[0] == pytest.approx(p["rise"]) and expected[p["steps"] - 2] == pytest.approx((p["steps"] - 1) * p["rise"])


def test_support_height_on_slope_evaluates_the_tilted_plane():
    asset = make_terrain("slope", {"angle_deg": 10.0, "length": 1.5, "landing": 0.5, "width": 1.0})
    geometry = SceneGeometry([ConvexPart.from_vertices("ramp", c.vertices) for c in asset.collision], {}, ["floor", "ramp"])
    xy = np.c_[np.linspace(0.05, 1.95, 20), np.linspace(-0.4, 0.4, 20)]
    np.testing.assert_allclose(geometry.support_height(xy), surface_height(asset, xy), atol=1e-9)


def test_object_signed_distance(table_geometry):
    pos, quat = table_geometry.object_pose("target")
    lo, hi = table_geometry.object_mesh("target").bounds  # the box in its body frame
    R = matrices_from_quats(quat)
    centre = (lo + hi) / 2
    local = np.array([centre, centre + [0, 0, (hi[2] - lo[2]) / 2 + 0.03], [hi[0] + 0.02, centre[1], centre[2]]])
    sd = table_geometry.object_signed_distance("target", pos, quat, local @ R.T + pos)
    np.testing.assert_allclose(sd, [-((hi - lo) / 2).min(), 0.03, 0.02], atol=1e-9)


# ---- metrics ----------------------------------------------------------------------------------


def test_static_character_is_consistent(standing):
    assert standing["foot_skate_max_m_s"] == 0.0
    assert standing["foot_below_support_max_m"] == pytest.approx(0.0, abs=1e-6)
    assert standing["body_penetration_max_m"] == pytest.approx(0.0, abs=1e-6)
    assert standing["object_float_max_m"] == pytest.approx(0.0, abs=1e-3)
    assert standing["object_penetration_max_m"] < 0.002  # resting on the table: contact, not penetration
    assert standing["joint_speed_max_rad_s"] == 0.0 and standing["joint_range_violations"] == 0
    assert M.check(standing) == []
    json.dumps(standing)  # JSON-serialisable


def test_translation_with_planted_feet_is_skating(table_scene, character, table_geometry):
    speed = 0.2
    t = np.arange(FRAMES) / FPS
    offset = np.c_[speed * t, np.zeros(FRAMES), np.zeros(FRAMES)]
    m = M.consistency_metrics(rest_gt(table_scene, *character, offset=offset), character[0], table_geometry)
    assert m["foot_skate_max_m_s"] == pytest.approx(speed, abs=1e-6)
    assert m["foot_skate_mean_m_s"] == pytest.approx(speed, abs=1e-6)
    assert m["root_speed_max_m_s"] == pytest.approx(speed, abs=1e-6)
    assert any(v.startswith("foot_skate_max_m_s") for v in M.check(m))


def test_sunk_body_is_below_support(table_scene, character, table_geometry):
    offset = np.tile([0.0, 0.0, -0.03], (FRAMES, 1))
    m = M.consistency_metrics(rest_gt(table_scene, *character, offset=offset), character[0], table_geometry)
    assert m["foot_below_support_max_m"] == pytest.approx(0.03, abs=1e-6)
    assert m["body_penetration_max_m"] == pytest.approx(0.03, abs=1e-6)
    assert m["body_penetration_item"] == "floor"
    assert {v.split(" ")[0] for v in M.check(m)} == {"foot_below_support_max_m", "body_penetration_max_m"}


def test_body_inside_the_table_is_penetration(table_scene, character, table_geometry):
    table = load_resolved(table_scene / "spec.yaml").furniture[0]
    shift = np.array(table.pose.pos) - character[1][:3, 3]
    offset = np.tile([shift[0], shift[1], 0.0], (FRAMES, 1))
    m = M.consistency_metrics(rest_gt(table_scene, *character, offset=offset), character[0], table_geometry)
    assert m["body_penetration_item"] == "table"
    assert 0.01 < m["body_penetration_max_m"] <= table.params["thickness"] / 2 + 1e-6
    assert any("body_penetration_max_m" in v and "table" in v for v in M.check(m))


def test_object_float(table_scene, character, table_geometry):
    gt = rest_gt(table_scene, *character)
    gt.object_pos[:, 0, 2] += 0.05
    m = M.consistency_metrics(gt, character[0], table_geometry)
    assert m["object_float_max_m"] == pytest.approx(0.05, abs=5e-4)
    assert any(v.startswith("object_float_max_m") for v in M.check(m))
    gt.object_held[:] = True  # a held object may be in the air
    assert M.consistency_metrics(gt, character[0], table_geometry)["object_float_max_m"] == 0.0


def test_hand_object_distance(table_scene, character, table_geometry):
    model = character[0]
    gt = rest_gt(table_scene, *character)
    hand = model.lbs(gt.bone_world()[0])[M.bone_vertices(model, "wrist.R")]
    low = hand[np.argmin(hand[:, 2])]
    lo, hi = table_geometry.object_mesh("target").bounds
    # the box centred under the lowest hand vertex, its top 2 cm below it
    gt.object_pos[:, 0] = [low[0], low[1], low[2] - 0.02 - hi[2]]
    gt.object_quat[:, 0] = [1.0, 0.0, 0.0, 0.0]
    gt.object_pos[:, 0, :2] -= (lo[:2] + hi[:2]) / 2
    gt.object_held[:] = True
    c = gt.contact_names.index("right_hand")
    gt.contact[:, c], gt.contact_object[:, c] = True, 0
    m = M.consistency_metrics(gt, model, table_geometry)
    assert m["hand_object_distance_max_m"] == pytest.approx(0.02, abs=1e-9)
    assert m["hand_object_penetration_max_m"] == 0.0
    gt.object_pos[:, 0, 2] += 0.05  # now the hand is 3 cm deep in the box
    m = M.consistency_metrics(gt, model, table_geometry)
    assert m["hands"]["right_hand"]["penetration_object"] == "target"
    assert m["hand_object_penetration_max_m"] == pytest.approx(0.03, abs=1e-9)


def test_joint_angular_speed(table_scene, character, table_geometry):
    gt = rest_gt(table_scene, *character)
    omega = 3.0  # rad/s about z for one bone
    j = gt.bone_names.index("head")
    a = omega * np.arange(FRAMES) / FPS
    gt.joint_rot[:, j] = np.c_[np.cos(a / 2), np.zeros(FRAMES), np.zeros(FRAMES), np.sin(a / 2)]
    s = M.smoothness(gt)
    assert s["joint_speed_max_rad_s"] == pytest.approx(omega, rel=1e-9)
    assert s["joint_speed_bone"] == "head"
    assert s["joint_accel_max_rad_s2"] == pytest.approx(0.0, abs=1e-6)
    # a sudden stop: the velocity drops to 0 in one frame
    gt.joint_rot[FRAMES // 2:, j] = gt.joint_rot[FRAMES // 2, j]
    assert M.smoothness(gt)["joint_accel_max_rad_s2"] == pytest.approx(omega * FPS, rel=1e-9)


def test_knee_flexion_and_range_violation(table_scene, character, table_geometry):
    model = character[0]
    gt = rest_gt(table_scene, *character)
    rest = M.hinge_flexion(gt, model, "left_knee")
    hip, knee, ankle = (gt.joint(n)[0] for n in ("left_hip", "left_knee", "left_ankle"))
    u, f = knee - hip, ankle - knee
    assert rest[0] == pytest.approx(math.degrees(math.acos(u @ f / np.linalg.norm(u) / np.linalg.norm(f))), abs=1e-6)
    assert rest[0] > 0  # the rest knee bends forward slightly
    # swing the shank backwards to 170 degrees of flexion about the hip's lateral axis
    i = gt.joint_names.index("left_ankle")
    lateral = character[1][:3, :3] @ np.cross(model.joints["left_knee"] - model.joints["left_hip"], [-1.0, 0, 0])
    lateral /= np.linalg.norm(lateral)  # the knee's hinge axis (the character's left, placed)
    n = u / np.linalg.norm(u)
    back = np.cross(lateral, n)  # flexion rotates the shank from n towards this direction
    ang = math.radians(170.0)
    gt.joint_pos[:, i] = knee + np.linalg.norm(f) * (math.cos(ang) * n + math.sin(ang) * back)
    assert M.hinge_flexion(gt, model, "left_knee")[0] == pytest.approx(170.0, abs=1e-6)
    r = M.joint_ranges(gt, model)
    assert r["joint_range_violations"] == FRAMES and r["knee_flexion_max_deg"] == pytest.approx(170.0, abs=1e-6)
    # hyperextension counts too
    gt.joint_pos[:, i] = knee + np.linalg.norm(f) * (math.cos(math.radians(-20)) * n + math.sin(math.radians(-20)) * back)
    assert M.joint_ranges(gt, model)["knee_flexion_min_deg"] == pytest.approx(-20.0, abs=1e-6)


def test_sole_is_flat_at_rest(character):
    model = character[0]
    for bone in ("foot.L", "foot.R"):
        sole = M.sole_vertices(model, bone)
        assert len(sole) > 20 and model.vertices[sole, 2].min() == pytest.approx(0.0, abs=1e-9)
