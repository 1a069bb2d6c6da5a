"""The interaction video as the reconstruction sees it: decoded frames at the scene's frame rate and
the scene camera at the video's size.

A video whose size differs from the camera's is accepted when the aspect ratio matches (the
intrinsics are rescaled) and refused otherwise; a video at another frame rate is resampled in time
to the scene's (nearest frame), so the reconstruction lines up with the scene's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from grail.errors import GrailError
from grail.render.video_io import read_frames, read_video_info
from grail.scene.camera import PinholeCamera
from grail.scene.spec import load_resolved
from grail.video.render import load_scene_camera, scaled_camera


@dataclass
class VideoInput:
    frames: np.ndarray          # (T,H,W,3) uint8 RGB at `fps`
    fps: float
    camera: PinholeCamera       # the scene camera at the video's size
    source_fps: float           # the file's own frame rate
    source_frames: int

    @property
    def size(self) -> tuple[int, int]:
        return self.camera.width, self.camera.height


def scene_fps(seq_dir: Path) -> float:
    """The scene's frame rate (spec.yaml `fps`, validated by the resolved-scene model)."""
    return float(load_resolved(Path(seq_dir) / "scene" / "spec.yaml").fps)


def load_video(seq_dir: Path, min_frames: int = 2) -> VideoInput:
    """Decode video/video.mp4 and check it against the scene camera and frame rate."""
    seq_dir = Path(seq_dir)
    path = seq_dir / "video" / "video.mp4"
    info = read_video_info(path)  # missing, empty or undecodable files fail here, on one line
    camera = scaled_camera(load_scene_camera(seq_dir / "scene"), info["width"], info["height"], file=path)
    frames = np.stack(list(read_frames(path))) if info["frames"] else np.zeros((0, 1, 1, 3), np.uint8)
    if len(frames) < min_frames:
        raise GrailError(f"{len(frames)} decodable frames, need at least {min_frames}", file=path)
    fps = scene_fps(seq_dir)
    if not np.isclose(info["fps"], fps, rtol=1e-3):
        frames = resample_frames(frames, info["fps"], fps)
    return VideoInput(frames=frames, fps=fps, camera=camera, source_fps=info["fps"], source_frames=int(info["frames"]))


def resample_frames(frames: np.ndarray, source_fps: float, fps: float) -> np.ndarray:
    """Nearest-frame resampling of a clip to another frame rate, same duration."""
    n = max(1, int(round(len(frames) * fps / source_fps)))
    index = np.minimum(np.round(np.arange(n) * source_fps / fps).astype(int), len(frames) - 1)
    return frames[index]
