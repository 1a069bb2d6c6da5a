"""Helpers for the generate-stage tests: copying and editing composed sequences, CLI runs, and
ground-truth checks shared by several tests."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Callable

import numpy as np
from grail.cli import main
from grail.scene.spec import ResolvedScene, dump_resolved, load_resolved
from grail.video.gt import GroundTruth


def copy_sequence(src: Path, root: Path) -> Path:
    """A private copy of a composed sequence (same directory name: sequence.json records its id)."""
    root.mkdir(parents=True, exist_ok=True)
    dst = root / src.name
    shutil.copytree(src, dst)
    return dst


def edit_spec(seq: Path, change: Callable[[ResolvedScene], ResolvedScene | None]) -> None:
    """Rewrite scene/spec.yaml of a copied sequence through the resolved-scene model.

    The store checks recorded output sizes before it calls a stage done, so the size recorded for
    spec.yaml is updated as well (as if compose had written this spec); the generate stage hashes
    the spec itself, so it sees a new input.
    """
    path = seq / "scene" / "spec.yaml"
    spec = load_resolved(path)
    spec = change(spec) or spec
    path.write_text(dump_resolved(spec))
    record_path = seq / "sequence.json"
    record = json.loads(record_path.read_text())
    record["stages"]["scene"]["outputs"]["spec.yaml"] = path.stat().st_size
    record_path.write_text(json.dumps(record, indent=2) + "\n")


def run_cli(args: list[str], capsys) -> tuple[int | None, str]:
    """(exit code, stderr) of grail.cli.main; a run that returns normally has code None."""
    capsys.readouterr()  # drop anything printed before
    try:
        main(args)
    except SystemExit as exc:
        return exc.code, capsys.readouterr().err
    return None, capsys.readouterr().err


def assert_clean_failure(code, err: str, seq: Path | None, *needles: str) -> str:
    """One non-empty stderr line containing every needle, exit code 1, and (for a sequence
    directory) no video/ stage and no temporary directory left behind. Returns the line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, (code, err)
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if seq is not None and seq.is_dir():
        assert not (seq / "video").exists(), "a failed generate left video/ behind"
        leftovers = sorted(p.name for p in seq.iterdir() if p.name.startswith((".tmp-", ".trash-")))
        assert leftovers == [], leftovers
    return lines[0]


def gt_differences(a: GroundTruth, b: GroundTruth) -> list[str]:
    """Names of the GroundTruth fields whose values are not identical (exact comparison)."""
    out = []
    for f in fields(GroundTruth):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, list) or isinstance(y, list):
            same = list(x) == list(y)
        else:
            x, y = np.asarray(x), np.asarray(y)
            same = x.shape == y.shape and x.dtype.kind == y.dtype.kind and np.array_equal(x, y)
        if not same:
            out.append(f.name)
    return out


def hands_holding(gt: GroundTruth, o: int) -> np.ndarray:
    """(T,) bool: some hand is in contact with object index o."""
    held = np.zeros(gt.frames, bool)
    for name in ("left_hand", "right_hand"):
        c = gt.contact_names.index(name)
        held |= gt.contact[:, c].astype(bool) & (gt.contact_object[:, c] == o)
    return held


def frames_list(mask: np.ndarray, limit: int = 10) -> str:
    idx = np.flatnonzero(mask)
    more = f" ... ({len(idx)} frames)" if len(idx) > limit else ""
    return ", ".join(map(str, idx[:limit].tolist())) + more

