"""Per-frame targets for the robot's frames, built from the character's motion.

The character is G1-proportioned, so the map is near-identity; a general human is handled by
per-segment scaling: each limb keeps its direction and takes the robot's length, chained from the
hip centre, and the whole body is shifted vertically so the stance soles stay on their support.
Interaction is preserved on top of that:

- a hand in contact keeps the character's palm position (the object stays where the metric scene
  has it), blended in over ``CONTACT_BLEND_S``;
- feet follow the character's soles in the world (the terrain is metric and shared), and a
  stance foot is locked: one position and one orientation per stance interval;
- a seated pelvis sits on the seat (its collision sphere's bottom on the seat's top).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grail.character.g1_proportions import G1_PELVIS_HEIGHT, G1_SEGMENTS
from grail.retarget.source import HumanMotion
from grail.retarget.surfaces import CONTACT_GAP, HandGeometry, ObjectSurface
from grail.robot.g1 import G1
from grail.rotations import matrices_from_quats, quats_from_matrices

# Robot geometry at qpos0 (mjlab g1.xml; tests/test_retarget.py checks these against the model).
ROBOT_SEGMENTS = {k: G1_SEGMENTS[k] for k in ("thigh", "shank", "upper_arm", "forearm", "pelvis_width", "shoulder_width")}
ROBOT_SEGMENTS["spine"] = G1_SEGMENTS["shoulder_height"] - G1_SEGMENTS["hip_height"]  # hip centre to shoulder centre
PELVIS_ABOVE_HIPS = G1_PELVIS_HEIGHT - G1_SEGMENTS["hip_height"]  # pelvis body origin above the hip-roll centres
PELVIS_BOTTOM = 0.15                 # pelvis_collision sphere: centre -0.08, radius 0.07
FOOT_SITE_FORWARD = 0.04             # foot site ahead of the ankle axis, on the sole
PALM_FROM_WRIST = 0.08               # palm site along the hand from wrist_yaw_link
HEAD_SITE_PITCH_DEG = G1.head_camera["pitch_down_deg"]
CONTACT_BLEND_S = 0.25

SIDES = ("left", "right")


@dataclass
class FrameTargets:
    """Targets of one robot frame over time; a cost of zero leaves that part free."""

    position: np.ndarray                 # (T,3)
    quat: np.ndarray | None              # (T,4) wxyz, or None: position only
    position_cost: np.ndarray            # (T,)
    orientation_cost: np.ndarray         # (T,)


@dataclass
class Targets:
    frames: dict[str, FrameTargets] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    stance: dict[str, np.ndarray] = field(default_factory=dict)   # side -> (T,) bool
    palm_reference: dict[str, np.ndarray] = field(default_factory=dict)  # side -> (T,3) character palm


def segment_scales(motion: HumanMotion) -> dict[str, float]:
    """Robot length / character length per segment, from the character's rest joints."""
    j = motion.rest_joints

    def mean_len(a: str, b: str) -> float:
        return float(np.mean([np.linalg.norm(j[f"{s}_{a}"] - j[f"{s}_{b}"]) for s in SIDES]))

    hip_mid = (j["left_hip"] + j["right_hip"]) / 2
    sh_mid = (j["left_shoulder"] + j["right_shoulder"]) / 2
    human = {"thigh": mean_len("hip", "knee"), "shank": mean_len("knee", "ankle"),
             "upper_arm": mean_len("shoulder", "elbow"), "forearm": mean_len("elbow", "wrist"),
             "pelvis_width": float(np.linalg.norm(j["left_hip"] - j["right_hip"])),
             "shoulder_width": float(np.linalg.norm(j["left_shoulder"] - j["right_shoulder"])),
             "spine": float(np.linalg.norm(sh_mid - hip_mid))}
    return {k: ROBOT_SEGMENTS[k] / human[k] for k in ROBOT_SEGMENTS}


