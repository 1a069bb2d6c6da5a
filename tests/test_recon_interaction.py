"""The object's trajectory from the interaction: when the hand takes it, which hands, and where it
is let go, against a synthetic pick-and-place whose truth is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation
from grail.recon.interaction import (ColourEvidence, InteractionOptions, body_mask, departure_frame, grasp_frame,
                                    grip_track, settle, support_gaps, torso_heading)
from grail.recon.object_track import ObjectModel, silhouette
from grail.recon.refine import still_runs
from grail.scene.camera import PinholeCamera
from grail.video.body import rot_z
from grail.video.geometry import UNDER_MARGIN_M

TABLE_TOP = 0.75
HALF = 0.15  # the box is 0.3 m a side, its origin at its centre
GRASP, LIFTED, MOVED, PLACED, T = 12, 20, 32, 40, 56
_box = trimesh.creation.box([0.3, 0.3, 0.3])
BOX = ObjectModel("box", np.asarray(_box.vertices), np.asarray(_box.faces))
HULL = np.asarray(BOX.mesh.convex_hull.vertices)
QUAT0 = np.array([1.0, 0.0, 0.0, 0.0])


def test_grasp_is_where_the_palm_settles_after_it_first_touches():
    surface = np.full((30, 2), 0.5)
    surface[:, 1] = np.r_[np.linspace(0.5, 0.07, 10), [0.05, 0.03, 0.01, 0.02], np.full(16, 0.03)]
    image = np.full((30, 2), 0.5)
    assert grasp_frame(surface, image, InteractionOptions()) == 12  # enters at 10, closest at 12


def test_grasp_falls_back_on_the_image_and_ignores_a_hand_swinging_past():
    options = InteractionOptions()
    surface = np.full((30, 2), 0.3)  # the fitted hand is decimetres off in depth throughout
    image = np.full((30, 2), 0.5)
    image[5:7, 0] = 0.0  # two frames in front of the object: passing by
    image[15:25, 1] = 0.01  # stays on it: the grasp
    assert grasp_frame(surface, image, options) == 15
    image[:] = 0.5
    surface[18, 0] = 0.12  # no touch, no hold: the closest approach within onset_far_m
    assert grasp_frame(surface, image, options) == 18
    surface[18, 0] = 0.3
    assert grasp_frame(surface, image, options) is None


def _truth() -> tuple[np.ndarray, np.ndarray]:
    """(T,3) box centre and (T,2,3) true palms: reach, lift, carry, put down 0.25 m along x, leave.
    Where a test gives no wrists, the palms stand in for them (the grip carries a point rigid in
    the hand; which one only matters when the fit turns the hand about the wrist)."""
    rest = np.array([0.0, 0.0, TABLE_TOP + HALF])
    keys = [(0, rest), (GRASP, rest), (LIFTED, rest + [0, 0, 0.2]), (MOVED, rest + [0.25, 0, 0.2]),
            (PLACED, rest + [0.25, 0, 0]), (T - 1, rest + [0.25, 0, 0])]
    frames = np.arange(T)
    obj = np.stack([np.interp(frames, [k for k, _ in keys], [p[i] for _, p in keys]) for i in range(3)], axis=1)
    grip = np.array([HALF + 0.02, 0.0, 0.0])  # the right palm 2 cm off the box's +x face
    right = obj + grip
    start, away = np.array([0.6, -0.4, 1.2]), np.array([0.9, -0.4, 1.3])
    right[:GRASP] = start + np.linspace(0, 1, GRASP)[:, None] * (right[GRASP] - start)
    right[PLACED:] = right[PLACED] + np.linspace(0, 1, T - PLACED)[:, None] * (away - right[PLACED])
    left = np.repeat([[-0.8, -0.4, 1.0]], T, axis=0)
    return obj, np.stack([left, right], axis=1)


def _tracked_on_an_exact_image(palms: np.ndarray, wrists: np.ndarray, options: InteractionOptions | None = None,
                               heading: np.ndarray | None = None):
    """`grip_track` of `_truth()`'s box on its table, seen at 320x240 through an exact colour
    posterior (0.9 on its silhouette, 0.1 off it), with the fitted palms and wrists (T,2,3) and
    the torso's heading (T,) given (none: it does not turn)."""
    camera = PinholeCamera.look_at([0.2, -2.5, 1.6], [0.1, 0.0, 0.9], 50.0, 320, 240)
    obj, _ = _truth()
    masks = [silhouette(camera, BOX, obj[t], QUAT0) for t in range(T)]
    evidence = ColourEvidence(lambda t: np.where(masks[t], 0.9, 0.1), T, None)
    return grip_track(BOX, HULL, obj[0], QUAT0, palms, wrists, np.zeros(T) if heading is None else heading, camera,
                      evidence, _table, options or InteractionOptions())


