"""Reconstruction metrics that need no ground truth, and the quality filter's verdict.

The filter follows the reference release's criteria (REFERENCE.md): mask-tracking error (a
sequence is dropped above 0.2), human position error, keypoint tracking, contact penalty,
penetration, and motion magnitude (a human or a handled object that does not move is not an
interaction); and, the other half of the contact term, an object that travels while no hand
touches it (a hand fitted away from what it carries leaves the object floating). A failed
sequence is kept on disk and marked, with every failed criterion's reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class FilterThresholds:
    mask_error: float = 0.2            # 1 - mean silhouette agreement of the object, relative to the
                                       # known first frame's (reference: 0.2)
    visible_share: float = 0.5         # frames showing less of the object (in the hand) are not scored
    lost_agreement: float = 0.5        # a scored frame agreeing less has lost the object
    keypoint_error: float = 0.05       # mean reprojection error / person height in the image
    human_position_error: float = 0.05  # hip-centre reprojection error / person height
    contact_m: float = 0.02            # mean palm-to-surface gap while touching
    penetration_frames: float = 0.05   # share of frames with any penetration deeper than penetration_m
    penetration_m: float = 0.01
    human_static_m: float = 0.01       # the body's largest displacement from its mean (reference: 0.01)
    object_static_m: float = 0.02      # a handled object's largest displacement (reference: 0.02)
    object_lost_s: float = 1.0         # longest run of frames the object tracker distrusts
    untouched_travel_m: float = 0.05   # the object's path length over frames no hand touches it


@dataclass
class QualityInputs:
    """Everything the metrics are computed from (arrays over T frames)."""

    fps: float
    keypoints: np.ndarray          # (T,K,2) observed
    keypoint_conf: np.ndarray      # (T,K)
    projected: np.ndarray          # (T,K,2) the reconstruction's keypoints in the image
    joints: np.ndarray             # (T,K,3) the reconstruction's keypoints in the world
    hip_index: tuple[int, int]
    palm_gap: np.ndarray           # (T,2) palm surface to object surface (m, negative inside); NaN without object
    hand_contact: np.ndarray       # (T,2) bool
    ankle_depth: np.ndarray        # (T,2) how far each ankle is below its rest height over the support (m, >= 0)
    object_depth: np.ndarray       # (T,) how far the object's lowest point is below its support (m, >= 0)
    object_pos: np.ndarray | None  # (T,3)
    object_score: np.ndarray | None  # (T,) share of the visible silhouette that looks like the object, relative
                                     # to the known first frame's share, at most 1 (NaN: hidden, by the hands
                                     # or by the body in front of it)
    object_lost: np.ndarray | None   # (T,) bool


def _longest_run(flags: np.ndarray) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def untouched_travel(object_pos: np.ndarray, hand_contact: np.ndarray) -> float:
    """Path length (m) of the object over the steps between two frames in which no hand touches it:
    an untouched object stays where it is."""
    free = ~hand_contact.any(axis=1)
    steps = np.linalg.norm(np.diff(object_pos, axis=0), axis=-1)
    return float(steps[free[1:] & free[:-1]].sum())


def _acceleration(x: np.ndarray) -> float:
    return float(np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1).mean()) if len(x) > 2 else 0.0


def quality_metrics(q: QualityInputs, thresholds: FilterThresholds) -> dict:
    """The metrics.json body (without timings): per-criterion values and the filter verdict."""
    seen = q.keypoint_conf > 0
    err = np.linalg.norm(q.projected - q.keypoints, axis=-1)
    height = _person_height_px(q.keypoints, seen)
    i, j = q.hip_index
    both = seen[:, i] & seen[:, j]
    hip_err = np.linalg.norm((q.projected[:, i] + q.projected[:, j] - q.keypoints[:, i] - q.keypoints[:, j]) / 2, axis=-1)
    touching = q.hand_contact & np.isfinite(q.palm_gap)
    pen = (q.ankle_depth.max(axis=1) > thresholds.penetration_m) | (q.object_depth > thresholds.penetration_m)
    if np.isfinite(q.palm_gap).any():
        pen |= (np.nan_to_num(q.palm_gap, nan=0.0) < -thresholds.penetration_m).any(axis=1)
    centre = q.joints.mean(axis=1)
    m = {
        "frames": int(len(q.keypoints)),
        "human": {
            "reprojection_px": _round(err[seen].mean() if seen.any() else np.nan, 3),
            "reprojection_median_px": _round(np.median(err[seen]) if seen.any() else np.nan, 3),
            "person_height_px": _round(height, 1),
            "keypoint_error": _round(err[seen].mean() / height if seen.any() else np.nan, 4),
            "human_position_error": _round(hip_err[both].mean() / height if both.any() else np.nan, 4),
            "seen_share": _round(seen.mean(), 4),
            "smoothness_m_per_frame2": _round(_acceleration(q.joints), 5),
            "largest_displacement_m": _round(np.linalg.norm(centre - centre.mean(axis=0), axis=-1).max(), 4),
        },
        "contact": {
            "hand_frames": [int(q.hand_contact[:, 0].sum()), int(q.hand_contact[:, 1].sum())],
            "hand_object_gap_m": _round(np.abs(q.palm_gap[touching]).mean() if touching.any() else np.nan, 4),
        },
        "penetration": {
            "frames_share": _round(pen.mean(), 4),
            "ankle_max_m": _round(q.ankle_depth.max(), 4),
            "object_max_m": _round(q.object_depth.max() if len(q.object_depth) else 0.0, 4),
        },
    }
    if q.object_pos is not None:
        scored = np.isfinite(q.object_score)
        agreement = q.object_score[scored].mean() if scored.any() else np.nan
        m["object"] = {
            "mask_agreement_mean": _round(agreement, 4),
            "mask_error": _round(1.0 - agreement, 4),
            "occluded_frames": int((~scored).sum()),
            "lost_frames": int(q.object_lost.sum()),
            "longest_lost_s": _round(_longest_run(q.object_lost) / q.fps, 3),
            "smoothness_m_per_frame2": _round(_acceleration(q.object_pos), 5),
            "largest_displacement_m": _round(np.linalg.norm(q.object_pos - q.object_pos[0], axis=-1).max(), 4),
            "untouched_travel_m": _round(untouched_travel(q.object_pos, q.hand_contact), 4),
        }
    m["filter"] = verdict(m, thresholds)
    return m


def verdict(m: dict, t: FilterThresholds) -> dict:
    """{"passed": bool, "reasons": [...], "thresholds": {...}} from the metrics."""
    reasons = []

    def over(value: float | None, bound: float, what: str) -> None:
        if value is None:
            reasons.append(f"{what}: no value")
        elif value > bound:
            reasons.append(f"{what} {value:g} > {bound:g}")

    h = m["human"]
    over(h["keypoint_error"], t.keypoint_error, "keypoint error")
    over(h["human_position_error"], t.human_position_error, "human position error")
    if (h["largest_displacement_m"] or 0.0) < t.human_static_m:
        reasons.append(f"human static: moves {h['largest_displacement_m']:g} m < {t.human_static_m:g}")
    over(m["penetration"]["frames_share"], t.penetration_frames, "penetration frame share")
    handled = sum(m["contact"]["hand_frames"]) > 0
    if handled:
        over(m["contact"]["hand_object_gap_m"], t.contact_m, "hand-object gap (m)")
    if "object" in m:
        o = m["object"]
        over(o["mask_error"], t.mask_error, "mask-tracking error")
        over(o["longest_lost_s"], t.object_lost_s, "object lost for (s)")
        over(o["untouched_travel_m"], t.untouched_travel_m, "object travel with no hand on it (m)")
        if handled and (o["largest_displacement_m"] or 0.0) < t.object_static_m:
            reasons.append(f"object static while handled: moves {o['largest_displacement_m']:g} m < {t.object_static_m:g}")
    return {"passed": not reasons, "reasons": reasons, "thresholds": asdict(t)}


def _person_height_px(keypoints: np.ndarray, seen: np.ndarray) -> float:
    """Median over frames of the seen keypoints' vertical extent (shoulders to ankles)."""
    heights = [np.ptp(keypoints[t, seen[t], 1]) for t in range(len(keypoints)) if seen[t].sum() >= 4]
    return float(np.median(heights)) if heights else float("nan")


def _round(x: float, digits: int) -> float | None:
    """Rounded for metrics.json; None (JSON null) where there is no value."""
    x = float(x)
    return round(x, digits) if np.isfinite(x) else None
