"""Anny body model: fit a child-like character to the Unitree G1 proportions and build its mesh.

Anny (PyPI ``anny``) works in a Blender-like frame: Z up, the character faces -Y, its left is +X,
the root bone sits at the hips. We rotate +90 deg about Z (so it faces +X, left is +Y) and shift it
so the feet stand on z = 0 with the root above the origin.

The Anny model is built once per process (module cache); Anny caches its model data on disk once
per machine in ``ANNY_CACHE_DIR`` (default ``~/.cache/anny``). The fitted shape is cached in
``GRAIL_CACHE_DIR`` (default ``~/.cache/grail``) keyed by the anny version.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grail.character.g1_proportions import FIT_WEIGHTS, G1_SEGMENTS
from grail.atomic import write_text_atomic
from grail.errors import GrailError

#: Anny's local changes used by the fit (signed, -1..1: "decr" .. "incr").
FIT_LOCAL_CHANGES = (
    "measure-upperarm-length-incr",
    "measure-lowerarm-length-incr",
    "measure-upperleg-height-incr",
    "measure-lowerleg-height-incr",
    "measure-shoulder-dist-incr",
    "hip-scale-horiz-incr",
    "measure-neck-height-incr",
    "torso-scale-vert-incr",
)
#: Anny phenotypes used by the fit (0..1); the rest stay at Anny's neutral 0.5.
FIT_PHENOTYPES = ("age", "height", "proportions")
FIXED_PHENOTYPES = {"gender": 0.5, "muscle": 0.5, "weight": 0.55}

# Anny frame -> GRAIL world: rotate +90 deg about Z (Anny's -Y forward becomes +X).
R_ANNY_TO_WORLD = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])

# Joint name -> Anny bone whose head is that joint.
ANNY_JOINT_BONES = {
    "pelvis": "root",
    "left_hip": "upperleg01.L",
    "right_hip": "upperleg01.R",
    "left_knee": "lowerleg01.L",
    "right_knee": "lowerleg01.R",
    "left_ankle": "foot.L",
    "right_ankle": "foot.R",
    "left_shoulder": "upperarm01.L",
    "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L",
    "right_elbow": "lowerarm01.R",
    "left_wrist": "wrist.L",
    "right_wrist": "wrist.R",
    "neck": "neck01",
    "head": "head",
}


@dataclass
class CharacterShape:
    model: str  # "anny" or "smplx"
    params: dict[str, float]  # phenotype / betas (YAML-serialisable)
    height_m: float
    fit_residuals_m: dict[str, float] = field(default_factory=dict)  # per segment, |length error|

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "params": {k: float(v) for k, v in self.params.items()},
            "height_m": float(self.height_m),
            "fit_residuals_m": {k: float(v) for k, v in self.fit_residuals_m.items()},
        }

    @classmethod
    def from_dict(cls, d: dict, *, file: str | Path | None = None) -> "CharacterShape":
        try:
            model = str(d["model"])
            params = {str(k): float(v) for k, v in dict(d.get("params") or {}).items()}
            height = float(d.get("height_m", 0.0))
            res = {str(k): float(v) for k, v in dict(d.get("fit_residuals_m") or {}).items()}
        except (KeyError, TypeError, ValueError) as e:
            raise GrailError(f"malformed character shape: {e}", file=file, field="character") from e
        if model not in ("anny", "smplx"):
            raise GrailError(f"unknown character model {model!r} (anny|smplx)", file=file,
                             field="character.model")
        return cls(model=model, params=params, height_m=height, fit_residuals_m=res)


# Result of fit_g1_character() with anny 0.6.2 (used when fitting is not wanted, e.g. fast tests
# of other stages). Regenerate with `python -m grail.character.anny_body`.
DEFAULT_G1_SHAPE = CharacterShape(
    model="anny",
    params={
        "age": 0.26427, "height": 0.51084, "proportions": 0.93979,
        "local:measure-upperarm-length-incr": -0.20811,
        "local:measure-lowerarm-length-incr": 0.10514,
        "local:measure-upperleg-height-incr": 0.0167,
        "local:measure-lowerleg-height-incr": 0.09139,
        "local:measure-shoulder-dist-incr": 0.96593,
        "local:hip-scale-horiz-incr": 0.98738,
        "local:measure-neck-height-incr": -0.88103,
        "local:torso-scale-vert-incr": 0.73188,
    },
    height_m=1.3236,
    fit_residuals_m={
        "height": 0.0036, "pelvis_width": 0.0235, "thigh": 0.0014, "shank": 0.0013,
        "ankle_height": 0.0027, "shoulder_width": 0.0039, "upper_arm": 0.0002,
        "forearm": 0.0001, "hip_height": 0.0002, "shoulder_height": 0.0131,
    },
)

_lock = threading.Lock()
_ANNY = None


def anny_version() -> str:
    """Anny's installed version, read from package metadata (importing anny costs seconds)."""
    from importlib import metadata

    try:
        return metadata.version("anny")
    except metadata.PackageNotFoundError:  # pragma: no cover - reported by get_anny_model
        return "unknown"


