"""Model-based 6-DoF object tracking from the interaction video, with no learned weights.

The scene is known (camera, the object's metric mesh, its first-frame pose), so the object's
trajectory is recovered by render-and-compare region tracking in the spirit of PWP3D / RBOT:

* colour statistics of the object and of its surroundings are learnt on frame 0, where the pose
  is known, as smoothed RGB histograms; every pixel then gets a foreground posterior ``pf``;
* the projected silhouette is a soft level set ``H = sigmoid(-phi / sigma)`` of the signed pixel
  distance ``phi`` to the projected outline, so the energy
  ``sum_pixels -log(H pf + (1 - H)(1 - pf))`` is differentiable in the 6-DoF pose (torch);
* each frame is solved by Levenberg-Marquardt (the Gauss-Newton approximation of RBOT, Jacobians by
  forward-mode autodiff), warm-started from the previous pose; the mesh is metric, so the size of
  the silhouette fixes the depth and there is no scale ambiguity;
* only a window around the object is looked at, sampled on a bounded grid, so the cost per frame
  does not grow with the video resolution.

The outline is the one of the mesh's convex hull (exact for boxes, balls, cylinders and bottles;
a mug's handle hole is filled). `ObjectTracker` is the interface a learned 6-DoF tracker would
implement later; `RegionTracker` is the default. `SilhouetteEnergy` is the image term on its own,
for a joint human-object refinement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np
import torch

from grail.errors import GrailError
from grail.recon.body import rotvec_to_matrix
from grail.rotations import matrices_from_quats, quats_from_matrices
from grail.scene.camera import PinholeCamera

if TYPE_CHECKING:
    import trimesh

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Model, options, results


@dataclass(frozen=True)
class ObjectModel:
    name: str
    vertices: np.ndarray  # (V,3) in the object's body frame (the body of scene.xml), metres
    faces: np.ndarray  # (F,3)

    @classmethod
    def from_scene(cls, scene_dir: Path, name: str) -> "ObjectModel":
        """The visual mesh of object `name` from scene/spec.yaml.

        The mesh files under scene/meshes/ are already metric and in the body frame that
        scene.xml poses (compose bakes the import scale in and MuJoCo adds no mesh offset), so
        gt ``object_pos``/``object_quat`` place these vertices directly; `scale` in the spec
        records the import and is not applied a second time.
        """
        import trimesh

        from grail.scene.spec import load_resolved

        spec_path = Path(scene_dir) / "spec.yaml"
        spec = load_resolved(spec_path)
        items = {o.name: o for o in spec.objects}
        if name not in items:
            known = ", ".join(sorted(items)) or "none"
            raise GrailError(f"no object {name!r} in the scene (objects: {known})", file=spec_path, field="objects")
        mesh_path = Path(scene_dir) / items[name].mesh
        try:
            mesh = trimesh.load(mesh_path, force="mesh", process=False)
        except Exception as err:  # trimesh raises many types for unreadable files
            raise GrailError(f"cannot read the mesh of {name!r} ({err})", file=mesh_path) from None
        vertices, faces = np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int64)
        if len(faces) == 0 or len(vertices) < 4 or not np.all(np.isfinite(vertices)):
            raise GrailError(f"the mesh of {name!r} has no usable geometry", file=mesh_path)
        return cls(name=name, vertices=vertices, faces=faces)

    @cached_property
    def mesh(self) -> trimesh.Trimesh:
        """The surface as a trimesh (built once: contacts, grasps and metrics query it)."""
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)


def first_pose(scene_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(pos (3,), quat (4,) wxyz) of object `name` in scene/spec.yaml: the video's first frame."""
    from grail.scene.spec import load_resolved

    spec_path = Path(scene_dir) / "spec.yaml"
    for item in load_resolved(spec_path).objects:
        if item.name == name:
            return np.asarray(item.pose.pos, float), np.asarray(item.pose.quat, float)
    raise GrailError(f"no object {name!r} in the scene", file=spec_path, field="objects")


