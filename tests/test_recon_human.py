"""Reconstruct stage, human side (first slice): the torch rig against the ground truth, the oracle
estimator, the observations file, and the pose fit on oracle input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from grail.errors import GrailError
from grail.recon.body import TorchRig, rotvec_to_matrix
from grail.recon.contacts import CONTACT_NAMES, ContactLabels
from grail.recon.fit_human import (FREE, SPINE, SPINE_RANGE_RAD, FitOptions, HumanTerms, _squat_start, fit_human,
                                   pelvis_pitched)
from grail.recon.fit_start import headings, initial_roots
from grail.recon.hoi import build_hoi, pose_of, rig_pose
from grail.recon.keypoints import (DEPTH_ORDER_JOINTS, KEYPOINTS, MEDIAPIPE_FAR_OFFSETS_M, MEDIAPIPE_INDEX,
                                   MEDIAPIPE_NEAR_OFFSETS_M, PARTNER, depth_order_evidence, keypoint_offsets,
                                   landmark_points)
from grail.recon.observations import Observations
from grail.recon.oracle import OracleOptions, oracle_observations
from grail.scene.camera import PinholeCamera
from grail.video.render import scaled_camera
from scipy.spatial.transform import Rotation


@pytest.fixture(scope="module")
def scene(truth_of):
    """pickup_table seed 0: (scene dir, ground truth, camera at 1280x720)."""
    return truth_of("pickup_table", 0)


def test_rotvec_matches_scipy_and_is_smooth_at_zero():
    v = torch.tensor([[0.3, -1.2, 0.5], [1e-9, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    R = rotvec_to_matrix(v)
    assert np.allclose(R.detach().numpy(), Rotation.from_rotvec(v.detach().numpy()).as_matrix(), atol=1e-12)
    R.sum().backward()
    assert torch.isfinite(v.grad).all()


def test_torch_rig_reproduces_the_ground_truth_exactly(scene):
    scene_dir, gt, _ = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    pos, deltas = rig.forward(torch.tensor(gt.root_pos), torch.tensor(pose_of(gt)[1]))
    assert np.abs(pos.numpy() - gt.bone_pos_w).max() < 1e-9
    joints = rig.joints(pos, gt.joint_names).numpy()
    assert np.abs(joints - gt.joint_pos).max() < 1e-9


def test_a_pose_stored_in_the_hoi_layout_reads_back_as_the_same_pose(scene):
    scene_dir, gt, _ = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    root, local = pose_of(gt)
    root, local = root[:6], local[:6] + np.random.default_rng(0).normal(0.0, 0.3, local[:6].shape)  # not the truth's
    T, C = len(root), len(CONTACT_NAMES)
    labels = ContactLabels(list(CONTACT_NAMES), np.zeros((T, C), bool), np.full((T, C), -1), np.zeros((T, 0), bool))
    stored = build_hoi(rig, root, local, gt.fps, gt.joint_names, [], np.zeros((T, 0, 3)), np.zeros((T, 0, 4)), labels)
    read_root, read_local = pose_of(stored)
    assert np.abs(read_root - root).max() < 1e-12
    assert np.abs(rig_pose(rig, read_root, read_local)[0] - rig_pose(rig, root, local)[0]).max() < 1e-9


def test_mediapipe_correspondence_covers_every_keypoint():
    assert set(MEDIAPIPE_INDEX) == set(KEYPOINTS)
    assert len(set(MEDIAPIPE_INDEX.values())) == len(KEYPOINTS)
    for name, indices in MEDIAPIPE_INDEX.items():  # MediaPipe: odd indices left, even right (7..28)
        sides = {"left_" if index % 2 == 1 else "right_" for index in indices}
        assert sides == ({"left_", "right_"} if name == "head" else {name[:name.index("_") + 1]}), name
    assert MEDIAPIPE_INDEX["head"] == (7, 8)  # the ears' midpoint
    assert PARTNER[KEYPOINTS.index("head")] == KEYPOINTS.index("head")  # on the midline: its own mirror image


def test_oracle_projects_the_ground_truth_and_says_so(scene):
    _, gt, camera = scene
    clean = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera, OracleOptions(noise_px=0, dropout=0))
    i = gt.joint_names.index("left_wrist")
    uv, _ = camera.project(gt.joint_pos[:, i])
    assert np.allclose(clean.keypoints[:, KEYPOINTS.index("left_wrist")], uv)
    assert clean.oracle and clean.estimator.startswith("oracle(")
    noisy = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera,
                                OracleOptions(noise_px=3.0, dropout=0.2, outliers=0.05, seed=1))
    seen = (noisy.keypoint_conf > 0) & (clean.keypoint_conf > 0)
    residual = np.linalg.norm(noisy.keypoints - clean.keypoints, axis=-1)[seen]
    assert 0.75 < np.mean(noisy.keypoint_conf == 0) / 0.2 < 1.25
    assert 3.0 < np.median(residual) < 4.5  # Rayleigh median of sigma 3 is 3.5, outliers aside


def test_observations_round_trip_and_bad_files(scene, tmp_path):
    _, gt, camera = scene
    obs = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera)
    obs.save(tmp_path / "observations.npz")
    back = Observations.load(tmp_path / "observations.npz")
    assert back.oracle and back.keypoint_names == list(KEYPOINTS)
    assert np.array_equal(back.keypoints, obs.keypoints)  # bit for bit: a refit must reproduce the stage
    data = (tmp_path / "observations.npz").read_bytes()
    (tmp_path / "broken.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(GrailError, match="broken.npz: cannot read"):
        Observations.load(tmp_path / "broken.npz")
    obs.keypoints[5, 2] = np.nan
    obs.keypoint_conf[5, 2] = 0.9
    with pytest.raises(GrailError, match="keypoints: a seen keypoint is NaN"):
        obs.save(tmp_path / "nan.npz")


@pytest.mark.slow
def test_fit_started_at_the_truth_stays_near_it(scene):
    """With 3 px noise the optimum of the objective lies near the ground truth: a fit started there
    keeps the mean joint error under 40 mm (the priors' bias plus the noise)."""
    scene_dir, gt, camera = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    obs = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera, OracleOptions(noise_px=3.0, dropout=0.05))
    fit = fit_human(obs, camera, rig, lambda p: np.zeros(len(p)), FitOptions(iterations=100),
                    init_local=pose_of(gt)[1])
    joints = fit.bone_pos[:, [rig.joint_bones[n] for n in gt.joint_names]]
    assert np.linalg.norm(joints - gt.joint_pos, axis=-1).mean() < 0.040
    assert fit.reprojection_px < 5.0