def build_targets(motion: HumanMotion, weights: "TaskWeights", seat_height: np.ndarray | None = None,
                  surfaces: dict[int, ObjectSurface] | None = None,
                  hands: dict[str, HandGeometry] | None = None) -> Targets:
    """Targets for every robot frame (see the module docstring for what is preserved)."""
    T, w, ones = motion.frames, weights, np.ones(motion.frames)
    scale = segment_scales(motion)
    R = {role: matrices_from_quats(q) @ motion.bone_rest[role].T for role, q in motion.bone_quat.items()}
    pts, pelvis, chest = _scaled_chain(motion, scale, R)
    stance = {side: motion.contact[f"{side}_foot"] for side in SIDES}
    lift = _vertical_shift(pts, stance, T)[:, None] * np.array([0, 0, 1.0])
    pts = {name: (p if name.startswith("_") else p + lift) for name, p in pts.items()}
    pelvis, chest = pelvis + lift, chest + lift

    targets = Targets(scale=scale, stance=stance)
    pelvis_cost = w.pelvis_position * ones
    if seat_height is not None:
        sitting = motion.contact["pelvis"] & np.isfinite(seat_height)
        pelvis[sitting, 2] = seat_height[sitting] + PELVIS_BOTTOM
        pelvis_cost = np.where(sitting, w.seated_pelvis, pelvis_cost)
    targets.frames["pelvis"] = FrameTargets(pelvis, quats_from_matrices(R["root"]), pelvis_cost, w.pelvis_orientation * ones)
    targets.frames["torso"] = FrameTargets(chest, quats_from_matrices(R["chest"]), 0 * ones, w.torso_orientation * ones)
    head = quats_from_matrices(R["head"] @ _pitch_matrix(np.radians(HEAD_SITE_PITCH_DEG)))
    targets.frames["head"] = FrameTargets(motion.joints["head"], head, 0 * ones, w.head_orientation * ones)
    for side in SIDES:
        # Feet go where the character's went, in the world: the terrain is metric and shared, and
        # the character's swing already clears it. Shorter legs lower the pelvis (the vertical shift).
        foot_pos, foot_quat = _lock_stance(pts[f"_{side}_sole_human"], quats_from_matrices(R[f"{side}_foot"]), stance[side])
        foot_cost = np.where(stance[side], w.stance_foot, w.swing_foot)
        targets.frames[f"{side}_foot"] = FrameTargets(foot_pos, foot_quat, foot_cost, foot_cost * w.foot_orientation_ratio)
        targets.frames[f"{side}_knee"] = FrameTargets(pts[f"{side}_knee"], None, w.knee * ones, 0 * ones)
        targets.frames[f"{side}_elbow"] = FrameTargets(pts[f"{side}_elbow"], None, w.elbow * ones, 0 * ones)
        _hand_targets(targets, motion, side, pts, w, surfaces or {}, (hands or {}).get(side))
    return targets


