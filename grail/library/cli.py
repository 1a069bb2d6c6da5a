"""``grail library ...``: build a motion library, convert motions to peer formats, import CSVs.

Bad input raises GrailError; ``grail.cli.main`` prints it on one line and exits 1.
"""

from __future__ import annotations

import os
import tempfile
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from grail.errors import GrailError
from grail.robot.g1 import G1
from grail.robot.motion import RobotMotion

app = typer.Typer(help="The motion library: build a filtered, indexed library; convert and import motions.",
                  no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


class Format(str, Enum):
    beyondmimic_npz = "beyondmimic-npz"
    csv = "csv"
    gmr = "gmr"
    grail_release = "grail-release"


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)


@app.command()
def build(
    sources: List[Path] = typer.Argument(..., help="Sequence dirs, output roots holding them, robot dirs or libraries."),
    out: Path = typer.Option(..., "--out", help="Library directory (replaced only when the new one is complete)."),
    thresholds: Optional[Path] = typer.Option(None, "--thresholds", help="YAML/JSON file: metric name -> maximum."),
    maxima: Optional[List[str]] = typer.Option(None, "--max", help="Override one maximum: key=value (value 'none' turns the check off)."),
) -> None:
    """Keep the motions whose metrics pass the thresholds; copy them under one indexed directory."""
    from grail.library.build import Thresholds, build_library

    limits = (Thresholds.from_file(thresholds) if thresholds else Thresholds()).with_overrides(maxima)
    with _progress() as progress:
        task = progress.add_task("library", total=None)

        def report(done: int, total: int, motion_id: str, reasons: list[str]) -> None:
            progress.update(task, total=total, completed=done, description=f"library {motion_id}")

        index = build_library(sources, out, limits, progress=report)
    typer.echo(f"{out}: {len(index.motions)} accepted, {len(index.rejected)} rejected")
    for entry in index.rejected:
        typer.echo(f"rejected {entry['source']}: {'; '.join(entry['reasons'])}")


def _load_motion(src: Path) -> RobotMotion:
    """A motion dir (motion.npz + meta.json) or a sequence dir (its robot/)."""
    for d in (src, src / "robot"):
        if (d / "motion.npz").is_file():
            try:
                return RobotMotion.load(d)
            except GrailError:
                raise
            except Exception as err:  # corrupt zip members are not GrailError
                raise GrailError(f"cannot read ({type(err).__name__}: {err})", file=d / "motion.npz") from None
    raise GrailError("no motion.npz here or in robot/ (expected a motion or sequence directory)", file=src)


@app.command()
def convert(
    src: Path = typer.Argument(..., help="A motion directory (motion.npz + meta.json) or a sequence directory."),
    to: Format = typer.Option(..., "--to", help="Target format."),
    out: Path = typer.Option(..., "--out", help="Output file."),
) -> None:
    """Write a GRAIL motion in a peer format (BeyondMimic npz or CSV, GMR pickle, GRAIL-release pickle)."""
    from grail.library.formats import write_motion

    motion = _load_motion(src)
    write_motion(motion, to.value, out)
    typer.echo(f"{out}: {to.value}, {motion.frames} frames at {motion.fps:g} fps")


@app.command("import-csv")
def import_csv(
    csv: Path = typer.Argument(..., help="BeyondMimic CSV: root xyz, root quaternion xyzw, 29 joints; no header."),
    fps: float = typer.Option(..., "--fps", help="Frame rate of the CSV (not stored in it)."),
    out: Path = typer.Option(..., "--out", help="Directory to write motion.npz + meta.json into."),
    robot: str = typer.Option(G1.name, "--robot", help="Robot model the joints belong to."),
    task: Optional[str] = typer.Option(None, "--task", help="Task name to record in meta.json."),
) -> None:
    """Read a BeyondMimic CSV, rebuild body poses by forward kinematics, write a GRAIL motion."""
    from grail.library.formats import read_beyondmimic_csv

    motion = read_beyondmimic_csv(csv, fps, robot)
    if task:
        motion.extra_meta["task"] = task
    if out.exists() and not out.is_dir():
        raise GrailError("exists and is not a directory", file=out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".import-") as tmp:  # both files, or neither
        motion.save(Path(tmp))
        for name in ("motion.npz", "meta.json"):
            os.replace(Path(tmp) / name, out / name)
    typer.echo(f"{out}: {motion.frames} frames at {motion.fps:g} fps, {len(motion.body_names)} bodies")
