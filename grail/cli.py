"""The `grail` command line: one subcommand per stage, plus run/status and asset tools.

Bad input ends with one line on stderr (`error: file: field: reason`) and exit code 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from grail.errors import GrailError

app = typer.Typer(help="GRAIL: 3D scenes and video priors to Unitree G1 loco-manipulation data.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


_mounted = False


def _mount_subapps() -> None:
    """Attach the sub-command groups once (main() may be called repeatedly in one process)."""
    global _mounted
    if _mounted:
        return
    _mounted = True
    from grail.assets.cli import app as assets_app
    from grail.character.cli import app as character_app
    from grail.library.cli import app as library_app

    app.add_typer(assets_app, name="assets", help="Make, import and inspect object and terrain assets.")
    app.add_typer(character_app, name="character", help="The G1-proportioned character: fit and inspect.")
    app.add_typer(library_app, name="library", help="Motion library: build, convert to peer formats, import CSV.")
    from grail.export.cli import export, sim2sim
    from grail.tasks.tracking.cli import eval_app, train_app

    app.add_typer(train_app, name="train", help="Train policies: the G1 motion tracker.")
    app.add_typer(eval_app, name="eval", help="Evaluate policies in the training simulator.")
    app.command("export")(export)
    app.command("sim2sim")(sim2sim)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # an error after it stays a single line
        disable=not console.is_terminal,
    )


def _compose_many(template: Path, seed: int, num: int, out: Path, width: Optional[int], height: Optional[int], force: bool) -> list:
    """Compose `num` seeds. A template error stops at once; a seed that fails (layout, settling,
    camera) is reported on one line and the others go on; the exit code is 1 if any failed."""
    from grail.scene.compose import ComposeOptions, compose_sequence
    from grail.scene.spec import load_template

    load_template(template)  # a bad template fails before any seed runs
    options = ComposeOptions(width=width, height=height)
    results, failures = [], []
    with _progress() as progress:
        task = progress.add_task(f"compose {template.stem}", total=num)
        for s in range(seed, seed + num):
            progress.update(task, description=f"compose {template.stem} seed {s}")
            try:
                seq, result = compose_sequence(template, s, out, options, force=force)
            except GrailError as err:
                if num == 1:
                    raise
                failures.append(s)
                progress.console.print(f"[red]error:[/red] seed {s}: {err.one_line()}", soft_wrap=True, highlight=False)
            else:
                verb = "skipped (done)" if result.skipped else f"done in {result.seconds:.2f} s"
                progress.console.print(f"{seq.path}: scene {verb}", soft_wrap=True, highlight=False)
                results.append((seq, result))
            progress.advance(task)
    if failures:
        raise GrailError(f"{len(failures)} of {num} seeds failed: {', '.join(map(str, failures))}", file=template)
    return results


@app.command()
def compose(
    template: Path = typer.Argument(..., help="Scene template YAML (see scenes/)."),
    seed: int = typer.Option(0, min=0, help="First seed; the same template and seed give identical files."),
    num: int = typer.Option(1, min=1, help="Number of consecutive seeds to compose."),
    out: Path = typer.Option(Path("out"), help="Output root; each sequence is <out>/<template>_s<seed>/."),
    width: Optional[int] = typer.Option(None, min=16, max=4096, help="Render width (default: the template's, 1280)."),
    height: Optional[int] = typer.Option(None, min=16, max=4096, help="Render height (default: the template's, 720)."),
    force: bool = typer.Option(False, "--force", help="Redo the stage even when it is done."),
) -> None:
    """Compose simulator-ready scenes: assets, settling, character, camera, renders."""
    _compose_many(template, seed, num, out, width, height, force)


@app.command()
def run(
    template: Path = typer.Argument(Path("scenes/pickup_table.yaml"), help="Scene template YAML."),
    seed: int = typer.Option(0, min=0, help="First seed."),
    num: int = typer.Option(1, min=1, help="Number of consecutive seeds."),
    out: Path = typer.Option(Path("out"), help="Output root."),
    width: Optional[int] = typer.Option(640, min=16, max=4096, help="Render width."),
    height: Optional[int] = typer.Option(360, min=16, max=4096, help="Render height."),
    human: str = typer.Option("mediapipe", help="Human keypoints for the reconstruction: mediapipe or oracle."),
    force: bool = typer.Option(False, "--force", help="Redo stages even when done."),
) -> None:
    """All data stages (compose, generate, reconstruct, retarget) for one or more seeds on this machine."""
    results = _compose_many(template, seed, num, out, width, height, force)
    generated, failed = _generate_many([seq.path for seq, _ in results], "procedural", None, None, force)
    reconstructed, failed_recon = _reconstruct_many(generated, human, True, force)
    _, failed_too = _retarget_many(reconstructed, "g1_29dof_rev_1_0", True, force)
    for seq, _ in results:
        _print_status(seq.path)
    _raise_failures(failed + failed_recon + failed_too, len(results))


def _each_sequence(dirs: list[Path], verb: str, stage: str, run, note=lambda seq: "") -> tuple[list[Path], list[str]]:
    """Run `run(dir, progress_callback) -> (Sequence, StageResult)` on each sequence with a progress
    bar; a failing sequence is reported on one line and the others go on (a single one raises).
    Returns the directories done and the names that failed."""
    done, failures = [], []
    with _progress() as progress:
        for d in dirs:
            task = progress.add_task(f"{verb} {d.name}", total=None)

            def tick(i: int, n: int, task=task) -> None:
                progress.update(task, completed=i, total=n)

            try:
                seq, result = run(d, tick)
            except GrailError as err:
                if len(dirs) == 1:
                    raise
                failures.append(d.name)
                progress.console.print(f"[red]error:[/red] {err.one_line()}", soft_wrap=True, highlight=False)
            else:
                status = "skipped (done)" if result.skipped else f"done in {result.seconds:.2f} s"
                progress.console.print(f"{seq.path}: {stage} {status}{note(seq)}", soft_wrap=True, highlight=False)
                done.append(d)
            progress.remove_task(task)
    return done, failures


def _raise_failures(failures: list[str], total: int) -> None:
    if failures:
        raise GrailError(f"{len(failures)} of {total} sequences failed: {', '.join(failures)}")


def _generate_many(dirs: list[Path], backend: str, width: Optional[int], height: Optional[int], force: bool
                   ) -> tuple[list[Path], list[str]]:
    """Generate the video of each sequence; a failing sequence is reported and the others go on."""
    from grail.video.generate import GenerateOptions, generate_sequence

    options = GenerateOptions(backend=backend, width=width, height=height)
    return _each_sequence(dirs, "generate", "video", lambda d, tick: generate_sequence(d, options, force, tick))


def _retarget_many(dirs: list[Path], robot: str, replay: bool, force: bool) -> tuple[list[Path], list[str]]:
    """Retarget each sequence to the robot; a failing sequence is reported and the others go on."""
    from grail.retarget.stage import RetargetOptions, retarget_sequence

    options = RetargetOptions(robot=robot, replay=replay)

    def note(seq) -> str:
        count = seq.record()["stages"]["robot"].get("info", {}).get("violations", 0)
        return f" ({count} quality violations: see robot/metrics.json)" if count else ""

    return _each_sequence(dirs, "retarget", "robot", lambda d, tick: retarget_sequence(d, options, force, tick), note)


def _reconstruct_many(dirs: list[Path], human: str, overlay: bool, force: bool) -> tuple[list[Path], list[str]]:
    """Reconstruct each sequence; a failing sequence is reported and the others go on."""
    from grail.recon.perception import PerceptionOptions
    from grail.recon.stage import ReconOptions, reconstruct_sequence

    options = ReconOptions(perception=PerceptionOptions(human=human), overlay=overlay)

    def note(seq) -> str:
        info = seq.record()["stages"]["recon"].get("info", {})
        reasons = info.get("reasons") or []
        oracle = " [oracle input]" if info.get("oracle") else ""
        return oracle + (f" (filter failed: {'; '.join(reasons)})" if reasons else "")

    return _each_sequence(dirs, "reconstruct", "recon", lambda d, tick: reconstruct_sequence(d, options, force, tick), note)


@app.command()
def generate(
    sequences: list[Path] = typer.Argument(..., help="Composed sequence directories (or an output root)."),
    backend: str = typer.Option("procedural", help="Video source: procedural (embedded, with ground truth)."),
    width: Optional[int] = typer.Option(None, min=16, max=4096, help="Video width (default: the scene camera's)."),
    height: Optional[int] = typer.Option(None, min=16, max=4096, help="Video height (default: the scene camera's)."),
    force: bool = typer.Option(False, "--force", help="Redo the stage even when it is done."),
) -> None:
    """Make the interaction video of composed scenes (video.mp4, video.json, gt.npz)."""
    dirs = _sequence_dirs(sequences)
    _raise_failures(_generate_many(dirs, backend, width, height, force)[1], len(dirs))


@app.command()
def reconstruct(
    sequences: list[Path] = typer.Argument(..., help="Sequence directories with a video (or an output root)."),
    human: str = typer.Option("mediapipe", help="Human keypoints: mediapipe, or oracle (projected ground truth; "
                                                "benchmarks and tests only)."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write recon/overlay.mp4."),
    force: bool = typer.Option(False, "--force", help="Redo the stage even when it is done."),
) -> None:
    """Reconstruct the metric 4D human-object motion from the video (hoi.npz, observations.npz, metrics.json)."""
    from grail.recon.perception import HUMAN_ESTIMATORS

    if human not in HUMAN_ESTIMATORS:
        raise GrailError(f"unknown human estimator {human!r}; known: {', '.join(HUMAN_ESTIMATORS)}", field="--human")
    dirs = _sequence_dirs(sequences)
    _raise_failures(_reconstruct_many(dirs, human, overlay, force)[1], len(dirs))


@app.command()
def retarget(
    sequences: list[Path] = typer.Argument(..., help="Sequence directories with a video (or reconstruction)."),
    robot: str = typer.Option("g1_29dof_rev_1_0", help="Robot model name."),
    replay: bool = typer.Option(True, "--replay/--no-replay", help="Write robot/replay.mp4 (video beside robot)."),
    force: bool = typer.Option(False, "--force", help="Redo the stage even when it is done."),
) -> None:
    """Retarget the character's motion to the Unitree G1 (motion.npz, meta.json, metrics.json)."""
    dirs = _sequence_dirs(sequences)
    _raise_failures(_retarget_many(dirs, robot, replay, force)[1], len(dirs))


