"""Which depth flip each holding arm takes through a hold, chosen once for the whole hold.

Frame by frame, a held object cannot choose an arm's flip (`arm_flip`): the grip carries the
object by the fitted wrist, so the object sits wherever the wrong flip put it and that flip's
palm touches it. Two things do choose. At the grasp the object still lies where the scene put
it, so the holding palm is there; and an arm moves continuously, so it leaves the flip it
grasped on only where two flips meet (its elbow or wrist ray grazing the bone's reach). An
object held in both hands adds a third: it is rigid, so the wrists keep their distance. A walk
with it in one hand adds a fourth: a carried load is held steady against the body, while the
view of the arm, and with it which flip the arm is on, changes with every step.

The choice is a shortest path over the frames of the hold: per frame, each of an arm's four
ray-consistent configurations (each pair of both arms' when both hold) costs its palm's gap to
the object where it lay over the grasp's first frames, how far its wrist ray passes beyond the
forearm's reach (a flip that barely exists, as the true arm often is at a grazing view), and a
little for leaving the fitted one, and, held in one hand while walking, its wrist's distance
from one place in the torso's frame; a step between frames costs the elbows' and wrists' travel
and the change of the wrists' distance. Fitted human, 20 object clips, the wrists of the holding
arms against the truth over the true hold (before the steady place): oracle 9.8 -> 6.3 cm,
MediaPipe 14.4 -> 9.0 (the best flip per frame: 3.1 and 6.7); no arm more than 2 cm worse. The
whole stage, same clips: object 3.74 -> 3.09 cm (held 8.8 -> 7.1) and MPJPE 24.5 -> 23.7 mm
(oracle), 4.09 -> 3.57 cm and 42.4 -> 41.8 mm (MediaPipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np
import trimesh
from scipy.ndimage import uniform_filter1d

from grail.recon.arm_flip import SIDES, arm_configurations, palm_gaps, turn_arm_onto
from grail.recon.body import TorchRig
from grail.recon.hoi import rig_pose
from grail.recon.interaction import torso_heading
from grail.recon.viterbi import shortest_path
from grail.video.body import rot_z


@dataclass
class HeldArmOptions:
    """The path's scales: each cost is a squared residual over its scale."""

    step_m: float = 0.03      # an elbow's and a wrist's travel between frames
    # The path starts this many frames before the grasp, so the reach joins the hold on one flip,
    # and a grasp found again a frame or two earlier with the chosen arms is on it too (oracle,
    # the true hold and 4 frames before it: holding wrists 6.3 -> 6.4 cm, the 4 frames 8.6 -> 6.2).
    lead_frames: int = 4
    # A grip made again with the chosen arms that grasps before they begin is carried from an
    # unchosen wrist: the arms are chosen again from its grasp, up to this many times in all
    # (MediaPipe pickup_table s2: grasped 5 frames earlier on the right wrist's other flip, 50 cm
    # off; with 1 round the arms were left as fitted, object 4.5 cm; 2 rounds: 1.0). 20 object
    # clips: object 3.11 -> 2.94 cm (MediaPipe; that clip alone changed), oracle alike.
    rounds: int = 2
    grasp_m: float = 0.05     # the palm's gap to the object where it lay ...
    # ... over the grasp and this many frames after it (oracle, held wrists: 2 -> 7.8 cm, 5 -> 6.8, 8 -> 6.3, 12 -> 6.4)
    grasp_frames: int = 8
    miss_m: float = 0.02      # a wrist ray passing beyond the forearm's reach
    span_m: float = 0.01      # the change per frame of the distance between two holding wrists
    # per frame on a configuration other than the fitted one (0.3: oracle six arms 2 cm worse, 2: two)
    leave_cost: float = 1.0
    # A load carried on a walk in one hand is held steady against the body: the wrist stays near
    # one place in the torso's frame while the view of it, and so which configuration it is,
    # changes as the person walks. Each walking frame (the torso faster than steady_walk_mps
    # over the ground, averaged over steady_smooth frames; lifting and setting down are done
    # standing, and move the hand) costs the wrist's distance from that place squared in
    # steady_m, at most steady_cap; the place is the one whose path costs least, of steady_places
    # taken from the configurations' own wrists. None: off. Oracle place_table, one hand (s0,
    # s1, s2, s4): object 3.52, 6.65, 4.11, 3.16 -> 2.46, 5.24, 2.70, 3.14 cm; MediaPipe within
    # 0.1 cm. In every frame of the hold, not only walking ones: the truth's lift was taken off
    # its flip (the hand moves against the torso) and oracle place_table s3 lost 1.3 cm.
    steady_m: float | None = 0.05
    steady_cap: float = 9.0
    steady_walk_mps: float = 0.2
    steady_smooth: int = 9
    steady_places: int = 64


