"""Run CoACD on one mesh in a separate process (see ``mesh_import.convex_parts``).

Usage: ``python _coacd_worker.py IN.npz OUT.npz``. IN holds ``vertices`` (V,3 float64), ``faces``
(F,3 int32) and ``options`` (a JSON string of ``coacd.run_coacd`` keyword arguments). OUT gets
``count`` and, per part i, ``v<i>``/``f<i>``. Exit status 0 on success; anything else is a failure
whose reason is on stderr.

This file is run as a plain script (not ``-m grail...``) so the child imports only numpy and CoACD.
"""

import json
import sys

import numpy as np


def main(argv: list[str]) -> int:
    src, dst = argv[1], argv[2]
    with np.load(src) as data:
        vertices = np.ascontiguousarray(data["vertices"], dtype=np.float64)
        faces = np.ascontiguousarray(data["faces"], dtype=np.int32)
        options = json.loads(str(data["options"]))
    import coacd

    if hasattr(coacd, "set_log_level"):
        coacd.set_log_level("error")
    result = coacd.run_coacd(coacd.Mesh(vertices, faces), **options)
    out = {"count": np.array(len(result))}
    for i, (v, f) in enumerate(result):
        out[f"v{i}"] = np.asarray(v, dtype=np.float64)
        out[f"f{i}"] = np.asarray(f, dtype=np.int64)
    with open(dst, "wb") as handle:
        np.savez(handle, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
