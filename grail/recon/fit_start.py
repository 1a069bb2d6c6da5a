"""Where the human fit starts: a root track, a heading track and planted feet read off the 2D
keypoints alone, before any optimisation.

Depth is what one view leaves open, so the root's distance is gauged two ways: by the torso's
image length (its metric length is known), which fails when the torso bends toward the camera
(a squatting child looks a metre further away), and by the planted feet (a foot standing on a
known support lies where its pixel's ray meets that support), which is never far off but only
as close as the pelvis is to the feet. The torso's gauge is kept within `feet_reach_m` of the
feet's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from grail.recon.body import TorchRig, rest_height
from grail.recon.keypoints import KEYPOINTS, depth_order_bones, depth_order_evidence, keypoint_offsets, landmark_points
from grail.recon.observations import Observations
from grail.scene.camera import PinholeCamera

RAY_STEP_M = 0.01         # ray marching onto the support map
RAY_RANGE_M = (0.3, 15.0)


def project_points(points: torch.Tensor, K: torch.Tensor, R_wc: torch.Tensor, t_wc: torch.Tensor) -> torch.Tensor:
    """Pixels (...,2) of world points (...,3) (depth clamped at 1 mm)."""
    cam = (points - t_wc) @ R_wc
    z = cam[..., 2:].clamp(min=1e-3)
    return (cam[..., :2] / z) @ K[:2, :2].T + K[:2, 2]


def speed(track: np.ndarray, fps: float, window: int) -> np.ndarray:
    """(T,) speed of a (T,D) track: the slope of a line fitted over `window` frames."""
    from scipy.signal import savgol_filter

    T = len(track)
    window = min(window, T - (1 - T % 2))
    if window < 3:
        return np.zeros(T)
    velocity = savgol_filter(track, window, 1, deriv=1, axis=0, mode="interp") * fps
    return np.linalg.norm(velocity, axis=-1)


def planted_feet(obs: Observations, camera: PinholeCamera, roots: np.ndarray, speed_m_s: float,
                 window: int = 9) -> np.ndarray:
    """(T,2) weight in [0,1] that each ankle stands still, from its image speed turned into metres
    at the body's depth (fixed for the fit: the objective must not change under L-BFGS). The speed
    is the slope of a line fitted over `window` frames: a frame-to-frame difference of noisy
    detections (3 px at 24 fps is 0.5 m/s at 3 m) would hide every planted foot."""
    idx = [obs.keypoint_names.index(k) for k in ("left_ankle", "right_ankle")]
    uv, conf = obs.keypoints[:, idx], obs.keypoint_conf[:, idx]
    depth = camera.world_to_camera(roots)[:, 2]
    T = obs.frames
    weight = np.zeros((T, 2))
    for k in range(2):
        seen = conf[:, k] > 0
        if seen.sum() < 2:
            continue
        track = np.stack([np.interp(np.arange(T), np.flatnonzero(seen), uv[seen, k, d]) for d in range(2)], 1)
        v = speed(track, obs.fps, window) * depth / camera.K[0, 0]
        weight[:, k] = np.where(seen, np.exp(-(v / speed_m_s) ** 2), 0.0)
    return weight


def ankles_on_support(obs: Observations, camera: PinholeCamera, support: Callable[[np.ndarray], np.ndarray],
                      rest_ankle: float) -> np.ndarray:
    """(T,2,3) where each ankle would be if its foot stood on the support: the first point along
    its pixel's ray at the ankle's rest height above the support map (NaN where unseen or where
    the ray never comes down to it)."""
    idx = [obs.keypoint_names.index(k) for k in ("left_ankle", "right_ankle")]
    T = obs.frames
    along = np.arange(*RAY_RANGE_M, RAY_STEP_M)
    out = np.full((T, 2, 3), np.nan)
    for k in range(2):
        seen = obs.keypoint_conf[:, idx[k]] > 0
        rays = camera.pixel_rays(obs.keypoints[seen, idx[k]])
        points = camera.position + along[None, :, None] * rays[:, None, :]
        above = points[..., 2] - support(points.reshape(-1, 3)).reshape(points.shape[:2]) - rest_ankle
        down = above <= 0
        hit = down.any(axis=1)
        first = down.argmax(axis=1)
        rows = np.flatnonzero(seen)[hit]
        out[rows, k] = points[np.flatnonzero(hit), first[hit]]
    return out


def feet_depth(obs: Observations, camera: PinholeCamera, support: Callable[[np.ndarray], np.ndarray],
               rest_ankle: float, planted: np.ndarray) -> np.ndarray | None:
    """(T,) distance from the camera (its z) of the planted feet, interpolated between frames
    with none planted; None when no frame has a planted foot on a support."""
    ankles = ankles_on_support(obs, camera, support, rest_ankle)
    z = camera.world_to_camera(np.nan_to_num(ankles.reshape(-1, 3)))[:, 2].reshape(-1, 2)
    weight = np.where(np.isfinite(ankles[..., 0]), planted, 0.0)
    good = weight.sum(axis=1) > 0.5
    if not good.any():
        return None
    depth = (z[good] * weight[good]).sum(axis=1) / weight[good].sum(axis=1)
    return np.interp(np.arange(obs.frames), np.flatnonzero(good), depth)


def initial_roots(obs: Observations, camera: PinholeCamera, rig: TorchRig, support: Callable[[np.ndarray], np.ndarray],
                  heading_candidates: int, planted_speed: float, feet_reach_m: float,
                  first_root: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame root position from the torso's size along the hip ray, kept within `feet_reach_m`
    of the planted feet's depth (feet slower than `planted_speed`, m/s, stand), and heading from
    turned rest poses; a known first placement moves the whole track onto it."""
    roots = torso_roots(obs, camera, rig)
    planted = planted_feet(obs, camera, roots, planted_speed)
    feet = feet_depth(obs, camera, support, rest_height(rig, "left_ankle"), planted)
    if feet is not None:
        cam = camera.world_to_camera(roots)
        bounded = np.clip(cam[:, 2], feet - feet_reach_m, feet + feet_reach_m)
        roots = camera.position + (cam * (bounded / cam[:, 2])[:, None]) @ camera.R_world_cam.T
    if first_root is not None:
        roots[:, :2] += first_root[:2, 3] - roots[0, :2]  # the whole track shifted onto it
    yaws = headings(obs, camera, rig, roots, heading_candidates)
    if first_root is not None:  # the unwrapped track through the known first heading
        known = float(np.arctan2(first_root[1, 0], first_root[0, 0]))
        yaws = yaws + known - yaws[0]
    return roots, yaws


