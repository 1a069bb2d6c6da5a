"""Build a motion library: gather retargeted motions, keep those whose quality metrics pass the
thresholds, copy them under one directory with an index.

Layout of a library::

    <lib>/index.json                 version, robot, created, thresholds, motions [...], rejected [...]
    <lib>/motions/<id>/motion.npz    copied byte for byte from the robot stage
    <lib>/motions/<id>/meta.json
    <lib>/motions/<id>/metrics.json

A motion that fails a threshold, or whose files are missing or corrupt, is rejected with its
reasons (logged, and recorded in the index); that never stops the build. Bad requests (a source
that does not exist, an unknown threshold) fail at once. The library is built in a temporary
directory beside `out` and renamed into place only when complete, so a failed build leaves the
previous library as it was.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from grail.atomic import write_text_atomic
from grail.checks import read_json_object
from grail.errors import GrailError
from grail.robot.motion import RobotMotion
from grail.sequence import hash_file

log = logging.getLogger("grail.library")
log.addHandler(logging.NullHandler())  # shown only where the application configures logging; the CLI prints rejects itself

INDEX_VERSION = 1
INDEX_NAME = "index.json"
MOTIONS_DIR = "motions"
MOTION_FILES = ("motion.npz", "meta.json", "metrics.json")

#: Called after each candidate motion: (done, total, id, reasons); reasons is empty when accepted.
ProgressFn = Callable[[int, int, str, list[str]], None]


# ----------------------------------------------------------------------------- thresholds


@dataclass
class Thresholds:
    """Maxima for the flat metrics of ``robot/metrics.json`` ``summary``; None turns a check off.

    The defaults are the retarget stage's quality targets (``grail.retarget.metrics.Bounds``; a
    test keeps them equal), so a motion the stage reports without violations is accepted. A
    metric recorded as null (not applicable, e.g. no object) or absent passes.
    """

    hand_object_error_mean_mm: float | None = 20.0
    hand_object_error_max_mm: float | None = None
    foot_slide_max_cm_s: float | None = 1.0
    penetration_max_mm: float | None = 10.0
    joint_limit_violations: float | None = 0
    velocity_limit_violations: float | None = 0
    self_collisions: float | None = None
    ik_residual_mean_mm: float | None = None

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: Path | str | None = None) -> "Thresholds":
        """The defaults with `values` applied; an unknown key or a non-number is bad input."""
        return cls().updated(values, where)

    @classmethod
    def from_file(cls, path: Path) -> "Thresholds":
        """Read a YAML (or JSON, which YAML reads too) mapping of metric name to maximum."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise GrailError(f"cannot read ({' '.join(str(err).split())})", file=path) from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise GrailError("expected a mapping of metric name to maximum", file=path)
        return cls.from_mapping(data, path)

    def updated(self, values: dict[str, Any], where: Path | str | None = None) -> "Thresholds":
        """A copy with `values` (name -> number or None) applied."""
        current = asdict(self)
        for key, value in values.items():
            if key not in current:
                raise GrailError(f"unknown threshold (known: {', '.join(self.keys())})", file=where, field=str(key))
            current[key] = _threshold_value(value, where, str(key))
        return Thresholds(**current)

    def with_overrides(self, items: list[str] | None) -> "Thresholds":
        """Apply ``key=value`` strings from the command line (``none`` turns a check off)."""
        values: dict[str, Any] = {}
        for item in items or []:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise GrailError(f"expected key=value, got {item!r}", field="--max")
            text = text.strip()
            values[key.strip()] = None if text.lower() in ("none", "null", "off") else text
        return self.updated(values, "--max")

    def check(self, summary: dict[str, Any]) -> list[str]:
        """Reasons this summary fails (empty when it passes)."""
        reasons = []
        for key, limit in asdict(self).items():
            value = summary.get(key)
            if limit is None or value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                reasons.append(f"{key} is {value!r}, not a finite number")
            elif value > limit:
                reasons.append(f"{key} {_fmt(value)} > {_fmt(limit)}")
        return reasons

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def _threshold_value(value: Any, where: Path | str | None, key: str) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError("a boolean")
        number = float(value)
    except (TypeError, ValueError):
        raise GrailError(f"{value!r} is not a number", file=where, field=key) from None
    if not math.isfinite(number) or number < 0:
        raise GrailError(f"maximum must be a finite number >= 0 (got {value!r})", file=where, field=key)
    return number


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


# ----------------------------------------------------------------------------- the index


