"""The on-disk sequence store: ``<root>/<sequence_id>/`` with ``sequence.json`` and one directory per stage.

Guarantees (see "The sequence directory" in ARCHITECTURE.md):

* A stage function writes into a private temporary directory ``<seq>/.tmp-<stage>-<random>/``; it is
  renamed to ``<seq>/<stage>/`` only when the function returned normally, so a crash or a failure at
  any moment leaves either the previous stage directory or the complete new one, never half of one.
* ``sequence.json`` is replaced atomically (temp file in the same directory, fsync, ``os.replace``,
  fsync of the directory), so it always parses after a crash.
* A stage is skipped when it is recorded ``done``, its directory holds every recorded file with the
  recorded size, and its input hashes are unchanged; ``force=True`` reruns it.
* A process holding a sequence takes an exclusive ``flock`` on ``<seq>/.lock`` while it changes
  anything. Whoever next gets that lock knows leftovers are stale: ``open`` removes ``.tmp-*`` and
  ``.trash-*`` entries, restores a stage directory that a crash left renamed to trash, and marks a
  stage still recorded ``running`` as ``failed`` (interrupted).

Record layout (``sequence.json``, ``format`` 1)::

    {"format": 1, "id": ..., "spec_hash": ..., "grail_version": ..., "created": ISO-UTC,
     "versions": {"python": ..., "numpy": ..., "mujoco": ..., "torch": ...},
     "stages": {"scene": {"status": "done", "started": ISO-UTC, "finished": ISO-UTC,
                          "seconds": 1.2, "error": null, "input_hashes": {...},
                          "outputs": {"spec.yaml": 812, "meshes/box.obj": 20480}, "info": {...}}}}

In a stage entry, ``status``/``started``/``finished``/``seconds``/``error``/``input_hashes`` describe
the latest attempt, while ``outputs``/``info`` describe the directory currently committed on disk
(a failed forced rerun keeps the previous good directory and its ``outputs``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import grail
from grail.errors import GrailError

try:  # POSIX only; without it the store still works but cannot detect a concurrent process.
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT",
    "RECORD_NAME",
    "STAGES",
    "STATUSES",
    "Sequence",
    "StageResult",
    "hash_bytes",
    "hash_file",
    "hash_tree",
    "known_stages",
    "register_stage",
    "validate_sequence_id",
]

FORMAT = 1
RECORD_NAME = "sequence.json"
LOCK_NAME = ".lock"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
STATUSES = ("pending", "running", "done", "failed")
#: Data stages in pipeline order (ARCHITECTURE.md, "The sequence directory").
STAGES: tuple[str, ...] = ("scene", "video", "recon", "robot")
_extra_stages: list[str] = []

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_STAGE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CHUNK = 1 << 20
_MAX_ERROR = 1000
_VERSION_PACKAGES = ("numpy", "mujoco", "torch")


# ----------------------------------------------------------------------------- hashing


def hash_bytes(data: bytes) -> str:
    """sha256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | Path) -> str:
    """sha256 hex digest of a file's content, read in chunks."""
    path = Path(path)
    if not path.is_file():
        raise GrailError("not found or not a regular file", file=path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(path: str | Path) -> str:
    """sha256 hex digest of a directory: its files' relative paths and contents, in sorted order.

    Empty directories do not count; symlinked directories are not followed. A regular file hashes as
    a tree holding that one file under its own name.
    """
    path = Path(path)
    if path.is_file():
        files = [(path.name, path)]
    elif path.is_dir():
        files = sorted(
            (p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file()
        )
    else:
        raise GrailError("not found", file=path)
    digest = hashlib.sha256()
    for rel, p in files:
        digest.update(rel.encode("utf-8") + b"\0" + hash_file(p).encode("ascii") + b"\n")
    return digest.hexdigest()


# ----------------------------------------------------------------------------- names


def validate_sequence_id(seq_id: str) -> str:
    """Return ``seq_id`` if it is a safe directory name: ASCII letters, digits, ``._-``, 1-128
    characters, starting with a letter or digit. Otherwise raise GrailError."""
    if not isinstance(seq_id, str) or not _ID_RE.fullmatch(seq_id):
        raise GrailError(
            f"bad sequence id {seq_id!r}: use 1-128 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field="sequence_id",
        )
    return seq_id


def register_stage(name: str) -> str:
    """Allow an extra stage name (lower-case letters, digits, ``_``; starting with a letter)."""
    if not isinstance(name, str) or not _STAGE_RE.fullmatch(name):
        raise GrailError(f"bad stage name {name!r}: use [a-z][a-z0-9_]*", field="stage")
    if name not in STAGES and name not in _extra_stages:
        _extra_stages.append(name)
    return name


def known_stages() -> tuple[str, ...]:
    """The data stages plus every registered extra stage, in registration order."""
    return (*STAGES, *_extra_stages)


def _check_stage(name: str) -> str:
    if name not in STAGES and name not in _extra_stages:
        raise GrailError(
            f"unknown stage {name!r}; known: {', '.join(known_stages())} "
            "(grail.sequence.register_stage adds one)",
            field="stage",
        )
    return name


# ----------------------------------------------------------------------------- small helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in _VERSION_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, GrailError):
        text = exc.one_line()
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc).strip() else type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _list_and_sync(tree: Path) -> dict[str, int]:
    """Relative POSIX path -> size of every regular file under ``tree``; fsyncs files and dirs."""
    outputs: dict[str, int] = {}
    for dirpath, _dirnames, filenames in os.walk(tree):
        for fname in filenames:
            full = os.path.join(dirpath, fname)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            fd = os.open(full, os.O_RDONLY)
            try:
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            outputs[Path(full).relative_to(tree).as_posix()] = size
        _fsync_dir(Path(dirpath))
    return dict(sorted(outputs.items()))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _unique(parent: Path, prefix: str, make: Callable[[Path], Any]) -> Path:
    """Create ``parent/<prefix><random>`` with ``make`` (mode from the umask, unlike tempfile)."""
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            make(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name {prefix}* in {parent}")  # pragma: no cover


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    fds: list[int] = []
    tmp = _unique(
        path.parent,
        f"{TMP_PREFIX}{path.name}-",
        lambda p: fds.append(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)),
    )
    fd = fds[0]
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


# ----------------------------------------------------------------------------- record validation


def _validate_record(data: Any, file: Path, dir_name: str) -> dict[str, Any]:
    def bad(field: str, reason: str) -> GrailError:
        return GrailError(reason, file=file, field=field)

    if not isinstance(data, dict):
        raise bad("(top level)", f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise bad("format", f"unsupported format {data.get('format')!r} (this grail reads {FORMAT})")
    if data.get("id") != dir_name:
        raise bad("id", f"{data.get('id')!r} does not match the directory name {dir_name!r}")
    if not isinstance(data.get("spec_hash"), str):
        raise bad("spec_hash", "missing or not a string")
    stages = data.get("stages")
    if not isinstance(stages, dict):
        raise bad("stages", "missing or not an object")
    for name, entry in stages.items():
        where = f"stages.{name}"
        if not isinstance(name, str) or not _STAGE_RE.fullmatch(name):
            raise bad(where, "not a valid stage name")
        if not isinstance(entry, dict):
            raise bad(where, "not an object")
        if entry.get("status") not in STATUSES:
            raise bad(f"{where}.status", f"{entry.get('status')!r} is not one of {', '.join(STATUSES)}")
        hashes = entry.get("input_hashes", {})
        if not isinstance(hashes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()
        ):
            raise bad(f"{where}.input_hashes", "not an object of strings")
        outputs = entry.get("outputs", {})
        if not isinstance(outputs, dict):
            raise bad(f"{where}.outputs", "not an object")
        for rel, size in outputs.items():
            parts = Path(rel).parts
            if not rel or Path(rel).is_absolute() or ".." in parts:
                raise bad(f"{where}.outputs", f"{rel!r} is not a relative path inside the stage")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise bad(f"{where}.outputs.{rel}", f"size {size!r} is not a non-negative integer")
        for key in ("started", "finished", "error"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise bad(f"{where}.{key}", "not a string")
        seconds = entry.get("seconds")
        if seconds is not None and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)):
            raise bad(f"{where}.seconds", "not a number")
    return data


def _new_entry() -> dict[str, Any]:
    return {
        "status": "pending",
        "started": None,
        "finished": None,
        "seconds": None,
        "error": None,
        "input_hashes": {},
        "outputs": {},
        "info": {},
    }


# ----------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class StageResult:
    """What ``Sequence.run_stage`` did: ``seconds`` is this call's wall time (tiny when skipped)."""

    name: str
    skipped: bool
    seconds: float
    output_dir: Path


class Sequence:
    """One sequence directory. Cheap to construct; every query re-reads ``sequence.json``."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory)
        self.id = self.path.name

    def __repr__(self) -> str:
        return f"Sequence({str(self.path)!r})"

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(cls, root: str | Path, seq_id: str, spec_hash: str, exist_ok: bool = True) -> Sequence:
        """Create ``<root>/<seq_id>/`` with a fresh ``sequence.json``, or open it if it exists.

        An existing sequence gets its ``spec_hash`` updated when it differs (stages decide whether
        to rerun from their own input hashes). ``exist_ok=False`` refuses an existing record.
        """
        root = Path(root)
        validate_sequence_id(seq_id)
        if not isinstance(spec_hash, str) or not spec_hash:
            raise GrailError("spec hash must be a non-empty string", field="spec_hash")
        if root.exists() and not root.is_dir():
            raise GrailError("output root is not a directory", file=root)
        seq_dir = root / seq_id
        try:
            seq_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError as e:
            raise GrailError("exists and is not a directory", file=seq_dir) from e
        except NotADirectoryError as e:
            raise GrailError("a parent of the output root is not a directory", file=root) from e
        except OSError as e:
            raise GrailError(f"cannot create sequence directory: {e.strerror}", file=seq_dir) from e
        seq = cls(seq_dir)
        with seq._lock():
            if seq.record_path.exists():
                if not exist_ok:
                    raise GrailError("sequence already exists", file=seq.record_path)
                record = seq._read()
                if record["spec_hash"] != spec_hash:
                    record["spec_hash"] = spec_hash
                    seq._write(record)
            else:
                seq._write(
                    {
                        "format": FORMAT,
                        "id": seq_id,
                        "spec_hash": spec_hash,
                        "grail_version": grail.__version__,
                        "created": _now(),
                        "versions": _library_versions(),
                        "stages": {},
                    }
                )
            seq._repair()
        return seq

    @classmethod
    def open(cls, directory: str | Path) -> Sequence:
        """Open an existing sequence directory; clean up after a crashed process if none holds it."""
        directory = Path(directory)
        seq = cls(directory)
        if not directory.is_dir():
            raise GrailError("not a sequence directory", file=directory)
        if not seq.record_path.exists():
            raise GrailError(f"not a sequence directory: {RECORD_NAME} is missing", file=directory)
        seq._read()  # validates
        with contextlib.suppress(_Busy), seq._lock(quiet=True):
            seq._repair()
        return seq

    # -- queries -------------------------------------------------------------------------------

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_NAME

    def record(self) -> dict[str, Any]:
        """The parsed, validated ``sequence.json``."""
        return self._read()

    def stage_dir(self, name: str) -> Path:
        return self.path / _check_stage(name)

    @classmethod
    def open_after(cls, directory: str | Path, stage: str, command: str) -> Sequence:
        """Open a sequence whose `stage` must be done first; otherwise a one-line error that says
        which command makes it."""
        directory = Path(directory)
        if not (directory / RECORD_NAME).is_file():
            raise GrailError(f"not a sequence directory (no {RECORD_NAME})", file=directory)
        seq = cls.open(directory)
        if seq.status(stage) != "done":
            raise GrailError(f"the {stage} stage has not finished: run `{command}` first",
                             file=directory / RECORD_NAME, field=f"stages.{stage}")
        return seq

    def status(self, name: str) -> str:
        """The recorded status; ``done`` whose files are missing or truncated reads ``pending``."""
        _check_stage(name)
        entry = self._read()["stages"].get(name)
        if entry is None:
            return "pending"
        if entry["status"] == "done" and not self._outputs_intact(name, entry):
            return "pending"
        return entry["status"]

    def is_done(self, name: str, input_hashes: dict[str, str]) -> bool:
        """True when ``name`` is done, its files are intact and its input hashes equal these."""
        _check_stage(name)
        return self._is_done(self._read(), name, input_hashes)

    # -- running a stage -----------------------------------------------------------------------

    def run_stage(
        self,
        name: str,
        fn: Callable[[Path], dict[str, Any] | None],
        input_hashes: dict[str, str],
        force: bool = False,
    ) -> StageResult:
        """Run ``fn(tmp_dir)`` and commit ``tmp_dir`` as ``<seq>/<name>/``, or skip it when done.

        ``fn`` writes its files into the directory it is given and may return a JSON-serialisable
        dict, stored as the stage's ``info``. On any exception the temporary directory is removed,
        the previous stage directory (if any) stays, the failure is recorded with a one-line reason
        and the exception propagates. Raises GrailError when another process holds the sequence.
        """
        _check_stage(name)
        if not isinstance(input_hashes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in input_hashes.items()
        ):
            raise GrailError("input hashes must map strings to strings", field="input_hashes")
        t0 = time.monotonic()
        final = self.path / name
        with self._lock():
            record = self._read()
            if not force and self._is_done(record, name, input_hashes):
                return StageResult(name, True, time.monotonic() - t0, final)

            entry = record["stages"].setdefault(name, _new_entry())
            entry.update(
                status="running",
                started=_now(),
                finished=None,
                seconds=None,
                error=None,
                input_hashes=dict(input_hashes),
            )
            self._write(record)

            tmp = _unique(self.path, f"{TMP_PREFIX}{name}-", os.mkdir)
            trash: Path | None = None
            committed = False
            try:
                info = fn(tmp)
                if info is None:
                    info = {}
                if not isinstance(info, dict):
                    raise TypeError(f"stage function returned {type(info).__name__}, expected dict or None")
                json.dumps(info, allow_nan=False)  # must be storable as strict JSON
                outputs = _list_and_sync(tmp)
                if os.path.lexists(final):
                    trash = self.path / f"{TRASH_PREFIX}{name}-{secrets.token_hex(4)}"
                    os.rename(final, trash)  # a crash from here until the next rename: open() restores
                os.rename(tmp, final)
                committed = True
                _fsync_dir(self.path)
                seconds = time.monotonic() - t0
                entry.update(
                    status="done",
                    finished=_now(),
                    seconds=round(seconds, 3),
                    outputs=outputs,
                    info=info,
                )
                self._write(record)
            except BaseException as exc:
                if not committed:
                    _remove(tmp)
                    if trash is not None and not os.path.lexists(final):
                        # put the previous output back; if even that fails, open() restores it
                        with contextlib.suppress(OSError):
                            os.rename(trash, final)
                entry.update(
                    status="failed",
                    finished=_now(),
                    seconds=round(time.monotonic() - t0, 3),
                    error=_one_line(exc),
                )
                if committed:  # only the record write failed; the new directory is in place
                    entry.update(outputs=outputs, info=info)
                with contextlib.suppress(Exception):
                    self._write(record)
                raise
            finally:
                if trash is not None and committed:
                    _remove(trash)
        return StageResult(name, False, time.monotonic() - t0, final)

    # -- internals -----------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            text = self.record_path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise GrailError(f"{RECORD_NAME} is missing", file=self.path) from e
        except (OSError, UnicodeDecodeError) as e:
            raise GrailError(f"cannot read: {e}", file=self.record_path) from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GrailError(
                f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); fix or delete it",
                file=self.record_path,
            ) from e
        return _validate_record(data, self.record_path, self.path.name)

    def _write(self, record: dict[str, Any]) -> None:
        _write_json_atomic(self.record_path, record)

    def _outputs_intact(self, name: str, entry: dict[str, Any]) -> bool:
        stage_dir = self.path / name
        if not stage_dir.is_dir():
            return False
        for rel, size in entry.get("outputs", {}).items():
            p = stage_dir / rel
            try:
                if not p.is_file() or p.stat().st_size != size:
                    return False
            except OSError:
                return False
        return True

    def _is_done(self, record: dict[str, Any], name: str, input_hashes: dict[str, str]) -> bool:
        entry = record["stages"].get(name)
        return (
            entry is not None
            and entry["status"] == "done"
            and entry.get("input_hashes", {}) == dict(input_hashes)
            and self._outputs_intact(name, entry)
        )

    def _repair(self) -> None:
        """Undo a crashed process's leftovers. Call only while holding the lock."""
        trash_by_stage: dict[str, list[Path]] = {}
        for child in self.path.iterdir():
            if child.name.startswith(TRASH_PREFIX):
                stage = child.name[len(TRASH_PREFIX) :].rsplit("-", 1)[0]
                trash_by_stage.setdefault(stage, []).append(child)
            elif child.name.startswith(TMP_PREFIX):
                _remove(child)
        for stage, paths in trash_by_stage.items():
            final = self.path / stage
            # Killed between "old -> trash" and "new -> final": put the previous output back.
            if len(paths) == 1 and _STAGE_RE.fullmatch(stage) and not os.path.lexists(final):
                os.rename(paths[0], final)
                _fsync_dir(self.path)
                continue
            for p in paths:
                _remove(p)
        record = self._read()
        changed = False
        for entry in record["stages"].values():
            if entry["status"] == "running":
                entry.update(status="failed", error="interrupted: the process running this stage ended")
                changed = True
        if changed:
            self._write(record)

    @contextlib.contextmanager
    def _lock(self, quiet: bool = False) -> Iterator[None]:
        """Exclusive, non-blocking ``flock`` on ``<seq>/.lock``, released when the process dies."""
        if fcntl is None:  # pragma: no cover - non-POSIX
            yield
            return
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            if quiet:
                raise _Busy from e
            raise GrailError(f"cannot create lock file: {e.strerror}", file=self.path / LOCK_NAME) from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    if quiet:
                        raise _Busy from e
                    raise GrailError(
                        "sequence is in use by another process (or another Sequence object in this one)",
                        file=self.path,
                    ) from e
                # ENOLCK/EOPNOTSUPP: filesystem without locks; go on unprotected.
            yield
        finally:
            os.close(fd)


class _Busy(Exception):
    """The lock is held elsewhere (internal: ``open`` then skips its clean-up)."""
