"""MuJoCo offscreen rendering of RGB, metric depth and per-pixel segmentation.

EGL (Mesa's llvmpipe on a CPU) is the default backend; set MUJOCO_GL=osmesa to use OSMesa.
The backend must be chosen before mujoco creates a GL context, so import this module (or
call `select_gl_backend`) before rendering.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


def select_gl_backend() -> str:
    backend = os.environ.setdefault("MUJOCO_GL", "egl")
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


select_gl_backend()

import mujoco  # noqa: E402  (after the GL backend is chosen)

OBJ_GEOM = int(mujoco.mjtObj.mjOBJ_GEOM)
OBJ_SKIN = int(mujoco.mjtObj.mjOBJ_SKIN)


@dataclass
class Segmentation:
    """Per-pixel MuJoCo object id and type (-1 where nothing was hit)."""

    ids: np.ndarray  # (H, W) int32
    types: np.ndarray  # (H, W) int32

    def geom_mask(self, geom_ids: np.ndarray | list[int]) -> np.ndarray:
        return (self.types == OBJ_GEOM) & np.isin(self.ids, np.asarray(geom_ids, dtype=np.int64))

    def skin_mask(self) -> np.ndarray:
        return self.types == OBJ_SKIN


class OffscreenRenderer:
    """One GL context for a model; renders a named camera. Use as a context manager so the
    context is released deterministically (mujoco's finaliser is noisy at interpreter exit)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int):
        if model.vis.global_.offwidth < width or model.vis.global_.offheight < height:
            model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        self.model = model
        self.width, self.height = width, height
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        self.option = mujoco.MjvOption()

    def __enter__(self) -> "OffscreenRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _update(self, data: mujoco.MjData, camera: str | int, option: mujoco.MjvOption | None) -> None:
        self._renderer.update_scene(data, camera=camera, scene_option=option or self.option)

    def rgb(self, data: mujoco.MjData, camera: str | int, option: mujoco.MjvOption | None = None) -> np.ndarray:
        self._update(data, camera, option)
        return self._renderer.render().copy()

    def depth(self, data: mujoco.MjData, camera: str | int, option: mujoco.MjvOption | None = None) -> np.ndarray:
        """Metric depth along the optical axis (float32); 0 where nothing was hit."""
        self._renderer.enable_depth_rendering()
        try:
            self._update(data, camera, option)
            depth = self._renderer.render().astype(np.float32)
        finally:
            self._renderer.disable_depth_rendering()
        far = self.model.vis.map.zfar * self.model.stat.extent
        depth[depth >= far * 0.999] = 0.0
        return depth

    def segmentation(self, data: mujoco.MjData, camera: str | int, option: mujoco.MjvOption | None = None) -> Segmentation:
        self._renderer.enable_segmentation_rendering()
        try:
            self._update(data, camera, option)
            seg = self._renderer.render()
        finally:
            self._renderer.disable_segmentation_rendering()
        return Segmentation(ids=seg[..., 0].astype(np.int32), types=seg[..., 1].astype(np.int32))


def only_groups(geom_groups: list[int], skins: bool) -> mujoco.MjvOption:
    """A scene option that shows only the given geom groups (and skins or not)."""
    option = mujoco.MjvOption()
    option.geomgroup[:] = 0
    for g in geom_groups:
        option.geomgroup[g] = 1
    option.skingroup[:] = 1 if skins else 0
    return option