@dataclass
class LibraryIndex:
    """What ``index.json`` holds."""

    robot: str
    created: str
    thresholds: dict[str, float | None]
    motions: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    version: int = INDEX_VERSION
    path: Path | None = None  # the library directory (not written)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "robot": self.robot, "created": self.created,
                "thresholds": self.thresholds, "motions": self.motions, "rejected": self.rejected}

    @property
    def ids(self) -> list[str]:
        return [m["id"] for m in self.motions]

    @classmethod
    def load(cls, library: Path) -> "LibraryIndex":
        """Read ``<library>/index.json``."""
        path = Path(library) / INDEX_NAME
        data = read_json_object(path, ("version", "robot", "created", "thresholds", "motions", "rejected"))
        if data["version"] != INDEX_VERSION:
            raise GrailError(f"version {data['version']!r}, this GRAIL reads {INDEX_VERSION}", file=path, field="version")
        return cls(robot=data["robot"], created=data["created"], thresholds=data["thresholds"],
                   motions=list(data["motions"]), rejected=list(data["rejected"]), version=data["version"],
                   path=Path(library))


# ----------------------------------------------------------------------------- finding motions


@dataclass
class _Candidate:
    """One motion to consider: the directory with its three files, where it came from, its id."""

    robot_dir: Path
    origin: Path              # the sequence dir (or the robot dir when there is none): named in messages
    name: str                 # id before de-duplication
    sequence_dir: Path | None = None
    known: dict[str, Any] = field(default_factory=dict)  # task/source from a library index


def _is_robot_dir(d: Path) -> bool:
    return any((d / f).exists() for f in MOTION_FILES)


def _is_sequence_dir(d: Path) -> bool:
    return (d / "sequence.json").exists() or (d / "robot").is_dir() or (d / "scene" / "spec.yaml").exists()


def _is_library(d: Path) -> bool:
    return (d / INDEX_NAME).is_file() and (d / MOTIONS_DIR).is_dir()


def _candidates_in(d: Path) -> list[_Candidate]:
    """The motions a source directory names (see build_library for the kinds of source)."""
    if _is_library(d):
        known = {}
        try:
            known = {m["id"]: m for m in LibraryIndex.load(d).motions}
        except GrailError as err:
            log.warning("%s", err.one_line())
        return [_Candidate(m, m, m.name, known={k: known.get(m.name, {}).get(k) for k in ("task", "source")})
                for m in sorted(p for p in (d / MOTIONS_DIR).iterdir() if p.is_dir())]
    if _is_sequence_dir(d):
        return [_Candidate(d / "robot", d, d.name, sequence_dir=d)]
    if _is_robot_dir(d):
        parent = d.parent
        if d.name == "robot" and _is_sequence_dir(parent):
            return [_Candidate(d, parent, parent.name, sequence_dir=parent)]
        return [_Candidate(d, d, d.name)]
    found = []
    for child in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if _is_sequence_dir(child):
            found.append(_Candidate(child / "robot", child, child.name, sequence_dir=child))
        elif _is_robot_dir(child):
            found.append(_Candidate(child, child, child.name))
    return found


def discover(sources: list[Path]) -> list[_Candidate]:
    """Candidates from all sources, in order, each directory once. A source that does not exist
    or holds no motion at all is a mistake in the request and fails at once."""
    out: list[_Candidate] = []
    seen: set[Path] = set()
    for source in sources:
        source = Path(source)
        if not source.is_dir():
            raise GrailError("not found or not a directory (expected a sequence, output root, robot or library directory)",
                             file=source)
        found = _candidates_in(source)
        if not found:
            raise GrailError("holds no sequence, robot or library directory", file=source)
        for c in found:
            key = c.robot_dir.resolve()
            if key not in seen:
                seen.add(key)
                out.append(c)
    return out


def _unique_ids(candidates: list[_Candidate]) -> list[str]:
    """Safe directory names, made unique by a numeric suffix in source order (so stable)."""
    ids: list[str] = []
    used: set[str] = set()
    for c in candidates:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", c.name).lstrip("._-") or "motion"
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        ids.append(name)
    return ids


# ----------------------------------------------------------------------------- judging one motion


def _task_from_spec(sequence_dir: Path | None) -> str | None:
    if sequence_dir is None:
        return None
    path = sequence_dir / "scene" / "spec.yaml"
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    task = spec.get("task") if isinstance(spec, dict) else None
    return str(task) if task is not None else None


def _read_summary(path: Path) -> dict[str, Any]:
    data = read_json_object(path, ("summary",))
    if not isinstance(data["summary"], dict):
        raise GrailError("expected an object of metric values", file=path, field="summary")
    return data["summary"]