Grip = TypeVar("Grip")


@dataclass
class _Arm:
    elbows: np.ndarray   # (4,n,3) the configurations over the hold
    wrists: np.ndarray   # (4,n,3)
    fitted: np.ndarray   # (n,) which one the fit is
    unary: np.ndarray    # (n,4)
    step: np.ndarray     # (n-1,4,4) from a configuration to the next frame's


def _arm(eye: np.ndarray, S: np.ndarray, E: np.ndarray, W: np.ndarray, torso: np.ndarray, walking: np.ndarray,
         grasp: int, mesh: trimesh.Trimesh, pos0: np.ndarray, rot0: np.ndarray, palm_reach: float,
         options: HeldArmOptions) -> _Arm:
    """An arm's configurations over the path's frames (S, E, W: its fitted joints, (n,3) each;
    torso (n,4,4): the torso's frames, `torso_frames`; walking (n,): the frames that pay the
    steady place, none where it is off), the grasp at index `grasp`, and their costs."""
    elbows, wrists, _ = arm_configurations(eye, S, E, W)
    o = options
    fitted = (np.linalg.norm(elbows - E, axis=-1) + np.linalg.norm(wrists - W, axis=-1)).argmin(axis=0)
    miss = np.maximum(np.linalg.norm(wrists - elbows, axis=-1) - np.linalg.norm(W - E, axis=-1), 0.0)
    unary = (miss / o.miss_m) ** 2 + np.where(np.arange(4)[:, None] == fitted, 0.0, o.leave_cost)
    first = slice(grasp, min(grasp + o.grasp_frames + 1, len(S)))
    n = first.stop - first.start
    gaps = palm_gaps(mesh, elbows[:, first], wrists[:, first], palm_reach, np.repeat(pos0[None], n, 0),
                     np.repeat(rot0[None], n, 0))
    unary[:, first] += (gaps / o.grasp_m) ** 2
    travel = lambda p: ((p[None, :, 1:] - p[:, None, :-1]) ** 2).sum(-1)  # noqa: E731  (4,4,n-1)
    step = np.moveaxis(travel(elbows) + travel(wrists), -1, 0) / o.step_m ** 2
    unary = unary.T
    if walking.any():
        held_at = np.einsum("tji,ctj->cti", torso[:, :3, :3], wrists - torso[None, :, :3, 3])
        unary = unary + steady_costs(held_at, walking, unary, step, o)
    return _Arm(elbows, wrists, fitted, unary, step)


def steady_costs(held_at: np.ndarray, walking: np.ndarray, unary: np.ndarray, step: np.ndarray,
                 options: HeldArmOptions) -> np.ndarray:
    """(n,4) each configuration's cost, in the `walking` frames (n,), for its wrist's distance
    from the steady place (`steady_m`). held_at (4,n,3): the configurations' wrists in the torso's
    frame; the place is the one, of those wrists while walking, with which the shortest path
    (unary (n,4), step (n-1,4,4)) costs least."""
    candidates = held_at[:, walking].reshape(-1, 3)
    picks = np.linspace(0, len(candidates) - 1, min(options.steady_places, len(candidates))).astype(int)
    frames = np.arange(len(unary))
    best, best_costs = np.inf, np.zeros_like(unary)
    for place in candidates[picks]:
        off = ((held_at - place) ** 2).sum(-1) / options.steady_m ** 2
        costs = np.minimum(off, options.steady_cap).T * walking[:, None]
        path = shortest_path(unary + costs, step)
        total = (unary + costs)[frames, path].sum() + step[frames[:-1], path[:-1], path[1:]].sum()
        if total < best:
            best, best_costs = total, costs
    return best_costs


