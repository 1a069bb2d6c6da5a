"""The character as MuJoCo skins (one per clothing region) driven by mocap bone bodies.

Each bone is a mocap body ``{prefix}_{bone}`` (no geoms, visual only). Each clothing region is a
``<skin>`` with its own material whose vertices are bound to the bone bodies with the character's
LBS weights; MuJoCo deforms the skins from the bodies' poses at render time. Posing = setting the
mocap poses (:func:`pose_character`).

Segmentation: with ``Renderer.enable_segmentation_rendering()`` MuJoCo reports skin pixels with
objtype ``mjOBJ_SKIN`` and objid = the skin's id; :func:`character_mask` turns a segmentation image
into the per-pixel character mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grail.character.model import REGIONS, CharacterModel
from grail.rotations import quat_from_matrix

DEFAULT_COLORS: dict[str, tuple[float, float, float, float]] = {
    "skin": (0.87, 0.69, 0.57, 1.0),
    "shirt": (0.15, 0.45, 0.80, 1.0),
    "trousers": (0.20, 0.22, 0.30, 1.0),
    "shoes": (0.85, 0.85, 0.82, 1.0),
    "hair": (0.30, 0.18, 0.08, 1.0),
}


@dataclass
class CharacterMJCF:
    asset_xml: str  # goes inside <asset>
    body_xml: str  # goes inside <worldbody>
    deformable_xml: str  # goes inside <deformable> (the skins)
    prefix: str
    body_names: list[str]  # mocap body per bone, in character.bone_names order
    skin_names: list[str]  # one skin per present region
    skin_regions: list[str] = field(default_factory=list)

    def model_xml(self, extra_worldbody: str = "", extra_asset: str = "") -> str:
        """A complete standalone MJCF (for tests and previews)."""
        return (
            '<mujoco model="character">\n'
            f"<asset>{self.asset_xml}{extra_asset}</asset>\n"
            f"<worldbody>{extra_worldbody}{self.body_xml}</worldbody>\n"
            f"<deformable>{self.deformable_xml}</deformable>\n</mujoco>"
        )


def _fmt(a) -> str:
    return " ".join(f"{x:.6g}" for x in np.asarray(a, dtype=float).reshape(-1))


def character_mjcf(character: CharacterModel, prefix: str = "char",
                   colors: dict[str, tuple] | None = None) -> CharacterMJCF:
    cols = dict(DEFAULT_COLORS)
    cols.update(colors or {})
    body_names = [f"{prefix}_{b}" for b in character.bone_names]
    bodies = []
    quats = [quat_from_matrix(T[:3, :3]) for T in character.bone_rest]
    for name, T, q in zip(body_names, character.bone_rest, quats):
        bodies.append(f'<body name="{name}" mocap="true" pos="{_fmt(T[:3, 3])}" quat="{_fmt(q)}"/>')
    assets, skins, skin_names, skin_regions = [], [], [], []
    for r, region in enumerate(REGIONS):
        fmask = character.face_region == r
        if not fmask.any():
            continue
        faces = character.faces[fmask]
        used, inv = np.unique(faces.reshape(-1), return_inverse=True)
        local_faces = inv.reshape(-1, 3)
        mat = f"{prefix}_{region}_mat"
        rgba = cols[region]
        assets.append(f'<material name="{mat}" rgba="{_fmt(rgba)}" specular="0.1" shininess="0.1"/>')
        sname = f"{prefix}_{region}"
        bones_xml = []
        bi = character.skin_bone_indices[used]
        bw = character.skin_bone_weights[used]
        for j, bname in enumerate(body_names):
            sel = (bi == j) & (bw > 1e-6)
            vid, k = np.nonzero(sel)
            if len(vid) == 0:
                continue
            T = character.bone_rest[j]
            bones_xml.append(
                f'<bone body="{bname}" bindpos="{_fmt(T[:3, 3])}" bindquat="{_fmt(quats[j])}" '
                f'vertid="{" ".join(map(str, vid))}" vertweight="{_fmt(bw[vid, k])}"/>')
        skins.append(
            f'<skin name="{sname}" material="{mat}" vertex="{_fmt(character.vertices[used])}" '
            f'face="{" ".join(map(str, local_faces.reshape(-1)))}">' + "".join(bones_xml) + "</skin>")
        skin_names.append(sname)
        skin_regions.append(region)
    return CharacterMJCF(asset_xml="\n".join(assets), body_xml="\n".join(bodies),
                         deformable_xml="\n".join(skins), prefix=prefix, body_names=body_names,
                         skin_names=skin_names, skin_regions=skin_regions)


def pose_character(model, data, character: CharacterModel, bone_world_transforms: np.ndarray,
                   prefix: str = "char") -> None:
    """Set the bone mocap bodies to world transforms (J,4,4) in character.bone_names order."""
    import mujoco

    T = np.asarray(bone_world_transforms, dtype=float)
    for j, b in enumerate(character.bone_names):
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{prefix}_{b}")
        mid = model.body_mocapid[bid]
        data.mocap_pos[mid] = T[j, :3, 3]
        data.mocap_quat[mid] = quat_from_matrix(T[j, :3, :3])


def character_skin_ids(model, prefix: str = "char") -> np.ndarray:
    import mujoco

    ids = [i for i in range(model.nskin)
           if (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SKIN, i) or "").startswith(prefix + "_")]
    return np.asarray(ids, dtype=np.int64)


def character_mask(seg: np.ndarray, model=None, prefix: str = "char") -> np.ndarray:
    """Per-pixel character mask from a MuJoCo segmentation image (H,W,2: objid, objtype).

    Without a model every skin pixel counts; with one only the skins named ``{prefix}_*``.
    """
    import mujoco

    seg = np.asarray(seg)
    m = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_SKIN)
    if model is not None:
        m &= np.isin(seg[..., 0], character_skin_ids(model, prefix))
    return m