def _judge(c: _Candidate, thresholds: Thresholds) -> tuple[RobotMotion | None, dict[str, Any], list[str]]:
    """Load the motion and its metrics; the reasons it is rejected (empty when it passes)."""
    missing = [f for f in MOTION_FILES if not (c.robot_dir / f).is_file()]
    if missing:
        return None, {}, [f"missing {', '.join(str(c.robot_dir / f) for f in missing)}"]
    reasons: list[str] = []
    motion = None
    try:
        motion = RobotMotion.load(c.robot_dir)
    except GrailError as err:
        reasons.append(err.one_line())
    except Exception as err:  # a corrupt npz raises zipfile/zlib errors that are not GrailError
        reasons.append(f"{c.robot_dir / 'motion.npz'}: cannot read ({type(err).__name__}: {' '.join(str(err).split())})")
    summary: dict[str, Any] = {}
    try:
        summary = _read_summary(c.robot_dir / "metrics.json")
    except GrailError as err:
        reasons.append(err.one_line())
    reasons += thresholds.check(summary)
    if motion is not None and not motion.robot:
        reasons.append(f"{c.robot_dir / 'meta.json'}: robot: missing")
    return motion, summary, reasons


# ----------------------------------------------------------------------------- building


def build_library(sources: list[Path], out: Path, thresholds: Thresholds | None = None,
                  progress: ProgressFn | None = None) -> LibraryIndex:
    """Build the library at `out` from `sources` and return its index.

    A source may be a sequence directory (its ``robot/`` is used), an output root holding
    sequence directories, a robot directory (``motion.npz`` + ``meta.json`` + ``metrics.json``), or
    another library (its ``motions/*``). Ids are the sequence ids (robot or library motion
    directory names otherwise), with ``-2``, ``-3``... added in source order where they collide.
    Raises GrailError when no motion passes (the previous library is then kept) or when `out`
    exists and is not a library (it is never deleted).
    """
    thresholds = thresholds or Thresholds()
    out = Path(out)
    _check_replaceable(out)
    candidates = discover(sources)
    ids = _unique_ids(candidates)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        index = LibraryIndex(robot="", created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             thresholds=thresholds.to_dict())
        for done, (c, motion_id) in enumerate(zip(candidates, ids), start=1):
            reasons = _add(index, c, motion_id, thresholds, tmp)
            if reasons:
                log.warning("rejected %s: %s", c.origin, "; ".join(reasons))
            if progress is not None:
                progress(done, len(candidates), motion_id, reasons)
        if not index.motions:
            raise GrailError(f"no motion passed ({len(index.rejected)} rejected); the library was not written",
                             file=out)
        write_text_atomic(tmp / INDEX_NAME, json.dumps(index.to_dict(), indent=2) + "\n")
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index.path = out
    return index


def _add(index: LibraryIndex, c: _Candidate, motion_id: str, thresholds: Thresholds, tmp: Path) -> list[str]:
    """Judge one candidate; copy it into `tmp` and add its record, or record its rejection."""
    motion, summary, reasons = _judge(c, thresholds)
    if motion is not None and not reasons and index.robot and motion.robot != index.robot:
        reasons.append(f"robot {motion.robot!r} differs from the library's {index.robot!r}")
    if reasons or motion is None:
        index.rejected.append({"id": motion_id, "source": str(c.origin), "reasons": reasons})
        return reasons
    index.robot = index.robot or motion.robot
    target = tmp / MOTIONS_DIR / motion_id
    target.mkdir(parents=True)
    files = {}
    for name in MOTION_FILES:
        shutil.copyfile(c.robot_dir / name, target / name)
        files[name] = {"path": f"{MOTIONS_DIR}/{motion_id}/{name}", "bytes": (target / name).stat().st_size,
                       "sha256": hash_file(target / name)}
    task = motion.extra_meta.get("task") or c.known.get("task") or _task_from_spec(c.sequence_dir)
    source = motion.source or c.known.get("source") or str(c.origin)
    index.motions.append({"id": motion_id, "source": source, "task": task, "frames": motion.frames,
                          "fps": motion.fps, "seconds": motion.frames / motion.fps, "metrics": summary,
                          "files": files, "origin": str(c.robot_dir)})
    return []


def _check_replaceable(out: Path) -> None:
    """`out` may be absent, empty, or a library; anything else is the user's data, left alone."""
    if not out.exists():
        return
    if not out.is_dir():
        raise GrailError("exists and is not a directory; not replacing it", file=out)
    if not _is_library(out) and any(out.iterdir()):
        raise GrailError("exists and is not a motion library (no index.json); not replacing it", file=out)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished library into place; an old one is moved aside first and removed after.
    Should the second rename fail, the old library is put back."""
    if not out.exists():
        os.rename(tmp, out)
        return
    trash = out.with_name(f".{out.name}.trash-{secrets.token_hex(4)}")
    os.rename(out, trash)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(trash, out)
        raise
    shutil.rmtree(trash, ignore_errors=True)