def torso_frames(pos: np.ndarray, bones: dict[str, int]) -> np.ndarray:
    """(T,4,4) the torso's frames in the world, of posed bone positions pos (T,B,3): at the
    shoulders' midpoint, x along the torso's heading (`interaction.torso_heading`), z up."""
    joints = {name: pos[:, bones[name]] for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")}
    frames = np.repeat(np.eye(4)[None], len(pos), 0)
    frames[:, :3, :3] = rot_z(torso_heading(joints))
    frames[:, :3, 3] = 0.5 * (joints["left_shoulder"] + joints["right_shoulder"])
    return frames


def walking_frames(torso: np.ndarray, fps: float, options: HeldArmOptions) -> np.ndarray:
    """(T,) whether the torso (T,4,4) moves over the ground faster than steady_walk_mps, its
    speed averaged over steady_smooth frames."""
    if len(torso) < 2:
        return np.zeros(len(torso), bool)
    speed = np.linalg.norm(np.gradient(torso[:, :2, 3], axis=0), axis=1) * fps
    return uniform_filter1d(speed, options.steady_smooth, mode="nearest") > options.steady_walk_mps


def held_arm_flips(rig: TorchRig, root: np.ndarray, local: np.ndarray, eye: np.ndarray, grasp: int,
                   release: int | None, hands: tuple[bool, bool], mesh: trimesh.Trimesh, pos0: np.ndarray,
                   rot0: np.ndarray, palm_reach: np.ndarray, fps: float,
                   options: HeldArmOptions) -> tuple[np.ndarray, np.ndarray]:
    """The pose's local rotations (T,J,3) with each holding arm turned onto the configuration the
    path chose through the hold (from lead_frames before the grasp to the release, None: the
    end), and (T,2) the frames changed per hand. pos0 (3,), rot0 (3,3): where the object lay
    before the grasp; palm_reach (2,): each palm centre's distance from its wrist; fps: the
    frame rate."""
    pos, deltas = rig_pose(rig, root, local)
    frames = np.arange(max(grasp - options.lead_frames, 0), len(root) if release is None else release)
    out, changed = np.array(local, copy=True), np.zeros((len(root), 2), bool)
    sides = [k for k in range(2) if hands[k]]
    if len(frames) < 2 or not sides:
        return out, changed
    bones = [{name: rig.joint_bones[f"{SIDES[k]}_{name}"] for name in ("shoulder", "elbow", "wrist")} for k in range(2)]
    torso = torso_frames(pos[frames], rig.joint_bones)
    # one hand only: two are held together by the object's rigidity (`span_m`), and a steady place
    # chosen for each pulled both off it (MediaPipe pickup_ground s0: object 2.3 -> 5.2 cm)
    steady = options.steady_m is not None and len(sides) == 1
    walking = walking_frames(torso, fps, options) if steady else np.zeros(len(frames), bool)
    arms = {k: _arm(eye, *(pos[frames, bones[k][name]] for name in ("shoulder", "elbow", "wrist")), torso, walking,
                    grasp - frames[0], mesh, pos0, rot0, palm_reach[k], options) for k in sides}
    if len(sides) == 1:
        paths = {sides[0]: shortest_path(arms[sides[0]].unary, arms[sides[0]].step)}
    else:
        left, right = arms[0], arms[1]
        n = len(frames)
        unary = (left.unary[:, :, None] + right.unary[:, None, :]).reshape(n, 16)
        step = (left.step[:, :, None, :, None] + right.step[:, None, :, None, :]).reshape(n - 1, 16, 16)
        span = np.linalg.norm(left.wrists[:, None] - right.wrists[None], axis=-1).reshape(16, n)
        step = step + np.moveaxis((span[None, :, 1:] - span[:, None, :-1]) ** 2, -1, 0) / options.span_m ** 2
        path = shortest_path(unary, step)
        paths = {0: path // 4, 1: path % 4}
    for k, path in paths.items():
        arm = arms[k]
        moved = np.flatnonzero(path != arm.fitted)
        if len(moved):
            turn_arm_onto(rig, pos, deltas, local, out, changed, k, frames[moved], arm.elbows[path[moved], moved],
                          arm.wrists[path[moved], moved])
    return out, changed


def agreed_hold(grip: Grip, grasp_of: Callable[[Grip], int | None],
                choose: Callable[[Grip], tuple[np.ndarray, np.ndarray]], regrip: Callable[[np.ndarray], Grip],
                options: HeldArmOptions) -> tuple[np.ndarray, Grip] | None:
    """The arms `choose` picks through `grip`'s hold ((T,J,3) local rotations and (T,2) frames
    changed) and the grip `regrip` makes with them, once that grip grasps no earlier than the
    arms were chosen from (lead_frames before `grip`'s grasp); else chosen again from its grasp,
    up to `rounds` times in all. None: the arms changed nothing, or no round agreed."""
    for _ in range(options.rounds):
        arms, changed = choose(grip)
        if not changed.any():
            return None
        again = regrip(arms)
        grasp = grasp_of(again)
        if grasp is None:
            return None
        if grasp >= grasp_of(grip) - options.lead_frames:
            return arms, again
        grip = again
    return None