def _scaled_chain(motion: HumanMotion, s: dict[str, float], R: dict[str, np.ndarray]
                  ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Robot-length limbs along the character's, chained from its hip centre: points by name
    (names starting with ``_`` are the character's own, unscaled), the pelvis and the chest."""
    J = motion.joints
    ankle_height = float(np.mean([motion.rest_joints[f"{side}_ankle"][2] for side in SIDES]))
    hip_mid = (J["left_hip"] + J["right_hip"]) / 2
    sh_mid_h = (J["left_shoulder"] + J["right_shoulder"]) / 2
    sh_mid = hip_mid + s["spine"] * (sh_mid_h - hip_mid)
    pts: dict[str, np.ndarray] = {}
    for side in SIDES:
        hip = hip_mid + s["pelvis_width"] * (J[f"{side}_hip"] - hip_mid)
        knee = hip + s["thigh"] * (J[f"{side}_knee"] - J[f"{side}_hip"])
        ankle = knee + s["shank"] * (J[f"{side}_ankle"] - J[f"{side}_knee"])
        shoulder = sh_mid + s["shoulder_width"] * (J[f"{side}_shoulder"] - sh_mid_h)
        elbow = shoulder + s["upper_arm"] * (J[f"{side}_elbow"] - J[f"{side}_shoulder"])
        wrist = elbow + s["forearm"] * (J[f"{side}_wrist"] - J[f"{side}_elbow"])
        sole_offset = np.einsum("tij,j->ti", R[f"{side}_foot"], np.array([FOOT_SITE_FORWARD, 0.0, -ankle_height]))
        hand_dir = np.einsum("tij,j->ti", matrices_from_quats(motion.bone_quat[f"{side}_hand"]), motion.hand_axis[side])
        pts |= {f"{side}_knee": knee, f"{side}_foot": ankle + sole_offset, f"{side}_elbow": elbow,
                f"{side}_wrist": wrist, f"{side}_hand": wrist + PALM_FROM_WRIST * hand_dir,
                f"_{side}_hand_dir": hand_dir, f"_{side}_sole_human": J[f"{side}_ankle"] + sole_offset,
                f"_{side}_palm_human": J[f"{side}_wrist"] + PALM_FROM_WRIST * hand_dir}
    return pts, hip_mid + PELVIS_ABOVE_HIPS * R["root"][:, :, 2], sh_mid


def _hand_targets(targets: Targets, motion: HumanMotion, side: str, pts: dict[str, np.ndarray], w: "TaskWeights",
                  surfaces: dict[int, ObjectSurface], hand: HandGeometry | None) -> None:
    """Palm and wrist targets: the scaled arm, moved onto the object's surface while in contact."""
    ones = np.ones(motion.frames)
    touch = _blend(motion.contact[f"{side}_hand"], motion.fps)
    palm_human = pts[f"_{side}_palm_human"]
    contact_pos, contact_quat, placed = _contact_hand(motion, side, palm_human, pts[f"_{side}_hand_dir"], touch,
                                                      surfaces, hand)
    shift = touch[:, None] * (contact_pos - pts[f"{side}_hand"])   # reach the real object
    targets.frames[f"{side}_hand"] = FrameTargets(pts[f"{side}_hand"] + shift, contact_quat,
                                                  w.hand + touch * (w.contact_hand - w.hand),
                                                  touch * placed * w.contact_hand_orientation)
    targets.frames[f"{side}_wrist"] = FrameTargets(pts[f"{side}_wrist"] + shift, None, w.wrist * (1 - touch), 0 * ones)
    targets.palm_reference[side] = palm_human


@dataclass
class TaskWeights:
    """Task costs (position in 1/m, orientation in 1/rad): what matters most costs most."""

    pelvis_position: float = 10.0
    pelvis_orientation: float = 5.0
    seated_pelvis: float = 30.0
    torso_orientation: float = 3.0
    head_orientation: float = 0.3
    stance_foot: float = 500.0
    swing_foot: float = 10.0
    foot_orientation_ratio: float = 0.3
    knee: float = 2.0
    elbow: float = 2.0
    wrist: float = 3.0
    hand: float = 6.0
    contact_hand: float = 20.0
    contact_hand_orientation: float = 4.0
    posture: float = 0.05


def touched_object(motion: HumanMotion, side: str) -> np.ndarray:
    """(T,) index of the object a hand touches at, or nearest in time to, each frame (-1: never)."""
    touching = motion.contact_object[f"{side}_hand"]
    frames = np.flatnonzero(motion.contact[f"{side}_hand"] & (touching >= 0))
    if not len(frames):
        return -np.ones(motion.frames, int)
    t = np.arange(motion.frames)
    after = np.clip(np.searchsorted(frames, t), 0, len(frames) - 1)
    before = np.clip(after - 1, 0, len(frames) - 1)
    nearest = np.where(np.abs(frames[before] - t) <= np.abs(frames[after] - t), frames[before], frames[after])
    return touching[nearest]


def _contact_hand(motion: HumanMotion, side: str, palm_human: np.ndarray, hand_dir: np.ndarray, touch: np.ndarray,
                  surfaces: dict[int, ObjectSurface], hand: HandGeometry | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Palm site position and orientation (T,3), (T,4) that touch the object where the character
    does: the surface point nearest the character's palm, the hand's fingers along the surface in
    the character's hand direction, its palm facing in, its surface CONTACT_GAP away. The third
    array flags the frames where that was possible (a known object with a surface); elsewhere
    the palm keeps the character's position and its orientation is left free."""
    pos, quat = palm_human.copy(), np.tile([1.0, 0, 0, 0], (len(palm_human), 1))
    placed = np.zeros(len(palm_human), bool)
    objects = touched_object(motion, side)
    for k in np.unique(objects[(touch > 0) & (objects >= 0)]):
        if k not in surfaces or hand is None:
            continue
        frames = np.flatnonzero((touch > 0) & (objects == k))
        R = matrices_from_quats(motion.object_quat[frames, k])
        p = motion.object_pos[frames, k]
        local = np.einsum("tji,tj->ti", R, palm_human[frames] - p)
        point, normal = surfaces[k].nearest(local)
        pos[frames] = p + np.einsum("tij,tj->ti", R, point + (hand.depth + CONTACT_GAP) * normal)
        n_w = np.einsum("tij,tj->ti", R, normal)
        along = hand_dir[frames] - np.sum(hand_dir[frames] * n_w, axis=1, keepdims=True) * n_w
        along /= np.maximum(np.linalg.norm(along, axis=1, keepdims=True), 1e-9)
        quat[frames] = quats_from_matrices(hand.site_rotation(along, -n_w))
        placed[frames] = True
    return pos, quat, placed


def _vertical_shift(pts: dict[str, np.ndarray], stance: dict[str, np.ndarray], T: int) -> np.ndarray:
    """How far to raise the scaled body so its stance soles are where the character's are."""
    dz = np.full(T, np.nan)
    for t in range(T):
        gaps = [pts[f"_{side}_sole_human"][t, 2] - pts[f"{side}_foot"][t, 2] for side in SIDES if stance[side][t]]
        if gaps:
            dz[t] = np.mean(gaps)
    known = np.isfinite(dz)
    if not known.any():
        return np.zeros(T)
    return np.interp(np.arange(T), np.flatnonzero(known), dz[known])


def _lock_stance(pos: np.ndarray, quat: np.ndarray, stance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pose per stance interval (its mean), so a planted foot cannot slide or roll."""
    pos, quat = pos.copy(), quat.copy()
    for start, end in intervals(stance):
        pos[start:end] = pos[start:end].mean(axis=0)
        q = quat[start:end] * np.sign(quat[start:end] @ quat[start])[:, None]
        mean = q.mean(axis=0)
        quat[start:end] = mean / np.linalg.norm(mean)
    return pos, quat


def intervals(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def _blend(flags: np.ndarray, fps: float) -> np.ndarray:
    """0..1 weight that rises over CONTACT_BLEND_S before a contact starts and falls after it ends."""
    n = max(1, int(round(CONTACT_BLEND_S * fps)))
    out = flags.astype(float)
    for start, end in intervals(flags):
        for k in range(1, n + 1):
            ramp = 1.0 - k / (n + 1)
            if start - k >= 0:
                out[start - k] = max(out[start - k], ramp)
            if end - 1 + k < len(out):
                out[end - 1 + k] = max(out[end - 1 + k], ramp)
    return out


def _pitch_matrix(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
