"""Helpers for the arm-flip tests: a true pose with an arm turned onto one of its depth flips."""

from __future__ import annotations

import numpy as np
from grail.recon.arm_flip import arm_configurations, reaim_arm
from grail.recon.body import TorchRig, hinge_axes
from grail.recon.hoi import rig_pose


def wrist_flipped(rig: TorchRig, root: np.ndarray, local: np.ndarray, eye: np.ndarray, frames: np.ndarray,
                  side: str) -> tuple[np.ndarray, np.ndarray]:
    """The pose with one arm's wrist turned onto its other ray meeting (the elbow kept) over
    `frames`, where that meeting exists: a depth flip the fit can keep through a hold (the two
    meetings join where the ray grazes the forearm's reach, so the arm moves on continuously)."""
    pos, deltas = rig_pose(rig, root, local)
    b = [rig.joint_bones[f"{side}_{name}"] for name in ("shoulder", "elbow", "wrist")]
    S, E, W = (pos[frames, k] for k in b)
    elbows, wrists, exists = arm_configurations(eye, S, E, W)
    truth = (np.linalg.norm(elbows - E, axis=-1) + np.linalg.norm(wrists - W, axis=-1)).argmin(axis=0)
    other = truth ^ 1  # the same elbow, the other wrist
    n = np.arange(len(S))
    rows = np.flatnonzero(exists[other, n])
    hinged, axes = hinge_axes(rig)
    turned = reaim_arm(rig, deltas[frames][rows], local[frames][rows], tuple(b), axes.numpy()[hinged.index(b[1])],
                       S[rows], E[rows], elbows[other[rows], rows], wrists[other[rows], rows])
    out = local.copy()
    out[frames[rows], b[0]], out[frames[rows], b[1]] = turned[:, 0], turned[:, 1]
    return out, frames[rows]


def farthest_flip(rig: TorchRig, root: np.ndarray, local: np.ndarray, eye: np.ndarray, side: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pose with one arm turned, in every frame, onto the depth configuration whose wrist is
    farthest from the pose's own (a flip a fit could end on), and that configuration's elbows and
    wrists (T,3) each."""
    pos, deltas = rig_pose(rig, root, local)
    b = [rig.joint_bones[f"{side}_{name}"] for name in ("shoulder", "elbow", "wrist")]
    S, E, W = (pos[:, k] for k in b)
    elbows, wrists, exists = arm_configurations(eye, S, E, W)
    far = np.where(exists, np.linalg.norm(wrists - W, axis=-1), -1.0).argmax(axis=0)
    frames = np.arange(len(root))
    hinged, axes = hinge_axes(rig)
    turned = reaim_arm(rig, deltas, local, tuple(b), axes.numpy()[hinged.index(b[1])], S, E,
                       elbows[far, frames], wrists[far, frames])
    out = local.copy()
    out[:, b[0]], out[:, b[1]] = turned[:, 0], turned[:, 1]
    return out, elbows[far, frames], wrists[far, frames]