def _table(points: np.ndarray) -> np.ndarray:
    """The table top under points (N,3) within 0.6 m of x = 0, the floor elsewhere."""
    return np.where(np.abs(points[:, 0]) < 0.6, TABLE_TOP, 0.0)


def test_pick_and_place_is_taken_carried_and_set_down_on_the_table():
    """The fitted right palm sits 5 cm high from the lift on (a depth error turned into height):
    the box is still let go where the image says, and set down on the table, not in the air."""
    obj, palms = _truth()
    fitted = palms.copy()
    fitted[:, 1, 2] += 0.05 * np.clip((np.arange(T) - GRASP) / (LIFTED - GRASP), 0, 1)
    track = _tracked_on_an_exact_image(fitted, fitted)
    assert track.hands == (False, True)
    assert abs(track.grasp - GRASP) <= 2
    assert track.release is not None and abs(track.release - PLACED) <= 3
    assert track.held[GRASP + 2:PLACED - 3].all() and not track.held[:GRASP - 2].any()
    assert not track.held[PLACED + 3:].any()
    np.testing.assert_allclose(track.pos[:GRASP - 2], obj[:GRASP - 2], atol=1e-9)  # at rest until taken
    np.testing.assert_allclose(track.pos[-1], obj[-1], atol=0.01)  # on the table where it was put
    np.testing.assert_allclose(track.rot[-1], np.eye(3), atol=1e-9)
    lowest = (HULL + track.pos[-1])[:, 2].min()
    assert abs(lowest - TABLE_TOP) < 1e-6


def test_the_grip_carries_the_object_by_the_wrist_not_by_the_palm_the_fit_swings_about_it():
    """Nothing observes a hand's turn about its wrist: the fitted palm, 9 cm out from the wrist,
    swings 0.6 rad up and down over the carry while the wrist, a keypoint, stays right. Carried
    by the wrist, the box follows the hand; carried by the palm it swings with the palm's error
    (benchmark, 20 object clips at the grip's start: 5.8 -> 4.3 cm oracle, 5.3 -> 4.7 MediaPipe)."""
    obj, palms = _truth()
    wrists = palms + [0.09, 0.0, 0.0]  # the right wrist beyond the palm, away from the box's face
    angle = 0.6 * np.sin(np.pi * np.clip((np.arange(T) - LIFTED) / (PLACED - LIFTED), 0, 1))
    lever = palms[:, 1] - wrists[:, 1]
    fitted = palms.copy()
    fitted[:, 1] = wrists[:, 1] + np.einsum("tij,tj->ti", Rotation.from_euler("y", angle[:, None]).as_matrix(), lever)

    def carried(points: np.ndarray) -> np.ndarray:
        track = _tracked_on_an_exact_image(fitted, points)
        assert track.held[LIFTED:PLACED - 3].all()
        return np.linalg.norm(track.pos - obj, axis=1)[LIFTED:PLACED - 3]

    assert carried(fitted).max() > 0.025  # the palm: 3 cm off mid-carry
    assert carried(wrists).max() < 0.002


