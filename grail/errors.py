"""One error type for bad input, so every stage reports `file: field: reason` on one line."""

from __future__ import annotations

from pathlib import Path


class GrailError(Exception):
    """Bad input or an unsatisfiable request; the CLI prints it on one line and exits non-zero."""

    def __init__(self, message: str, *, file: str | Path | None = None, field: str | None = None):
        self.file = str(file) if file is not None else None
        self.field = field
        self.reason = " ".join(str(message).split())
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [p for p in (self.file, self.field) if p]
        return ": ".join([*parts, self.reason])
