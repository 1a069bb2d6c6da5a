"""The known environment seen through the scene camera: metric depth of the static scene (no
movable objects, no character), rendered by MuJoCo from scene.xml at the video's size. It is what
the paper aligns monocular depth to; here it is exact, so it serves directly as L_depth's bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grail.render.offscreen import OffscreenRenderer, only_groups
from grail.recon.supports import static_scene
from grail.scene.mjcf import CAMERA_NAME, GROUP_FURNITURE, GROUP_SUPPORT_STATIC

import mujoco  # noqa: E402  (grail.render.offscreen picks the GL backend first)


def environment_depth(scene_xml: Path, objects: tuple[str, ...], width: int, height: int) -> np.ndarray:
    """(H,W) float64 depth along the optical axis; inf where nothing was hit."""
    model = static_scene(scene_xml, objects)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with OffscreenRenderer(model, width, height) as renderer:
        depth = renderer.depth(data, CAMERA_NAME, only_groups([GROUP_SUPPORT_STATIC, GROUP_FURNITURE], skins=False)).astype(np.float64)
    depth[depth <= 0] = np.inf
    return depth
