"""Generate every template over several seeds and print the physical-consistency figures,
the joint-to-mask agreement and the time per clip (synthesis, metrics, render+encode).

    python benchmarks/generate_quality.py --seeds 5 --width 640 --height 360 [--out DIR] [--templates a b]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from grail.errors import GrailError
from grail.scene.compose import ComposeOptions, compose_sequence
from grail.video.generate import GenerateOptions, generate_sequence

KEYS = ("foot_skate_max_m_s", "foot_below_support_max_m", "hand_object_distance_max_m", "object_float_max_m",
        "object_penetration_max_m", "body_penetration_max_m", "joint_speed_max_rad_s", "joint_accel_max_rad_s2",
        "joint_range_violations")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--templates", nargs="*", default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="grail-gen-"))
    templates = [Path(f"scenes/{t}.yaml") for t in args.templates] if args.templates else sorted(Path("scenes").glob("*.yaml"))
    rows = []
    for template in templates:
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            try:
                seq, _ = compose_sequence(template, seed, out, ComposeOptions(args.width, args.height))
                generate_sequence(seq.path, GenerateOptions())
            except GrailError as err:
                rows.append({"template": template.stem, "seed": seed, "error": err.one_line()})
                print(f"{template.stem} s{seed}: FAILED {err.one_line()}", flush=True)
                continue
            record = json.loads((seq.path / "video" / "video.json").read_text())
            m = record["physical_consistency"]["metrics"]
            row = {"template": template.stem, "seed": seed, **{k: m[k] for k in KEYS},
                   "violations": record["physical_consistency"]["violations"],
                   "joint_mask": record["joint_mask_agreement"]["fraction"], **record["timings_s"],
                   "total_s": round(time.perf_counter() - t0, 2)}
            rows.append(row)
            print(f"{template.stem} s{seed}: " + " ".join(f"{k}={row[k]}" for k in (*KEYS, "joint_mask", "synthesis", "render_encode", "total_s"))
                  + (f" VIOLATIONS {row['violations']}" if row["violations"] else ""), flush=True)
    (out / "generate_quality.json").write_text(json.dumps(rows, indent=1))
    ok = [r for r in rows if "error" not in r]
    print(f"\n{len(ok)}/{len(rows)} clips generated; {sum(1 for r in ok if not r['violations'])} within every bound; results in {out}")
    if ok:
        for k in (*KEYS, "joint_mask", "total_s"):
            vals = [r[k] for r in ok]
            print(f"  {k:28s} max {max(vals):.4g}  mean {sum(vals) / len(vals):.4g}")


if __name__ == "__main__":
    main()
