"""CharacterModel: a rigged, dressed (per-face clothing regions) body mesh in the GRAIL frame."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grail.character.anny_body import (
    ANNY_JOINT_BONES,
    R_ANNY_TO_WORLD,
    CharacterShape,
    anny_rest_arrays,
    anny_version,
    grail_cache_dir,
)
from grail.atomic import write_bytes_atomic
from grail.errors import GrailError

REGIONS = ("skin", "shirt", "trousers", "shoes", "hair")
SKIN, SHIRT, TROUSERS, SHOES, HAIR = range(5)
MAX_INFLUENCES = 4

# Anny bones kept in the character rig; the others (fingers, toes, eyes, ...) are merged into their
# nearest kept ancestor.
ANNY_KEPT_BONES = (
    "root", "pelvis.L", "upperleg01.L", "upperleg02.L", "lowerleg01.L", "lowerleg02.L", "foot.L",
    "pelvis.R", "upperleg01.R", "upperleg02.R", "lowerleg01.R", "lowerleg02.R", "foot.R",
    "spine05", "spine04", "spine03", "spine02", "spine01",
    "clavicle.L", "shoulder01.L", "upperarm01.L", "upperarm02.L", "lowerarm01.L", "lowerarm02.L",
    "wrist.L",
    "clavicle.R", "shoulder01.R", "upperarm01.R", "upperarm02.R", "lowerarm01.R", "lowerarm02.R",
    "wrist.R",
    "neck01", "neck02", "neck03", "head",
)


@dataclass
class CharacterModel:
    vertices: np.ndarray  # (V,3) rest pose, Z up, feet on z=0, pelvis above origin, facing +X
    faces: np.ndarray  # (F,3) int
    bone_names: list[str]
    bone_parents: np.ndarray  # (J,) -1 for the root
    bone_rest: np.ndarray  # (J,4,4) rest bone transforms (world)
    skin_bone_indices: np.ndarray  # (V,K) int
    skin_bone_weights: np.ndarray  # (V,K) float, rows sum to 1
    face_region: np.ndarray  # (F,) int into REGIONS
    joints: dict[str, np.ndarray]  # named joint positions (3,)
    height_m: float
    model: str = "anny"

    def arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for an .npz (the on-disk character in scene/character.npz and the cache)."""
        names = sorted(self.joints)
        return {
            "model": np.array(self.model),
            "vertices": self.vertices.astype(np.float64),
            "faces": self.faces.astype(np.int64),
            "face_region": self.face_region.astype(np.int8),
            "region_names": np.array(REGIONS),
            "bone_names": np.array(self.bone_names),
            "bone_parents": self.bone_parents.astype(np.int64),
            "bone_rest": self.bone_rest.astype(np.float64),
            "skin_bone_indices": self.skin_bone_indices.astype(np.int64),
            "skin_bone_weights": self.skin_bone_weights.astype(np.float64),
            "joint_names": np.array(names),
            "joint_positions": np.stack([self.joints[k] for k in names]).astype(np.float64),
            "height_m": np.array(self.height_m),
        }

    @classmethod
    def from_arrays(cls, z) -> "CharacterModel":
        return cls(
            vertices=np.asarray(z["vertices"], np.float64),
            faces=np.asarray(z["faces"], np.int64),
            bone_names=[str(n) for n in z["bone_names"]],
            bone_parents=np.asarray(z["bone_parents"], np.int64),
            bone_rest=np.asarray(z["bone_rest"], np.float64),
            skin_bone_indices=np.asarray(z["skin_bone_indices"], np.int64),
            skin_bone_weights=np.asarray(z["skin_bone_weights"], np.float64),
            face_region=np.asarray(z["face_region"], np.int64),
            joints={str(k): np.asarray(v, np.float64) for k, v in zip(z["joint_names"], z["joint_positions"])},
            height_m=float(z["height_m"]),
            model=str(z["model"]),
        )

    def lbs(self, bone_world: np.ndarray) -> np.ndarray:
        """Skin the rest vertices with bone world transforms (J,4,4) -> (V,3)."""
        rel = bone_world @ np.linalg.inv(self.bone_rest)  # (J,4,4)
        vh = np.concatenate([self.vertices, np.ones((len(self.vertices), 1))], 1)
        out = np.zeros_like(self.vertices)
        for k in range(self.skin_bone_indices.shape[1]):
            t = rel[self.skin_bone_indices[:, k]]  # (V,4,4)
            out += self.skin_bone_weights[:, k:k + 1] * np.einsum("vij,vj->vi", t, vh)[:, :3]
        return out