@pytest.mark.slow
def test_fit_from_scratch_finds_the_character(scene):
    """From the torso-size initialisation and the character's known first placement (about 23 mm
    measured on this clip, the target is 15 mm): the root is found to within 4 cm on average and
    the joints to within 5 cm; the fit hands back its objective, finite at its optimum."""
    scene_dir, gt, camera = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    with np.load(scene_dir / "character.npz") as z:
        first_root = z["T_world_root"]
    obs = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera, OracleOptions(noise_px=3.0, dropout=0.05))
    fit = fit_human(obs, camera, rig, lambda p: np.zeros(len(p)), first_root=first_root)
    joints = fit.bone_pos[:, [rig.joint_bones[n] for n in gt.joint_names]]
    assert np.linalg.norm(fit.root_pos - gt.root_pos, axis=1).mean() < 0.04
    assert np.linalg.norm(joints - gt.joint_pos, axis=-1).mean() < 0.05
    assert fit.planted.shape == (len(gt.root_pos), 2)
    objective = fit.terms(torch.tensor(fit.root_pos), torch.tensor(fit.local), slice(None))
    assert torch.isfinite(objective) and set(fit.terms.parts(torch.tensor(fit.root_pos), torch.tensor(fit.local),
                                                               slice(None))) >= {"reprojection", "skate"}


@pytest.fixture(scope="module")
def rendered(composed, tmp_path_factory):
    """pickup_table seed 0 rendered at 320x180 (the character about 60 px tall): its first 48
    frames and the ground-truth keypoints projected onto them."""
    from _video_helpers import copy_sequence
    from grail.render.video_io import read_frames
    from grail.video.generate import GenerateOptions, generate_sequence
    from grail.video.gt import GroundTruth

    seq = copy_sequence(composed("pickup_table", 0), tmp_path_factory.mktemp("rendered"))
    generate_sequence(seq, GenerateOptions(width=320, height=180, check_joints=False))
    frames = list(read_frames(seq / "video" / "video.mp4"))[:48]
    gt = GroundTruth.load(seq / "video" / "gt.npz")
    camera = scaled_camera(PinholeCamera.from_json(json.loads((seq / "scene" / "camera.json").read_text())), 320, 180)
    truth = oracle_observations(gt.joint_names, gt.joint_pos[:48], gt.fps, camera, OracleOptions(noise_px=0, dropout=0))
    return frames, truth.keypoints