def torso_roots(obs: Observations, camera: PinholeCamera, rig: TorchRig) -> np.ndarray:
    """(T,3) root positions from the torso's image length (its depth) and the ray through the
    hips, interpolated and median-filtered."""
    T = obs.frames
    idx = {k: i for i, k in enumerate(obs.keypoint_names)}
    zero = torch.zeros((1, rig.bones, 3), dtype=torch.float64)
    rest_pos, _ = rig.forward(torch.zeros((1, 3), dtype=torch.float64), zero)
    rest = {k: rest_pos[0, rig.joint_bones[k]].numpy() for k in KEYPOINTS}
    sh_mid = (rest["left_shoulder"] + rest["right_shoulder"]) / 2
    hip_mid = (rest["left_hip"] + rest["right_hip"]) / 2
    torso = float(np.linalg.norm(sh_mid - hip_mid))
    root_from_hips = -hip_mid  # root sits at the origin of the rest rig
    f = camera.K[0, 0]
    roots = np.full((T, 3), np.nan)
    need = [idx[k] for k in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    for t in range(T):
        if np.any(obs.keypoint_conf[t, need] <= 0):
            continue
        kp = obs.keypoints[t]
        s_px = (kp[need[0]] + kp[need[1]]) / 2
        h_px = (kp[need[2]] + kp[need[3]]) / 2
        depth = f * torso / max(np.linalg.norm(s_px - h_px), 1.0)
        ray = camera.pixel_rays(h_px[None])[0]
        forward = camera.R_world_cam[:, 2]
        hips = camera.position + ray * depth / max(float(ray @ forward), 1e-3)
        roots[t] = hips + root_from_hips
    return fill(roots)


def fill(x: np.ndarray) -> np.ndarray:
    """Interpolate NaN rows; median-filter to damp the torso-length noise."""
    T = len(x)
    good = np.isfinite(x).all(axis=1)
    if not good.any():
        raise ValueError("no frame shows the shoulders and hips")
    out = np.stack([np.interp(np.arange(T), np.flatnonzero(good), x[good, d]) for d in range(x.shape[1])], axis=1)
    k = 3
    padded = np.pad(out, ((k, k), (0, 0)), mode="edge")
    return np.stack([np.median(padded[t:t + 2 * k + 1], axis=0) for t in range(T)])


def headings(obs: Observations, camera: PinholeCamera, rig: TorchRig, roots: np.ndarray, n: int) -> np.ndarray:
    """Best yaw per frame among n candidates (rest pose turned about the root), unwrapped. A side
    view and the same body turned half round project alike: the side the estimator sees less
    (keypoints.depth_order_evidence) tells them apart."""
    T = obs.frames
    cand = np.linspace(-np.pi, np.pi, n, endpoint=False)
    local = torch.zeros((n, rig.bones, 3), dtype=torch.float64)
    local[:, 0, 2] = torch.tensor(cand)
    K = torch.tensor(camera.K)
    R_wc, t_wc = torch.tensor(camera.T_world_cam[:3, :3]), torch.tensor(camera.T_world_cam[:3, 3])
    offsets = torch.tensor(keypoint_offsets(obs.estimator))
    conf = obs.keypoint_conf
    order = depth_order_evidence(obs)
    pairs = depth_order_bones(rig)
    f = float(camera.K[0, 0])
    best = np.full(T, np.nan)
    for t in range(T):
        if (conf[t] > 0).sum() < 4:  # too little seen to tell a heading: interpolated below
            continue
        pos, deltas = rig.forward(torch.tensor(np.repeat(roots[t][None], n, 0)), local)
        uv = project_points(landmark_points(rig, pos, deltas, offsets, t_wc), K, R_wc, t_wc).numpy()
        err = (conf[t] * np.linalg.norm(uv - obs.keypoints[t], axis=-1)).sum(-1)
        if order[t].any():  # a pair the wrong way round in depth costs its depth gap, in pixels
            distance = np.linalg.norm(pos.numpy()[:, pairs] - camera.position, axis=-1)  # (n,2,P)
            gap = distance[:, 0] - distance[:, 1]
            wrong = np.where(order[t] > 0, np.maximum(gap, 0.0), np.maximum(-gap, 0.0))
            err = err + f * (np.abs(order[t]) * wrong).sum(-1) / distance.mean(axis=(1, 2))
        best[t] = cand[int(np.argmin(err))]
    seen = np.flatnonzero(np.isfinite(best))
    if len(seen) == 0:
        raise ValueError("no frame shows enough keypoints to tell the heading")
    unwrapped = np.interp(np.arange(T), seen, np.unwrap(best[seen]))
    k = 3
    padded = np.pad(unwrapped, k, mode="edge")
    return np.array([np.median(padded[t:t + 2 * k + 1]) for t in range(T)])
