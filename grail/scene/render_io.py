"""Write the first-frame renders: RGB, metric depth, masks, and pictures people can look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MASKS = ("mask_object", "mask_character", "mask_support")
OVERLAY_COLORS = {"mask_object": (255, 40, 40), "mask_character": (40, 120, 255), "mask_support": (60, 200, 90)}


def depth_preview(depth: np.ndarray) -> np.ndarray:
    """Near = bright, far = dark, no-hit = black (8-bit). Scaled by inverse depth, which spreads
    the nearby scene over the grey levels instead of the distant floor."""
    valid = depth > 0
    out = np.zeros(depth.shape, np.uint8)
    if valid.any():
        inverse = np.zeros_like(depth)
        inverse[valid] = 1.0 / depth[valid]
        lo, hi = np.percentile(inverse[valid], [2, 98])
        scaled = np.clip((inverse - lo) / max(hi - lo, 1e-9), 0, 1)
        out[valid] = (30 + 225 * scaled[valid]).astype(np.uint8)
    return out


def overlay(rgb: np.ndarray, masks: dict[str, np.ndarray], alpha: float = 0.45) -> np.ndarray:
    out = rgb.astype(np.float32)
    for name in ("mask_support", "mask_character", "mask_object"):
        m = masks[name]
        out[m] = (1 - alpha) * out[m] + alpha * np.array(OVERLAY_COLORS[name], np.float32)
    return out.clip(0, 255).astype(np.uint8)


def write_renders(directory: Path, renders: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    Image.fromarray(renders["rgb"]).save(directory / "rgb.png", optimize=False)
    np.save(directory / "depth.npy", renders["depth"].astype(np.float32))
    Image.fromarray(depth_preview(renders["depth"])).save(directory / "depth.png")
    for name in MASKS:
        Image.fromarray((renders[name] * 255).astype(np.uint8)).save(directory / f"{name}.png")
    Image.fromarray(overlay(renders["rgb"], {k: renders[k] for k in MASKS})).save(directory / "overlay.png")


def read_mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 127