def test_a_set_down_the_grip_put_off_in_depth_is_put_where_the_frames_after_show_it():
    """The fitted right palm drifts 12 cm towards the camera over the carry (a depth error the
    keypoints cannot see) and the torso turns 0.3 rad: the grip sets the box down 12 cm off and
    turned, and the frames after the release put it back to a pixel (its turn is left to the
    refinement)."""
    obj, palms = _truth()
    fitted = palms.copy()
    fitted[:, 1, 1] -= 0.12 * np.clip((np.arange(T) - GRASP) / (MOVED - GRASP), 0, 1)
    heading = 0.3 * np.clip((np.arange(T) - GRASP) / (MOVED - GRASP), 0, 1)

    def rest(**kw) -> np.ndarray:
        track = _tracked_on_an_exact_image(fitted, fitted, InteractionOptions(**kw), heading)
        assert track.release is not None and abs(track.release - PLACED) <= 3
        return track.pos[-1], track.rot[-1]

    pos, rot = rest(settle_radius_m=0.0)  # where the grip set it down
    assert np.linalg.norm(pos - obj[-1]) > 0.1 and np.allclose(rot, rot_z(0.3))
    pos, rot = rest()
    np.testing.assert_allclose(pos, obj[-1], atol=0.008)  # a pixel at 320x240 is 6 mm there
    assert np.allclose(rot, rot_z(0.3))
    assert (HULL @ rot.T + pos)[:, 2].min() == pytest.approx(TABLE_TOP)


def test_a_set_down_is_sought_along_the_camera_ray_and_hardly_across_it():
    """The grip's image is right and its depth is not: after a release the frames are searched for
    the object settle_radius_m along the camera's ray and settle_across_m across it. Found 15 cm
    along the ray; 20 cm across it (a floor place behind a box held above it can look like the
    box), the search stops at its edge."""
    camera = PinholeCamera.look_at([0.2, -2.5, 1.6], [0.1, 0.0, 0.9], 50.0, 320, 240)
    options = InteractionOptions()
    set_down = np.array([0.25, 0.0, TABLE_TOP + HALF])
    along = (set_down - camera.position) * [1.0, 1.0, 0.0]
    along /= np.linalg.norm(along)
    across = np.array([-along[1], along[0], 0.0])

    def found(shift: np.ndarray) -> np.ndarray:
        mask = silhouette(camera, BOX, set_down + shift, QUAT0)
        evidence = ColourEvidence(lambda t: np.where(mask, 0.9, 0.1), 1, None)
        return settle(evidence.log_odds(0).astype(np.float64), camera, HULL, set_down, np.eye(3),
                      _table, evidence, options) - set_down

    np.testing.assert_allclose(found(0.15 * along), 0.15 * along, atol=0.008)
    moved = found(0.2 * across)  # to the edge, and the fine search's two steps beyond it
    assert 0.09 <= moved @ across <= options.settle_across_m + 2 * options.settle_step_m + 1e-9
    assert abs(moved @ along) < 0.02


def test_a_box_half_through_the_table_top_is_in_it_and_one_wholly_under_it_is_over_the_floor():
    """A support counts under every point of an object that is not wholly under it: a box carried
    by a hand fitted 10 cm low is in the table top (and set down on it), not over the floor."""
    def table_over_floor(points: np.ndarray) -> np.ndarray:  # a 4 cm top; under it, the floor
        over = (np.abs(points[:, 0]) < 0.6) & (points[:, 2] >= TABLE_TOP - 0.04 - UNDER_MARGIN_M)
        return np.where(over, TABLE_TOP, 0.0)

    for bottom, gap in ((TABLE_TOP - 0.1, -0.1), (0.2, 0.2)):  # half through the top; wholly under it
        centre = np.array([[0.0, 0.0, bottom + HALF]])
        assert support_gaps(centre, np.eye(3)[None], HULL, table_over_floor)[0] == pytest.approx(gap)


def test_no_release_before_the_object_has_been_carried():
    """Colour that looks like the object where it lay (its print on the table) favours leaving it
    there from the grasp on; a release only counts once the carried object has moved."""
    camera = PinholeCamera.look_at([0.2, -2.5, 1.6], [0.1, 0.0, 0.9], 50.0, 320, 240)
    obj, palms = _truth()
    at_rest = silhouette(camera, BOX, obj[0], QUAT0)
    evidence = ColourEvidence(lambda t: np.where(at_rest, 0.9, 0.1), T, None)
    options = InteractionOptions(min_hold_frames=2)
    track = grip_track(BOX, HULL, obj[0], QUAT0, palms, palms, np.zeros(T), camera, evidence,
                       _table, options)
    assert track.release is not None and track.release > GRASP + options.min_hold_frames
    travelled = np.linalg.norm(obj[GRASP:track.release + 1] - obj[0], axis=1).max()
    assert travelled >= options.release_travel_m - 0.01  # without the rule: let go 2 frames after the grasp


