"""Helper process for tests/test_sequence.py: runs stages slowly so the test can SIGKILL it mid-way.

    python tests/_stage_worker.py ROOT SEQ_ID [--force] [--many N] [--kill-at-replace K]

Default mode runs stages ``scene`` then ``video``; each writes SMALL_FILES small files with short
sleeps and one BIG_FILE written in chunks. ``--many N`` instead runs N tiny registered stages so
most of the time goes into ``sequence.json`` writes. Progress markers go to stdout (flushed) so the
test can kill at chosen moments; the last line is a JSON object ``{"skipped": {stage: bool}}``.
``--kill-at-replace K`` makes the process SIGKILL itself at its K-th ``os.replace`` call, i.e. with
a new ``sequence.json`` fully written to its temporary file but not yet renamed over the old one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from grail.sequence import Sequence, hash_bytes, hash_tree, register_stage

SMALL_FILES = 50
SMALL_SIZE = 1000
BIG_FILE = "big.bin"
BIG_CHUNK = 64 * 1024
BIG_CHUNKS = 16
SLEEP = 0.002
STAGES = ("scene", "video")


def expected_files(stage: str) -> dict[str, int]:
    """Relative path -> size of everything one slow stage writes."""
    files = {f"part/f{i:03d}.txt": SMALL_SIZE for i in range(SMALL_FILES)}
    files[BIG_FILE] = BIG_CHUNK * BIG_CHUNKS
    return files


def many_stage_names(n: int) -> list[str]:
    return [f"t{i:03d}" for i in range(n)]


def _say(msg: str) -> None:
    print(msg, flush=True)


def _slow_stage(stage: str):
    def fn(out: Path) -> dict:
        (out / "part").mkdir()
        for i in range(SMALL_FILES):
            (out / "part" / f"f{i:03d}.txt").write_bytes(bytes([65 + i % 26]) * SMALL_SIZE)
            if i == SMALL_FILES // 2:
                _say(f"{stage}:half")
            time.sleep(SLEEP)
        with open(out / BIG_FILE, "wb") as f:
            for i in range(BIG_CHUNKS):
                f.write(bytes([i % 256]) * BIG_CHUNK)
                f.flush()
                time.sleep(SLEEP)
        _say(f"{stage}:written")
        return {"stage": stage}

    return fn


def _die_at_replace(k: int) -> None:
    real_replace = os.replace
    calls = [0]

    def replace(src, dst, **kw):
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, **kw)

    os.replace = replace  # this helper process only


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("seq_id")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--many", type=int, default=0)
    ap.add_argument("--kill-at-replace", type=int, default=0)
    args = ap.parse_args(argv)
    if args.kill_at_replace:
        _die_at_replace(args.kill_at_replace)

    _say("start")
    seq = Sequence.create(Path(args.root), args.seq_id, spec_hash=hash_bytes(b"spec"))
    _say("created")
    skipped: dict[str, bool] = {}
    if args.many:
        for name in many_stage_names(args.many):
            register_stage(name)
            res = seq.run_stage(
                name,
                lambda out, n=name: (out / "x.txt").write_text(n) and None,
                {"spec": hash_bytes(b"spec")},
                force=args.force,
            )
            skipped[name] = res.skipped
    else:
        inputs = {"spec": hash_bytes(b"spec")}
        for stage in STAGES:
            _say(f"{stage}:begin")
            res = seq.run_stage(stage, _slow_stage(stage), inputs, force=args.force)
            skipped[stage] = res.skipped
            _say(f"{stage}:end")
            inputs = {stage: hash_tree(seq.stage_dir(stage))}
    print(json.dumps({"skipped": skipped}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