@pytest.mark.slow
def test_mediapipe_finds_the_rendered_character(rendered):
    """MediaPipe Pose, offline, on the procedural video: a person in nearly every frame and its
    keypoints within a few pixels of the projected ground-truth joints."""
    from grail.recon.estimators import MediaPipeEstimator

    frames, truth = rendered
    obs = MediaPipeEstimator().estimate(frames, 24.0, 320, 180)
    assert not obs.oracle and "mediapipe" in obs.estimator
    assert np.mean(obs.keypoint_conf.max(axis=1) > 0) >= 0.9
    seen = obs.keypoint_conf > 0.3
    error = np.linalg.norm(obs.keypoints - truth, axis=-1)[seen]
    assert seen.mean() > 0.6 and np.median(error) < 5.0, (seen.mean(), np.median(error))


@pytest.mark.slow
def test_a_second_look_finds_a_small_person_the_video_pass_missed(rendered):
    """The rendered clip zoomed into a 1280x720 frame, the character growing from about 120 to 180
    px tall: the whole-frame pass misses the first frames, and the crops around the person found
    later track it back to the first frame, its keypoints as close to the truth as elsewhere."""
    import cv2
    from grail.recon.estimators import MediaPipeEstimator

    frames, truth = rendered
    centre = truth.reshape(-1, 2).mean(axis=0)
    zoom = np.linspace(2.0, 3.0, len(frames))
    shift = np.array([640.0, 360.0]) - zoom[:, None] * centre  # the character's middle at the frame's
    big = [cv2.warpAffine(f, np.array([[k, 0, dx], [0, k, dy]]), (1280, 720), borderValue=(200, 200, 200))
           for f, k, (dx, dy) in zip(frames, zoom, shift)]
    expected = zoom[:, None, None] * (truth + 0.5) + shift[:, None] - 0.5  # pixel centres scale about the corner
    once = MediaPipeEstimator(second_look=False).estimate(big, 24.0, 1280, 720)
    found_once = once.keypoint_conf.max(axis=1) > 0
    assert not found_once[:8].any() and found_once.any(), np.flatnonzero(found_once)
    obs = MediaPipeEstimator().estimate(big, 24.0, 1280, 720)
    assert (obs.keypoint_conf.max(axis=1) > 0).all()
    assert np.array_equal(obs.keypoints[found_once], once.keypoints[found_once])  # the frames it found stay
    filled = ~found_once[:, None] & (obs.keypoint_conf > 0.3)
    error = np.linalg.norm(obs.keypoints - expected, axis=-1)
    assert filled.sum() > 8 * 8 and np.median(error[filled]) < 6.0, np.median(error[filled])


def test_support_map_finds_the_treads_under_the_planted_feet(truth_of):
    """On the stairs, every planted ankle stands its rest height above the support the map gives."""
    from grail.recon.supports import SupportMap

    scene_dir, gt, _ = truth_of("stairs_up", 0)
    support = SupportMap.from_scene(scene_dir / "scene.xml", gt.root_pos[:, :2].mean(axis=0), half_extent=3.0)
    assert support.heights.max() > 0.3  # the treads are there
    for side in ("left", "right"):
        ankle = gt.joint(f"{side}_ankle")
        planted = gt.contact_of(f"{side}_foot")
        above = ankle[planted, 2] - support(ankle[planted])
        assert np.ptp(above) < 0.003 and 0.04 < above.mean() < 0.07  # one rest ankle height, on every tread
    assert support(np.array([[100.0, 100.0, 0.0]]))[0] == 0.0  # off the map: the floor


