"""A reconstruction measured against the procedural ground truth (benchmarks and tests only: the
stage itself never reads gt.npz except through the oracle estimator, which says so)."""

from __future__ import annotations

import numpy as np

from grail.video.gt import GroundTruth


def quat_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between wxyz quaternions (...,4), degrees (sign-independent)."""
    dot = np.abs((a * b).sum(-1)) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(2 * np.arccos(np.clip(dot, 0.0, 1.0)))


def evaluate_against_gt(hoi: GroundTruth, gt: GroundTruth) -> dict:
    """MPJPE (world and pelvis-relative, mm), root error, object position (cm; overall, and over
    the frames the truth holds it and those it does not) and rotation (deg) errors, and
    contact-label agreement."""
    if hoi.frames != gt.frames or hoi.joint_names != gt.joint_names:
        raise ValueError("the reconstruction and the ground truth differ in frames or joints")
    err = np.linalg.norm(hoi.joint_pos - gt.joint_pos, axis=-1)
    pelvis = gt.joint_names.index("pelvis")
    rel = (hoi.joint_pos - hoi.joint_pos[:, [pelvis]]) - (gt.joint_pos - gt.joint_pos[:, [pelvis]])
    out = {
        "mpjpe_mm": float(1000 * err.mean()),
        "mpjpe_rel_mm": float(1000 * np.linalg.norm(rel, axis=-1).mean()),
        "root_mm": float(1000 * np.linalg.norm(hoi.root_pos - gt.root_pos, axis=-1).mean()),
        "per_joint_mm": {n: round(float(1000 * e), 1) for n, e in zip(gt.joint_names, err.mean(axis=0))},
        "contact_agreement": float((hoi.contact == gt.contact).mean()),
    }
    if gt.object_names and hoi.object_names == gt.object_names:
        object_err = 100 * np.linalg.norm(hoi.object_pos - gt.object_pos, axis=-1)  # (T,O) cm
        out["object_pos_cm"] = float(object_err.mean())
        out["object_pos_max_cm"] = float(object_err.max())
        out["object_rot_deg"] = float(quat_angle_deg(hoi.object_quat, gt.object_quat).mean())
        # split by the truth's hold: the error of a carried object and of one at rest differ in cause
        held = np.asarray(gt.object_held, bool)
        out["object_held_pos_cm"] = float(object_err[held].mean()) if held.any() else None
        out["object_free_pos_cm"] = float(object_err[~held].mean()) if (~held).any() else None
    return out
