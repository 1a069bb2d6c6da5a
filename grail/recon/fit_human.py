"""Fit the character's pose sequence to 2D keypoints with the camera and the scene known.

The character's shape is fixed (its bone lengths are metric), so the image size of its torso
gives depth; the scene's supports keep its ankles from sinking. The fit:

1. initialises each frame's root from the torso's image length and the ray through the hips,
   and its heading from the best of 24 turned rest poses (then unwrapped and smoothed);
2. optimises root positions and every bone's rest-relative rotation over all frames at once:
   robust, confidence-weighted reprojection + keypoint smoothness + a pose prior (spine,
   clavicle and twist bones stay near rest; knees and elbows bend about their hinges) + ankles
   not below their support, the lower foot on it, and any foot whose image hardly moves on it
   (someone walking, reaching or sitting stands on one foot at least; a planted foot's pixel and
   its support fix its depth, which the image alone leaves to the body's size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from grail.recon.body import TorchRig
from grail.recon.keypoints import KEYPOINTS
from grail.recon.observations import Observations
from grail.scene.camera import PinholeCamera

#: Bones that carry the visible articulation; the others are held near rest by a stronger prior.
ARTICULATED = ("root", "upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R", "foot.L", "foot.R",
               "upperarm01.L", "upperarm01.R", "lowerarm01.L", "lowerarm01.R", "spine03", "spine01")


@dataclass
class FitOptions:
    """Each term is a squared residual over its scale, so a residual of one scale costs one."""

    iterations: int = 300           # L-BFGS iterations over all frames at once (twice: quadratic, robust)
    robust_px: float = 8.0          # Geman-McClure scale (a 1280x720 image): larger residuals count less and less
    accel_m: float = 0.06           # keypoint acceleration scale, m/frame^2
    rotation_articulated: float = 3.0   # rad: hips, knees, ankles, shoulders, elbows, spine, root
    rotation_other: float = 0.6     # rad: clavicles, twist bones, neck, head, hands
    ground_m: float = 0.01          # ankles on their support
    hinge_rad: float = 0.2          # knees and elbows turn about their hinge axis only
    planted_speed: float = 0.15     # m/s: an ankle slower than this is taken to stand on its support
    heading_candidates: int = 24


@dataclass
class HumanFit:
    root_pos: np.ndarray     # (T,3)
    local: np.ndarray        # (T,J,3) rest-relative axis-angle
    bone_pos: np.ndarray     # (T,J,3)
    deltas: np.ndarray       # (T,J,3,3)
    reprojection_px: float   # mean over seen keypoints


class _Terms:
    """The fitting objective over any window of frames (see FitOptions for the scales)."""

    def __init__(self, obs: Observations, camera: PinholeCamera, rig: TorchRig,
                 support_height: Callable[[np.ndarray], np.ndarray], options: FitOptions) -> None:
        self.rig, self.options, self.support_height = rig, options, support_height
        self.planted = torch.zeros((obs.frames, 2), dtype=torch.float64)
        self.kp = torch.tensor(obs.keypoints, dtype=torch.float64)
        conf = torch.tensor(obs.keypoint_conf, dtype=torch.float64)
        self.weight = conf / conf.sum(-1, keepdim=True).clamp(min=1.0)  # per frame
        self.K = torch.tensor(camera.K)
        self.R_wc, self.t_wc = torch.tensor(camera.T_world_cam[:3, :3]), torch.tensor(camera.T_world_cam[:3, 3])
        self.f = float(camera.K[0, 0])
        self.s2 = (options.robust_px * camera.height / 720 / self.f) ** 2  # normalised image units
        self.prior = torch.full((rig.bones,), options.rotation_other ** -2, dtype=torch.float64)
        for name in ARTICULATED:
            if name in rig.names:
                self.prior[rig.names.index(name)] = options.rotation_articulated ** -2
        self.prior[0] = 0.0
        self.hinge_bones, self.hinge_axes = _hinges(rig)
        self.rest_ankle = _rest_height(rig, "left_ankle")
        self.robust = False

    def __call__(self, root: torch.Tensor, local: torch.Tensor, frames: slice,
                 before: torch.Tensor | None = None) -> torch.Tensor:
        """Objective of frames[frames] posed by (root, local); `before` (2,K,3): the keypoints of
        the two preceding frames, held fixed (tracking)."""
        o = self.options
        pos, _ = self.rig.forward(root, local)
        joints = self.rig.joints(pos, KEYPOINTS)
        uv = _project(joints, self.K, self.R_wc, self.t_wc)
        r2 = ((uv - self.kp[frames]) ** 2).sum(-1) / self.f ** 2
        # Quadratic first (it pulls from anywhere), then Geman-McClure (outliers stop mattering).
        reproj = (self.weight[frames] * (r2 / (r2 + self.s2) if self.robust else r2 / self.s2)).sum(-1)
        track = joints if before is None else torch.cat([before, joints], 0)
        acc = track[2:] - 2 * track[1:-1] + track[:-2]
        smooth = (acc ** 2).sum(-1).sum(-1) / o.accel_m ** 2
        pose = (self.prior * (local ** 2).sum(-1)).sum(-1)
        hinge = local[:, self.hinge_bones]
        off = hinge - (hinge * self.hinge_axes).sum(-1, keepdim=True) * self.hinge_axes
        pose = pose + (off ** 2).sum(-1).sum(-1) / o.hinge_rad ** 2
        ankles = self.rig.joints(pos, ("left_ankle", "right_ankle"))
        floor = torch.tensor(self.support_height(ankles.detach().numpy().reshape(-1, 3)).reshape(-1, 2))
        height = ankles[..., 2] - floor - self.rest_ankle
        lowest = -0.01 * torch.logsumexp(-height / 0.01, dim=1)  # soft minimum over the two feet
        planted = self.planted[frames]  # a foot that hardly moves stands on its support (feet contact)
        ground = ((torch.relu(-height) ** 2).sum(-1) + lowest ** 2 + (planted * height ** 2).sum(-1)) / o.ground_m ** 2
        return (reproj * len(KEYPOINTS)).sum() + smooth.sum() + pose.sum() + ground.sum()


def planted_feet(obs: Observations, camera: PinholeCamera, roots: np.ndarray, speed_m_s: float) -> np.ndarray:
    """(T,2) weight in [0,1] that each ankle stands still, from its image speed turned into metres
    at the body's depth (fixed for the fit: the objective must not change under L-BFGS)."""
    idx = [obs.keypoint_names.index(k) for k in ("left_ankle", "right_ankle")]
    uv, conf = obs.keypoints[:, idx], obs.keypoint_conf[:, idx]
    depth = camera.world_to_camera(roots)[:, 2]
    speed_px = np.zeros((obs.frames, 2))
    speed_px[1:] = np.linalg.norm(np.diff(uv, axis=0), axis=-1) * obs.fps
    speed_px[0] = speed_px[1] if obs.frames > 1 else 0.0
    speed = speed_px * depth[:, None] / camera.K[0, 0]
    seen = (conf > 0) & np.vstack([conf[:1] > 0, conf[:-1] > 0])
    return np.where(seen, np.exp(-(speed / speed_m_s) ** 2), 0.0)


