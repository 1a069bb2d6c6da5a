"""Compose + settle + render one scene at 640x360, per template, after the Anny cache exists.

Prints seconds per scene (wall clock of the whole stage, files included) and the split of one
scene into its steps. Target (issue 2): <= 5 s per scene on the 2-core development machine.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[1]


def main(seeds: int = 3) -> None:
    from grail.scene.compose import ComposeOptions, compose_sequence

    options = ComposeOptions(640, 360)
    templates = sorted((REPO / "scenes").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        compose_sequence(templates[0], 999, Path(root), options)  # first: imports, cached character
        print(f"first scene in this process (loads the cached character, warms GL): {time.perf_counter() - t0:.2f} s")
        print(f"{'template':<16}{'median s':>10}{'max s':>8}")
        everything = []
        for template in templates:
            times = []
            for seed in range(seeds):
                start = time.perf_counter()
                compose_sequence(template, seed, Path(root), options)
                times.append(time.perf_counter() - start)
            everything += times
            print(f"{template.stem:<16}{statistics.median(times):>10.2f}{max(times):>8.2f}")
        print(f"all templates: median {statistics.median(everything):.2f} s, max {max(everything):.2f} s per scene at 640x360 (target <= 5 s)")
        full = []
        for seed in range(seeds):
            start = time.perf_counter()
            compose_sequence(REPO / "scenes" / "pickup_table.yaml", 100 + seed, Path(root), ComposeOptions())
            full.append(time.perf_counter() - start)
        print(f"pickup_table at the default 1280x720: median {statistics.median(full):.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
