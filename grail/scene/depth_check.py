"""Check rendered depth against ray casts through the saved MJCF: the two must agree, or the
camera model, the depth linearisation or the scene file is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np

from grail.scene.camera import PinholeCamera
from grail.scene.mjcf import FLOOR_NAME, GROUP_FURNITURE, GROUP_OBJECT, GROUP_SUPPORT_STATIC
from grail.scene.render_io import read_mask

EDGE_JUMP_M = 0.02  # pixels next to a depth jump straddle two surfaces: left out
ABOVE_FLOOR_M = 0.005


def _near_depth_edges(depth: np.ndarray) -> np.ndarray:
    edge = np.zeros(depth.shape, bool)
    c = depth[1:-1, 1:-1]
    edge[1:-1, 1:-1] = (
        (np.abs(c - depth[:-2, 1:-1]) > EDGE_JUMP_M)
        | (np.abs(c - depth[2:, 1:-1]) > EDGE_JUMP_M)
        | (np.abs(c - depth[1:-1, :-2]) > EDGE_JUMP_M)
        | (np.abs(c - depth[1:-1, 2:]) > EDGE_JUMP_M)
    )
    return edge


def _world_points(camera: PinholeCamera, pixels_vu: np.ndarray, depth: np.ndarray) -> np.ndarray:
    uv1 = np.c_[pixels_vu[:, 1], pixels_vu[:, 0], np.ones(len(pixels_vu))]
    z = depth[pixels_vu[:, 0], pixels_vu[:, 1]].astype(float)
    p_cam = (uv1 @ np.linalg.inv(camera.K).T) * z[:, None]
    return p_cam @ camera.R_world_cam.T + camera.position


def depth_ray_errors(scene_dir: Path, samples: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """|rendered depth - ray-cast depth| (metres) at sampled pixels off the character (which
    scene.xml does not hold), and whether each ray hit the floor plane; pixels where either
    sees nothing are left out."""
    scene_dir = Path(scene_dir)
    model = mujoco.MjModel.from_xml_path(str(scene_dir / "scene.xml"))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    camera = PinholeCamera.from_json(json.loads((scene_dir / "camera.json").read_text()))
    depth = np.load(scene_dir / "render" / "depth.npy")
    off_character = ~read_mask(scene_dir / "render" / "mask_character.png")
    candidates = np.argwhere(off_character & (depth > 0) & ~_near_depth_edges(depth))
    # Half the samples from pixels that back-project above the floor, so furniture, objects
    # and terrain are checked even when the floor fills most of the image.
    above = _world_points(camera, candidates, depth)[:, 2] > ABOVE_FLOOR_M
    rng = np.random.default_rng(seed)
    picks = []
    for pool, share in ((candidates[above], samples // 2), (candidates[~above], samples - samples // 2)):
        picks.append(pool[rng.choice(len(pool), size=min(share, len(pool)), replace=False)])
    picks = np.concatenate(picks)
    rays = camera.pixel_rays(picks[:, ::-1].astype(float))
    optical_axis = camera.R_world_cam[:, 2]
    groups = np.zeros(6, np.uint8)
    groups[[GROUP_SUPPORT_STATIC, GROUP_FURNITURE, GROUP_OBJECT]] = 1  # visual geoms only
    hit = np.zeros(1, np.int32)
    floor = model.geom(FLOOR_NAME).id
    errors, on_floor = [], []
    for (v, u), ray in zip(picks, rays):
        dist = mujoco.mj_ray(model, data, camera.position, ray, groups, 1, -1, hit)
        if dist >= 0:
            errors.append(abs(dist * float(ray @ optical_axis) - float(depth[v, u])))
            on_floor.append(int(hit[0]) == floor)
    return np.asarray(errors), np.asarray(on_floor, bool)