def test_keypoints_sit_at_their_offsets_on_the_posed_bones(scene):
    """The oracle sees the joints themselves; MediaPipe's calibrated landmarks ride on their bones."""
    scene_dir, gt, _ = scene
    assert not keypoint_offsets("oracle(noise_px=3.0)").any()
    mediapipe = keypoint_offsets("mediapipe-pose==0.10.14 (model_complexity=1, video mode)")
    assert mediapipe.shape == (2, len(KEYPOINTS), 3)
    assert np.allclose(mediapipe[0, KEYPOINTS.index("right_hip")], MEDIAPIPE_NEAR_OFFSETS_M["right_hip"])
    assert np.allclose(mediapipe[1, KEYPOINTS.index("right_hip")], MEDIAPIPE_FAR_OFFSETS_M["right_hip"])
    assert [KEYPOINTS[k] for k in PARTNER[:2]] == ["right_shoulder", "left_shoulder"]
    for table in (MEDIAPIPE_NEAR_OFFSETS_M, MEDIAPIPE_FAR_OFFSETS_M):  # calibrated as mirror images
        for name in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            assert np.allclose(table[f"left_{name}"], np.array(table[f"right_{name}"]) * [1, -1, 1])
    assert not np.any([MEDIAPIPE_FAR_OFFSETS_M[f"left_{name}"] for name in ("elbow", "wrist")])  # a hidden arm: a guess
    rig = TorchRig.load(scene_dir / "character.npz")
    pos, deltas = rig.forward(torch.tensor(gt.root_pos), torch.tensor(pose_of(gt)[1]))
    offsets = torch.zeros((len(KEYPOINTS), 3), dtype=torch.float64)
    offsets[KEYPOINTS.index("left_wrist")] = torch.tensor([0.1, 0.0, 0.0])
    points = rig.points(pos, deltas, KEYPOINTS, offsets).numpy()
    moved = points[:, KEYPOINTS.index("left_wrist")] - gt.joint("left_wrist")
    assert np.allclose(np.linalg.norm(moved, axis=1), 0.1)  # 10 cm along the turned bone, every frame
    assert np.allclose(moved, deltas[:, rig.joint_bones["left_wrist"], :, 0].numpy() * 0.1)
    assert np.allclose(np.delete(points, KEYPOINTS.index("left_wrist"), 1),
                       np.delete(rig.joints(pos, KEYPOINTS).numpy(), KEYPOINTS.index("left_wrist"), 1))


def test_landmarks_take_the_near_offset_on_the_side_facing_the_camera(scene):
    """A joint nearer the camera than its mirror image carries the near offset, the other the far
    one, and a pair at equal distance the mean of the two."""
    scene_dir, gt, _ = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    pos, deltas = rig.forward(torch.tensor(gt.root_pos), torch.tensor(pose_of(gt)[1]))
    offsets = torch.zeros((2, len(KEYPOINTS), 3), dtype=torch.float64)
    offsets[0, :, 2], offsets[1, :, 2] = 0.05, -0.05  # near: 5 cm up the bone, far: 5 cm down
    right_of_body = pos[:, :1] - 3.0 * deltas[:, :1, :, 1]  # 3 m to the character's right, every frame
    points = landmark_points(rig, pos, deltas, offsets, right_of_body)
    shift = ((points - rig.joints(pos, KEYPOINTS)) * deltas[:, [rig.joint_bones[k] for k in KEYPOINTS], :, 2]).sum(-1)
    for name in ("shoulder", "hip"):
        assert np.allclose(shift[:, KEYPOINTS.index(f"right_{name}")], 0.05, atol=1e-4)
        assert np.allclose(shift[:, KEYPOINTS.index(f"left_{name}")], -0.05, atol=1e-4)
    behind = pos[:, :1] - 3.0 * deltas[:, :1, :, 0]  # 3 m behind the pelvis: both hips equally far
    level = landmark_points(rig, pos[:1], deltas[:1], offsets, behind[:1])
    assert np.allclose((level - rig.joints(pos[:1], KEYPOINTS))[0, KEYPOINTS.index("left_hip")].numpy(), 0, atol=2e-3)


def test_heading_track_ignores_frames_without_a_person(scene):
    """MediaPipe can miss the person in the first frames: those frames take their heading from the
    frames that show one (they used to take the first of the candidates, -180 deg, and the whole
    track was turned by it onto the known first heading)."""
    scene_dir, gt, camera = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    with np.load(scene_dir / "character.npz") as z:
        first_root = z["T_world_root"]
    obs = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera, OracleOptions(noise_px=0.0, dropout=0.0))
    obs.keypoint_conf[:6] = 0.0
    _, yaws = initial_roots(obs, camera, rig, lambda p: np.zeros(len(p)), 24, 0.15, 0.3, first_root)
    facing = Rotation.from_quat(gt.root_quat[:, [1, 2, 3, 0]]).as_matrix()[:, :, 0]
    truth = np.arctan2(facing[:, 1], facing[:, 0])
    error = np.abs(np.angle(np.exp(1j * (yaws - truth))))
    assert np.degrees(error).mean() < 15.0, np.degrees(error).mean()