def _lbfgs(params: list[torch.Tensor], objective: Callable[[], torch.Tensor], iterations: int) -> None:
    optimiser = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, history_size=30,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    optimiser.step(closure)


def fit_human(obs: Observations, camera: PinholeCamera, rig: TorchRig, support_height: Callable[[np.ndarray], np.ndarray],
              options: FitOptions | None = None, progress: Callable[[int, int], None] | None = None,
              init_local: np.ndarray | None = None) -> HumanFit:
    """Root positions and bone rotations of every frame (see the module docstring)."""
    options = options or FitOptions()
    T = obs.frames
    terms = _Terms(obs, camera, rig, support_height, options)
    root0, yaw0 = _initial_roots(obs, camera, rig, options)
    terms.planted = torch.tensor(planted_feet(obs, camera, root0, options.planted_speed))
    if init_local is None:
        local_np = np.zeros((T, rig.bones, 3))
        local_np[:, 0, 2] = yaw0
    else:  # a known starting pose (a previous fit, or the ground truth in tests)
        local_np = init_local
    root_np = root0
    root = torch.tensor(root_np, requires_grad=True)
    local = torch.tensor(local_np, requires_grad=True)
    for stage, terms.robust in enumerate((False, True)):
        _lbfgs([root, local], lambda: terms(root, local, slice(None)), options.iterations)
        if progress:
            progress(stage + 1, 2)
    with torch.no_grad():
        pos, deltas = rig.forward(root, local)
        uv = _project(rig.joints(pos, KEYPOINTS), terms.K, terms.R_wc, terms.t_wc)
        err = torch.linalg.norm(uv - terms.kp, dim=-1)[torch.tensor(obs.keypoint_conf) > 0]
    return HumanFit(root.detach().numpy(), local.detach().numpy(), pos.numpy(), deltas.numpy(),
                    float(err.mean()) if err.numel() else float("nan"))


