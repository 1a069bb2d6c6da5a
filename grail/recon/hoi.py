"""``recon/hoi.npz``: the metric 4D human-object interaction, in the layout of ``video/gt.npz``
(grail.video.gt) so that the retarget stage and the benchmarks read either the same way, plus
``estimator`` and ``oracle`` (what perception the result rests on).

The character's pose is stored as the rig's rest-relative rotations (``joint_rot``), root
position and orientation, bone poses and the named joints; ``phase`` holds ``"held"`` or
``"free"`` per frame (whether a hand holds the object), since a reconstruction has no task phases.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from grail.atomic import write_bytes_atomic
from grail.recon.body import TorchRig, rotvec_to_matrix
from grail.recon.contacts import ContactLabels
from grail.rotations import quats_from_matrices, wxyz_to_xyzw
from grail.video.gt import GroundTruth


def rig_pose(rig: TorchRig, root: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bone origins (T,J,3) and rest-relative world deltas (T,J,3,3) of a pose sequence."""
    with torch.no_grad():
        pos, deltas = rig.forward(torch.as_tensor(root, dtype=torch.float64), torch.as_tensor(local, dtype=torch.float64))
    return pos.numpy(), deltas.numpy()


def pose_of(hoi: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    """A pose sequence in the rig's terms, (T,3) root positions and (T,J,3) rest-relative
    rotation vectors, from the layout `build_hoi` writes (a reconstruction's or the ground truth's)."""
    local = Rotation.from_quat(wxyz_to_xyzw(hoi.joint_rot.reshape(-1, 4))).as_rotvec()
    return np.array(hoi.root_pos, float), local.reshape(hoi.joint_rot.shape[:-1] + (3,))


def palm_offsets(character_npz: Path, rig: TorchRig) -> np.ndarray:
    """(2,3) left/right palm centre minus the wrist bone's origin, in rest (world) axes: the mean of
    the mesh vertices skinned mostly to each hand bone."""
    with np.load(character_npz, allow_pickle=False) as z:
        verts, idx, w = z["vertices"], z["skin_bone_indices"], z["skin_bone_weights"]
        rest_pos = np.array(z["bone_rest"])[:, :3, 3]
    dominant = idx[np.arange(len(idx)), np.argmax(w, axis=1)]
    out = []
    for side in ("left", "right"):
        b = rig.joint_bones[f"{side}_wrist"]
        out.append(verts[dominant == b].mean(axis=0) - rest_pos[b])
    return np.array(out)


def palms(bone_pos: np.ndarray, deltas: np.ndarray, rig: TorchRig, offsets: np.ndarray) -> np.ndarray:
    """(T,2,3) palm centres of a posed sequence."""
    out = []
    for k, side in enumerate(("left", "right")):
        b = rig.joint_bones[f"{side}_wrist"]
        out.append(bone_pos[:, b] + deltas[:, b] @ offsets[k])
    return np.stack(out, axis=1)


def build_hoi(rig: TorchRig, root: np.ndarray, local: np.ndarray, fps: float, joint_names: list[str],
              object_names: list[str], object_pos: np.ndarray, object_quat: np.ndarray,
              contacts: ContactLabels) -> GroundTruth:
    """A reconstruction in the ground truth's layout."""
    pos, deltas = rig_pose(rig, root, local)
    T, J = pos.shape[:2]
    world = deltas @ rig.rest_rot.numpy()
    local_q = quats_from_matrices(rotvec_to_matrix(torch.as_tensor(local)).numpy().reshape(-1, 3, 3)).reshape(T, J, 4)
    held = contacts.held.any(axis=1) if contacts.held.size else np.zeros(T, bool)
    return GroundTruth(
        fps=float(fps), bone_names=list(rig.names), bone_parents=np.array(rig.parents),
        bone_pos_w=pos, bone_quat_w=quats_from_matrices(world.reshape(-1, 3, 3)).reshape(T, J, 4),
        root_pos=pos[:, 0], root_quat=quats_from_matrices(deltas[:, 0]), joint_rot=local_q,
        joint_names=list(joint_names), joint_pos=pos[:, [rig.joint_bones[n] for n in joint_names]],
        object_names=list(object_names), object_pos=object_pos, object_quat=object_quat,
        object_held=contacts.held, contact_names=list(contacts.names), contact=contacts.contact,
        contact_object=contacts.contact_object, phase=np.where(held, "held", "free"))


def save_hoi(path: Path, hoi: GroundTruth, estimator: str, oracle: bool) -> None:
    hoi.validate(path)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **hoi.arrays(), estimator=np.array(estimator), oracle=np.array(bool(oracle)))
    write_bytes_atomic(Path(path), buffer.getvalue())