@dataclass(frozen=True)
class TrackOptions:
    grid: int = 64              # samples along the window's longer side: bounds the cost per iteration
    margin: float = 0.5         # window margin around the projected object, fraction of its size ...
    margin_px: float = 10.0     # ... plus this many pixels, for the motion between frames
    sigma: float = 0.6          # soft edge width of the silhouette, in grid strides
    min_sigma_px: float = 0.6   # and at least this many full-resolution pixels
    bins: int = 32              # colour histogram bins per channel
    hist_blur: float = 0.75     # Gaussian smoothing of the histograms, in bins
    pf_clip: float = 0.03       # posteriors kept in [clip, 1 - clip]: one pixel cannot dominate
    iterations: int = 15        # Levenberg-Marquardt iterations per frame
    velocity: float = 0.0       # share of the last frame's motion added to the prediction
    adapt_background: float = 0.0  # per-frame blend of the background histogram (>0 drifts: off)
    adapt_foreground: float = 0.0  # per-frame blend of the object histogram (drift risk, off)
    adapt_min_score: float = 0.6   # adapt only on frames the tracker trusts
    adapt_band: float = 0.25    # background for adaptation starts this share of the object size out
    max_step: float = 0.5       # a frame's motion above this share of the object size is refused
    lost_score: float = 0.35    # score below which a frame is reported lost
    prior_pos_m: float = 0.0    # >0: Gaussian prior on the motion per frame (metres), 0: off
    min_gain: float = 0.01      # a frame keeps the predicted pose unless the energy drops by this much
    hull_points: int = 64       # outline vertices kept (farthest-point subset of the convex hull)
    threads: int = 1            # torch threads: the budget is one core per clip


@dataclass
class ObjectTrack:
    pos: np.ndarray  # (T,3) world
    quat: np.ndarray  # (T,4) wxyz world
    score: np.ndarray  # (T,) in [0,1]: IoU of the projected silhouette with the thresholded posterior
    lost: np.ndarray  # (T,) bool: the tracker does not trust this frame
    info: dict = field(default_factory=dict)


class ObjectTracker(Protocol):
    """Anything that turns a video and a first pose into a metric 6-DoF trajectory (region
    tracking today, a learned tracker later)."""

    def track(self, frames: np.ndarray, camera: PinholeCamera, model: ObjectModel, pos0: np.ndarray,
              quat0: np.ndarray, progress: Progress | None = None) -> ObjectTrack: ...


# --------------------------------------------------------------------------------------------
# Geometry


def rotvec_from_quat(quat: np.ndarray) -> np.ndarray:
    """(...,4) wxyz -> (...,3) rotation vectors (angle <= pi)."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(quat, float)
    flat = q.reshape(-1, 4)
    return Rotation.from_quat(np.concatenate([flat[:, 1:], flat[:, :1]], 1)).as_rotvec().reshape(q.shape[:-1] + (3,))


def _check_pose(pos: np.ndarray, quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos, quat = np.asarray(pos, float), np.asarray(quat, float)
    if pos.shape != (3,) or not np.all(np.isfinite(pos)):
        raise GrailError(f"the first position must be 3 finite numbers (got shape {pos.shape})", field="pos0")
    if quat.shape != (4,) or not np.all(np.isfinite(quat)) or np.linalg.norm(quat) < 1e-6:
        raise GrailError(f"the first orientation must be a non-zero wxyz quaternion (got shape {quat.shape})",
                         field="quat0")
    return pos, quat / np.linalg.norm(quat)


def _check_frames(frames: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Frames the camera can explain: (T,H,W,3) uint8 with H,W the camera's size."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1 or frames.dtype != np.uint8:
        raise GrailError(f"expected (T,H,W,3) uint8 RGB frames, got {frames.shape} {frames.dtype}", field="frames")
    if frames.shape[1:3] != (camera.height, camera.width):
        raise GrailError(f"frames are {frames.shape[2]}x{frames.shape[1]} but the camera is "
                         f"{camera.width}x{camera.height} (scale the camera to the video)", field="frames")
    return frames


def silhouette(camera: PinholeCamera, model: ObjectModel, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """(H,W) bool pixels the mesh covers at this pose (exact triangles, for overlays and metrics)."""
    import cv2

    world = np.asarray(model.vertices) @ matrices_from_quats(quat).T + np.asarray(pos, float)
    uv, z = camera.project(world)
    mask = np.zeros((camera.height, camera.width), np.uint8)
    tris = model.faces[np.all(z[model.faces] > 1e-3, axis=1)]
    if len(tris):
        pts = np.round(uv[tris] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
        if np.abs(pts).max() < 2**28:
            for tri in pts:  # one by one: fillPoly with many polygons fills by parity
                cv2.fillConvexPoly(mask, tri, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _farthest_points(points: np.ndarray, n: int) -> np.ndarray:
    """At most n of the points, spread out: a finely tessellated ball's outline does not need its
    600 vertices, and the cost per sample grows with the outline's edges."""
    if len(points) <= n:
        return points
    keep = [int(np.argmax(np.linalg.norm(points - points.mean(0), axis=1)))]
    dist = np.linalg.norm(points - points[keep[0]], axis=1)
    for _ in range(n - 1):
        keep.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(points - points[keep[-1]], axis=1))
    return points[keep]


