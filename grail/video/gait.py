"""Footstep planning and gait synthesis: walking to a goal, turning in place, stepping on terrain.

Footholds come first and the pelvis follows them, so a stance foot never slides by construction:
each step lifts one foot from its foothold, swings it over the terrain (with clearance over the
highest point under its footprint) and puts it down flat on the next foothold. Footholds are
snapped along the path until the whole footprint rests on one planar patch (a whole tread, the
curb top, the slope), which is what makes stairs and curbs work without special cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from grail.errors import GrailError


class Ground(Protocol):
    def height(self, xy: np.ndarray) -> np.ndarray: ...


@dataclass
class FootPose:
    pos: np.ndarray  # (3,) sole reference point (under the ankle) on the support
    yaw: float
    normal: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))


@dataclass
class Footstep:
    side: int  # 0 left, 1 right
    t_lift: float
    t_land: float
    start: FootPose
    end: FootPose


@dataclass
class GaitParams:
    step_length: float = 0.34  # m, heel-to-heel distance between consecutive footholds
    step_period: float = 0.46  # s per step (left or right)
    swing_fraction: float = 0.78  # share of a step period a foot is in the air
    stance_width: float = 0.2  # m between the sole centres
    toe_out: float = np.deg2rad(6.0)
    clearance: float = 0.035  # m over the highest point under the swinging footprint
    min_lift: float = 0.03
    turn_per_step: float = np.deg2rad(65.0)
    turn_step_period: float = 0.42
    bob: float = 0.012
    sway: float = 0.35  # share of the half stance width the pelvis moves over the stance foot
    arm_swing: float = 0.28  # rad at a full step
    terrain_step_extra: float = 0.16  # s added to a swing that changes level


@dataclass
class Footprint:
    """The sole rectangle around the sole reference point (foot frame: x forward, y left)."""

    heel: float
    toe: float
    half_width: float

    def points(self, pos: np.ndarray, yaw: float, n: int = 4) -> np.ndarray:
        xs = np.linspace(self.heel, self.toe, n)
        ys = np.array([-self.half_width, 0.0, self.half_width])
        gx, gy = np.meshgrid(xs, ys)
        c, s = np.cos(yaw), np.sin(yaw)
        return np.stack([pos[0] + c * gx - s * gy, pos[1] + s * gx + c * gy], -1).reshape(-1, 2)


def minjerk(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u ** 3 * (10 - 15 * u + 6 * u ** 2)


def wrap(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


@dataclass
class Gait:
    """Everything a walking/turning segment decided: steps and the stance feet at the end."""

    steps: list[Footstep]
    feet: list[FootPose]  # final stance (left, right)
    t_end: float


def polyline_path(points: np.ndarray, final_yaw: float | None = None, start_yaw: float | None = None,
                  corner: float = 0.25, final_turn: float = 0.5) -> Callable[[float], tuple[np.ndarray, float]]:
    """Arc length -> (stance centre, heading) along a polyline. The heading turns smoothly from
    `start_yaw` over the first `corner` m, over `corner` m either side of each waypoint, and
    towards `final_yaw` over the last `final_turn` m."""
    points = points[np.r_[True, np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-6]]  # no zero-length segments
    seg = np.diff(points, axis=0)
    lengths = np.linalg.norm(seg, axis=1)
    cum = np.r_[0.0, np.cumsum(lengths)]
    heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
    first = heading[0] if start_yaw is None else heading[0] + float(wrap(start_yaw - heading[0]))
    knots_s, knots_h = [0.0], [first]
    for k, (h, L) in enumerate(zip(heading, lengths)):
        m = min(corner, 0.45 * L)
        knots_s += [cum[k] + (m if k > 0 or start_yaw is not None else 0.0), cum[k + 1] - (m if k < len(lengths) - 1 else 0.0)]
        knots_h += [h, h]
    if final_yaw is not None:
        ramp = min(final_turn, 0.9 * lengths[-1])
        knots_s[-1] = cum[-1] - ramp
        knots_s.append(cum[-1])
        knots_h.append(heading[-1] + float(wrap(final_yaw - heading[-1])))
    knots_s = np.maximum.accumulate(np.asarray(knots_s)) + np.arange(len(knots_s)) * 1e-9

    def at(s: float) -> tuple[np.ndarray, float]:
        s = float(np.clip(s, 0.0, cum[-1]))
        k = min(int(np.searchsorted(cum, s, side="right")) - 1, len(lengths) - 1)
        xy = points[k] + seg[k] * ((s - cum[k]) / lengths[k])
        return xy, float(np.interp(s, knots_s, knots_h))

    return at


class GaitPlanner:
    def __init__(self, ground: Ground, footprint: Footprint, params: GaitParams):
        self.ground = ground
        self.fp = footprint
        self.p = params

    # ---- footholds ------------------------------------------------------------------------
    def plane_fit(self, xy: np.ndarray, yaw: float):
        """Fit z = a x + b y + c under the footprint; returns (ok, pos z at centre, normal)."""
        pts = self.fp.points(np.array([xy[0], xy[1], 0.0]), yaw)
        z = self.ground.height(pts)
        A = np.c_[pts, np.ones(len(pts))]
        coef, *_ = np.linalg.lstsq(A, z, rcond=None)
        resid = np.abs(A @ coef - z).max()
        normal = np.array([-coef[0], -coef[1], 1.0])
        normal /= np.linalg.norm(normal)
        ok = resid < 0.002 and normal[2] > np.cos(np.deg2rad(20))
        zc = coef[0] * xy[0] + coef[1] * xy[1] + coef[2]
        return ok, float(zc), normal

    def foothold(self, xy: np.ndarray, yaw: float) -> FootPose | None:
        ok, z, n = self.plane_fit(xy, yaw)
        if not ok:
            return None
        return FootPose(np.array([xy[0], xy[1], z]), float(yaw), n)

    def snapped(self, path: Callable[[float], tuple[np.ndarray, float]], s: float, side: int,
                lo: float, hi: float) -> tuple[float, FootPose]:
        """The valid foothold closest to arc length s (searching back first) within [lo, hi]."""
        for ds in np.r_[0.0, np.ravel(np.column_stack([-np.arange(1, 31), np.arange(1, 31)])) * 0.01]:
            t = s + ds
            if t < lo - 1e-9 or t > hi + 1e-9:
                continue
            xy, yaw = path(t)
            sign = 1.0 if side == 0 else -1.0
            left = np.array([-np.sin(yaw), np.cos(yaw)])
            foot_yaw = yaw + sign * self.p.toe_out
            pose = self.foothold(xy + sign * 0.5 * self.p.stance_width * left, foot_yaw)
            if pose is not None:
                return t, pose
        xy, _ = path(s)
        raise GrailError(f"no flat place for a foot near ({xy[0]:.2f}, {xy[1]:.2f}) m: the terrain cannot be walked",
                         field="terrain")

    def stance(self, centre: np.ndarray, yaw: float) -> list[FootPose]:
        """Both feet around a pelvis centre at a heading (used for turns and final stances)."""
        path = lambda s: (np.asarray(centre, float)[:2], yaw)  # noqa: E731
        return [self.snapped(path, 0.0, side, -0.3, 0.3)[1] for side in (0, 1)]

    # ---- segments ---------------------------------------------------------------------------
    def walk(self, feet: list[FootPose], goal_xy: np.ndarray, t0: float, first_side: int | None = None,
             via: list[np.ndarray] = (), final_yaw: float | None = None) -> Gait:
        """Walk from the current stance centre through the `via` points to goal_xy, ending with
        the heading `final_yaw` (turning over the last half metre) or the last segment's."""
        start = 0.5 * (feet[0].pos[:2] + feet[1].pos[:2])
        points = np.array([start, *[np.asarray(v, float)[:2] for v in via], np.asarray(goal_xy, float)[:2]])
        length = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
        if length < 0.05:
            return Gait([], feet, t0)
        start_yaw = float(np.arctan2(np.sin(feet[0].yaw) + np.sin(feet[1].yaw), np.cos(feet[0].yaw) + np.cos(feet[1].yaw)))
        path = polyline_path(points, final_yaw, start_yaw)
        p = self.p
        current = [0.0, 0.0]
        side = first_side if first_side is not None else 0
        steps, feet = [], list(feet)
        t = t0
        for _ in range(200):
            other = current[1 - side]
            if other >= length - 1e-6 and current[side] >= length - 1e-6:
                break
            target = min(other + p.step_length, length)
            if current[side] >= length - 1e-6:
                side = 1 - side
                continue
            lo = max(current[side] + 0.06, other - 0.05)
            s_new, pose = self.snapped(path, target, side, lo, other + 1.35 * p.step_length)
            # a step up or down takes longer (more knee flexion to clear the edge at the same joint speed)
            extra = p.terrain_step_extra if abs(pose.pos[2] - feet[side].pos[2]) > 0.02 else 0.0
            steps.append(Footstep(side, t, t + p.swing_fraction * p.step_period + extra, feet[side], pose))
            feet[side] = pose
            current[side] = s_new
            t += p.step_period + extra
            side = 1 - side
        else:
            raise GrailError("walking plan did not converge", field="task")
        return Gait(steps, feet, t - p.step_period * (1 - p.swing_fraction) if steps else t0)

    def turn(self, feet: list[FootPose], yaw_to: float, t0: float) -> Gait:
        """Turn in place to a heading with alternating steps around the stance centre."""
        centre = 0.5 * (feet[0].pos + feet[1].pos)
        yaw_from = float(np.mean([f.yaw for f in feet]))
        delta = float(wrap(yaw_to - yaw_from))
        if abs(delta) < np.deg2rad(8):
            return Gait([], feet, t0)
        p = self.p
        n = int(np.ceil(abs(delta) / p.turn_per_step))
        side = 0 if delta > 0 else 1  # lead with the foot on the side we turn towards
        steps, feet, t = [], list(feet), t0
        for k in range(1, n + 1):
            stance = self.stance(centre, yaw_from + delta * k / n)
            for s in (side, 1 - side) if k == n else (side,):
                steps.append(Footstep(s, t, t + p.swing_fraction * p.turn_step_period, feet[s], stance[s]))
                feet[s] = stance[s]
                t += p.turn_step_period
            side = 1 - side
        return Gait(steps, feet, t - p.turn_step_period * (1 - p.swing_fraction))

    # ---- dense trajectories -------------------------------------------------------------------
    def swing(self, step: Footstep, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sole position (n,3) and yaw (n,) along a swing at phases u in [0,1]."""
        a, b = step.start, step.end
        up = b.pos[2] >= a.pos[2]
        h = minjerk((u - 0.12) / 0.88) if up else minjerk(u / 0.88)
        v = minjerk(u / 0.75) if up else minjerk((u - 0.25) / 0.75)
        xy = a.pos[:2] + h[:, None] * (b.pos[:2] - a.pos[:2])
        yaw = a.yaw + h * wrap(b.yaw - a.yaw)
        base = a.pos[2] + v * (b.pos[2] - a.pos[2])
        need = np.array([self.ground.height(self.fp.points(np.r_[p, 0.0], y)).max() for p, y in zip(xy, yaw)])
        bump = np.sin(np.pi * np.clip(u, 0, 1))
        inner = (u > 0.08) & (u < 0.92)
        # z >= terrain under the footprint + clearance * bump: full clearance mid-swing, none at touch-down
        ratio = (need[inner] - base[inner]) / np.maximum(bump[inner], 1e-3) + self.p.clearance
        lift = max(self.p.min_lift, float(ratio.max()) if inner.any() else 0.0)
        z = base + lift * bump
        return np.c_[xy, z], yaw
