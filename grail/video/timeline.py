"""The animation timeline: footsteps and eased keyframe tracks turned into dense per-frame channels.

A task planner (grail/video/tasks.py) appends walking and turning segments (footsteps from
:class:`GaitPlanner`) and keys for the manipulation channels (trunk bend, squat depth, pelvis
shift, hand blend), and fills dense hand/object trajectories. :meth:`Timeline.channels` then makes
the pelvis follow the feet (centre of support, sway, bob, terrain height), clamps it so the legs
always reach their footholds, and returns :class:`MotionChannels` for the body solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from grail.video.body import BodyRig, MotionChannels, rot_z
from grail.video.gait import Footstep, FootPose, GaitPlanner, minjerk


@dataclass
class Track:
    """Keyframes eased with minimum-jerk profiles (zero velocity at every key)."""

    keys: list[tuple[float, np.ndarray]] = field(default_factory=list)

    def set(self, t: float, value) -> None:
        self.keys.append((float(t), np.asarray(value, float)))
        self.keys.sort(key=lambda k: k[0])

    def value_at(self, t: float) -> np.ndarray:
        return self.sample(np.array([t]))[0]

    def sample(self, times: np.ndarray) -> np.ndarray:
        k = self.keys
        out = np.empty((len(times),) + k[0][1].shape)
        out[:] = k[0][1]
        for (t0, v0), (t1, v1) in zip(k[:-1], k[1:]):
            if t1 <= t0:
                out[times >= t1] = v1
                continue
            u = minjerk((times - t0) / (t1 - t0))
            sel = times >= t0
            out[sel] = v0 + u[sel].reshape((-1,) + (1,) * v0.ndim) * (v1 - v0)
        return out


SCALAR_TRACKS = ("pelvis_pitch", "spine_pitch", "spine_yaw", "spine_roll", "drop", "shift", "lean_side")


class Timeline:
    def __init__(self, rig: BodyRig, planner: GaitPlanner, fps: float, duration: float,
                 feet: list[FootPose], pelvis_height_offset: float = -0.015):
        self.rig, self.planner = rig, planner
        self.fps = float(fps)
        self.frames = int(round(duration * fps))
        self.times = np.arange(self.frames) / self.fps
        self.duration = duration
        self.initial_feet = list(feet)
        self.feet = list(feet)
        self.steps: list[Footstep] = []
        self.now = 0.0
        self.tracks = {name: Track([(0.0, np.array(0.0))]) for name in SCALAR_TRACKS}
        self.hand_weight = [Track([(0.0, np.array(0.0))]), Track([(0.0, np.array(0.0))])]
        self.hand_pos = np.zeros((2, self.frames, 3))
        self.hand_rot = np.broadcast_to(np.eye(3), (2, self.frames, 3, 3)).copy()
        self.hand_contact = np.zeros((2, self.frames), bool)
        self.pelvis_contact = np.zeros(self.frames, bool)
        self.look_at = np.zeros((self.frames, 3))
        self.phases: list[tuple[float, str]] = [(0.0, "stand")]
        self.height_offset = pelvis_height_offset

    # ---- building -----------------------------------------------------------------------------
    def phase(self, name: str, t: float | None = None) -> None:
        self.phases.append((self.now if t is None else t, name))

    def add_gait(self, gait) -> None:
        self.steps.extend(gait.steps)
        self.feet = list(gait.feet)
        self.now = max(self.now, gait.t_end)

    def key(self, name: str, t: float, value: float) -> None:
        self.tracks[name].set(t, value)

    def mask(self, t0: float, t1: float) -> np.ndarray:
        return (self.times >= t0 - 1e-9) & (self.times < t1 - 1e-9)

    def frame_of(self, t: float) -> int:
        return int(np.clip(np.round(t * self.fps), 0, self.frames - 1))

    # ---- dense channels -----------------------------------------------------------------------
    def feet_tracks(self):
        """Sole positions (2,T,3), yaws (2,T), normals (2,T,3), contact (2,T)."""
        T = self.frames
        pos = np.zeros((2, T, 3))
        yaw = np.zeros((2, T))
        normal = np.zeros((2, T, 3))
        contact = np.ones((2, T), bool)
        for s in (0, 1):
            f = self.initial_feet[s]
            pos[s], yaw[s], normal[s] = f.pos, f.yaw, f.normal
            for st in (x for x in self.steps if x.side == s):
                after = self.times >= st.t_land
                pos[s, after], yaw[s, after], normal[s, after] = st.end.pos, st.end.yaw, st.end.normal
                during = (self.times > st.t_lift) & (self.times < st.t_land)
                if during.any():
                    u = (self.times[during] - st.t_lift) / (st.t_land - st.t_lift)
                    p, y = self.planner.swing(st, u)
                    pos[s, during], yaw[s, during] = p, y
                    w = minjerk(u)[:, None]
                    normal[s, during] = (1 - w) * st.start.normal + w * st.end.normal
                    contact[s, during] = False
        return pos, yaw, normal, contact

    def walking_time(self) -> float:
        """Seconds spent stepping (walks and turns): what a faster pace would shorten."""
        return float(sum(st.t_land - st.t_lift for st in self.steps) / self.planner.p.swing_fraction)

    def _support_keys(self):
        """Pelvis keypoints: centre of the feet at mid double support after each step."""
        feet = list(self.initial_feet)
        first = self.steps[0].t_lift if self.steps else 0.0
        keys = [(0.0, feet), (first, feet)]
        for k, st in enumerate(self.steps):
            feet = list(feet)
            feet[st.side] = st.end
            nxt = self.steps[k + 1].t_lift if k + 1 < len(self.steps) else st.t_land + 0.25
            keys.append((0.5 * (st.t_land + min(nxt, st.t_land + 0.25)), feet))
            if nxt > st.t_land + 0.35:  # standing between two walks: the pelvis holds until the next lift
                keys.append((nxt, feet))
        out_t, out_v = [], []
        for t, f in keys:
            if out_t and t <= out_t[-1] + 1e-6:
                out_t[-1], out_v[-1] = t, f
                continue
            out_t.append(t)
            out_v.append(f)
        return np.array(out_t), out_v

    def pelvis_base(self):
        """Pelvis xy, yaw and ground height following the support (T,2), (T,), (T,)."""
        times, feet = self._support_keys()
        xy = np.array([0.5 * (f[0].pos[:2] + f[1].pos[:2]) for f in feet])
        z = np.array([0.5 * (f[0].pos[2] + f[1].pos[2]) for f in feet])
        yaw = np.unwrap(np.array([np.arctan2(np.sin(f[0].yaw) + np.sin(f[1].yaw), np.cos(f[0].yaw) + np.cos(f[1].yaw)) for f in feet]))
        if len(times) == 1:
            T = self.frames
            return np.tile(xy[0], (T, 1)), np.full(T, yaw[0]), np.full(T, z[0])
        t = np.clip(self.times, times[0], times[-1])
        return (PchipInterpolator(times, xy, axis=0)(t), PchipInterpolator(times, yaw)(t),
                PchipInterpolator(times, z)(t))

    def sway_bob(self, sole: np.ndarray, base_xy: np.ndarray):
        """Lateral shift over the stance foot and vertical bob during single support."""
        shift = np.zeros((self.frames, 2))
        bob = np.zeros(self.frames)
        p = self.planner.p
        for st in self.steps:
            during = (self.times > st.t_lift) & (self.times < st.t_land)
            if not during.any():
                continue
            u = (self.times[during] - st.t_lift) / (st.t_land - st.t_lift)
            stance = sole[1 - st.side, during, :2]
            shift[during] += p.sway * (stance - base_xy[during]) * np.sin(np.pi * u)[:, None]
            bob[during] += p.bob * np.sin(np.pi * u)
        shift = gaussian_filter1d(shift, 1.0, axis=0)
        return shift, bob

    def channels(self) -> MotionChannels:
        rig, T = self.rig, self.frames
        sole, foot_yaw, normal, self.foot_contact = self.feet_tracks()
        base_xy, yaw, ground_z = self.pelvis_base()
        shift_xy, bob = self.sway_bob(sole, base_xy)
        tr = {k: v.sample(self.times) for k, v in self.tracks.items()}
        fwd = np.stack([np.cos(yaw), np.sin(yaw)], -1)
        self.base_xy, self.base_yaw = base_xy + tr["shift"][:, None] * fwd, yaw
        xy = self.base_xy + shift_xy
        z = ground_z + rig.pelvis_height + self.height_offset + bob - tr["drop"]
        ch = MotionChannels.standing(T, np.zeros(3), 0.0)
        ch.root_pos = np.c_[xy, z]
        ch.yaw = yaw
        ch.pelvis_pitch = tr["pelvis_pitch"]
        ch.spine_pitch = tr["spine_pitch"]
        ch.spine_yaw = tr["spine_yaw"]
        ch.spine_roll = tr["spine_roll"] + tr["lean_side"]
        ch.sole_pos = sole
        ch.foot_rot = np.stack([foot_rotation(foot_yaw[s], normal[s]) for s in (0, 1)])
        ch.look_at = self.look_at
        ch.hand_pos, ch.hand_rot = self.hand_pos, self.hand_rot
        ch.hand_weight = np.stack([w.sample(self.times) for w in self.hand_weight])
        ch.arm_swing = self.arm_swing(sole, yaw) * (1.0 - ch.hand_weight)
        self.clamp_reach(ch)
        return ch

    def arm_swing(self, sole: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        fwd = np.stack([np.cos(yaw), np.sin(yaw)], -1)
        ahead = np.sum((sole[1, :, :2] - sole[0, :, :2]) * fwd, -1) / max(self.planner.p.step_length, 1e-3)
        a = self.planner.p.arm_swing * np.clip(ahead, -1.2, 1.2)
        return np.stack([a, -a])

    def clamp_reach(self, ch: MotionChannels, max_ratio: float = 0.985) -> None:
        """Lower the pelvis where a leg could not reach its foothold (smoothly, never above)."""
        rig = self.rig
        z_max = np.full(self.frames, np.inf)
        for _ in range(2):
            pose = rig.solve(ch)
            for k, s in enumerate(("L", "R")):
                g = rig.leg[s]
                hip = pose.bone_world[:, rig.i[f"upperleg01.{s}"], :3, 3]
                ankle = ch.sole_pos[k] + ch.foot_rot[k] @ (g["ankle"] - g["sole_ref"])
                d = ankle - hip
                L = max_ratio * (g["l1"] + g["l2"])
                h2 = np.maximum(L ** 2 - d[:, 0] ** 2 - d[:, 1] ** 2, 0.0)
                z_max = np.minimum(z_max, ch.root_pos[:, 2] + (ankle[:, 2] + np.sqrt(h2) - hip[:, 2]))
            deficit = np.maximum(ch.root_pos[:, 2] - z_max, 0.0)
            if deficit.max() < 1e-5:
                return
            smooth = gaussian_filter1d(maximum_filter1d(deficit, size=int(self.fps * 0.3) | 1), self.fps * 0.06)
            ch.root_pos[:, 2] -= np.maximum(smooth, deficit)


def foot_rotation(yaw: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """World delta of a foot: heading yaw, sole tilted onto the surface normal."""
    Rz = rot_z(yaw)
    n = normal / np.linalg.norm(normal, axis=-1, keepdims=True)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, n)
    s = np.linalg.norm(axis, axis=-1)
    c = n[:, 2]
    out = Rz.copy()
    tilt = s > 1e-9
    if tilt.any():
        k = axis[tilt] / s[tilt, None]
        K = np.zeros((tilt.sum(), 3, 3))
        K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
        K = K - np.swapaxes(K, 1, 2)
        ang = np.arctan2(s[tilt], c[tilt])[:, None, None]
        R = np.eye(3) + np.sin(ang) * K + (1 - np.cos(ang)) * K @ K
        out[tilt] = R @ Rz[tilt]
    return out
