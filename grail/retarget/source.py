"""The human-object motion to retarget: ``recon/hoi.npz``, or ``video/gt.npz`` before reconstruction.

Both files carry the character's named joint positions (``joint_names``, ``joint_pos``), its bone
world orientations (``bone_names``, ``bone_quat_w``), the object poses and per-frame contact labels
(the keys documented in ``grail/video/gt.py``); the character's rest rig comes from
``scene/character.npz``. Everything is checked here, so the solver never sees a NaN or a missing joint.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grail.errors import GrailError

#: Named joints the retargeter reads (character side).
REQUIRED_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                   "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                   "neck", "head")
#: Bones whose orientation is read: pelvis (root), chest, head, feet, hands.
REQUIRED_BONES = {"root": "root", "chest": "spine01", "head": "head", "left_foot": "foot.L",
                  "right_foot": "foot.R", "left_hand": "wrist.L", "right_hand": "wrist.R"}
CONTACTS = ("left_foot", "right_foot", "left_hand", "right_hand", "pelvis")


@dataclass
class HumanMotion:
    """Character motion + object + contacts, in world metres, wxyz quaternions."""

    fps: float
    joints: dict[str, np.ndarray]        # name -> (T,3)
    bone_quat: dict[str, np.ndarray]     # role (REQUIRED_BONES keys) -> (T,4) world orientation
    bone_rest: dict[str, np.ndarray]     # role -> (3,3) rest orientation (character frame, facing +x)
    hand_axis: dict[str, np.ndarray]     # side -> (3,) wrist-to-palm direction in the hand bone's frame
    contact: dict[str, np.ndarray]       # CONTACTS name -> (T,) bool
    contact_object: dict[str, np.ndarray]  # hand name -> (T,) object index or -1
    object_names: list[str]
    object_pos: np.ndarray               # (T,O,3)
    object_quat: np.ndarray              # (T,O,4)
    rest_joints: dict[str, np.ndarray]   # name -> (3,) rest positions (character frame)
    source: str
    task: str = ""

    @property
    def frames(self) -> int:
        return int(self.joints["pelvis"].shape[0])


def source_file(seq_dir: Path) -> Path:
    """The reconstruction when there is one, otherwise the procedural ground truth."""
    for rel in ("recon/hoi.npz", "video/gt.npz"):
        if (Path(seq_dir) / rel).is_file():
            return Path(seq_dir) / rel
    raise GrailError("nothing to retarget: no recon/hoi.npz or video/gt.npz (run `grail generate` first)",
                     file=seq_dir)


def load_human_motion(seq_dir: Path, path: Path | None = None) -> HumanMotion:
    """Read and check the motion of a sequence (names, shapes, finite values, fps agreement)."""
    seq_dir = Path(seq_dir)
    path = Path(path) if path else source_file(seq_dir)
    try:
        z = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # missing, truncated or damaged
        raise GrailError(f"cannot read ({err})", file=path) from None
    fps = _fps(z, path)
    _check_fps_against_video(seq_dir, fps, path)
    names = [str(s) for s in _key(z, "joint_names", path)]
    joint_pos = _finite(_key(z, "joint_pos", path), path, "joint_pos")
    T = joint_pos.shape[0]
    if joint_pos.ndim != 3 or joint_pos.shape[1:] != (len(names), 3) or T < 2:
        raise GrailError(f"shape {joint_pos.shape}, expected (T>=2, {len(names)}, 3)", file=path, field="joint_pos")
    missing = [j for j in REQUIRED_JOINTS if j not in names]
    if missing:
        raise GrailError(f"missing joint {missing[0]!r}", file=path, field="joint_names")
    joints = {j: joint_pos[:, names.index(j)] for j in REQUIRED_JOINTS}

    bones = [str(s) for s in _key(z, "bone_names", path)]
    bone_quat = _finite(_key(z, "bone_quat_w", path), path, "bone_quat_w")
    if bone_quat.shape != (T, len(bones), 4):
        raise GrailError(f"shape {bone_quat.shape}, expected ({T}, {len(bones)}, 4)", file=path, field="bone_quat_w")
    rig = _character_rig(seq_dir)
    quats, rest = {}, {}
    for role, bone in REQUIRED_BONES.items():
        if bone not in bones:
            raise GrailError(f"missing bone {bone!r}", file=path, field="bone_names")
        quats[role] = bone_quat[:, bones.index(bone)]
        rest[role] = rig["rest"][bone]

    object_names, object_pos, object_quat = _objects(z, T, path)
    flags, touches = _contacts(z, T, len(object_names), path)
    return HumanMotion(fps=fps, joints=joints, bone_quat=quats, bone_rest=rest, hand_axis=rig["hand_axis"],
                       contact=flags, contact_object=touches, object_names=object_names, object_pos=object_pos,
                       object_quat=object_quat, rest_joints=rig["joints"], source=str(path.relative_to(seq_dir)
                       if path.is_relative_to(seq_dir) else path), task=_task(seq_dir))


def _objects(z: dict, T: int, path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = [str(s) for s in z.get("object_names", np.array([], dtype=str))]
    pos = _finite(np.asarray(z.get("object_pos", np.zeros((T, 0, 3)))), path, "object_pos")
    quat = _finite(np.asarray(z.get("object_quat", np.zeros((T, 0, 4)))), path, "object_quat")
    for field, value, width in (("object_pos", pos, 3), ("object_quat", quat, 4)):
        if value.shape != (T, len(names), width):
            raise GrailError(f"shape {value.shape}, expected ({T}, {len(names)}, {width})", file=path, field=field)
    return names, pos, quat


def _contacts(z: dict, T: int, n_objects: int, path: Path) -> tuple[dict, dict]:
    """Per-channel contact flags, and the object each hand touches (-1: none or unknown)."""
    names = [str(s) for s in _key(z, "contact_names", path)]
    contact = np.asarray(_key(z, "contact", path)).astype(bool)
    if contact.shape != (T, len(names)):
        raise GrailError(f"shape {contact.shape}, expected ({T}, {len(names)})", file=path, field="contact")
    touching = np.asarray(z.get("contact_object", -np.ones(contact.shape, int)))
    if touching.shape != contact.shape:
        raise GrailError(f"shape {touching.shape}, expected {contact.shape}", file=path, field="contact_object")
    if touching.size and (touching.min() < -1 or touching.max() >= n_objects):
        raise GrailError(f"object index out of range -1..{n_objects - 1} (got {touching.min()}..{touching.max()})",
                         file=path, field="contact_object")
    flags = {c: (contact[:, names.index(c)] if c in names else np.zeros(T, bool)) for c in CONTACTS}
    touches = {c: (touching[:, names.index(c)].astype(int) if c in names else -np.ones(T, int))
               for c in ("left_hand", "right_hand")}
    return flags, touches


def _key(z: dict, key: str, path: Path) -> np.ndarray:
    if key not in z:
        raise GrailError("missing key", file=path, field=key)
    return z[key]


def _finite(a: np.ndarray, path: Path, field: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero((~np.isfinite(a.reshape(a.shape[0], -1))).any(axis=1))[0]) if a.ndim else 0
        raise GrailError(f"NaN or infinite values (first at frame {bad})", file=path, field=field)
    return a


def _fps(z: dict, path: Path) -> float:
    try:
        fps = float(_key(z, "fps", path))
    except (TypeError, ValueError):
        raise GrailError("not a number", file=path, field="fps") from None
    if not (np.isfinite(fps) and fps > 0):
        raise GrailError(f"fps must be positive (got {fps})", file=path, field="fps")
    return fps


def _check_fps_against_video(seq_dir: Path, fps: float, path: Path) -> None:
    """The motion and the video it came from must agree on their frame rate."""
    video_json = seq_dir / "video" / "video.json"
    if not video_json.is_file():
        return
    try:
        video_fps = float(json.loads(video_json.read_text())["fps"])
    except (OSError, ValueError, KeyError, TypeError):
        raise GrailError("cannot read fps", file=video_json, field="fps") from None
    if not np.isclose(video_fps, fps):
        raise GrailError(f"fps {fps:g} does not match video.json's {video_fps:g}", file=path, field="fps")


def _task(seq_dir: Path) -> str:
    spec = seq_dir / "scene" / "spec.yaml"
    if not spec.is_file():
        return ""
    import yaml

    try:
        return str((yaml.safe_load(spec.read_text()) or {}).get("task", ""))
    except (OSError, yaml.YAMLError):
        return ""


def _character_rig(seq_dir: Path) -> dict:
    """Rest bone orientations, rest joint positions and each hand's wrist-to-palm axis."""
    path = seq_dir / "scene" / "character.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return _rig_arrays(z, path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise GrailError(f"cannot read the character ({err})", file=path) from None
    except KeyError as err:
        raise GrailError("missing key", file=path, field=str(err).strip("'\"")) from None


def _rig_arrays(z, path: Path) -> dict:
    bones = [str(b) for b in z["bone_names"]]
    missing = [b for b in REQUIRED_BONES.values() if b not in bones]
    if missing:
        raise GrailError(f"missing bone {missing[0]!r}", file=path, field="bone_names")
    rest_T = z["bone_rest"]
    rest = {b: np.array(rest_T[i][:3, :3]) for i, b in enumerate(bones)}
    joints = {str(n): np.array(p) for n, p in zip(z["joint_names"], z["joint_positions"])}
    verts, idx, w = z["vertices"], z["skin_bone_indices"], z["skin_bone_weights"]
    dominant_bone = idx[np.arange(len(idx)), np.argmax(w, axis=1)]
    hand_axis = {}
    for side, bone in (("left", "wrist.L"), ("right", "wrist.R")):
        b = bones.index(bone)
        centre = verts[dominant_bone == b].mean(axis=0) - rest_T[b][:3, 3]
        hand_axis[side] = rest_T[b][:3, :3].T @ (centre / np.linalg.norm(centre))
    return {"rest": rest, "joints": joints, "hand_axis": hand_axis}
