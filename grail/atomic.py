"""Write a file so that readers see the old content or the new, never half of it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes, fsync: bool = False) -> None:
    """Write to a temporary file beside `path`, then rename it into place. With `fsync`, the
    data and the directory entry also survive a power loss."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomic(path: str | Path, text: str, fsync: bool = False) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)
