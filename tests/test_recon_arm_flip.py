"""A seen arm's depth flips (grail.recon.arm_flip): they reproject alike, and a held object turns a
flipped arm back onto the truth."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from grail.recon.arm_flip import (align, arm_configurations, choose_configuration, seen_arms,
                                   settle_arm_flips)
from grail.recon.body import TorchRig, hinge_axes
from grail.recon.hoi import pose_of, rig_pose

from _arm_helpers import farthest_flip

SIDE = "right"
BOX = 0.2  # m, the held cube's side


@pytest.fixture(scope="module")
def posed(truth_of):
    """pickup_table seed 0: (rig, root, true local rotations, camera)."""
    truth = truth_of("pickup_table", 0)
    return (TorchRig.load(truth.scene_dir / "character.npz"), *pose_of(truth.gt), truth.camera)


def _arm(rig, root, local, side=SIDE):
    pos, deltas = rig_pose(rig, root, local)
    bones = [rig.joint_bones[f"{side}_{name}"] for name in ("shoulder", "elbow", "wrist")]
    return pos, deltas, bones, [pos[:, b] for b in bones]


def test_the_four_configurations_reproject_alike_and_keep_the_bones(posed):
    rig, root, local, camera = posed
    _, _, _, (S, E, W) = _arm(rig, root, local)
    eye = camera.T_world_cam[:3, 3]
    elbows, wrists, exists = arm_configurations(eye, S, E, W)
    assert exists.sum(axis=0).min() >= 1 and not exists.all()  # some flips cannot reach the wrist's ray
    for e, w, ok in zip(elbows, wrists, exists):
        assert np.allclose(camera.project(e)[0], camera.project(E)[0], atol=1e-6)
        assert np.allclose(camera.project(w)[0], camera.project(W)[0], atol=1e-6)
        assert np.allclose(np.linalg.norm(e - S, axis=-1), np.linalg.norm(E - S, axis=-1), atol=1e-6)
        assert np.allclose(np.linalg.norm(w - e, axis=-1)[ok], np.linalg.norm(W - E, axis=-1)[ok], atol=1e-6)
        assert (np.linalg.norm(w - e, axis=-1)[~ok] > np.linalg.norm(W - E, axis=-1)[~ok]).all()
    fitted = np.linalg.norm(wrists - W, axis=-1).min(axis=0)  # the fitted arm is one of them
    assert fitted.max() < 1e-6
    assert np.linalg.norm(wrists - W, axis=-1).max(axis=0).mean() > 0.05  # and the others differ


def test_reaiming_the_arm_puts_elbow_and_wrist_on_their_targets(posed):
    rig, root, local, camera = posed
    flipped, elbow, wrist = farthest_flip(rig, root, local, camera.T_world_cam[:3, 3], SIDE)
    _, _, _, (S, E, W) = _arm(rig, root, flipped)
    assert np.abs(E - elbow).max() < 1e-6 and np.abs(W - wrist).max() < 1e-6
    _, _, _, (S0, _, _) = _arm(rig, root, local)
    assert np.abs(S - S0).max() < 1e-9  # the shoulder stays
    left = rig.joint_bones["left_wrist"]
    assert np.abs(rig_pose(rig, root, flipped)[0][:, left] - rig_pose(rig, root, local)[0][:, left]).max() < 1e-9


def test_a_reaimed_forearm_bends_about_its_hinge_only_and_forward(posed):
    rig, root, local, camera = posed
    flipped, _, _ = farthest_flip(rig, root, local, camera.T_world_cam[:3, 3], SIDE)
    hinged, axes = hinge_axes(rig)
    fore = rig.joint_bones[f"{SIDE}_elbow"]
    axis = axes.numpy()[hinged.index(fore)]
    turn = flipped[:, fore]
    assert np.abs(turn - (turn @ axis)[:, None] * axis).max() < 1e-9  # no turn off the hinge
    pos, _, _, (S, E, W) = _arm(rig, root, flipped)
    rest, _, _, (S0, E0, W0) = _arm(rig, root[:1], np.zeros_like(local[:1]))
    upper, forearm = E - S, W - E
    bend = np.arccos((upper * forearm).sum(-1) / np.linalg.norm(upper, axis=-1) / np.linalg.norm(forearm, axis=-1))
    rest_bend = np.arccos(_cos(E0 - S0, W0 - E0))[0]
    # forward: the hinge angle is the bend less the rest pose's (within the forearm's small tilt
    # off its hinge plane), not the backward bend that reaches the same wrist (about -bend - rest)
    assert np.abs(turn @ axis - (bend - rest_bend)).max() < 0.02 and (turn @ axis).min() > -rest_bend


def _cos(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_a_held_cube_turns_a_flipped_arm_back_onto_the_truth(posed):
    rig, root, local, camera = posed
    eye = camera.T_world_cam[:3, 3]
    _, _, _, (_, E, W) = _arm(rig, root, local)
    forearm = (W - E) / np.linalg.norm(W - E, axis=-1, keepdims=True)
    reach = 0.07
    centre = W + (reach + 0.016 + BOX / 2) * forearm  # the palm touches the cube's face ahead of it
    mesh = trimesh.creation.box(extents=(BOX, BOX, BOX))
    rot = np.repeat(np.eye(3)[None], len(root), 0)
    flipped, _, wrist = farthest_flip(rig, root, local, eye, SIDE)
    far = np.flatnonzero(np.linalg.norm(wrist - W, axis=-1) > 0.15)
    held = np.zeros((len(root), 2), bool)
    held[far[len(far) // 3:], 1] = True  # the first third of the flipped frames not held
    settled, changed = settle_arm_flips(rig, root, flipped, eye, held, mesh, centre, rot, np.array([reach, reach]), 0.05)
    _, _, _, (_, _, W2) = _arm(rig, root, settled)
    assert held[:, 1].sum() > 10 and changed[:, 1].sum() >= 0.9 * held[:, 1].sum()
    assert not changed[:, 0].any() and not changed[~held[:, 1], 1].any()
    back = np.linalg.norm(W2 - W, axis=-1)[changed[:, 1]]  # the truth, or another flip as near the cube
    assert (back < 1e-3).mean() > 0.75 and back.max() < 0.05
    assert np.array_equal(settled[~held[:, 1]], flipped[~held[:, 1]])
    kept, none = settle_arm_flips(rig, root, flipped, eye, held, mesh, centre, rot, np.array([reach, reach]), 10.0)
    assert np.array_equal(kept, flipped) and not none.any()


def test_a_flip_is_taken_only_when_nearer_by_the_margin_and_near_enough():
    gaps = np.array([[0.30, 0.10, 0.20], [0.02, 0.08, 0.50]])
    fitted = np.array([0.30, 0.10, 0.20])
    assert choose_configuration(gaps, fitted, 0.05).tolist() == [1, -1, -1]
    assert choose_configuration(gaps, fitted, 0.05, within_m=0.03).tolist() == [1, -1, -1]
    assert choose_configuration(gaps, fitted, 0.05, within_m=0.01).tolist() == [-1, -1, -1]  # not near enough


def test_align_turns_each_direction_onto_the_other_even_when_opposite():
    a = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.3, 0.4, 0.5], [0.0, 2.0, 0.0]])
    b = np.array([[0.0, 0.0, -2.0], [0.0, 1.0, 0.0], [0.3, 0.4, 0.5], [1.0, 1.0, 0.0]])
    R = align(a, b)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    assert np.allclose(np.einsum("tij,tj->ti", R, unit(a)), unit(b), atol=1e-12)
    assert np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-12) and np.allclose(np.linalg.det(R), 1.0)


def test_only_arms_seen_surely_at_elbow_and_wrist_count_as_seen():
    from grail.recon.keypoints import KEYPOINTS
    from grail.recon.observations import Observations

    conf = np.full((3, len(KEYPOINTS)), 0.9)
    conf[1, KEYPOINTS.index("left_wrist")] = 0.2   # a hidden wrist
    conf[2, KEYPOINTS.index("right_elbow")] = 0.0  # an elbow not found
    obs = Observations(24.0, 320, 180, "test", False, list(KEYPOINTS), np.zeros((3, len(KEYPOINTS), 2)), conf)
    assert seen_arms(obs, 0.5).tolist() == [[True, True], [False, True], [True, False]]
