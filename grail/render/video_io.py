"""H.264 MP4 writing and reading through the ffmpeg that imageio-ffmpeg ships.

Frames stream into ffmpeg's stdin (no frame is held in memory beyond the one being written).
yuv420p halves the chroma resolution, so width and height must be even.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np

from grail.errors import GrailError

CRF = 20
PRESET = "veryfast"  # see VideoWriter; slower presets cost far more time than they save bytes here


class VideoWriter:
    """Stream RGB uint8 frames (H,W,3) into an H.264 (yuv420p) MP4 at `path`.

    Use as a context manager; on an exception inside the block the partial file is removed.
    """

    def __init__(self, path: str | Path, fps: float, width: int, height: int, crf: int = CRF, preset: str = PRESET):
        self.path = Path(path)
        for field, value in (("width", width), ("height", height)):
            if int(value) != value or value < 2:
                raise GrailError(f"must be a positive integer >= 2 (got {value})", field=field)
            if int(value) % 2:
                raise GrailError(f"must be even for H.264 yuv420p (got {value})", field=field)
        if not (np.isfinite(fps) and fps > 0):
            raise GrailError(f"must be positive (got {fps})", field="fps")
        self.width, self.height = int(width), int(height)
        self.fps = fps
        self.frames = 0
        self._gen = imageio_ffmpeg.write_frames(
            str(self.path),
            (self.width, self.height),
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            fps=Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps,
            quality=None,
            codec="libx264",
            macro_block_size=1,  # the default (16) would rescale e.g. 640x360 to 640x368
            ffmpeg_log_level="error",
            output_params=["-crf", str(int(crf)), "-preset", preset, "-movflags", "+faststart"],
        )
        self._open = False

    def __enter__(self) -> "VideoWriter":
        self._start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _start(self) -> None:
        if not self._open:
            if not self.path.parent.is_dir():
                raise GrailError("the folder does not exist", file=self.path)
            try:
                self._gen.send(None)  # starts ffmpeg
            except (OSError, RuntimeError) as err:
                raise GrailError(f"cannot start ffmpeg ({err})", file=self.path) from None
            self._open = True

    def write(self, frame: np.ndarray) -> None:
        self._start()
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise GrailError(f"frame {self.frames}: {frame.shape} {frame.dtype}, expected "
                             f"({self.height}, {self.width}, 3) uint8", file=self.path, field="frame")
        try:
            self._gen.send(np.ascontiguousarray(frame))
        except (OSError, RuntimeError) as err:
            raise GrailError(f"ffmpeg failed at frame {self.frames} ({err})", file=self.path) from None
        self.frames += 1

    def close(self) -> None:
        """Finish the file (ffmpeg writes the index); raises when ffmpeg failed."""
        if self._gen is None:
            return
        gen, self._gen = self._gen, None
        if not self._open:
            gen.close()
            return
        try:
            gen.close()
        except (OSError, RuntimeError) as err:
            raise GrailError(f"ffmpeg failed to finish the video ({err})", file=self.path) from None
        if self.frames == 0:
            self.path.unlink(missing_ok=True)
            raise GrailError("no frames were written", file=self.path)

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file."""
        gen, self._gen = self._gen, None
        if gen is not None:
            try:
                gen.close()
            except (OSError, RuntimeError):
                pass
        self.path.unlink(missing_ok=True)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise GrailError("no such video file", file=path)
    if path.stat().st_size == 0:
        raise GrailError("empty video file", file=path)


def read_video_info(path: str | Path) -> dict:
    """frames, fps, width, height of a video (frames counted by decoding, so exact)."""
    path = Path(path)
    _check_file(path)
    try:
        gen = imageio_ffmpeg.read_frames(str(path))
        meta = next(gen)
        gen.close()
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError, StopIteration, ValueError) as err:
        raise GrailError(f"cannot read the video ({_short(err)})", file=path) from None
    width, height = (int(v) for v in meta["size"])
    fps = float(meta["fps"])
    if frames <= 0 or width <= 0 or height <= 0 or not fps > 0:
        raise GrailError(f"not a readable video ({frames} frames, {width}x{height}, {fps} fps)", file=path)
    return {"frames": int(frames), "fps": fps, "width": width, "height": height}


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decoded RGB uint8 frames (H,W,3), one at a time."""
    path = Path(path)
    _check_file(path)
    try:
        gen = imageio_ffmpeg.read_frames(str(path))
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration, ValueError) as err:
        raise GrailError(f"cannot read the video ({_short(err)})", file=path) from None
    width, height = (int(v) for v in meta["size"])
    try:
        for raw in gen:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
    except (OSError, RuntimeError) as err:
        raise GrailError(f"cannot decode the video ({_short(err)})", file=path) from None
    finally:
        gen.close()


def _short(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