def get_anny_model():
    """The process-wide Anny model (local changes enabled, float64, CPU)."""
    global _ANNY
    with _lock:
        if _ANNY is None:
            try:
                import anny
                import torch
            except ImportError as e:  # pragma: no cover
                raise GrailError(f"the anny body model is not installed: {e}",
                                 field="character.model") from e
            m = anny.Anny(local_changes="default")
            _ANNY = m.to(torch.float64).eval()
        return _ANNY


def grail_cache_dir() -> Path:
    return Path(os.environ.get("GRAIL_CACHE_DIR", Path.home() / ".cache" / "grail"))


def _split_params(params: dict[str, float]):
    pheno = dict(FIXED_PHENOTYPES)
    local = {}
    for k, v in params.items():
        if k.startswith("local:"):
            local[k[len("local:"):]] = float(v)
        else:
            pheno[k] = float(v)
    return pheno, local


def _rest_model(model, pheno: dict, local: dict):
    """Anny rest vertices (V,3) and rest bone poses (J,4,4) as torch tensors (Anny frame)."""
    import torch

    p = model._parse_parameter_kwargs(
        {k: (v if torch.is_tensor(v) else torch.tensor(float(v), dtype=model.dtype))
         for k, v in pheno.items()}, model.phenotype_labels, 0.5, "phenotype_kwargs")
    lc = model._parse_parameter_kwargs(
        {k: (v if torch.is_tensor(v) else torch.tensor(float(v), dtype=model.dtype))
         for k, v in local.items()} or None, model.local_change_labels, 0.0, "local_changes_kwargs")
    fa = torch.zeros(1, len(model.facial_action_labels), dtype=model.dtype)
    coeffs = model._get_phenotype_blendshape_coefficients(p, lc, fa)
    out = model.get_rest_model(coeffs)
    return out["rest_vertices"][0], out["rest_bone_poses"][0]


def _segments(verts, bone_pos, idx: dict[str, int]):
    """Segment lengths (torch) from rest vertices/bone head positions in the Anny frame (Z up)."""
    import torch

    def j(name):
        return bone_pos[idx[name]]

    zmin = verts[:, 2].min()
    zmax = verts[:, 2].max()
    n = torch.linalg.norm
    s = {
        "height": zmax - zmin,
        "pelvis_width": n(j("upperleg01.L") - j("upperleg01.R")),
        "thigh": 0.5 * (n(j("upperleg01.L") - j("lowerleg01.L"))
                        + n(j("upperleg01.R") - j("lowerleg01.R"))),
        "shank": 0.5 * (n(j("lowerleg01.L") - j("foot.L")) + n(j("lowerleg01.R") - j("foot.R"))),
        "ankle_height": 0.5 * (j("foot.L")[2] + j("foot.R")[2]) - zmin,
        "shoulder_width": n(j("upperarm01.L") - j("upperarm01.R")),
        "upper_arm": 0.5 * (n(j("upperarm01.L") - j("lowerarm01.L"))
                            + n(j("upperarm01.R") - j("lowerarm01.R"))),
        "forearm": 0.5 * (n(j("lowerarm01.L") - j("wrist.L")) + n(j("lowerarm01.R") - j("wrist.R"))),
        "hip_height": 0.5 * (j("upperleg01.L")[2] + j("upperleg01.R")[2]) - zmin,
        "shoulder_height": 0.5 * (j("upperarm01.L")[2] + j("upperarm01.R")[2]) - zmin,
    }
    return s


def measure_anny(params: dict[str, float]) -> dict[str, float]:
    """Segment lengths (m) of an Anny character with these params."""
    import torch

    model = get_anny_model()
    pheno, local = _split_params(params)
    with torch.no_grad():
        v, bp = _rest_model(model, pheno, local)
    idx = {n: i for i, n in enumerate(model.bone_labels)}
    return {k: float(x) for k, x in _segments(v, bp[:, :3, 3], idx).items()}


