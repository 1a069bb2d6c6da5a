"""Rendered depth against MuJoCo ray casts through scene.xml, for every template.

Prints median / 95th percentile / max absolute error (mm) over sampled pixels. Target (issue 2):
median <= 1 mm.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[1]


def main(seeds: int = 2, samples: int = 1000) -> None:
    from grail.scene.compose import ComposeOptions, compose_sequence
    from grail.scene.depth_check import depth_ray_errors

    print(f"{'sequence':<24}{'pixels':>8}{'median um':>11}{'p95 um':>9}{'max um':>9}{'off-floor px':>14}{'off-floor median um':>21}")
    pooled, pooled_off = [], []
    with tempfile.TemporaryDirectory() as root:
        for template in sorted((REPO / "scenes").glob("*.yaml")):
            for seed in range(seeds):
                seq, _ = compose_sequence(template, seed, Path(root), ComposeOptions(640, 360))
                err, on_floor = depth_ray_errors(seq.path / "scene", samples=samples)
                err = err * 1e6
                off = err[~on_floor]
                pooled.append(err)
                pooled_off.append(off)
                off_median = f"{np.median(off):.1f}" if len(off) else "-"
                print(f"{seq.id:<24}{len(err):>8}{np.median(err):>11.1f}{np.percentile(err, 95):>9.1f}{err.max():>9.1f}{len(off):>14}{off_median:>21}")
    allerr, alloff = np.concatenate(pooled), np.concatenate(pooled_off)
    print(f"all: {len(allerr)} pixels, median {np.median(allerr):.1f} um, p95 {np.percentile(allerr, 95):.1f} um, max {allerr.max():.1f} um")
    print(f"off the floor (furniture, objects, terrain): {len(alloff)} pixels, median {np.median(alloff):.1f} um, p95 {np.percentile(alloff, 95):.1f} um (target median <= 1000 um)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