def _sequence_dirs(paths: list[Path]) -> list[Path]:
    dirs: list[Path] = []
    for p in paths:
        if (p / "sequence.json").is_file():
            dirs.append(p)
        elif p.is_dir():
            dirs.extend(sorted(d.parent for d in p.glob("*/sequence.json")))
        else:
            raise GrailError("not a sequence directory or output root", file=p)
    if not dirs:
        raise GrailError("no sequences found", file=paths[0])
    return dirs


@app.command()
def status(paths: list[Path] = typer.Argument(..., help="Sequence directories or an output root.")) -> None:
    """Show each sequence's stages: status, seconds, errors."""
    for d in _sequence_dirs(paths):
        _print_status(d)


def _print_status(directory: Path) -> None:
    from grail.sequence import Sequence

    record = Sequence.open(directory).record()
    table = Table(title=f"{record['id']}  (grail {record['grail_version']})", show_lines=False)
    for col in ("stage", "status", "seconds", "finished", "error"):
        table.add_column(col)
    for name, entry in record["stages"].items():
        seconds = f"{entry['seconds']:.2f}" if entry.get("seconds") is not None else ""
        table.add_row(name, entry["status"], seconds, entry.get("finished") or "", entry.get("error") or "")
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input becomes one line and exit code 1; an unexpected error (a bug)
    becomes one line and exit code 2, with the traceback when GRAIL_DEBUG=1."""
    import os

    # typer vendors its own click (typer._click); its exceptions are not the click package's.
    from typer._click import exceptions as click_errors

    _mount_subapps()
    try:
        app(args=argv, prog_name="grail", standalone_mode=False)
    except GrailError as err:
        console.print(f"[red]error:[/red] {err.one_line()}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished stages are kept; rerun to resume", soft_wrap=True)
        sys.exit(130)
    except typer.Abort:
        sys.exit(1)
    except click_errors.UsageError as exc:  # one line too, naming the command and the option
        where = exc.ctx.command_path if exc.ctx is not None else "grail"
        console.print(f"[red]error:[/red] {where}: {' '.join(exc.format_message().split())} (see --help)", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("GRAIL_DEBUG") == "1":
            raise
        message = " ".join(str(exc).split()) or "no message"
        console.print(f"[red]internal error:[/red] {type(exc).__name__}: {message} (GRAIL_DEBUG=1 shows the traceback)", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