def fit_anny_to_g1(iters: int = 200, seed: int = 0) -> CharacterShape:
    """Optimise Anny's phenotype + local-change parameters so its segments match the G1's."""
    import torch

    model = get_anny_model()
    idx = {n: i for i, n in enumerate(model.bone_labels)}
    torch.manual_seed(seed)
    # Unconstrained variables: phenotypes via sigmoid (0..1), local changes via tanh (-1..1).
    init_p = {"age": 0.25, "height": 0.5, "proportions": 0.5}
    zp = torch.tensor([np.log(init_p[k] / (1 - init_p[k])) for k in FIT_PHENOTYPES],
                      dtype=torch.float64, requires_grad=True)
    zl = torch.zeros(len(FIT_LOCAL_CHANGES), dtype=torch.float64, requires_grad=True)
    target = {k: torch.tensor(v, dtype=torch.float64) for k, v in G1_SEGMENTS.items()}
    opt = torch.optim.Adam([zp, zl], lr=0.08)

    def evaluate():
        pv = torch.sigmoid(zp)
        lv = torch.tanh(zl)
        pheno = dict(FIXED_PHENOTYPES)
        pheno.update({k: pv[i] for i, k in enumerate(FIT_PHENOTYPES)})
        local = {k: lv[i] for i, k in enumerate(FIT_LOCAL_CHANGES)}
        v, bp = _rest_model(model, pheno, local)
        return _segments(v, bp[:, :3, 3], idx), pv, lv

    for _ in range(iters):
        opt.zero_grad()
        seg, pv, lv = evaluate()
        loss = sum(FIT_WEIGHTS[k] * (seg[k] - target[k]) ** 2 for k in target)
        loss = loss + 1e-4 * (lv ** 2).sum()  # prefer the plain body when it does not matter
        loss.backward()
        opt.step()
    with torch.no_grad():
        seg, pv, lv = evaluate()
    params = {k: round(float(pv[i]), 5) for i, k in enumerate(FIT_PHENOTYPES)}
    params.update({f"local:{k}": round(float(lv[i]), 5) for i, k in enumerate(FIT_LOCAL_CHANGES)})
    meas = measure_anny(params)
    res = {k: abs(meas[k] - G1_SEGMENTS[k]) for k in G1_SEGMENTS}
    return CharacterShape(model="anny", params=params, height_m=meas["height"], fit_residuals_m=res)


def fit_g1_character(*, refit: bool = False, cache: bool = True) -> CharacterShape:
    """The G1-proportioned Anny character; fitted once per machine and cached on disk."""
    path = grail_cache_dir() / f"g1_character_anny-{anny_version()}.json"
    if cache and not refit and path.is_file():
        try:
            return CharacterShape.from_dict(json.loads(path.read_text()), file=path)
        except (GrailError, json.JSONDecodeError):
            pass  # stale or broken cache entry: refit
    shape = fit_anny_to_g1()
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(shape.to_dict(), indent=2, sort_keys=True))
    return shape


def anny_rest_arrays(params: dict[str, float]):
    """Rest mesh of an Anny character in the Anny frame, as numpy.

    Returns vertices (V,3), triangle faces (F,3), bone names, parents (J,), rest bone poses
    (J,4,4), vertex bone indices (V,K), weights (V,K).
    """
    import torch

    model = get_anny_model()
    pheno, local = _split_params(params)
    unknown = [k for k in pheno if k not in model.phenotype_labels]
    unknown += [f"local:{k}" for k in local if k not in model.local_change_labels]
    if unknown:
        raise GrailError(f"unknown Anny parameters {unknown}", field="character.params")
    with torch.no_grad():
        v, bp = _rest_model(model, pheno, local)
        faces = model.get_triangular_faces().cpu().numpy().astype(np.int64)
    return (
        v.cpu().numpy().astype(np.float64),
        faces,
        list(model.bone_labels),
        np.asarray(model.bone_parents, dtype=np.int64).reshape(-1),
        bp.cpu().numpy().astype(np.float64),
        model.vertex_bone_indices.cpu().numpy().astype(np.int64),
        model.vertex_bone_weights.cpu().numpy().astype(np.float64),
    )


if __name__ == "__main__":  # pragma: no cover - regenerates DEFAULT_G1_SHAPE
    import time

    t = time.time()
    s = fit_g1_character(refit=True)
    print(json.dumps(s.to_dict(), indent=2), f"{time.time() - t:.1f}s")
