"""Analytic limb IK (two bones and a hinge), vectorised over frames.

A limb is root joint -> middle joint -> end joint (hip-knee-ankle, shoulder-elbow-wrist). Given the
root position, an end target and a pole direction (where the middle joint should point), the
middle joint is placed by the law of cosines in the plane of root, target and pole. Segment
rotations come from orthonormal frames built from the segment direction and the hinge axis, so
the rest limb maps onto the solved limb with no twist beyond what the hinge implies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-9


def normalize(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, EPS)


def frame(u: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Orthonormal frame (...,3,3) with columns [u, a orthogonalised against u, u x a]."""
    u = normalize(u)
    a = normalize(a - np.sum(a * u, -1, keepdims=True) * u)
    return np.stack([u, a, np.cross(u, a)], axis=-1)


def rotation_between_frames(u_rest, a_rest, u_new, a_new) -> np.ndarray:
    """Rotation taking frame(u_rest, a_rest) to frame(u_new, a_new)."""
    return frame(u_new, a_new) @ np.swapaxes(frame(u_rest, a_rest), -1, -2)


@dataclass
class TwoBoneSolution:
    root: np.ndarray  # (T,3) root joint
    middle: np.ndarray  # (T,3) middle joint
    end: np.ndarray  # (T,3) end joint actually reached
    hinge: np.ndarray  # (T,3) unit hinge axis (cross of pole and reach direction)
    reach_ratio: np.ndarray  # (T,) |target - root| / (L1 + L2) before clamping


def solve_two_bone(root: np.ndarray, target: np.ndarray, l1: float, l2: float, pole: np.ndarray,
                   max_extension: float = 0.999, soft_from: float | None = None) -> TwoBoneSolution:
    """Place the middle joint; targets beyond max_extension of the limb length are clamped.

    With `soft_from`, distances beyond that share of the limb length are compressed smoothly
    (tanh) towards max_extension instead of clipped: near full extension the hinge angle changes
    fast with the distance (d angle / d reach grows without bound), so a target that sweeps in
    from out of reach would otherwise snap the joint within a frame."""
    d = target - root
    dist = np.linalg.norm(d, axis=-1)
    dhat = normalize(d)
    L = l1 + l2
    reach = dist / L
    if soft_from is not None:
        a, b = soft_from * L, max_extension * L
        dist = np.where(dist > a, a + (b - a) * np.tanh((dist - a) / (b - a)), dist)
    dist_c = np.clip(dist, abs(l1 - l2) + 1e-4, max_extension * L)
    cos_a = np.clip((l1 ** 2 + dist_c ** 2 - l2 ** 2) / (2 * l1 * dist_c), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a ** 2)
    p = pole - np.sum(pole * dhat, -1, keepdims=True) * dhat
    p = normalize(p)
    middle = root + l1 * (cos_a[:, None] * dhat + sin_a[:, None] * p)
    end = root + dist_c[:, None] * dhat
    hinge = normalize(np.cross(p, dhat))
    return TwoBoneSolution(root, middle, end, hinge, reach)


def limb_rotations(rest_root, rest_mid, rest_end, rest_pole, sol: TwoBoneSolution):
    """World deltas (T,3,3) of the upper and lower segment for a solved limb."""
    d_rest = normalize(rest_end - rest_root)
    p_rest = normalize(rest_pole - np.dot(rest_pole, d_rest) * d_rest)
    hinge_rest = normalize(np.cross(p_rest, d_rest))
    upper = rotation_between_frames(rest_mid - rest_root, hinge_rest, sol.middle - sol.root, sol.hinge)
    lower = rotation_between_frames(rest_end - rest_mid, hinge_rest, sol.end - sol.middle, sol.hinge)
    return upper, lower