# --------------------------------------------------------------------------------------------
# The image term


@dataclass
class _Window:
    """One frame's sampled window: sample centres (P,2) in full-resolution pixels, the foreground
    posterior averaged over each sample's block (P,), and the block size in pixels."""
    box: tuple[int, int, int, int]  # x0, y0, stride, (gx << 16) | gy
    uv: np.ndarray
    pf: np.ndarray
    stride: int


class SilhouetteEnergy:
    """Differentiable image term, shared by the tracker and (later) a joint human-object refinement.

    Colour histograms are learnt once on frame 0 at (pos0, quat0). Each frame is looked at through
    a window (`focus`) sampled on at most ``grid`` x ``grid`` points; a frame asked for before it
    was focused is focused at the pose asked for. The energy is in units of the object's frame-0
    image area: about the share of the object that the pose fails to explain.
    """

    def __init__(self, frames: np.ndarray, camera: PinholeCamera, model: ObjectModel, pos0: np.ndarray,
                 quat0: np.ndarray, options: TrackOptions | None = None):
        from scipy.spatial import ConvexHull

        self.options = options or TrackOptions()
        self.frames = _check_frames(frames, camera)
        self.camera, self.model = camera, model
        pos0, quat0 = _check_pose(pos0, quat0)
        self.hull = _farthest_points(np.asarray(model.vertices, float)[ConvexHull(model.vertices).vertices],
                                     self.options.hull_points)
        self._windows: list[_Window | None] = [None] * len(self.frames)
        self._ignore: np.ndarray | None = None
        self._K = camera.K
        self._Rwc = torch.as_tensor(camera.R_world_cam)
        self._cam = torch.as_tensor(camera.position)
        self._hull_t = torch.as_tensor(self.hull)
        mask0 = silhouette(camera, model, pos0, quat0)
        self.area0 = float(max(mask0.sum(), 1))
        if mask0.sum() < 4:
            raise GrailError(f"object {model.name!r} covers {int(mask0.sum())} pixels in the first frame: "
                             "it is outside the view or too small to track", field="pos0")
        self._fg, self._bg = self._histograms(0, mask0)

    # ---- colour model

    def _bin_index(self, rgb: np.ndarray) -> np.ndarray:
        shift = 8 - int(round(math.log2(self.options.bins)))
        q = (rgb >> shift).astype(np.int64)
        return (q[..., 0] * self.options.bins + q[..., 1]) * self.options.bins + q[..., 2]

    def _hist(self, rgb: np.ndarray) -> np.ndarray:
        """Smoothed colour counts. Counts, not frequencies: the posterior then carries the areas of
        object and surroundings as its prior (PWP3D's eta_f, eta_b), so a colour common in the
        surroundings (the table under a brown box) leans to background."""
        from scipy.ndimage import gaussian_filter

        n = self.options.bins
        h = np.bincount(self._bin_index(rgb).ravel(), minlength=n**3).astype(float).reshape(n, n, n)
        return gaussian_filter(h, self.options.hist_blur, mode="constant").ravel()

    def _histograms(self, t: int, mask: np.ndarray, band: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Object and local background histograms of frame t, the object being `mask`: a band of
        `band` pixels outside the outline (one inside) is left out, as its colours are mixed or,
        for a pose slightly off, the object's own (learning those as background makes the
        silhouette shrink frame after frame)."""
        import cv2

        m8 = mask.astype(np.uint8)
        kernel = np.ones((3, 3), np.uint8)
        inner = cv2.erode(m8, kernel).astype(bool)
        outer = cv2.dilate(m8, kernel, iterations=band).astype(bool)
        ys, xs = np.nonzero(mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        pad = int(max(h, w) * (1.0 + self.options.margin)) + int(self.options.margin_px)
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, mask.shape[0])
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, mask.shape[1])
        frame = self.frames[t]
        fg = frame[inner] if inner.sum() >= 4 else frame[mask]
        local = ~outer[y0:y1, x0:x1]
        if self._ignore is not None:
            local &= ~self._ignore[t, y0:y1, x0:x1]
        return self._hist(fg), self._hist(frame[y0:y1, x0:x1][local])

    def _posterior(self, rgb: np.ndarray) -> np.ndarray:
        idx = self._bin_index(rgb)
        pf_l, pb_l = self._fg[idx], self._bg[idx]
        pf = pf_l / np.maximum(pf_l + pb_l, 1e-300)
        pf = np.where(pf_l + pb_l > 1e-12, pf, 0.5)
        c = self.options.pf_clip
        return np.clip(pf, c, 1.0 - c)

    def posterior(self, t: int) -> np.ndarray:
        """(H,W) object-colour posterior of the whole frame t (ignored pixels are not special here)."""
        return self._posterior(self.frames[t])

    def adapt(self, t: int, pos: np.ndarray, quat: np.ndarray) -> None:
        """Blend frame t's colours at this pose into the histograms: the background changes as
        the human walks into the window. Windows focused later use the new statistics."""
        a_f, a_b = self.options.adapt_foreground, self.options.adapt_background
        if a_f <= 0 and a_b <= 0:
            return
        mask = silhouette(self.camera, self.model, pos, quat)
        if mask.sum() < 4:
            return
        ys, xs = np.nonzero(mask)
        band = max(2, int(self.options.adapt_band * max(np.ptp(ys), np.ptp(xs))))
        fg, bg = self._histograms(t, mask, band)
        self._fg = (1 - a_f) * self._fg + a_f * fg
        self._bg = (1 - a_b) * self._bg + a_b * bg

    # ---- windows

    def set_ignore(self, mask: np.ndarray | None) -> None:
        """(T,H,W) bool pixels to leave out (e.g. where the fitted human occludes the object):
        they get a posterior of 0.5, which no pose can explain better than another."""
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != self.frames.shape[:3]:
                raise GrailError(f"ignore mask shape {mask.shape}, expected {self.frames.shape[:3]}", field="ignore")
        self._ignore = mask
        self._windows = [None] * len(self.frames)

    def project(self, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """(Vh,2) pixel coordinates of the hull vertices at a pose."""
        world = self.hull @ matrices_from_quats(quat).T + np.asarray(pos, float)
        uv, z = self.camera.project(world)
        return np.where(z[:, None] > 1e-3, uv, np.nan)

    def focus(self, t: int, pos: np.ndarray, quat: np.ndarray) -> None:
        """Look at frame t through a window around the object's projection at this pose."""
        o = self.options
        uv = self.project(pos, quat)
        if not np.all(np.isfinite(uv)):
            uv = np.array([[self.camera.width / 2, self.camera.height / 2]])
        lo, hi = uv.min(0), uv.max(0)
        size = float(max(hi[0] - lo[0], hi[1] - lo[1], 2.0))
        half = 0.5 * size * (1.0 + 2.0 * o.margin) + o.margin_px
        half = min(half, 0.5 * max(self.camera.width, self.camera.height))
        centre = 0.5 * (lo + hi)
        stride = max(1, int(math.ceil(2.0 * half / o.grid)))
        gx = gy = int(math.ceil(2.0 * half / stride))
        x0 = int(math.floor(centre[0] - 0.5 * gx * stride + 0.5))
        y0 = int(math.floor(centre[1] - 0.5 * gy * stride + 0.5))
        pf = np.full((gy * stride, gx * stride), 0.5)
        H, W = self.camera.height, self.camera.width
        ya, yb, xa, xb = max(y0, 0), min(y0 + gy * stride, H), max(x0, 0), min(x0 + gx * stride, W)
        if ya < yb and xa < xb:
            part = self._posterior(self.frames[t, ya:yb, xa:xb])
            if self._ignore is not None:
                part = np.where(self._ignore[t, ya:yb, xa:xb], 0.5, part)
            pf[ya - y0:yb - y0, xa - x0:xb - x0] = part
        pf = pf.reshape(gy, stride, gx, stride).mean((1, 3))
        ks = np.arange(gx) * stride + (stride - 1) / 2.0 + x0, np.arange(gy) * stride + (stride - 1) / 2.0 + y0
        gu, gv = np.meshgrid(*ks)
        self._windows[t] = _Window((x0, y0, stride, (gx << 16) | gy), np.stack([gu.ravel(), gv.ravel()], 1),
                                   pf.ravel(), stride)

    def window(self, t: int) -> _Window | None:
        return self._windows[t]

    # ---- energy

    def _sigma(self, stride: int) -> float:
        return max(self.options.sigma * stride, self.options.min_sigma_px)

    def _hull_edges(self, uv: np.ndarray) -> tuple[np.ndarray, float]:
        """Edge vertex indices (E,2) of the projected hull and the sign making normals point out."""
        import cv2

        pts = np.nan_to_num(uv, nan=0.0).astype(np.float32)
        idx = cv2.convexHull(pts, returnPoints=False).ravel()
        if len(idx) < 3:
            idx = np.array([0, 1, 2]) if len(uv) >= 3 else np.zeros(3, int)
        edges = np.stack([idx, np.roll(idx, -1)], 1)
        a, b = uv[edges[:, 0]], uv[edges[:, 1]]
        area = float(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]))
        return edges, (1.0 if area > 0 else -1.0)

    def _project_t(self, pos: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        """(N,3), (N,3,3) -> (N,Vh,2) hull vertex pixels."""
        world = self._hull_t @ R.transpose(-1, -2) + pos[:, None, :]
        pc = (world - self._cam) @ self._Rwc
        z = pc[..., 2:].clamp_min(1e-3)
        K = self._K
        return torch.cat([K[0, 0] * pc[..., :1] / z + K[0, 2], K[1, 1] * pc[..., 1:2] / z + K[1, 2]], -1)

    def _pixel_terms(self, uv: torch.Tensor, edges: torch.Tensor, sign: torch.Tensor, grid: torch.Tensor,
                     pf: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample energies (N,P) and signed outline distances phi (N,P), batched over frames."""
        a = torch.gather(uv, 1, edges[..., :1].expand(-1, -1, 2))
        b = torch.gather(uv, 1, edges[..., 1:].expand(-1, -1, 2))
        d = b - a
        n = torch.stack([d[..., 1], -d[..., 0]], -1) * sign[:, None, None]
        n = n / torch.sqrt((n * n).sum(-1, keepdim=True) + 1e-12)
        # phi is the largest signed distance to an outline edge's line (the outline is convex). The
        # edge that is largest is chosen without gradient and only its distance is differentiated:
        # the same value and gradient as a max over all edges, without an (N,P,E,2) graph (8x
        # faster forward and backward at 32x32 samples, 24 edges).
        with torch.no_grad():
            nearest = (torch.bmm(grid, n.transpose(1, 2)) - (a * n).sum(-1)[:, None]).argmax(-1, keepdim=True)
        nearest = nearest.expand(-1, -1, 2)
        phi = ((grid - torch.gather(a, 1, nearest)) * torch.gather(n, 1, nearest)).sum(-1)
        h = torch.sigmoid(-phi / sigma[:, None])
        return -torch.log(h * pf + (1.0 - h) * (1.0 - pf)), phi

    def _batch(self, t: np.ndarray, pos: torch.Tensor, R: torch.Tensor):
        """The padded tensors of frames t at (detached) poses: hull edges, grids, posteriors, weights."""
        uv = self._project_t(pos.detach(), R.detach()).numpy()
        wins = []
        for i, ti in enumerate(t):
            if self._windows[ti] is None:
                self.focus(int(ti), pos[i].detach().numpy(), quats_from_matrices(R[i].detach().numpy()))
            wins.append(self._windows[ti])
        hulls = [self._hull_edges(u) for u in uv]
        E = max(len(e) for e, _ in hulls)
        P = max(len(w.pf) for w in wins)
        edges = np.zeros((len(t), E, 2), np.int64)
        grid, pf, weight = np.zeros((len(t), P, 2)), np.full((len(t), P), 0.5), np.zeros((len(t), P))
        for i, ((e, _), w) in enumerate(zip(hulls, wins)):
            edges[i] = np.concatenate([e, np.repeat(e[:1], E - len(e), 0)])  # repeats change no max
            grid[i, :len(w.pf)], pf[i, :len(w.pf)], weight[i, :len(w.pf)] = w.uv, w.pf, w.stride**2 / self.area0
        sign = np.array([s for _, s in hulls])
        sigma = np.array([self._sigma(w.stride) for w in wins])
        return tuple(torch.as_tensor(x) for x in (edges, sign, grid, pf, weight, sigma))

    def energy_R(self, t: np.ndarray, pos: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        """(N,) energies at poses given as rotation matrices (N,3,3)."""
        edges, sign, grid, pf, weight, sigma = self._batch(np.asarray(t), pos, R)
        e, _ = self._pixel_terms(self._project_t(pos, R), edges, sign, grid, pf, sigma)
        return (e * weight).sum(-1)

    def __call__(self, t: torch.Tensor, pos: torch.Tensor, rotvec: torch.Tensor) -> torch.Tensor:
        """(N,) energy (lower is better) of frames t (N,) long at poses pos (N,3) and world rotation
        vectors (N,3) (float64). Differentiable in pos and rotvec."""
        t_np = np.asarray(torch.as_tensor(t).detach().cpu().numpy(), np.int64).reshape(-1)
        if t_np.size and (t_np.min() < 0 or t_np.max() >= len(self.frames)):
            raise GrailError(f"frame index out of range 0..{len(self.frames) - 1}", field="t")
        return self.energy_R(t_np, pos, rotvec_to_matrix(rotvec))

    def linearise(self, t: int, pos: np.ndarray, R: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy of frame t at (pos, R) and its per-sample Jacobians (P,6) for a world-frame
        perturbation (dp, dw): pos + dp, exp(dw) R. The same model as `__call__`, in numpy with
        the chain rule written out (samples depend on one outline edge each)."""
        w = self._windows[t]
        if w is None:
            self.focus(t, pos, quats_from_matrices(R))
            w = self._windows[t]
        world = self.hull @ R.T + pos
        pc = (world - self.camera.position) @ self.camera.R_world_cam
        z = np.maximum(pc[:, 2], 1e-3)
        fx, fy = self._K[0, 0], self._K[1, 1]
        uv = np.stack([fx * pc[:, 0] / z + self._K[0, 2], fy * pc[:, 1] / z + self._K[1, 2]], 1)
        # d uv / d (dp, dw): world point w moves by dp - [w - pos]x dw
        arm = world - pos
        dworld = np.zeros((len(world), 3, 6))
        dworld[:, :, :3] = np.eye(3)
        dworld[:, :, 3:] = np.stack([np.cross(np.eye(3)[k], arm) for k in range(3)], 2)  # e_k x arm
        dpc = np.einsum("ji,vjk->vik", self.camera.R_world_cam, dworld)
        duv = np.stack([fx * (dpc[:, 0] / z[:, None] - pc[:, 0, None] * dpc[:, 2] / z[:, None] ** 2),
                        fy * (dpc[:, 1] / z[:, None] - pc[:, 1, None] * dpc[:, 2] / z[:, None] ** 2)], 1)
        edges, sign = self._hull_edges(uv)
        a, b = uv[edges[:, 0]], uv[edges[:, 1]]
        d = b - a
        L = np.linalg.norm(d, axis=1) + 1e-12
        r_all = w.uv[:, None, :] - a[None]
        phi_all = sign * (r_all[..., 0] * d[None, :, 1] - r_all[..., 1] * d[None, :, 0]) / L
        k = np.argmax(phi_all, axis=1)
        phi = phi_all[np.arange(len(k)), k]
        r, dk, Lk = r_all[np.arange(len(k)), k], d[k], L[k][:, None]
        c = (r[:, 0] * dk[:, 1] - r[:, 1] * dk[:, 0])[:, None]
        dphi_dd = sign * (np.stack([-r[:, 1], r[:, 0]], 1) / Lk - c * dk / Lk**3)
        dphi_dr = sign * np.stack([dk[:, 1], -dk[:, 0]], 1) / Lk
        dphi_da, dphi_db = -dphi_dr - dphi_dd, dphi_dd
        dphi = np.einsum("pi,pij->pj", dphi_da, duv[edges[k, 0]]) + np.einsum("pi,pij->pj", dphi_db, duv[edges[k, 1]])
        sigma = self._sigma(w.stride)
        h = 1.0 / (1.0 + np.exp(np.clip(phi / sigma, -50, 50)))
        like = h * w.pf + (1.0 - h) * (1.0 - w.pf)
        weight = w.stride**2 / self.area0
        e = -np.log(like) * weight
        de_dphi = weight * (2.0 * w.pf - 1.0) / like * h * (1.0 - h) / sigma
        return float(e.sum()), de_dphi[:, None] * dphi

    def score(self, t: int, pos: np.ndarray, quat: np.ndarray) -> float:
        """IoU, over frame t's window, of the projected silhouette with the thresholded posterior
        (samples the ignore mask hides are left out)."""
        w = self._windows[t]
        if w is None:
            self.focus(t, pos, quat)
            w = self._windows[t]
        uv = self.project(pos, quat)
        if not np.all(np.isfinite(uv)):
            return 0.0
        edges, sign = self._hull_edges(uv)
        a, b = uv[edges[:, 0]], uv[edges[:, 1]]
        d = b - a
        n = np.stack([d[:, 1], -d[:, 0]], 1) * sign
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        phi = np.max(np.einsum("pek,ek->pe", w.uv[:, None, :] - a[None], n), axis=1)
        seen = w.pf != 0.5
        inside, fg = (phi < 0) & seen, (w.pf > 0.5) & seen
        union = (inside | fg).sum()
        return float((inside & fg).sum() / union) if union else 0.0


# --------------------------------------------------------------------------------------------
# The tracker


class RegionTracker:
    """Default `ObjectTracker`: frame-to-frame Levenberg-Marquardt on `SilhouetteEnergy`."""

    def __init__(self, options: TrackOptions | None = None):
        self.options = options or TrackOptions()

    def track(self, frames: np.ndarray, camera: PinholeCamera, model: ObjectModel, pos0: np.ndarray,
              quat0: np.ndarray, progress: Progress | None = None) -> ObjectTrack:
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self.options.threads))
        try:
            return self._track(SilhouetteEnergy(frames, camera, model, pos0, quat0, self.options), pos0, quat0,
                               progress)
        finally:
            torch.set_num_threads(threads)

    def _track(self, energy: SilhouetteEnergy, pos0: np.ndarray, quat0: np.ndarray,
               progress: Progress | None) -> ObjectTrack:
        o = self.options
        T = len(energy.frames)
        pos0, quat0 = _check_pose(pos0, quat0)
        pos, R = np.zeros((T, 3)), np.zeros((T, 3, 3))
        score, lost = np.zeros(T), np.zeros(T, bool)
        pos[0], R[0] = pos0, matrices_from_quats(quat0)
        energy.focus(0, pos0, quat0)
        score[0] = energy.score(0, pos0, quat0)
        iters = 0
        size = float(np.ptp(energy.hull, axis=0).max())
        for t in range(1, T):
            p_pred, R_pred = pos[t - 1].copy(), R[t - 1].copy()
            if o.velocity > 0 and t >= 2 and not lost[t - 1]:
                p_pred += o.velocity * (pos[t - 1] - pos[t - 2])
            for _ in range(2):  # a second pass if the object left the middle of its window
                energy.focus(t, p_pred, quats_from_matrices(R_pred))
                p_new, R_new, n = self._solve(energy, t, p_pred, R_pred, pos[t - 1])
                iters += n
                moved = energy.project(p_new, quats_from_matrices(R_new)).mean(0) \
                    - energy.project(p_pred, quats_from_matrices(R_pred)).mean(0)
                p_pred, R_pred = p_new, R_new
                if not np.all(np.isfinite(moved)) or np.abs(moved).max() < 0.25 * o.grid * energy.window(t).stride / 2:
                    break
            refused = not np.all(np.isfinite(p_pred)) or np.linalg.norm(p_pred - pos[t - 1]) > o.max_step * size
            if refused:  # a jump no hand makes in one frame: keep the last pose, call the frame lost
                p_pred, R_pred = pos[t - 1], R[t - 1]
            pos[t], R[t] = p_pred, R_pred
            q = quats_from_matrices(R[t])
            score[t] = energy.score(t, pos[t], q)
            lost[t] = refused or score[t] < o.lost_score
            if score[t] >= o.adapt_min_score:
                energy.adapt(t, pos[t], q)
            if progress is not None:
                progress(t + 1, T)
        quat = quats_from_matrices(R)
        return ObjectTrack(pos=pos, quat=quat, score=score, lost=lost, info={"iterations": iters})

    def _solve(self, energy: SilhouetteEnergy, t: int, p0: np.ndarray, R0: np.ndarray,
               p_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Levenberg-Marquardt over a 6-vector (translation, world rotation vector) around the
        current pose, with RBOT's Gauss-Newton Hessian (the sum of per-sample Jacobian outer
        products). Jacobians are analytic in numpy: autodiff costs more than the whole model here."""
        o = self.options
        p, R = np.asarray(p0, float), np.asarray(R0, float)
        E, J = energy.linearise(t, p, R)
        E_start = E
        lam, n = 1e-2, 0
        for n in range(1, o.iterations + 1):
            g, H = J.sum(0), J.T @ J
            if o.prior_pos_m > 0:
                g[:3] += (p - p_prev) / o.prior_pos_m**2
                H[:3, :3] += np.eye(3) / o.prior_pos_m**2
            step = -np.linalg.solve(H + lam * np.diag(np.diag(H)) + 1e-12 * np.eye(6), g)
            p_new, R_new = p + step[:3], _exp_np(step[3:]) @ R
            E_new, J_new = energy.linearise(t, p_new, R_new)
            if o.prior_pos_m > 0:
                E_new += 0.5 * np.sum((p_new - p_prev) ** 2) / o.prior_pos_m**2
            if E_new < E:
                p, R, E, J, lam = p_new, R_new, E_new, J_new, max(lam / 3.0, 1e-6)
                if np.abs(step[:3]).max() < 2e-5 and np.abs(step[3:]).max() < 2e-4:
                    break
            else:
                lam *= 4.0
                if lam > 1e3:
                    break
        if E_start - E < o.min_gain:  # a flat direction (depth, a small box's yaw): do not wander
            return np.asarray(p0, float), np.asarray(R0, float), n
        return p, R, n


def _exp_np(rotvec: np.ndarray) -> np.ndarray:
    return rotvec_to_matrix(torch.as_tensor(rotvec, dtype=torch.float64)).numpy()


# --------------------------------------------------------------------------------------------
# Convenience


def track_sequence(seq_dir: Path, name: str | None = None, tracker: ObjectTracker | None = None,
                   progress: Progress | None = None) -> tuple[ObjectTrack, float]:
    """Track object `name` (default: the first movable one) through ``video/video.mp4`` of a
    sequence; returns the track and the seconds the tracker took (reading the video excluded)."""
    import time

    from grail.render.video_io import read_frames
    from grail.scene.spec import load_resolved
    from grail.video.render import load_scene_camera, scaled_camera

    seq_dir = Path(seq_dir)
    scene_dir, video = seq_dir / "scene", seq_dir / "video" / "video.mp4"
    if name is None:
        movable = [o.name for o in load_resolved(scene_dir / "spec.yaml").objects if not o.static]
        if not movable:
            raise GrailError("the scene has no movable object to track", file=scene_dir / "spec.yaml", field="objects")
        name = movable[0]
    model = ObjectModel.from_scene(scene_dir, name)
    pos0, quat0 = first_pose(scene_dir, name)
    frames = np.stack(list(read_frames(video)))
    camera = scaled_camera(load_scene_camera(scene_dir), frames.shape[2], frames.shape[1], file=video)
    t0 = time.perf_counter()
    track = (tracker or RegionTracker()).track(frames, camera, model, pos0, quat0, progress)
    return track, time.perf_counter() - t0


def pose_errors(track: ObjectTrack, gt_pos: np.ndarray, gt_quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame position (metres) and rotation (degrees) errors against ground truth."""
    dp = np.linalg.norm(track.pos - gt_pos, axis=1)
    dot = np.abs(np.sum(track.quat * (gt_quat / np.linalg.norm(gt_quat, axis=1, keepdims=True)), axis=1))
    return dp, np.degrees(2.0 * np.arccos(np.clip(dot, 0.0, 1.0)))
