"""Reconstruct every template over several seeds against the procedural ground truth and print the
figures of issue 5: MPJPE (world and pelvis-relative, mm), object position (cm; also split into the
frames the truth holds the object, 'held', and the rest, 'free') and rotation (deg)
errors, contact distance (m), penetration (% of frames), human and object smoothness, filter pass
rate and seconds per sequence, per template and overall; optionally the ablations without L_proj,
L_depth and L_cont. Targets: MediaPipe MPJPE <= 40 mm, object <= 3 cm, contact <= 0.01 m,
penetration <= 1 %; oracle (3 px, 5 % dropout) MPJPE <= 15 mm, object <= 1.5 cm; <= 60 s per 5 s clip.

Sequences are composed and generated at the scene camera's size (1280x720) into --root when missing.

    python benchmarks/recon_quality.py --seeds 5 --human mediapipe oracle [--ablations] [--root DIR] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grail.recon.oracle import OracleOptions

ABLATIONS = {"full": {}, "no_proj": {"proj": 0.0}, "no_depth": {"depth": 0.0}, "no_cont": {"cont": 0.0}}


def sequence(template: str, seed: int, root: Path) -> Path:
    """A composed and generated sequence (made once, kept in root)."""
    from grail.scene.compose import ComposeOptions, compose_sequence
    from grail.video.generate import GenerateOptions, generate_sequence

    seq, _ = compose_sequence(Path("scenes") / f"{template}.yaml", seed, root, ComposeOptions())
    generate_sequence(seq.path, GenerateOptions())
    return seq.path


def make_inputs(templates: list[str], seeds: int, root: Path) -> list[tuple[str, int]]:
    """(template, seed) of every sequence made or found in root, in one process (compose and
    render are not measured); a seed whose scene does not settle is left out, and said so."""
    from grail.errors import GrailError

    root.mkdir(parents=True, exist_ok=True)
    made = []
    for template in templates:
        for seed in range(seeds):
            try:
                sequence(template, seed, root)
                made.append((template, seed))
            except GrailError as err:
                print(f"{template} s{seed}: no input ({err.one_line()})", flush=True)
    return made


def oracle_options(template: str, seed: int) -> OracleOptions:
    """The oracle's noise, dropout and outliers drawn afresh for each clip, the same on every run.
    With one draw for all (OracleOptions' seed 0), clips of equal length share their noise and
    the mean over clips is one draw's: fit alone, 6 clips, draws 0, 1 and 2 gave 18.2, 17.5 and
    19.5 mm MPJPE."""
    from grail.recon.oracle import OracleOptions

    return OracleOptions(seed=zlib.crc32(f"{template}/{seed}".encode()))


def run_one(job: tuple[str, int, str, str, str]) -> dict:
    """Reconstruct one sequence in memory with one estimator and ablation; measure against gt."""
    template, seed, human, ablation, root = job
    os.environ.setdefault("MUJOCO_GL", "egl")
    from grail.errors import GrailError
    from grail.recon.evaluate import evaluate_against_gt
    from grail.recon.perception import PerceptionOptions
    from grail.recon.refine import RefineOptions, RefineWeights
    from grail.recon.stage import ReconOptions, reconstruct
    from grail.video.gt import GroundTruth

    row = {"template": template, "seed": seed, "human": human, "ablation": ablation}
    try:
        seq = sequence(template, seed, Path(root))
        weights = replace(RefineWeights(), **ABLATIONS[ablation])
        perception = PerceptionOptions(human=human, oracle=oracle_options(template, seed))
        options = ReconOptions(perception=perception, refine=RefineOptions(weights=weights), overlay=False)
        t0 = time.perf_counter()
        rec = reconstruct(seq, options)
        seconds = time.perf_counter() - t0
        ev = evaluate_against_gt(rec.hoi, GroundTruth.load(seq / "video" / "gt.npz"))
    except GrailError as err:
        return {**row, "error": err.one_line()}
    m = rec.metrics
    row.update(mpjpe_mm=ev["mpjpe_mm"], mpjpe_rel_mm=ev["mpjpe_rel_mm"], object_pos_cm=ev.get("object_pos_cm"),
               object_held_pos_cm=ev.get("object_held_pos_cm"), object_free_pos_cm=ev.get("object_free_pos_cm"),
               object_rot_deg=ev.get("object_rot_deg"), contact_m=m["contact"]["hand_object_gap_m"],
               penetration_pct=100 * m["penetration"]["frames_share"],
               human_smooth=m["human"]["smoothness_m_per_frame2"],
               object_smooth=m.get("object", {}).get("smoothness_m_per_frame2"), passed=m["filter"]["passed"],
               reasons=m["filter"]["reasons"], seconds=seconds, timings=m["timings_s"], per_joint=ev["per_joint_mm"],
               contact_agreement=ev["contact_agreement"])
    return row


def _mean(values: list) -> float:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def print_table(rows: list[dict], title: str) -> None:
    ok = [r for r in rows if "error" not in r]
    print(f"\n{title}  ({len(ok)}/{len(rows)} reconstructed)")
    print(f"{'template':14s} {'MPJPE':>6s} {'rel':>6s} {'obj cm':>7s} {'held':>6s} {'free':>6s} {'obj deg':>7s} "
          f"{'contact m':>9s} {'pen %':>6s} {'h smooth':>8s} {'o smooth':>8s} {'pass':>5s} {'s/seq':>6s}")
    groups = sorted({r["template"] for r in ok}) + ["overall"]
    for g in groups:
        rs = ok if g == "overall" else [r for r in ok if r["template"] == g]
        if not rs:
            continue
        print(f"{g:14s} {_mean([r['mpjpe_mm'] for r in rs]):6.1f} {_mean([r['mpjpe_rel_mm'] for r in rs]):6.1f} "
              f"{_mean([r['object_pos_cm'] for r in rs]):7.2f} {_mean([r['object_held_pos_cm'] for r in rs]):6.2f} "
              f"{_mean([r['object_free_pos_cm'] for r in rs]):6.2f} {_mean([r['object_rot_deg'] for r in rs]):7.1f} "
              f"{_mean([r['contact_m'] for r in rs]):9.4f} {_mean([r['penetration_pct'] for r in rs]):6.2f} "
              f"{_mean([r['human_smooth'] for r in rs]):8.4f} {_mean([r['object_smooth'] for r in rs]):8.4f} "
              f"{sum(bool(r['passed']) for r in rs):2d}/{len(rs):<2d} {_mean([r['seconds'] for r in rs]):6.1f}")
    print_joints(ok)
    for r in rows:
        if "error" in r:
            print(f"  {r['template']} s{r['seed']}: FAILED {r['error']}")


def print_joints(rows: list[dict]) -> None:
    """Each joint's error over all rows, worst first: where the MPJPE comes from (the oracle's is
    mostly its wrists' and elbows', placed wrong along the camera's rays)."""
    if not rows:
        return
    names = list(rows[0]["per_joint"])
    means = {name: _mean([r["per_joint"][name] for r in rows]) for name in names}
    worst = sorted(names, key=lambda name: -means[name])
    print("  per joint, mm: " + ", ".join(f"{name} {means[name]:.1f}" for name in worst))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--templates", nargs="*", default=None)
    ap.add_argument("--human", nargs="+", default=["mediapipe", "oracle"])
    ap.add_argument("--ablations", action="store_true", help="also run without L_proj, L_depth and L_cont")
    ap.add_argument("--ablation-seeds", type=int, default=2)
    ap.add_argument("--root", type=Path, default=Path.home() / ".cache" / "grail" / "recon-benchmark")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("recon_quality.json"))
    args = ap.parse_args()
    made = make_inputs(args.templates or sorted(p.stem for p in Path("scenes").glob("*.yaml")), args.seeds, args.root)
    jobs = [(t, s, h, "full", str(args.root)) for h in args.human for t, s in made]
    if args.ablations:
        jobs += [(t, s, args.human[0], a, str(args.root)) for a in ABLATIONS if a != "full"
                 for t, s in made if s < args.ablation_seeds]
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(run_one, jobs):
            rows.append(row)
            brief = row.get("error") or (f"MPJPE {row['mpjpe_mm']:.1f} mm, object {row['object_pos_cm'] or 0:.2f} cm, "
                                         f"{row['seconds']:.1f} s, filter {'pass' if row['passed'] else row['reasons']}")
            print(f"{row['template']} s{row['seed']} {row['human']} {row['ablation']}: {brief}", flush=True)
    args.out.write_text(json.dumps(rows, indent=1))
    for human in args.human:
        print_table([r for r in rows if r["human"] == human and r["ablation"] == "full"], f"{human}, full loss")
    if args.ablations:
        for a in ABLATIONS:
            print_table([r for r in rows if r["human"] == args.human[0] and r["ablation"] == a
                         and r["seed"] < args.ablation_seeds], f"{args.human[0]}, ablation {a}")


if __name__ == "__main__":
    main()
