"""``grail train tracker`` and ``grail eval tracker``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from grail.errors import GrailError

train_app = typer.Typer(help="Train policies.", no_args_is_help=True, add_completion=False)
eval_app = typer.Typer(help="Evaluate policies.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False, disable=not console.is_terminal)


@train_app.command("tracker")
def train_tracker(
    motions: Path = typer.Option(..., "--motions", help="Motion library (grail library build), a motion directory or a folder of them."),
    out: Path = typer.Option(..., "--out", help="Run directory: run.json, checkpoints, TensorBoard logs, curves."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    num_envs: int = typer.Option(64, "--num-envs", min=1, help="Parallel environments."),
    iterations: int = typer.Option(100, "--iterations", min=1, help="PPO iterations (24 steps per environment each)."),
    seed: int = typer.Option(0, "--seed", min=0),
    save_interval: int = typer.Option(50, "--save-interval", min=1, help="Iterations between checkpoints."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Checkpoint, or a run directory (its newest checkpoint), to go on from."),
) -> None:
    """Train the general motion tracker (PPO, mjlab) on a motion library."""
    from grail.tasks.tracking.config import TrainConfig, latest_checkpoint, resolve_device
    from grail.tasks.tracking.library import library_motions

    resolve_device(device)  # bad requests fail before the simulator loads
    library_motions(motions)
    if resume is not None:
        latest_checkpoint(resume)
    from grail.tasks.tracking.curves import plot_curves
    from grail.tasks.tracking.train import train

    config = TrainConfig(motions=str(motions), out=str(out), device=device, num_envs=num_envs, iterations=iterations,
                         seed=seed, save_interval=save_interval)
    if resume is not None:
        previous = TrainConfig.load(resume if resume.is_dir() else resume.parent)
        config.policy, config.ppo, config.randomisation = previous.policy, previous.ppo, previous.randomisation
    with _progress() as progress:
        task = progress.add_task("compiling the simulator", total=iterations)

        def step(it: int, last: int, reward: float | None) -> None:
            text = f"iteration {it}/{last}" + (f"  reward {reward:.2f}" if reward is not None else "")
            progress.update(task, advance=1, description=text)

        checkpoint = train(config, resume, on_iteration=step)
    curves = plot_curves(out)
    typer.echo(f"{out}: last checkpoint {checkpoint.name}; curves {curves.name}; TensorBoard logs in {out}")


@eval_app.command("tracker")
def eval_tracker(
    run: Path = typer.Argument(..., help="Training run directory."),
    motions: Optional[Path] = typer.Option(None, "--motions", help="Motions to evaluate on (default: the run's)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint (default: the newest)."),
    episodes: int = typer.Option(1, "--episodes", min=1, help="Rollouts per motion."),
    device: str = typer.Option("cpu", "--device"),
    out: Optional[Path] = typer.Option(None, "--out", help="Report directory (default: <run>/eval)."),
    video: bool = typer.Option(True, "--video/--no-video", help="Render rollouts.mp4 (up to four rollouts)."),
) -> None:
    """Success rate, local-body MPJPE, joint error and progress per motion; report.json and a video."""
    from grail.tasks.tracking.config import TrainConfig

    config = TrainConfig.load(run)  # a bad run fails before the simulator loads
    from grail.tasks.tracking.evaluate import evaluate, save_report
    from grail.tasks.tracking.video import render_rollouts

    source = str(motions) if motions else config.motions
    with _progress() as progress:
        task = progress.add_task("rollouts", total=None)
        report, trajectories = evaluate(run, source, checkpoint, episodes, device,
                                        progress=lambda: progress.update(task, advance=1))
    out = out or Path(run) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    save_report(report, out / "report.json")
    print_report(report, f"{run} ({Path(report['checkpoint']).name}, {report['simulator']})")
    if video:
        labels = [f"{t.motion}: {'ok' if m['success'] else 'fell' if m['fell'] else 'off'}" for t, m in
                  zip(trajectories, report["per_rollout"])]
        render_rollouts(out / "rollouts.mp4", trajectories, labels, fps=50.0)
    typer.echo(f"{out}: report.json" + (", rollouts.mp4" if video else ""))


def print_report(report: dict, title: str) -> None:
    """The evaluation table (also used for sim2sim, which reports the same metrics)."""
    table = Table(title=title)
    for col in ("motion", "rollouts", "success", "fell", "progress", "MPJPE mm", "joint err rad", "anchor err m"):
        table.add_column(col, justify="right" if col != "motion" else "left")
    rows = list(report["motions"].items())
    if not rows:
        raise GrailError("no rollouts to report")
    for name, r in rows + [("overall", report["overall"])]:
        table.add_row(name, str(r["rollouts"]), f"{r['success_rate']:.2f}", f"{r['fall_rate']:.2f}",
                      f"{r['progress']:.2f}", f"{r['mpjpe_local_mm']:.1f}", f"{r['joint_pos_error_rad']:.3f}",
                      f"{r['global_anchor_error_m']:.3f}")
    Console().print(table)
