"""From motion channels (pelvis, spine, feet, hands, gaze) to a full pose of the character rig.

The animator plans in terms a person would describe — where the pelvis is, how far the trunk
bends, where each sole and each palm goes — and :class:`BodyRig` turns that into per-bone world
deltas with the analytic limb IK of :mod:`grail.video.ik`. The rest geometry it needs (limb
lengths, sole and palm reference points, the hand's palm frame) is measured once from the
character mesh, so any G1-proportioned character (Anny or SMPL-X) works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from grail.character.model import CharacterModel
from grail.video.ik import frame, limb_rotations, normalize, solve_two_bone
from grail.video.skeleton import Skeleton

SIDES = ("L", "R")
SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")
SPINE_SHARE = np.array([0.15, 0.2, 0.25, 0.25, 0.15])  # how a trunk bend is spread over the spine
NECK = ("neck01", "neck02", "neck03", "head")
NECK_SHARE = np.array([0.2, 0.2, 0.2, 0.4])
ARM_SOFT_REACH = 0.955  # arm targets beyond this share of the arm's length are eased, not clipped (above any grasp's reach)


def rot_x(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def slerp_matrices(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-frame geodesic blend from rotation a to b with weights w in [0,1]."""
    rel = Rotation.from_matrix(np.swapaxes(a, -1, -2) @ b).as_rotvec()
    return a @ Rotation.from_rotvec(rel * np.asarray(w)[..., None]).as_matrix()


