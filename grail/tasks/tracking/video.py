"""Rollout videos from logged trajectories: the robot as simulated (collision geometry), the
reference as translucent orange spheres at its tracked bodies (as in the sim2sim video), up to four
rollouts tiled 2x2, each followed by its own camera and labelled by motion and outcome."""

from __future__ import annotations

import os
from pathlib import Path

import mujoco
import numpy as np
from PIL import Image, ImageDraw

from grail.render.video_io import VideoWriter
from grail.robot.model import g1_xml_path

TILE = (240, 320)  # height, width
# The G1's visual meshes have ~390k faces: 100 ms a frame with a CPU's software OpenGL. Its collision
# geometry (group 3) draws in ~25 ms and shows the pose as well, so the videos use that.
SHOWN_GROUPS = (1, 0, 0, 1, 0, 0)
REFERENCE_RGBA = np.array([1.0, 0.3, 0.1, 0.5], dtype=np.float32)
LOOKAT_HEIGHT_M = 0.65  # about the G1's waist: head and feet both in a 3 m view


def _viewer_model() -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(str(g1_xml_path()))
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.01], rgba=[0.3, 0.35, 0.4, 1])
    spec.worldbody.add_light(pos=[0, 0, 3], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    model = spec.compile()
    model.vis.global_.offwidth, model.vis.global_.offheight = 640, 480
    model.vis.headlight.ambient[:] = 0.35
    model.vis.headlight.diffuse[:] = 0.55
    return model


def add_reference_spheres(scene: mujoco.MjvScene, points: np.ndarray) -> None:
    """Translucent orange spheres at the reference's tracked bodies (as many as the scene holds)."""
    for p in points:
        if scene.ngeom >= scene.maxgeom:
            return
        mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_SPHERE, np.array([0.04, 0, 0]),
                            p, np.eye(3).reshape(-1), REFERENCE_RGBA)
        scene.ngeom += 1


def _tile(renderer: mujoco.Renderer, model, data, camera, qpos: np.ndarray, ref_bodies: np.ndarray, label: str) -> np.ndarray:
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    # follow the robot over the ground at mid-body height (a tracking camera would need subtree
    # centres of mass, which kinematics alone leaves at the origin)
    camera.lookat[:] = (qpos[0], qpos[1], LOOKAT_HEIGHT_M)
    option = mujoco.MjvOption()
    option.geomgroup[:] = SHOWN_GROUPS
    renderer.update_scene(data, camera=camera, scene_option=option)
    scene = renderer.scene
    scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    add_reference_spheres(scene, ref_bodies)
    image = Image.fromarray(renderer.render())
    ImageDraw.Draw(image).text((8, 8), label, fill=(255, 255, 255))
    return np.asarray(image)


def render_rollouts(path: Path | str, trajectories: list, labels: list[str], fps: float,
                    video_fps: float = 25.0, max_seconds: float = 8.0) -> Path:
    """Write an MP4 of up to four trajectories (``evaluate.Trajectory``, logged at `fps`) at
    `video_fps`, the first `max_seconds`; shorter ones hold their last frame. Offscreen rendering on a
    CPU costs tens of ms a tile, so the video is subsampled and capped."""
    path = Path(path)
    stride = max(1, int(round(fps / video_fps)))
    shown = trajectories[:4]
    model = _viewer_model()
    data = mujoco.MjData(model)
    h, w = TILE
    renderer = mujoco.Renderer(model, height=h, width=w)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.distance, camera.azimuth, camera.elevation = 3.0, 135.0, -15.0
    rows, cols = (1, len(shown)) if len(shown) < 3 else (2, 2)
    frames = min(max(len(t.robot_qpos) for t in shown), int(max_seconds * fps))
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        with VideoWriter(tmp, fps / stride, cols * w, rows * h) as writer:
            for k in range(0, frames, stride):
                canvas = np.zeros((rows * h, cols * w, 3), np.uint8)
                for i, (t, label) in enumerate(zip(shown, labels)):
                    f = min(k, len(t.robot_qpos) - 1)
                    r, c = divmod(i, cols)
                    canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = _tile(
                        renderer, model, data, camera, t.robot_qpos[f], t.ref_body_local[f], label)
                writer.write(canvas)
        os.replace(tmp, path)
    finally:
        renderer.close()
        if tmp.exists():
            tmp.unlink()
    return path