def test_untouched_runs_share_one_object_pose():
    """Each run of untouched frames takes its first frame's pose; held frames keep their own."""
    held = np.array([0, 0, 1, 1, 0, 0, 0, 1], bool)
    assert still_runs(held).tolist() == [0, 0, 2, 3, 4, 4, 4, 7]
    assert still_runs(np.zeros(3, bool)).tolist() == [0, 0, 0]
    assert still_runs(np.ones(3, bool)).tolist() == [0, 1, 2]


def test_body_is_left_out_only_where_it_is_in_front_of_the_object():
    """A child standing 2 m from the camera: its torso's pixels are masked when the object is
    behind it (3 m), not when the object is carried in front of it (1.5 m)."""
    camera = PinholeCamera.look_at([0.0, -2.0, 1.0], [0.0, 0.0, 1.0], 50.0, 320, 240)
    standing = {"left_shoulder": [0.15, 0, 1.3], "right_shoulder": [-0.15, 0, 1.3], "left_hip": [0.1, 0, 0.9],
                "right_hip": [-0.1, 0, 0.9], "left_knee": [0.1, 0, 0.5], "right_knee": [-0.1, 0, 0.5],
                "left_ankle": [0.1, 0, 0.1], "right_ankle": [-0.1, 0, 0.1], "left_elbow": [0.2, 0, 1.05],
                "right_elbow": [-0.2, 0, 1.05], "neck": [0, 0, 1.35], "head": [0, 0, 1.5]}
    joints = {name: np.repeat([p], 2, axis=0) for name, p in standing.items()}
    mask = body_mask(camera, joints, np.array([3.0, 1.5]))
    belly = camera.project(np.array([[0.0, 0.0, 1.1]]))[0][0].round().astype(int)
    beside = camera.project(np.array([[0.6, 0.0, 1.1]]))[0][0].round().astype(int)
    assert mask[0, belly[1], belly[0]] and not mask[0, beside[1], beside[0]]
    assert not mask[1].any()
    knee = camera.project(np.array([[0.1, 0.0, 0.5]]))[0][0].round().astype(int)
    assert mask[0, knee[1], knee[0]]


def test_grasp_is_moved_to_where_the_image_sees_the_object_leave():
    """The fitted palm reaches the box's side 6 frames before it lifts and slides 10 cm along it:
    taken at first touch the box rides along with that slide; the image says it stayed put."""
    obj, palms = _truth()
    palms[GRASP - 6:GRASP, 1] = palms[GRASP, 1] + np.linspace(0.1, 0.0, 6)[:, None] * [0.0, -1.0, 0.0]
    assert _tracked_on_an_exact_image(palms, palms, InteractionOptions(image_grasp=False)).grasp == GRASP - 6
    taken = _tracked_on_an_exact_image(palms, palms, InteractionOptions(image_grasp=True))
    assert abs(taken.grasp - GRASP) <= 1
    np.testing.assert_allclose(taken.pos[LIFTED], obj[LIFTED], atol=0.02)


def test_a_grasp_best_at_the_earliest_candidate_is_sought_further_back():
    """The fitted palm stays 10 cm off the box's side until 8 frames after the true grasp (a hand
    fitted off in depth), so the hands find the grasp once the box has lifted; the wrists carry
    it right. The image's window starts 4 frames before the hands' grasp, where its best is the
    earliest candidate: the search goes on earlier, to the true grasp."""
    obj, palms = _truth()
    fitted = palms.copy()
    fitted[:GRASP + 8, 1] += [0.1, 0.0, 0.0]
    window_only = InteractionOptions(grasp_reach_back=0)  # the window itself is kept
    assert _tracked_on_an_exact_image(fitted, palms, window_only).grasp == GRASP + 4  # the box 10 cm up
    taken = _tracked_on_an_exact_image(fitted, palms, InteractionOptions())
    assert abs(taken.grasp - GRASP) <= 1
    np.testing.assert_allclose(taken.pos[LIFTED], obj[LIFTED], atol=0.02)
    fitted[GRASP + 4:GRASP + 8, 1] = palms[GRASP + 4:GRASP + 8, 1]  # the hands' grasp 4 frames late
    no_window_before = _tracked_on_an_exact_image(fitted, palms, InteractionOptions(grasp_before=0))
    assert abs(no_window_before.grasp - GRASP) <= 1  # sought a frame at a time