def half_twist(relative: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Half of the twist of `relative` (T,3,3) about `axis`: the forearm roll bone takes half the
    hand's pronation so the skin does not candy-wrap, and the wrist stays on the forearm axis."""
    q = Rotation.from_matrix(relative).as_quat()  # xyzw
    angle = 2.0 * np.arctan2(q[:, :3] @ axis, q[:, 3])
    angle = np.unwrap((angle + np.pi) % (2 * np.pi) - np.pi)  # frames are consecutive: no flip at +-pi
    return Rotation.from_rotvec(0.5 * angle[:, None] * axis).as_matrix()


def blend_about(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Blend vectors (T,3) from a to b by w: direction by slerp, length linearly. A hand moving
    between two poses swings about the shoulder like an arm does, instead of cutting a straight
    line that can pass out of reach (and snap the elbow straight) or through a table's edge."""
    la, lb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ua, ub = a / np.maximum(la, 1e-9)[:, None], b / np.maximum(lb, 1e-9)[:, None]
    theta = np.arccos(np.clip(np.sum(ua * ub, axis=1), -1.0, 1.0))
    small = np.sin(theta) < 1e-6
    st = np.where(small, 1.0, np.sin(theta))
    ka = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / st)
    kb = np.where(small, w, np.sin(w * theta) / st)
    return (ka[:, None] * ua + kb[:, None] * ub) * ((1.0 - w) * la + w * lb)[:, None]


def palm_contact_plane(hand: np.ndarray, palm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plane a flat surface touches when pressed against the palm: the face of the hand's
    convex hull facing most nearly along `palm`. The palm is concave (heel and fingers stand
    out), so this plane, not the palm's mean surface, is where a held object's face lies.
    Returns its outward normal and the hand centre projected onto it."""
    hull = ConvexHull(hand)
    k = int(np.argmax(hull.equations[:, :3] @ palm))
    normal, offset = hull.equations[k, :3], hull.equations[k, 3]
    centre = hand.mean(axis=0)
    return normal, centre - (normal @ centre + offset) * normal


@dataclass
class MotionChannels:
    """What the planner decides per frame (T frames; side index 0 = left, 1 = right)."""

    root_pos: np.ndarray  # (T,3) pelvis (root bone) position
    yaw: np.ndarray  # (T,) heading of the pelvis
    pelvis_pitch: np.ndarray  # (T,) forward tilt of the pelvis (hip flexion), rad
    spine_pitch: np.ndarray  # (T,) forward bend of the trunk above the pelvis, rad
    spine_roll: np.ndarray  # (T,) sideways lean, rad (positive toward the left)
    spine_yaw: np.ndarray  # (T,) trunk twist relative to the pelvis, rad
    look_at: np.ndarray  # (T,3) gaze target
    sole_pos: np.ndarray  # (2,T,3) sole reference point (below the ankle, on the support)
    foot_rot: np.ndarray  # (2,T,3,3) world delta of each foot
    hand_pos: np.ndarray  # (2,T,3) palm contact point target
    hand_rot: np.ndarray  # (2,T,3,3) world delta of each hand
    hand_weight: np.ndarray  # (2,T) 0 = free arm (hanging/swinging), 1 = follow the hand target
    arm_swing: np.ndarray  # (2,T) free-arm swing angle, rad (positive = hand forward)
    hand_arc: np.ndarray | None = None  # (2,T) m the hand rises mid-way between free and target (over a table edge)

    @classmethod
    def standing(cls, frames: int, root_pos, yaw: float) -> "MotionChannels":
        eye = np.broadcast_to(np.eye(3), (2, frames, 3, 3)).copy()
        z = np.zeros(frames)
        return cls(
            root_pos=np.tile(np.asarray(root_pos, float), (frames, 1)), yaw=z + yaw, pelvis_pitch=z.copy(),
            spine_pitch=z.copy(), spine_roll=z.copy(), spine_yaw=z.copy(), look_at=np.zeros((frames, 3)),
            sole_pos=np.zeros((2, frames, 3)), foot_rot=eye, hand_pos=np.zeros((2, frames, 3)),
            hand_rot=eye.copy(), hand_weight=np.zeros((2, frames)), arm_swing=np.zeros((2, frames)),
        )


@dataclass
class PoseResult:
    root_pos: np.ndarray  # (T,3)
    deltas: np.ndarray  # (T,J,3,3)
    bone_world: np.ndarray  # (T,J,4,4)
    leg_reach: np.ndarray  # (2,T) |hip->ankle target| / leg length (>0.999 means clamped)
    arm_reach: np.ndarray  # (2,T)
    hand_error: np.ndarray  # (2,T) distance between the palm target and the palm reached (m)
    foot_error: np.ndarray  # (2,T)


class BodyRig:
    """Rest measurements of a character and the pose solver."""

    def __init__(self, character: CharacterModel):
        self.character = character
        self.sk = Skeleton.from_character(character)
        sk = self.sk
        self.i = {n: k for k, n in enumerate(sk.names)}
        verts = character.vertices
        dom = character.skin_bone_indices[:, 0]
        self.leg = {}
        self.arm = {}
        for s in SIDES:
            hip, knee, ankle = (sk.rest_pos(f"upperleg01.{s}"), sk.rest_pos(f"lowerleg01.{s}"), sk.rest_pos(f"foot.{s}"))
            foot = verts[dom == self.i[f"foot.{s}"]]
            sole = foot[foot[:, 2] < foot[:, 2].min() + 0.015]
            sole_ref = np.array([ankle[0], ankle[1], foot[:, 2].min()])
            self.leg[s] = dict(hip=hip, knee=knee, ankle=ankle, l1=np.linalg.norm(knee - hip),
                               l2=np.linalg.norm(ankle - knee), sole_ref=sole_ref,
                               heel_x=float(sole[:, 0].min() - ankle[0]), toe_x=float(foot[:, 0].max() - ankle[0]),
                               half_width=float(np.ptp(sole[:, 1]) / 2))
            sh, el, wr = (sk.rest_pos(f"upperarm01.{s}"), sk.rest_pos(f"lowerarm01.{s}"), sk.rest_pos(f"wrist.{s}"))
            hand = verts[dom == self.i[f"wrist.{s}"]]
            centre = hand.mean(0)
            _, _, vt = np.linalg.svd(hand - centre, full_matrices=False)
            fingers = vt[0] * np.sign(np.dot(vt[0], centre - wr))
            palm = vt[2]
            side_y = 1.0 if s == "L" else -1.0
            # In the rest pose the palms face the body (medial); Anny's rest hands do.
            palm = palm * (-1.0 if np.dot(palm, [0, side_y, 0]) > 0 else 1.0)
            palm, palm_point = palm_contact_plane(hand, palm)
            fingers = normalize(fingers - np.dot(fingers, palm) * palm)
            bend = (el - sh) - np.dot(el - sh, normalize(wr - sh)) * normalize(wr - sh)
            self.arm[s] = dict(shoulder=sh, elbow=el, wrist=wr, l1=np.linalg.norm(el - sh), l2=np.linalg.norm(wr - el),
                               pole=normalize(bend), fingers=fingers, palm=palm, palm_point=palm_point,
                               palm_offset=palm_point - wr, hand_length=float(np.ptp((hand - wr) @ fingers)),
                               hand_verts=hand)
        self.pelvis_height = float(sk.rest[0, 2, 3])
        self.leg_length = float(self.leg["L"]["l1"] + self.leg["L"]["l2"])
        self.arm_length = float(self.arm["L"]["l1"] + self.arm["L"]["l2"])
        self.ankle_height = float(self.leg["L"]["ankle"][2] - self.leg["L"]["sole_ref"][2])

    # ---- helpers for planners ------------------------------------------------------------
    def hand_delta(self, side: str, fingers: np.ndarray, palm: np.ndarray) -> np.ndarray:
        """World delta (...,3,3) turning the rest hand so its fingers and palm face the given ways."""
        a = self.arm[side]
        return frame(fingers, palm) @ frame(a["fingers"], a["palm"]).T

    def free_hand(self, side: str, shoulder: np.ndarray, chest: np.ndarray, swing: np.ndarray):
        """Palm point and hand delta of a relaxed arm hanging from `shoulder` (T,3)."""
        a = self.arm[side]
        side_y = 1.0 if side == "L" else -1.0
        abduct = np.deg2rad(9.0)
        upper = np.array([0.0, side_y * np.sin(abduct), -np.cos(abduct)])
        fore = normalize(np.array([np.sin(np.deg2rad(20)), side_y * 0.05, -np.cos(np.deg2rad(20))]))
        swing_r = rot_y(-np.asarray(swing))  # positive swing moves the hand forward
        R = chest @ swing_r
        elbow = shoulder + a["l1"] * (R @ upper)
        wrist = elbow + a["l2"] * (R @ fore)
        fingers = R @ fore
        palm = R @ np.array([0.0, -side_y, 0.0])
        D = frame(fingers, palm) @ frame(a["fingers"], a["palm"]).T
        return wrist + D @ a["palm_offset"], D

    # ---- the solver ----------------------------------------------------------------------
    def solve(self, ch: MotionChannels) -> PoseResult:
        sk, i = self.sk, self.i
        T = len(ch.yaw)
        D = np.broadcast_to(np.eye(3), (T, len(sk.names), 3, 3)).copy()
        root = rot_z(ch.yaw) @ rot_y(ch.pelvis_pitch)
        D[:, i["root"]] = root
        for b in ("pelvis.L", "pelvis.R"):
            D[:, i[b]] = root
        prev = root
        for name, share in zip(SPINE, SPINE_SHARE):
            local = rot_z(ch.spine_yaw * share) @ rot_y(ch.spine_pitch * share) @ rot_x(-ch.spine_roll * share)
            prev = prev @ local
            D[:, i[name]] = prev
        chest = prev
        for b in ("clavicle.L", "shoulder01.L", "clavicle.R", "shoulder01.R"):
            D[:, i[b]] = chest
        self._gaze(D, ch, chest)
        pos = sk.positions(ch.root_pos, D)
        leg_reach, foot_err = self._legs(D, pos, ch)
        pos = sk.positions(ch.root_pos, D)
        arm_reach, hand_err = self._arms(D, pos, ch, chest)
        return PoseResult(ch.root_pos.copy(), D, sk.world(ch.root_pos, D), leg_reach, arm_reach, hand_err, foot_err)

    def _gaze(self, D, ch: MotionChannels, chest) -> None:
        sk, i = self.sk, self.i
        pos = sk.positions(ch.root_pos, D)
        head = pos[:, i["head"]] + chest @ np.array([0.06, 0.0, 0.08])
        to = np.einsum("tji,tj->ti", chest, ch.look_at - head)  # in the chest frame
        raw = np.arctan2(to[:, 1], to[:, 0])
        # a target behind the shoulder fades out rather than flipping the head from one side to the other
        behind = np.clip((2.4 - np.abs(raw)) / 0.8, 0.0, 1.0)
        valid = (np.linalg.norm(ch.look_at, axis=1) > 0) * behind
        yaw = np.clip(raw, -1.0, 1.0) * valid
        pitch = np.clip(-np.arctan2(to[:, 2], np.hypot(to[:, 0], to[:, 1])), -0.5, 0.7) * valid
        prev = chest
        for name, share in zip(NECK, NECK_SHARE):
            prev = prev @ rot_z(yaw * share) @ rot_y(pitch * share)
            D[:, i[name]] = prev

    def _legs(self, D, pos, ch: MotionChannels):
        i = self.i
        reach, err = np.zeros((2, len(ch.yaw))), np.zeros((2, len(ch.yaw)))
        for k, s in enumerate(SIDES):
            g = self.leg[s]
            foot_D = ch.foot_rot[k]
            ankle_target = ch.sole_pos[k] + foot_D @ (g["ankle"] - g["sole_ref"])
            hip = pos[:, i[f"upperleg01.{s}"]]
            pole = foot_D @ np.array([1.0, 0.0, 0.0]) + D[:, i["root"]] @ np.array([1.0, 0.0, 0.0])
            sol = solve_two_bone(hip, ankle_target, g["l1"], g["l2"], pole)
            upper, lower = limb_rotations(g["hip"], g["knee"], g["ankle"], np.array([1.0, 0.0, 0.0]), sol)
            for b in (f"upperleg01.{s}", f"upperleg02.{s}"):
                D[:, i[b]] = upper
            for b in (f"lowerleg01.{s}", f"lowerleg02.{s}"):
                D[:, i[b]] = lower
            D[:, i[f"foot.{s}"]] = foot_D
            reach[k] = sol.reach_ratio
            err[k] = np.linalg.norm(sol.end - ankle_target, axis=1)
        return reach, err

    def _arms(self, D, pos, ch: MotionChannels, chest):
        i = self.i
        T = len(ch.yaw)
        reach, err = np.zeros((2, T)), np.zeros((2, T))
        for k, s in enumerate(SIDES):
            a = self.arm[s]
            shoulder = pos[:, i[f"upperarm01.{s}"]]
            free_pos, free_D = self.free_hand(s, shoulder, chest, ch.arm_swing[k])
            w = np.clip(ch.hand_weight[k], 0.0, 1.0)
            hand_D = slerp_matrices(free_D, ch.hand_rot[k], w)
            palm_target = shoulder + blend_about(free_pos - shoulder, ch.hand_pos[k] - shoulder, w)
            if ch.hand_arc is not None:
                palm_target[:, 2] += ch.hand_arc[k] * 4.0 * w * (1.0 - w)
            wrist_target = palm_target - hand_D @ a["palm_offset"]
            side_y = 1.0 if s == "L" else -1.0
            pole = chest @ np.array([-0.45, side_y * 0.55, -0.7])
            sol = solve_two_bone(shoulder, wrist_target, a["l1"], a["l2"], pole, soft_from=ARM_SOFT_REACH)
            upper, lower = limb_rotations(a["shoulder"], a["elbow"], a["wrist"], a["pole"], sol)
            for b in (f"upperarm01.{s}", f"upperarm02.{s}"):
                D[:, i[b]] = upper
            D[:, i[f"lowerarm01.{s}"]] = lower
            D[:, i[f"lowerarm02.{s}"]] = lower @ half_twist(np.swapaxes(lower, -1, -2) @ hand_D, normalize(a["wrist"] - a["elbow"]))
            D[:, i[f"wrist.{s}"]] = hand_D
            reach[k] = sol.reach_ratio
            err[k] = np.linalg.norm(sol.end - wrist_target, axis=1)
        return reach, err