def _terms(scene, support, **options) -> tuple[HumanTerms, TorchRig]:
    scene_dir, gt, camera = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    obs = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera, OracleOptions(noise_px=0.0, dropout=0.0))
    return HumanTerms(obs, camera, rig, support, FitOptions(**options)), rig


def test_the_spine_keeps_to_its_range_of_motion(scene):
    """Only the spine's summed turn beyond its anatomical range costs: a back twisted half round
    (what one view cannot tell from a body facing the hips' way) does; a forward bend does not."""
    terms, rig = _terms(scene, lambda p: np.zeros(len(p)))
    spine = [rig.names.index(name) for name in SPINE]
    local = torch.zeros((3, rig.bones, 3), dtype=torch.float64)
    local[0, spine, 1] = 1.0 / len(spine)       # bent forward 1.0 rad: within flexion (1.40)
    local[1, spine, 2] = 1.5 / len(spine)       # twisted 1.5 rad: 0.71 beyond rotation (0.79)
    local[2, spine, 1] = -0.6 / len(spine)      # bent back 0.6 rad: 0.16 beyond extension (0.44)
    pos, deltas = rig.forward(torch.zeros((3, 3), dtype=torch.float64), local)
    excess = terms._limits(pos, deltas, local).numpy()
    assert excess[0] == pytest.approx(0.0, abs=1e-12)
    assert excess[1] == pytest.approx((1.5 - SPINE_RANGE_RAD[2][1]) ** 2)
    assert excess[2] == pytest.approx((0.6 + SPINE_RANGE_RAD[1][0]) ** 2)


def test_pelvis_pitched_moves_a_share_of_the_bend_and_keeps_the_body(scene):
    """The back bent forward 1.0 rad: half of it moves into the pelvis, which tips forward by 0.5
    rad about its left axis; every other bone keeps its world orientation and every joint stays
    within millimetres (the hips lie on the pelvis' left axis). The bones the fit does not turn
    stay at rest, as in a fit."""
    scene_dir, _, _ = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    spine = [rig.names.index(name) for name in SPINE]
    local = np.random.default_rng(1).normal(0.0, 0.2, (4, rig.bones, 3))
    local[:, [j for j, name in enumerate(rig.names) if name not in FREE]] = 0.0
    local[:, spine, 1] = 1.0 / len(spine)
    moved = pelvis_pitched(rig, local, 0.5)
    assert moved[:, spine, 1].sum(axis=1) == pytest.approx(np.full(4, 0.5), abs=0.05)
    root = np.zeros((4, 3))
    pos, deltas = rig_pose(rig, root, local)
    pos2, deltas2 = rig_pose(rig, root, moved)
    forward, forward2 = deltas[:, 0, :, 0], deltas2[:, 0, :, 0]
    tipped = np.degrees(np.arccos(np.clip((forward * forward2).sum(-1), -1, 1)))
    assert tipped == pytest.approx(np.full(4, np.degrees(0.5)), abs=0.1)
    pelvis = {0} | {j for j, parent in enumerate(rig.parents) if parent == 0 and rig.names[j] not in FREE}
    kept = [j for j in range(rig.bones) if j not in pelvis]
    assert np.abs(deltas2[:, kept] - deltas[:, kept]).max() < 1e-9
    assert np.abs(pos2 - pos).max() < 0.005


@pytest.mark.slow
def test_a_fit_started_with_the_bend_in_the_back_tips_the_pelvis_like_the_truth(scene):
    """Started from the truth with its pelvis levelled and the back bent by as much again (the
    same joints: the fit's wrong basin when bending), the fit tips the pelvis back toward the
    truth's only where the bend is shared with the pelvis before its last stage."""
    scene_dir, gt, camera = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    truth = pose_of(gt)[1]
    truth[:, [j for j, name in enumerate(rig.names) if name not in FREE]] = 0.0
    start = pelvis_pitched(rig, truth, -1.0)
    obs = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera, OracleOptions(noise_px=0.0, dropout=0.0))
    spine = [rig.names.index(name) for name in SPINE]
    bent = truth[:, spine, 1].sum(axis=1) > 0.2
    truth_forward = rig_pose(rig, gt.root_pos, truth)[1][bent, 0, :, 0]
    errors = []
    for share in (0.0, 0.5):
        fit = fit_human(obs, camera, rig, lambda p: np.zeros(len(p)), FitOptions(iterations=100, pelvis_share=share),
                        init_local=start)
        forward = fit.deltas[bent, 0, :, 0]
        errors.append(np.degrees(np.arccos(np.clip((forward * truth_forward).sum(-1), -1.0, 1.0))).mean())
    assert errors[1] < 0.5 * errors[0]


