"""``grail export`` and ``grail sim2sim``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from grail.atomic import write_text_atomic


def export(
    run: Path = typer.Argument(..., help="Training run directory."),
    out: Path = typer.Option(..., "--out", help="Policy directory, e.g. policies/<name>/ (replaced when complete)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint (default: the newest)."),
    motions: Optional[Path] = typer.Option(None, "--motions", help="Motions to build the task from (default: the run's)."),
) -> None:
    """Export a tracker: policy.onnx plus policy.json (joints, gains, default pose, action scale, control period, observation layout)."""
    from grail.tasks.tracking.config import TrainConfig, latest_checkpoint

    TrainConfig.load(run)  # a bad run fails before the simulator loads
    latest_checkpoint(checkpoint or run)
    from grail.export.onnx_export import export_policy

    card = export_policy(run, out, checkpoint, str(motions) if motions else None)
    typer.echo(f"{out}: policy.onnx + policy.json (iteration {card.iteration}, {card.observation.size} inputs, "
               f"latent {card.latent.dim}; ONNX vs torch max |diff| {card.torch_onnx_max_abs_diff:.1e})")


def sim2sim(
    policy: Path = typer.Argument(..., help="Exported policy directory (policy.onnx + policy.json)."),
    motion: List[Path] = typer.Option(..., "--motion", help="Motion directory (or its motion.npz), a folder of them or a library; repeatable."),
    episodes: int = typer.Option(1, "--episodes", min=1),
    video: Optional[Path] = typer.Option(None, "--video", help="MP4 of the first rollout (default: <policy>/sim2sim.mp4)."),
    no_video: bool = typer.Option(False, "--no-video"),
    compare: Optional[Path] = typer.Option(None, "--compare", help="An mjlab evaluation report.json to set beside these figures."),
) -> None:
    """Run the ONNX policy in plain MuJoCo (C) at the control rate with PD at the physics rate; same metrics as `grail eval tracker`."""
    from grail.export.card import load_card
    from grail.export.sim2sim import run_sim2sim
    from grail.tasks.tracking.cli import print_report
    from grail.tasks.tracking.library import library_motions

    load_card(policy)  # the policy first: it is the first argument
    paths = [d for m in motion for _, d in library_motions(m)]
    report = run_sim2sim(policy, paths, episodes, None if no_video else (video or policy / "sim2sim.mp4"))
    write_text_atomic(policy / "sim2sim.json", json.dumps(report, indent=1) + "\n")
    print_report(report, f"{policy} (plain MuJoCo)")
    t = report["timing"]
    typer.echo(f"policy inference {t['policy_inference_us_mean']:.0f} us mean; {t['env_steps_per_s']:.0f} control steps/s")
    if compare:
        print_difference(json.loads(compare.read_text()), report)
    typer.echo(f"{policy}: sim2sim.json" + ("" if no_video else f", {(video or policy / 'sim2sim.mp4').name}"))


def print_difference(mjlab: dict, mujoco_c: dict) -> None:
    """Overall figures of both simulators side by side, and their differences."""
    keys = ("success_rate", "fall_rate", "progress", "mpjpe_local_mm", "joint_pos_error_rad", "global_anchor_error_m")
    typer.echo(f"{'metric':<24}{'mjlab':>10}{'MuJoCo C':>10}{'diff':>10}")
    for k in keys:
        a, b = mjlab["overall"][k], mujoco_c["overall"][k]
        typer.echo(f"{k:<24}{a:>10.3f}{b:>10.3f}{b - a:>+10.3f}")
