"""Retarget every template over several seeds and print the quality figures against the targets
of issue 4: mean hand-object error during contact <= 2 cm, stance-foot slide <= 1 cm/s,
penetration <= 1 cm, zero joint-limit violations. Writes one side-by-side replay per template
(the first seed) when --replay is given.

    python benchmarks/retarget_quality.py --seeds 5 [--templates a b] [--out DIR] [--replay]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from grail.errors import GrailError
from grail.retarget.stage import RetargetOptions, retarget_sequence

KEYS = ("hand_object_error_mean_mm", "hand_object_error_max_mm", "foot_slide_max_cm_s", "penetration_max_mm",
        "object_penetration_max_mm", "joint_limit_violations", "velocity_limit_violations", "self_collisions",
        "ik_residual_mean_mm")


def main() -> None:
    from retarget_speed import sequence_with_motion  # same directory

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--templates", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--replay", action="store_true", help="also render replay.mp4 for each template's first seed")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="grail-rtq-"))
    templates = args.templates or sorted(p.stem for p in Path("scenes").glob("*.yaml"))
    rows = []
    for template in templates:
        for seed in range(args.seeds):
            try:
                seq = sequence_with_motion(template, seed, out)
                t0 = time.perf_counter()
                retarget_sequence(seq, RetargetOptions(replay=args.replay and seed == 0), force=True)  # measure this code
            except GrailError as err:
                rows.append({"template": template, "seed": seed, "error": err.one_line()})
                print(f"{template} s{seed}: FAILED {err.one_line()}", flush=True)
                continue
            metrics = json.loads((seq / "robot" / "metrics.json").read_text())
            row = {"template": template, "seed": seed, **{k: metrics["summary"][k] for k in KEYS},
                   "violations": metrics["violations"], "ik_fps": metrics["timings_s"]["fps"],
                   "stage_s": round(time.perf_counter() - t0, 2)}
            rows.append(row)
            print(f"{template} s{seed}: " + " ".join(f"{k}={row[k]}" for k in (*KEYS, "ik_fps", "stage_s"))
                  + (f" VIOLATIONS {row['violations']}" if row["violations"] else ""), flush=True)
    (out / "retarget_quality.json").write_text(json.dumps(rows, indent=1))
    ok = [r for r in rows if "error" not in r]
    print(f"\n{len(ok)}/{len(rows)} retargeted; {sum(1 for r in ok if not r['violations'])} within every target; "
          f"results in {out}")
    print(f"{'template':14s} {'pass':>5s} {'hand-obj mean':>13s} {'slide max':>9s} {'pen max':>8s} {'obj pen':>8s} "
          f"{'limits':>6s} {'self':>5s} {'IK fps':>7s}")
    for template in templates:
        rs = [r for r in ok if r["template"] == template]
        if not rs:
            continue
        ho = [r["hand_object_error_mean_mm"] for r in rs if r["hand_object_error_mean_mm"] is not None]
        print(f"{template:14s} {sum(not r['violations'] for r in rs):>2d}/{len(rs):<2d} "
              f"{(max(ho) if ho else float('nan')):13.1f} {max(r['foot_slide_max_cm_s'] for r in rs):9.2f} "
              f"{max(r['penetration_max_mm'] for r in rs):8.1f} {max(r['object_penetration_max_mm'] for r in rs):8.1f} "
              f"{sum(r['joint_limit_violations'] for r in rs):6d} {sum(r['self_collisions'] for r in rs):5d} "
              f"{min(r['ik_fps'] for r in rs):7.0f}")


if __name__ == "__main__":
    main()