def test_standing_on_a_wrong_support_costs_a_bounded_amount(scene):
    """A support looked up under a foot that is really on another one (the next stair) pulls at
    most (ground_robust_m / ground_m)^2 per frame; quadratic, the same 0.4 m gap cost 1600."""
    _, gt, _ = scene
    root, local = torch.tensor(gt.root_pos), torch.tensor(pose_of(gt)[1])
    costs = {}
    for robust in (0.0, 0.05):
        terms, rig = _terms(scene, lambda p: np.full(len(p), -0.4), ground_robust_m=robust)
        terms.look_down(rig.forward(root, local)[0])
        costs[robust] = float(terms.parts(root, local, slice(None))["ground"]) / len(root)
    assert costs[0.05] <= (0.05 / 0.01) ** 2
    assert costs[0.0] > 1000.0


def test_squat_start_folds_the_legs_over_the_feet_it_stood_on(scene):
    """A tracking window's squat start keeps the last frame's ankles where they were, lowers the
    pelvis by more than a quarter of its height, tips the body forward (knees ahead of the ankles
    along its heading) and repeats over the window's frames."""
    _, gt, _ = scene
    terms, rig = _terms(scene, lambda p: np.zeros(len(p)))
    last_root, last_local = torch.tensor(gt.root_pos[0]), torch.tensor(pose_of(gt)[1][0])
    roots, turns = _squat_start(terms, last_root, last_local, frames=5)
    assert roots.shape == (5, 3) and turns.shape == (5, len(terms.free), 3)
    local = last_local.clone()
    local[terms.free] = turns[0]
    before, _ = rig.forward(last_root[None], last_local[None])
    after, _ = rig.forward(roots[:1], local[None])
    ankles = [rig.joint_bones[f"{side}_ankle"] for side in ("left", "right")]
    knees = [rig.joint_bones[f"{side}_knee"] for side in ("left", "right")]
    assert torch.allclose(after[0, ankles].mean(0), before[0, ankles].mean(0), atol=1e-9)
    pelvis = rig.joint_bones["pelvis"]
    drop = float(before[0, pelvis, 2] - after[0, pelvis, 2])
    assert drop > 0.25 * float(before[0, pelvis, 2] - before[0, ankles, 2].mean()), drop
    facing = Rotation.from_rotvec(last_local[0].numpy()).as_matrix()[:, 0]
    ahead = ((after[0, knees] - after[0, ankles]).numpy() @ facing)
    assert (ahead > 0.1).all(), ahead


def test_the_arm_prior_is_centred_outward_of_each_shoulder(scene):
    """Relaxed arms hang clear of the torso: the ground truth's elbows and wrists cost less with the
    prior centred 4.5 cm outward of their shoulder than at the shoulder's plane, and more centred
    4.5 cm inward; a sign wrong on one side would make the outward and inward centres cost alike."""
    _, gt, _ = scene
    root, local = torch.tensor(gt.root_pos), torch.tensor(pose_of(gt)[1])
    costs = {}
    for out in (-0.045, 0.0, 0.045):
        terms, rig = _terms(scene, lambda p: np.zeros(len(p)), arm_out_m=out)
        pos, deltas = rig.forward(root, local)
        costs[out] = float(terms._arms(pos, deltas).mean())
    assert costs[0.045] < 0.8 * costs[0.0], costs
    assert costs[-0.045] > 2.0 * costs[0.0], costs


def test_the_wrists_and_elbows_pay_the_arm_prior_at_their_own_scales(scene):
    """The elbows' sideways offsets cost over arm_side_m, the wrists' over wrist_side_m (which the
    fit's last stage keeps while it loosens the elbows): each part scales with its own scale only."""
    _, gt, _ = scene
    root, local = torch.tensor(gt.root_pos), torch.tensor(pose_of(gt)[1])

    def cost(elbow_m: float, wrist_m: float) -> float:
        terms, rig = _terms(scene, lambda p: np.zeros(len(p)), arm_side_m=elbow_m, wrist_side_m=wrist_m)
        pos, deltas = rig.forward(root, local)
        return float(terms._arms(pos, deltas).sum())

    elbows, wrists = cost(0.1, 1e9), cost(1e9, 0.1)
    assert elbows > 1.0 and wrists > 1.0
    assert cost(0.1, 0.1) == pytest.approx(elbows + wrists, rel=1e-9)
    assert cost(0.3, 0.1) == pytest.approx(elbows / 9 + wrists, rel=1e-9)