def _project(points: torch.Tensor, K: torch.Tensor, R_wc: torch.Tensor, t_wc: torch.Tensor) -> torch.Tensor:
    cam = (points - t_wc) @ R_wc
    z = cam[..., 2:].clamp(min=1e-3)
    return (cam[..., :2] / z) @ K[:2, :2].T + K[:2, 2]


def _hinges(rig: TorchRig) -> tuple[list[int], torch.Tensor]:
    """Knee and elbow bones and their hinge axes (world axes at rest: rotations are rest-relative
    in world axes). A hinge axis is perpendicular to the limb and to the forward direction (+x):
    the plane in which a leg or an A-pose arm bends."""
    pos, _ = rig.forward(torch.zeros((1, 3), dtype=torch.float64), torch.zeros((1, rig.bones, 3), dtype=torch.float64))
    bones, axes = [], []
    for upper, lower in (("left_hip", "left_knee"), ("right_hip", "right_knee"),
                         ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow")):
        limb = (pos[0, rig.joint_bones[lower]] - pos[0, rig.joint_bones[upper]]).numpy()
        axis = np.cross(limb, [1.0, 0.0, 0.0])
        bones.append(rig.joint_bones[lower])
        axes.append(axis / np.linalg.norm(axis))
    return bones, torch.tensor(np.array(axes))


def _rest_height(rig: TorchRig, name: str) -> float:
    """Height of a named joint above the ground in the rest pose (the rest root stands at its
    own offset above the feet)."""
    pos, _ = rig.forward(torch.zeros((1, 3), dtype=torch.float64), torch.zeros((1, rig.bones, 3), dtype=torch.float64))
    return float(rig.offsets[0, 2] + pos[0, rig.joint_bones[name], 2])


def _initial_roots(obs: Observations, camera: PinholeCamera, rig: TorchRig, options: FitOptions
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame root position from torso size and hip ray, and heading from turned rest poses."""
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
    for t in range(T):
        c = obs.keypoint_conf[t]
        need = [idx[k] for k in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
        if np.any(c[need] <= 0):
            continue
        kp = obs.keypoints[t]
        s_px = (kp[need[0]] + kp[need[1]]) / 2
        h_px = (kp[need[2]] + kp[need[3]]) / 2
        depth = f * torso / max(np.linalg.norm(s_px - h_px), 1.0)
        ray = camera.pixel_rays(h_px[None])[0]
        forward = camera.R_world_cam[:, 2]
        hips = camera.position + ray * depth / max(float(ray @ forward), 1e-3)
        roots[t] = hips + root_from_hips
    roots = _fill(roots)
    yaws = _headings(obs, camera, rig, roots, options.heading_candidates)
    return roots, yaws


def _fill(x: np.ndarray) -> np.ndarray:
    """Interpolate NaN rows; median-filter to damp the torso-length noise."""
    T = len(x)
    good = np.isfinite(x).all(axis=1)
    if not good.any():
        raise ValueError("no frame shows the shoulders and hips")
    out = np.stack([np.interp(np.arange(T), np.flatnonzero(good), x[good, d]) for d in range(x.shape[1])], axis=1)
    k = 3
    padded = np.pad(out, ((k, k), (0, 0)), mode="edge")
    return np.stack([np.median(padded[t:t + 2 * k + 1], axis=0) for t in range(T)])


def _headings(obs: Observations, camera: PinholeCamera, rig: TorchRig, roots: np.ndarray, n: int) -> np.ndarray:
    """Best yaw per frame among n candidates (rest pose turned about the root), unwrapped."""
    T = obs.frames
    cand = np.linspace(-np.pi, np.pi, n, endpoint=False)
    local = torch.zeros((n, rig.bones, 3), dtype=torch.float64)
    local[:, 0, 2] = torch.tensor(cand)
    K = torch.tensor(camera.K)
    R_wc, t_wc = torch.tensor(camera.T_world_cam[:3, :3]), torch.tensor(camera.T_world_cam[:3, 3])
    conf = obs.keypoint_conf
    best = np.zeros(T)
    for t in range(T):
        pos, _ = rig.forward(torch.tensor(np.repeat(roots[t][None], n, 0)), local)
        uv = _project(rig.joints(pos, KEYPOINTS), K, R_wc, t_wc).numpy()
        err = (conf[t] * np.linalg.norm(uv - obs.keypoints[t], axis=-1)).sum(-1)
        best[t] = cand[int(np.argmin(err))]
    unwrapped = np.unwrap(best)
    k = 3
    padded = np.pad(unwrapped, k, mode="edge")
    return np.array([np.median(padded[t:t + 2 * k + 1]) for t in range(T)])