def _reduce_rig(names, parents, kept):
    """Map every bone to its nearest kept ancestor; return (old->new index, new names, parents)."""
    keep = [i for i, n in enumerate(names) if n in kept]
    new_of_old = {o: k for k, o in enumerate(keep)}
    mapping = np.zeros(len(names), dtype=np.int64)
    for i in range(len(names)):
        j = i
        while j not in new_of_old:
            j = int(parents[j])
            if j < 0:
                raise GrailError(f"bone {names[i]!r} has no kept ancestor", field="character")
        mapping[i] = new_of_old[j]
    new_parents = np.array([mapping[parents[o]] if parents[o] >= 0 else -1 for o in keep])
    return mapping, [names[o] for o in keep], new_parents


def _sparse_weights(idx, w, mapping, n_bones, k=MAX_INFLUENCES):
    """Merge weights of dropped bones into kept ones and keep the top-k per vertex."""
    V = idx.shape[0]
    dense = np.zeros((V, n_bones))
    np.add.at(dense, (np.repeat(np.arange(V), idx.shape[1]), mapping[idx].reshape(-1)),
              w.reshape(-1))
    order = np.argsort(-dense, axis=1)[:, :k]
    top = np.take_along_axis(dense, order, 1)
    s = top.sum(1, keepdims=True)
    if np.any(s <= 0):
        raise GrailError("mesh has vertices with no skinning weight", field="character")
    return order.astype(np.int64), top / s


def _world_transform(vertices_local, bone_rest_local, root_index, rot):
    """4x4 taking the model frame to GRAIL world: rotation, feet on z=0, root above origin."""
    T = np.eye(4)
    T[:3, :3] = rot
    v = vertices_local @ rot.T
    root = rot @ bone_rest_local[root_index, :3, 3]
    T[:3, 3] = [-root[0], -root[1], -v[:, 2].min()]
    return T


def _assign_regions(vertices, faces, bone_names, dom_bone, joints, height):
    """Per-face region from the dominant bone of each face and a few height/forward rules."""
    cls = np.full(len(bone_names), SKIN)
    for i, n in enumerate(bone_names):
        if n.startswith(("foot", "toe")):
            cls[i] = SHOES
        elif n.startswith(("upperleg", "lowerleg", "pelvis", "root")):
            cls[i] = TROUSERS
        elif n.startswith(("spine", "clavicle", "shoulder", "upperarm")):
            cls[i] = SHIRT
    # face dominant bone: vote of its 3 vertices (first vertex breaks ties)
    fb = dom_bone[faces]
    fc = cls[fb]
    region = np.where((fc[:, 1] == fc[:, 2]), fc[:, 1], fc[:, 0])
    cen = vertices[faces].mean(1)
    z = cen[:, 2]
    ankle_z = 0.5 * (joints["left_ankle"][2] + joints["right_ankle"][2])
    hip_z = 0.5 * (joints["left_hip"][2] + joints["right_hip"][2])
    # shoes come up over the ankle; trousers cover the lower torso up to the waist
    region[(region == TROUSERS) & (z < ankle_z + 0.05)] = SHOES
    region[(region == SHIRT) & (z < hip_z + 0.10)] = TROUSERS
    # sleeves end a little above the elbow (short sleeves)
    for side in ("left", "right"):
        sh, el = joints[f"{side}_shoulder"], joints[f"{side}_elbow"]
        d = el - sh
        t = (cen - sh) @ d / (d @ d)
        arm = np.isin(fb[:, 0], [bone_names.index(f"upperarm01.{side[0].upper()}"),
                                 bone_names.index(f"upperarm02.{side[0].upper()}")])
        region[arm & (t > 0.7)] = SKIN
    # hair: top and back of the head
    head = joints["head"]
    top = vertices[:, 2].max()
    hb = np.isin(fb[:, 0], [i for i, n in enumerate(bone_names) if n in ("head", "neck03")])
    rel = cen - np.array([head[0], head[1], 0.0])
    above_brow = z > top - 0.09 * height / 1.32
    behind = (rel[:, 0] < -0.01) & (z > head[2] - 0.01)
    region[hb & (above_brow | behind)] = HAIR
    return region.astype(np.int64)