def test_the_object_leaving_its_place_moves_a_late_grasp_forward_and_a_body_in_front_is_no_departure():
    """The fitted right palm stays 25 cm off the box (an occluded wrist put on the other arm): the
    hands find no grasp until the closest approach, long after the box has gone. Its place stops
    looking like it as it lifts: the grasp is sought before that. A body passing in front of the
    place before the grasp hides it; left out, it is no departure."""
    camera = PinholeCamera.look_at([0.2, -2.5, 1.6], [0.1, 0.0, 0.9], 50.0, 320, 240)
    rot0 = np.eye(3)
    obj, palms = _truth()
    fitted = palms.copy()
    fitted[:PLACED, 1] += [0.25, 0.0, 0.0]
    fitted[PLACED + 4, 1] = obj[0] + [HALF + 0.1, 0.0, 0.0]  # the closest approach: late
    masks = [silhouette(camera, BOX, obj[t], QUAT0) for t in range(T)]
    passing = np.zeros((T, camera.height, camera.width), bool)
    passing[3:12] = masks[0]  # a body in front of the resting box: not object-coloured
    evidence = ColourEvidence(lambda t: np.where(masks[t] & ~passing[t], 0.9, 0.1), T, None)
    options = InteractionOptions()

    departed = departure_frame(evidence, camera, HULL, obj[0], rot0, passing, options)
    assert GRASP < departed <= LIFTED  # it has lifted over half its height out of its place
    assert departure_frame(evidence, camera, HULL, obj[0], rot0, None, options) == 3  # the body, not left out

    def track(departed: int | None):
        return grip_track(BOX, HULL, obj[0], QUAT0, fitted, fitted, np.zeros(T), camera, evidence,
                          _table, options, departed)

    assert track(None).grasp > PLACED  # the hands alone
    taken = track(departed)
    assert abs(taken.grasp - GRASP) <= 2
    np.testing.assert_allclose(taken.pos[MOVED], obj[MOVED], atol=0.02)


def test_a_carried_object_turns_with_the_torso_and_stays_level():
    """The child turns 90 degrees left while carrying: the box swings with the torso about the grip
    and keeps level, whatever the fitted hands' turns (they are not an input)."""
    joints = {"left_shoulder": [[0.0, 0.2, 1.3], [-0.2, 0.0, 1.3]],
              "right_shoulder": [[0.0, -0.2, 1.3], [0.2, 0.0, 1.3]],
              "left_hip": [[0.0, 0.1, 0.9], [-0.1, 0.0, 0.9]], "right_hip": [[0.0, -0.1, 0.9], [0.1, 0.0, 0.9]]}
    heading = torso_heading({k: np.asarray(v) for k, v in joints.items()})
    np.testing.assert_allclose(heading, [0.0, np.pi / 2], atol=1e-12)  # facing +x, then +y
    turned = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    np.testing.assert_allclose(rot_z(heading)[1], turned, atol=1e-12)

    camera = PinholeCamera.look_at([0.2, -2.5, 1.6], [0.1, 0.0, 0.9], 50.0, 320, 240)
    obj, palms = _truth()
    turn = np.r_[np.zeros(LIFTED), np.linspace(0, np.pi / 2, T - LIFTED)]  # turning left from the lift on
    evidence = ColourEvidence(lambda t: np.full((240, 320), 0.5), T, None)  # the image undecided
    track = grip_track(BOX, HULL, obj[0], QUAT0, palms, palms, turn, camera, evidence,
                       lambda p: np.zeros(len(p)), InteractionOptions(image_grasp=False))
    g = track.grasp
    offset = obj[0] - palms[g, 1]  # the box centre from the right palm at the grasp: (-0.17, 0, 0)
    t = T - 5
    assert track.held[t]
    np.testing.assert_allclose(track.pos[t], palms[t, 1] + rot_z(turn[t:t + 1])[0] @ offset, atol=1e-9)
    np.testing.assert_allclose(track.rot[t], rot_z(turn[t:t + 1])[0], atol=1e-9)
    assert abs(track.rot[t][2, 2] - 1.0) < 1e-12  # level