def test_the_trunk_and_arms_accelerate_on_a_tighter_scale_than_the_legs(scene):
    """A body still over five frames but for a 1 cm jolt of the middle one: each joint's second
    differences are (1, -2, 1) cm, so each costs 6 cm^2 over its scale squared, the four knees and
    ankles at accel_m and the other eleven joints at upper_accel_m."""
    terms, rig = _terms(scene, lambda p: np.zeros(len(p)), accel_m=0.03, upper_accel_m=0.015)
    root = torch.zeros((5, 3), dtype=torch.float64)
    root[2, 0] = 0.01
    local = torch.zeros((5, rig.bones, 3), dtype=torch.float64)
    smooth = float(terms.parts(root, local, slice(0, 5))["smoothness"])
    assert len(terms.tracked) == 15
    assert smooth == pytest.approx(6e-4 * (4 / 0.03 ** 2 + 11 / 0.015 ** 2), rel=1e-6)


def _with_conf(obs: Observations, estimator: str, conf: dict[str, float]) -> Observations:
    c = np.full(obs.keypoint_conf.shape, 0.95)
    for name, value in conf.items():
        c[:, KEYPOINTS.index(name)] = value
    return Observations(obs.fps, obs.width, obs.height, estimator, False, list(KEYPOINTS), obs.keypoints.copy(), c)


def test_a_visibility_gap_tells_which_of_a_pair_is_nearer(scene):
    """MediaPipe's confidence is a visibility: a clear gap between a pair says which one the body
    hides. Full evidence from a gap of 0.4, none under 0.2 or from an estimator whose confidence
    is no visibility, or for a joint outside the image."""
    _, gt, camera = scene
    obs = oracle_observations(gt.joint_names, gt.joint_pos[:1], gt.fps, camera, OracleOptions(noise_px=0.0, dropout=0.0))
    gaps = {"left_knee": 0.95, "right_knee": 0.45, "left_ankle": 0.6, "right_ankle": 0.9, "left_elbow": 0.8, "right_elbow": 0.7}
    evidence = depth_order_evidence(_with_conf(obs, "mediapipe", gaps))
    assert list(DEPTH_ORDER_JOINTS) == ["knee", "ankle", "elbow"]
    assert evidence[0] == pytest.approx([1.0, -0.5, 0.0])
    assert not depth_order_evidence(_with_conf(obs, "oracle", gaps)).any()
    outside = _with_conf(obs, "mediapipe", gaps)
    outside.keypoints[0, KEYPOINTS.index("right_knee")] = [-5.0, 10.0]
    assert depth_order_evidence(outside)[0, 0] == 0.0


def test_the_depth_order_term_costs_only_a_pair_the_wrong_way_round(scene):
    """Evidence that agrees with the pose costs nothing; evidence against it costs the pair's gap
    in distance to the camera over order_m, squared, times its strength."""
    _, gt, _ = scene
    root, local = torch.tensor(gt.root_pos), torch.tensor(pose_of(gt)[1])
    terms, rig = _terms(scene, lambda p: np.zeros(len(p)))
    pos, _ = rig.forward(root, local)
    eye = terms.t_wc
    gap = torch.stack([(pos[:, rig.joint_bones[f"left_{j}"]] - eye).norm(dim=-1)
                       - (pos[:, rig.joint_bones[f"right_{j}"]] - eye).norm(dim=-1) for j in DEPTH_ORDER_JOINTS], 1)
    truth = -torch.sign(gap)  # +1 where the left one is nearer
    terms.order = truth
    assert float(terms._depth_order(pos, slice(None)).sum()) == pytest.approx(0.0)
    terms.order = -0.5 * truth
    expected = 0.5 * float((gap ** 2).sum()) / terms.options.order_m ** 2
    assert float(terms._depth_order(pos, slice(None)).sum()) == pytest.approx(expected, rel=1e-9)
    assert expected > 100.0


