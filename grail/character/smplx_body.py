"""SMPL-X as an optional body model (``smplx`` package, user-supplied model file).

SMPL-X's canonical frame is Y up, facing +Z, the body's left at +X. We rotate it to GRAIL's Z up,
facing +X (left at +Y). Shape params: ``betas`` as ``beta0..beta9`` (YAML-friendly scalars).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grail.errors import GrailError

# SMPL-X body joints (first 22 of the 55 in its kinematic tree), then jaw/eyes/hands.
SMPLX_BODY_JOINTS = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
SMPLX_JOINT_BONES = {
    j: j for j in ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                   "right_ankle", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                   "left_wrist", "right_wrist", "neck", "head")
}
# SMPL-X (x left, y up, z forward) -> GRAIL (x forward, y left, z up)
SMPLX_ROT = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
N_BETAS = 10


def _betas(params: dict[str, float]) -> np.ndarray:
    b = np.zeros(N_BETAS)
    for k, v in params.items():
        if not (k.startswith("beta") and k[4:].isdigit() and int(k[4:]) < N_BETAS):
            raise GrailError(f"unknown SMPL-X parameter {k!r} (beta0..beta{N_BETAS - 1})",
                             field="character.params")
        b[int(k[4:])] = float(v)
    return b


def smplx_rest_arrays(params: dict[str, float], model_path: str | Path):
    """Rest (T-pose) mesh of SMPL-X in its own frame, like ``anny_rest_arrays``."""
    path = Path(model_path)
    if path.is_dir():
        cands = sorted(path.glob("SMPLX_NEUTRAL.npz")) + sorted(path.glob("*.npz"))
        if not cands:
            raise GrailError("no SMPL-X .npz model in this folder", file=path,
                             field="character.model_path")
        path = cands[0]
    if not path.is_file():
        raise GrailError("SMPL-X model file not found", file=path, field="character.model_path")
    betas = _betas(params)
    try:
        import smplx
        import torch

        with np.load(path, allow_pickle=True) as z:
            n_shape = int(np.asarray(z["shapedirs"]).shape[-1])
        m = smplx.SMPLX(str(path), ext="npz", num_betas=min(N_BETAS, n_shape), use_pca=False,
                        num_expression_coeffs=max(0, min(10, n_shape - 300)) or 10,
                        flat_hand_mean=True)
        with torch.no_grad():
            out = m(betas=torch.tensor(betas[None, :m.num_betas], dtype=torch.float32),
                    return_verts=True)
        v = out.vertices[0].numpy().astype(np.float64)
        joints = out.joints[0].numpy().astype(np.float64)
        faces = np.asarray(m.faces, dtype=np.int64)
        parents = m.parents.numpy().astype(np.int64)
        weights = m.lbs_weights.numpy().astype(np.float64)
    except GrailError:
        raise
    except Exception as e:  # malformed archive, wrong shapes, missing arrays, ...
        raise GrailError(f"cannot load SMPL-X model: {type(e).__name__}: {e}", file=path,
                         field="character.model_path") from e
    nj = len(parents)
    if weights.shape != (len(v), nj) or faces.ndim != 2 or faces.shape[1] != 3:
        raise GrailError("SMPL-X model arrays have inconsistent shapes", file=path,
                         field="character.model_path")
    names = list(SMPLX_BODY_JOINTS) + [f"joint{i}" for i in range(len(SMPLX_BODY_JOINTS), nj)]
    parents = parents.copy()
    parents[0] = -1
    rest = np.tile(np.eye(4), (nj, 1, 1))
    rest[:, :3, 3] = joints[:nj]  # T-pose: bone frames axis-aligned with the model frame
    k = 4
    order = np.argsort(-weights, axis=1)[:, :k]
    w = np.take_along_axis(weights, order, 1)
    return v, faces, names, parents, rest, order, w


def smplx_region_classes(vertices, faces, bone_names, dom_bone, joints, height):
    """Regions for SMPL-X from the dominant joint (same rules as Anny's, with SMPL-X names)."""
    from grail.character.model import HAIR, SHIRT, SHOES, SKIN, TROUSERS

    cls = np.full(len(bone_names), SKIN)
    for i, n in enumerate(bone_names):
        if n.endswith(("_ankle", "_foot")):
            cls[i] = SHOES
        elif n.endswith(("_hip", "_knee")) or n == "pelvis":
            cls[i] = TROUSERS
        elif n.startswith("spine") or n.endswith(("_collar", "_shoulder")):
            cls[i] = SHIRT
    fb = dom_bone[faces]
    region = cls[fb[:, 0]].copy()
    z = vertices[faces].mean(1)[:, 2]
    head = joints["head"]
    region[(fb[:, 0] == bone_names.index("head")) & (z > head[2] + 0.06 * height / 1.32)] = HAIR
    return region.astype(np.int64)