def test_a_let_go_object_rests_upright_on_its_support():
    """Frames after the release cost what the box floats above the floor or leans; a held frame
    may float, and no frame may sink (the resting rule off: floating is free)."""
    import torch

    from grail.recon.refine import RefineOptions, SceneTerms, depth_term

    camera = PinholeCamera.look_at([0.0, -2.5, 1.6], [0.0, 0.0, 0.5], 50.0, 64, 48)
    scene = SceneTerms(camera, np.full((48, 64), np.inf), lambda p: np.zeros(len(p)), HULL, None,
                       np.array([0.0, 0.0, HALF]), np.zeros(3))
    lean = torch.as_tensor(Rotation.from_euler("x", 10, degrees=True).as_matrix())
    pos = torch.tensor([[0.0, 0.0, HALF], [0.0, 0.0, HALF + 0.03], [0.0, 0.0, HALF + 0.03], [0.0, 0.0, 0.3]])
    rot = torch.stack([torch.eye(3, dtype=torch.float64)] * 3 + [lean])
    options = RefineOptions()

    def cost(frame: int, resting: bool) -> float:
        flag = torch.tensor([float(resting)], dtype=torch.float64)
        return float(depth_term(pos[frame:frame + 1], rot[frame:frame + 1], scene, torch.full((48, 64), float("inf")),
                                options, flag))

    assert cost(0, True) < 1e-9  # on the floor, upright
    assert cost(1, True) == pytest.approx((0.03 / options.support_m) ** 2, rel=1e-6)
    assert cost(2, False) < 1e-9  # held up by a hand
    assert cost(3, True) > (0.17 / options.first_rad) ** 2 * 0.9  # leaning 10 degrees on an edge


def test_keypoints_may_move_a_little_from_the_fit_and_no_further():
    """Inside the bound (none by default) the human is free (zero cost, zero gradient, finite at
    rest); beyond, each centimetre costs as a centimetre of grip, so a misplaced object cannot drag
    the body off. The elbows and wrists are free, to reach an object the fit left the hands short of."""
    import torch

    from grail.recon.keypoints import KEYPOINTS
    from grail.recon.refine import BODY_KEYPOINTS, RefineOptions, keep_term

    options = RefineOptions(keep_m=0.05)  # a hinge: free within 5 cm
    rest = torch.zeros((2, len(KEYPOINTS), 3), dtype=torch.float64)
    fitted = rest[:, BODY_KEYPOINTS]
    joints = rest.clone().requires_grad_(True)
    keep_term(joints, fitted, options).backward()
    assert torch.isfinite(joints.grad).all() and float(joints.grad.abs().max()) == 0.0

    def moved(name: str, metres: float) -> float:
        pose = rest.clone()
        pose[1, KEYPOINTS.index(name)] = torch.tensor([0.6, 0.8, 0.0]) * metres
        return float(keep_term(pose, fitted, options))

    assert moved("left_hip", options.keep_m - 0.01) < 1e-9
    assert moved("left_hip", 0.5) == pytest.approx(((0.5 - options.keep_m) / options.keep_scale_m) ** 2, rel=1e-6)
    assert moved("right_shoulder", 0.5) == pytest.approx(moved("left_hip", 0.5))
    assert moved("right_wrist", 0.5) == 0.0 and moved("left_elbow", 0.5) == 0.0
    # the default has no free range: a centimetre from the fit costs one
    pose = rest.clone()
    pose[1, KEYPOINTS.index("left_hip")] = torch.tensor([0.0, 0.01, 0.0])
    default = RefineOptions()
    assert float(keep_term(pose, fitted, default)) == pytest.approx((0.01 / default.keep_scale_m) ** 2, rel=1e-4)
