"""Ground truth of a procedural video: ``video/gt.npz`` (the contract later stages measure against).

Keys (T frames, J character bones, N named joints, O objects, C contact channels):

==================  ===========  ==========================================================
``fps``             ()           frames per second
``quat_order``      ()           ``"wxyz"``
``bone_names``      (J,)         character bones, ``scene/character.npz`` order
``bone_parents``    (J,)         parent index, -1 for the root
``bone_pos_w``      (T,J,3)      bone origins in the world (what the skins are bound to)
``bone_quat_w``     (T,J,4)      bone orientations in the world
``root_pos``        (T,3)        root bone ("pelvis") position
``root_quat``       (T,4)        root orientation relative to the rest pose (identity = upright,
                                 facing world +x)
``joint_rot``       (T,J,4)      each bone's rotation relative to its parent, rest-relative
                                 (identity everywhere = the rest pose), axes of the rest frame
``joint_names``     (N,)         named joints (pelvis, hips, knees, ankles, shoulders, ...)
``joint_pos``       (T,N,3)      their world positions
``object_names``    (O,)
``object_pos``      (T,O,3)      object body origin in the world (the body of scene.xml)
``object_quat``     (T,O,4)
``object_held``     (T,O) bool   object rigidly attached to a hand
``contact_names``   (C,)         ``left_foot right_foot left_hand right_hand pelvis``
``contact``         (T,C) bool
``contact_object``  (T,C) int    object index a hand touches (-1: none / support contact)
``phase``           (T,)         phase name per frame (walk, turn, reach, grasp, lift, ...)
==================  ===========  ==========================================================
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from grail.atomic import write_bytes_atomic
from grail.checks import check_arrays
from grail.errors import GrailError
from grail.rotations import transforms

CONTACT_NAMES = ("left_foot", "right_foot", "left_hand", "right_hand", "pelvis")


@dataclass
class GroundTruth:
    fps: float
    bone_names: list[str]
    bone_parents: np.ndarray
    bone_pos_w: np.ndarray
    bone_quat_w: np.ndarray
    root_pos: np.ndarray
    root_quat: np.ndarray
    joint_rot: np.ndarray
    joint_names: list[str]
    joint_pos: np.ndarray
    object_names: list[str]
    object_pos: np.ndarray
    object_quat: np.ndarray
    object_held: np.ndarray
    contact_names: list[str]
    contact: np.ndarray
    contact_object: np.ndarray
    phase: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.root_pos.shape[0])

    def bone_world(self) -> np.ndarray:
        """(T,J,4,4) bone world transforms."""
        return transforms(self.bone_pos_w, self.bone_quat_w)

    def object_world(self, index: int) -> np.ndarray:
        """(T,4,4) world transforms of object `index`."""
        return transforms(self.object_pos[:, index], self.object_quat[:, index])

    def joint(self, name: str) -> np.ndarray:
        return self.joint_pos[:, self.joint_names.index(name)]

    def contact_of(self, name: str) -> np.ndarray:
        return self.contact[:, self.contact_names.index(name)]

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = np.array(v) if isinstance(v, list) else np.asarray(v)
        out["quat_order"] = np.array("wxyz")
        out["frames"] = np.array(self.frames)
        return out

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.arrays())
        write_bytes_atomic(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> "GroundTruth":
        path = Path(path)
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise GrailError(f"cannot read ground truth ({err})", file=path) from None
        with z:
            missing = [f.name for f in fields(cls) if f.name not in z.files]
            if missing:
                raise GrailError("missing key", file=path, field=missing[0])
            kw = {}
            for f in fields(cls):
                v = z[f.name]
                if f.name in ("bone_names", "joint_names", "object_names", "contact_names"):
                    kw[f.name] = [str(s) for s in v]
                elif f.name == "fps":
                    kw[f.name] = float(v)
                else:
                    kw[f.name] = np.array(v)
        gt = cls(**kw)
        gt.validate(path)
        return gt

    def validate(self, path: Path | str | None = None) -> None:
        """Shapes agree and every float is finite (a NaN pose is bad input for later stages)."""
        T, J, N, O, C = self.frames, len(self.bone_names), len(self.joint_names), len(self.object_names), len(self.contact_names)
        shapes = {
            "bone_pos_w": (T, J, 3), "bone_quat_w": (T, J, 4), "root_pos": (T, 3), "root_quat": (T, 4),
            "joint_rot": (T, J, 4), "joint_pos": (T, N, 3), "object_pos": (T, O, 3), "object_quat": (T, O, 4),
            "object_held": (T, O), "contact": (T, C), "contact_object": (T, C), "phase": (T,),
            "bone_parents": (J,),
        }
        check_arrays({name: getattr(self, name) for name in shapes}, shapes, path)
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise GrailError(f"fps must be positive (got {self.fps})", file=path, field="fps")