def test_the_heading_of_a_side_view_follows_which_side_is_hidden(scene):
    """Seen from the side, a body and the same body turned half round project alike; the side the
    estimator reports less visible is the far one, and the heading track follows it."""
    scene_dir, gt, camera = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    ahead = camera.R_world_cam[:, 2] * np.array([1.0, 1.0, 0.0])
    root = camera.position * np.array([1.0, 1.0, 0.0]) + 3.5 * ahead / np.linalg.norm(ahead)
    root[2] = gt.root_pos[0, 2]
    ray = root[:2] - camera.position[:2]
    yaw = float(np.arctan2(-ray[0], ray[1]))  # the left axis along the ray: the right side faces the camera
    yaw = np.round(yaw / (np.pi / 12)) * np.pi / 12  # on the candidates' grid
    local = torch.zeros((3, rig.bones, 3), dtype=torch.float64)
    local[:, 0, 2] = yaw
    pos, _ = rig.forward(torch.tensor(np.repeat(root[None], 3, 0)), local)
    obs = oracle_observations(KEYPOINTS, rig.joints(pos, KEYPOINTS).numpy(), 24.0, camera,
                              OracleOptions(noise_px=0.0, dropout=0.0))
    roots = np.repeat(root[None], 3, 0)
    for hidden, expected in (("left", yaw), ("right", yaw + np.pi)):
        seen = _with_conf(obs, "mediapipe", {f"{hidden}_{j}": 0.3 for j in DEPTH_ORDER_JOINTS})
        error = np.angle(np.exp(1j * (headings(seen, camera, rig, roots, 24) - expected)))
        assert np.degrees(np.abs(error)).max() < 16.0, (hidden, np.degrees(error))


def test_mediapipe_head_is_the_midpoint_of_its_ears():
    """The head's keypoint is the mean of MediaPipe's ear landmarks (7, 8), seen when either ear is."""
    from types import SimpleNamespace

    from grail.recon.estimators import _landmarks

    marks = [SimpleNamespace(x=0.5, y=0.5, visibility=0.9) for _ in range(33)]
    marks[7] = SimpleNamespace(x=0.25, y=0.5, visibility=0.1)   # the far ear, hidden
    marks[8] = SimpleNamespace(x=0.75, y=0.25, visibility=0.8)
    uv, conf = _landmarks(SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=marks)), 200, 100)
    head = KEYPOINTS.index("head")
    assert np.allclose(uv[head], [0.5 * 200 - 0.5, 0.375 * 100 - 0.5])
    assert conf[head] == pytest.approx(0.8)


@pytest.mark.slow
def test_the_head_keypoint_moves_the_head(scene):
    """Keypoints of the true pose with the neck bent 0.6 rad, fitted from the unbent pose, move the
    head toward where its keypoint puts it (part way: the head travels only 3 cm, 5 px, against the
    priors of the spine that carries it), and not at all when the head's keypoint is unseen."""
    scene_dir, gt, camera = scene
    rig = TorchRig.load(scene_dir / "character.npz")
    frames = slice(0, 12)
    local = pose_of(gt)[1][frames]
    bent = local.copy()
    neck = rig.names.index("neck01")
    bent[:, neck] = (Rotation.from_rotvec([0.0, 0.6, 0.0]) * Rotation.from_rotvec(local[:, neck])).as_rotvec()
    root = torch.tensor(gt.root_pos[frames])
    truth = rig.forward(root, torch.tensor(bent))[0].numpy()
    names = list(rig.joint_bones)
    obs = oracle_observations(names, truth[:, [rig.joint_bones[n] for n in names]], gt.fps, camera,
                              OracleOptions(noise_px=0.0, dropout=0.0))
    head = rig.joint_bones["head"]
    start = np.linalg.norm(rig.forward(root, torch.tensor(local))[0][:, head].numpy() - truth[:, head], axis=-1).mean()
    errors = []
    for seen in (True, False):
        obs.keypoint_conf[:, KEYPOINTS.index("head")] = 0.9 if seen else 0.0
        fit = fit_human(obs, camera, rig, lambda p: np.zeros(len(p)), FitOptions(iterations=60, track_window=0),
                        init_local=local)
        errors.append(np.linalg.norm(fit.bone_pos[:, head] - truth[:, head], axis=-1).mean())
    assert start > 0.025 and errors[0] < 0.8 * start and errors[1] > 0.95 * start, (start, errors)
