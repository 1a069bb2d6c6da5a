"""`grail character`: fit the G1-proportioned character and show how close it is."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command()
def fit(refit: bool = typer.Option(False, "--refit", help="Fit again even when a cached fit exists.")) -> None:
    """Fit Anny's phenotype to the Unitree G1's segment lengths (cached once per machine) and
    print the per-segment residuals."""
    from grail.character import G1_SEGMENTS, build_character, fit_g1_character

    console = Console()
    start = time.perf_counter()
    with console.status("fitting the character to the G1 (builds Anny's cache the first time)"):
        shape = fit_g1_character(refit=refit)
        character = build_character(shape)  # cached on disk: later processes skip Anny
    table = Table(title=f"character fitted to the G1: {shape.height_m:.3f} m tall")
    table.add_column("segment")
    table.add_column("G1 (m)", justify="right")
    table.add_column("|error| (mm)", justify="right")
    for name, err in sorted(shape.fit_residuals_m.items()):
        target = G1_SEGMENTS.get(name)
        table.add_row(name, f"{target:.4f}" if target is not None else "", f"{err * 1000:.1f}")
    console.print(table)
    console.print(
        f"character mesh: {len(character.vertices)} vertices, {len(character.faces)} faces, "
        f"{len(character.bone_names)} bones ({time.perf_counter() - start:.1f} s)"
    )