def _joints_from_bones(bone_pos_world, names, joint_bones):
    return {j: bone_pos_world[names.index(b)].copy() for j, b in joint_bones.items()}


CACHE_FORMAT = 1  # bump when the built character changes for the same shape


def _cache_file(shape: CharacterShape) -> Path:
    key = json.dumps({"shape": shape.to_dict(), "anny": anny_version(), "format": CACHE_FORMAT}, sort_keys=True)
    return grail_cache_dir() / f"character_{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def build_character(shape: CharacterShape, model_path: str | Path | None = None, cache: bool = True) -> CharacterModel:
    """The rigged, dressed character mesh for a shape (Anny, or SMPL-X from model_path).

    Anny characters are cached on disk (GRAIL_CACHE_DIR, default ~/.cache/grail) so that a new
    process composes without loading Anny at all."""
    if shape.model != "anny" or not cache:
        return _build_character(shape, model_path)
    path = _cache_file(shape)
    if path.is_file():
        try:
            with np.load(path) as z:
                return CharacterModel.from_arrays(z)
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache file is rebuilt below
    character = _build_character(shape, model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **character.arrays())
    write_bytes_atomic(path, buffer.getvalue())
    return character


def _build_character(shape: CharacterShape, model_path: str | Path | None = None) -> CharacterModel:
    if shape.model == "smplx":
        from grail.character.smplx_body import smplx_rest_arrays, SMPLX_JOINT_BONES, SMPLX_ROT

        if model_path is None:
            raise GrailError("SMPL-X needs a model file (model_path)", field="character.model_path")
        v, f, names, parents, bp, bi, bw = smplx_rest_arrays(shape.params, model_path)
        kept, joint_bones, rot = tuple(names), SMPLX_JOINT_BONES, SMPLX_ROT
        from grail.character.smplx_body import smplx_region_classes

        region_classes = smplx_region_classes
    elif shape.model == "anny":
        v, f, names, parents, bp, bi, bw = anny_rest_arrays(shape.params)
        kept, joint_bones, rot = ANNY_KEPT_BONES, ANNY_JOINT_BONES, R_ANNY_TO_WORLD
        region_classes = None
    else:
        raise GrailError(f"unknown character model {shape.model!r} (anny|smplx)",
                         field="character.model")

    mapping, new_names, new_parents = _reduce_rig(names, parents, set(kept))
    sidx, sw = _sparse_weights(bi, bw, mapping, len(new_names))
    T = _world_transform(v, bp, 0, rot)
    verts = v @ T[:3, :3].T + T[:3, 3]
    keep_old = [names.index(n) for n in new_names]
    rest = T[None] @ bp[keep_old]
    # orthonormalise (numerical safety for MuJoCo bind quaternions)
    u, _, vt = np.linalg.svd(rest[:, :3, :3])
    rest[:, :3, :3] = u @ vt
    joints = _joints_from_bones(rest[:, :3, 3], new_names, joint_bones)
    height = float(verts[:, 2].max() - verts[:, 2].min())
    dom = sidx[:, 0]
    if region_classes is None:
        region = _assign_regions(verts, f, new_names, dom, joints, height)
    else:
        region = region_classes(verts, f, new_names, dom, joints, height)
    return CharacterModel(
        vertices=verts, faces=np.asarray(f, dtype=np.int64), bone_names=new_names,
        bone_parents=np.asarray(new_parents, dtype=np.int64), bone_rest=rest,
        skin_bone_indices=sidx, skin_bone_weights=sw, face_region=region, joints=joints,
        height_m=height, model=shape.model,
    )
