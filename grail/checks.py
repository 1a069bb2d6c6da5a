"""Input checks shared by the files stages read: a JSON object with its required keys, and named
arrays of the right shapes with finite values. Each failure is one GrailError naming file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from grail.errors import GrailError


def read_json_object(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object stored at `path`, with every key in `required`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise GrailError(f"cannot read ({err})", file=path) from None
    if not isinstance(data, dict):
        raise GrailError("expected a JSON object", file=path)
    for key in required:
        if key not in data:
            raise GrailError("missing key", file=path, field=key)
    return data


def check_arrays(arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], where: Path | str | None) -> None:
    """Each named array has its expected shape, and a float array holds no NaN or infinity."""
    for name, shape in shapes.items():
        value = arrays[name]
        if value.shape != shape:
            raise GrailError(f"shape {value.shape}, expected {shape}", file=where, field=name)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise GrailError("contains NaN or infinite values", file=where, field=name)
