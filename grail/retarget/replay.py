"""Kinematic replay: the robot's motion played in its scene, side by side with the source video.

The left half is the interaction video (the character), the right half the robot rendered from
the same scene camera with the objects where the motion has them. Nothing is simulated: each
frame sets the configuration and renders, so what you see is exactly the retargeted motion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import mujoco
import numpy as np

from grail.render.offscreen import OffscreenRenderer
from grail.render.video_io import VideoWriter, read_frames
from grail.robot.scene import RobotScene

CAMERA = "scene_cam"
REPLAY_SHADOW = 1024


def write_replay(scene: RobotScene, Q: np.ndarray, objects: dict[str, tuple[np.ndarray, np.ndarray]], fps: float,
                 out: Path, video: Path | None, width: int, height: int,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Render the replay MP4 at `out` (each half `width` x `height`); returns its size and frames."""
    width, height = width - width % 2, height - height % 2
    data = mujoco.MjData(scene.model)
    scene.model.vis.quality.shadowsize, scene.model.vis.quality.offsamples = REPLAY_SHADOW, 0  # 4-5x faster
    source = _source_frames(video, width, height)
    with OffscreenRenderer(scene.model, width, height) as renderer, VideoWriter(out, fps, 2 * width, height) as writer:
        for t, q in enumerate(Q):
            scene.set_state(data, q, {n: (p[t], r[t]) for n, (p, r) in objects.items()})
            robot = renderer.rgb(data, CAMERA)
            writer.write(np.concatenate([next(source), robot], axis=1))
            if progress:
                progress(t + 1, len(Q))
    return {"file": out.name, "frames": int(len(Q)), "width": 2 * width, "height": height,
            "bytes": out.stat().st_size}


def _source_frames(video: Path | None, width: int, height: int) -> Iterator[np.ndarray]:
    """The video's frames resized to (height, width); grey when there is no video or it ends early."""
    blank = np.full((height, width, 3), 96, np.uint8)
    if video is not None and video.is_file():
        for frame in read_frames(video):
            yield _fit(frame, width, height)
    while True:
        yield blank


def _fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))
