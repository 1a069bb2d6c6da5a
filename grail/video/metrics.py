"""Physical consistency of a procedural human-object interaction (``video/gt.npz``) against the
composed scene: foot skating and sinking, hand-object contact, floating and penetrating objects,
body penetration, joint speed/acceleration and knee/elbow ranges.

``consistency_metrics`` returns a JSON-ready dict: the headline values (the keys of ``LIMITS``,
with the frame/bone/item of the worst case) at the top level, per foot, hand and object details
under ``feet``, ``hands`` and ``objects``; ``check`` lists the values outside ``LIMITS`` as
readable sentences.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from grail.character.model import CharacterModel
from grail.rotations import matrices_from_quats
from grail.rotations import transforms
from grail.video.geometry import SceneGeometry
from grail.video.gt import GroundTruth

# Upper bounds (a metric above its bound is a violation).
LIMITS: dict[str, float] = {
    "foot_skate_max_m_s": 0.01,  # a planted sole slides at most 1 cm/s
    "foot_below_support_max_m": 0.005,  # a planted sole sinks at most 5 mm into its support
    "hand_object_distance_max_m": 0.01,  # a hand in contact is within 1 cm of the object surface
    "hand_object_penetration_max_m": 0.01,  # and no hand vertex is deeper than 1 cm inside it
    "object_float_max_m": 0.005,  # an object not held rests on its support (5 mm gap at most)
    "object_penetration_max_m": 0.01,  # object surface points at most 1 cm inside static parts
    "body_penetration_max_m": 0.01,  # character vertices at most 1 cm inside the static world
    # Smoothness: 12 rad/s is about the peak joint speed of brisk everyday motion (arm swing,
    # quick reach); 400 rad/s^2 allows a stop from 12 rad/s in 30 ms while flagging the
    # frame-to-frame jumps of a broken animation (at 24 fps one frame of 400 rad/s^2 changes the
    # angular velocity by 16.7 rad/s).
    "joint_speed_max_rad_s": 12.0,
    "joint_accel_max_rad_s2": 400.0,
    "joint_range_violations": 0,  # frames x joints outside JOINT_RANGES_DEG
}

# Anatomical hinge ranges (flexion, degrees; negative = hyperextension), with a small tolerance
# for joint centres that are not exactly collinear when straight.
JOINT_RANGES_DEG: dict[str, tuple[float, float]] = {"knee": (0.0, 155.0), "elbow": (0.0, 160.0)}
RANGE_TOL_DEG = 1.0
HINGES = {  # name: (proximal joint, hinge joint, distal joint, rest flexion direction)
    "left_knee": ("left_hip", "left_knee", "left_ankle", (-1.0, 0.0, 0.0)),
    "right_knee": ("right_hip", "right_knee", "right_ankle", (-1.0, 0.0, 0.0)),
    "left_elbow": ("left_shoulder", "left_elbow", "left_wrist", (1.0, 0.0, 0.0)),
    "right_elbow": ("right_shoulder", "right_elbow", "right_wrist", (1.0, 0.0, 0.0)),
}
FEET = {"left_foot": "foot.L", "right_foot": "foot.R"}
HANDS = {"left_hand": "wrist.L", "right_hand": "wrist.R"}
SOLE_BAND_M = 0.015  # sole points: foot vertices within this of the rest sole (min z)
OBJECT_SAMPLES = 256  # surface samples added to an object's vertices (deterministic)
CONTACT_EPS_M = 1e-9  # depths below this are round-off of points lying on a surface


# ---- skinning -------------------------------------------------------------------------------


def dominant_bone(character: CharacterModel) -> np.ndarray:
    """(V,) the bone with the largest skinning weight of each vertex."""
    k = np.argmax(character.skin_bone_weights, axis=1)
    return character.skin_bone_indices[np.arange(len(k)), k]


def bone_vertices(character: CharacterModel, bone: str) -> np.ndarray:
    """Indices of the vertices skinned mainly to ``bone``."""
    return np.flatnonzero(dominant_bone(character) == character.bone_names.index(bone))


def sole_vertices(character: CharacterModel, bone: str, band: float = SOLE_BAND_M) -> np.ndarray:
    """Foot vertices within ``band`` of the foot's lowest rest point."""
    idx = bone_vertices(character, bone)
    z = character.vertices[idx, 2]
    return idx[z <= z.min() + band]


def skin(character: CharacterModel, bones_w: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Linear blend skinning of vertices ``idx`` (all by default) for every frame -> (T,V,3).

    One matrix product for all frames: x_v(t) = sum_j w_vj [v_v 1] (B_j(t) B_j^-1)^T."""
    idx = np.arange(len(character.vertices)) if idx is None else np.asarray(idx)
    T, J = bones_w.shape[:2]
    weights = np.zeros((len(idx), J))
    np.add.at(weights, (np.repeat(np.arange(len(idx)), character.skin_bone_indices.shape[1]),
                        character.skin_bone_indices[idx].reshape(-1)), character.skin_bone_weights[idx].reshape(-1))
    vh = np.concatenate([character.vertices[idx], np.ones((len(idx), 1))], axis=1)
    A = (weights[:, :, None] * vh[:, None, :]).reshape(len(idx), J * 4)
    rel = bones_w @ np.linalg.inv(character.bone_rest)  # (T,J,4,4)
    R = np.swapaxes(rel[:, :, :3, :], -1, -2).reshape(T, J * 4, 3)  # per bone: 4x3 blocks
    return (A @ np.moveaxis(R, 0, 1).reshape(J * 4, T * 3)).reshape(len(idx), T, 3).swapaxes(0, 1)


# ---- feet -----------------------------------------------------------------------------------


def foot_metrics(sole: np.ndarray, contact: np.ndarray, fps: float, geometry: SceneGeometry) -> dict:
    """Skating (mean horizontal sole speed over consecutive stance frames) and sinking (deepest
    sole point below the support) of one foot; sole (T,S,3), contact (T,) bool."""
    speed = np.linalg.norm(np.diff(sole[..., :2], axis=0), axis=2).mean(axis=1) * fps  # (T-1,)
    planted = contact[1:] & contact[:-1]
    T, S = sole.shape[:2]
    pts = sole.reshape(-1, 3)
    sink = (geometry.support_height(pts[:, :2], pts[:, 2]) - pts[:, 2]).reshape(T, S).max(axis=1)
    out = {"stance_frames": int(contact.sum()), "skate_max_m_s": 0.0, "skate_mean_m_s": 0.0, "skate_frame": -1,
           "below_support_max_m": 0.0, "below_support_all_frames_max_m": max(float(sink.max()), 0.0)}
    if planted.any():
        k = int(np.argmax(np.where(planted, speed, -1.0)))
        out.update(skate_max_m_s=float(speed[k]), skate_mean_m_s=float(speed[planted].mean()), skate_frame=k + 1)
    if contact.any():
        out["below_support_max_m"] = max(float(sink[contact].max()), 0.0)
    return out


# ---- hands ----------------------------------------------------------------------------------


def hand_metrics(hand: np.ndarray, channel: str, gt: GroundTruth, geometry: SceneGeometry) -> dict:
    """Distance to the touched object while in contact, and the deepest penetration into any
    object in any frame; hand (T,H,3) skinned hand vertices."""
    c = gt.contact_names.index(channel)
    touching = gt.contact[:, c] & (gt.contact_object[:, c] >= 0)
    dist = np.zeros(gt.frames)
    depth, depth_obj = np.zeros(gt.frames), np.full(gt.frames, -1)
    for t in range(gt.frames):
        for o, name in enumerate(gt.object_names):
            pos, quat = gt.object_pos[t, o], gt.object_quat[t, o]
            target = touching[t] and gt.contact_object[t, c] == o
            if not target and not _near_box(geometry, name, pos, quat, hand[t]):
                continue
            d, p = geometry.object_contact(name, pos, quat, hand[t])
            if target:
                dist[t] = d
            if p > depth[t]:
                depth[t], depth_obj[t] = p, o
    k = int(np.argmax(depth))
    hit = depth[k] > CONTACT_EPS_M
    out = {"contact_frames": int(touching.sum()), "distance_max_m": 0.0, "distance_frame": -1,
           "penetration_max_m": float(depth[k]), "penetration_frame": k if hit else -1,
           "penetration_object": gt.object_names[depth_obj[k]] if hit else ""}
    if touching.any():
        k = int(np.argmax(np.where(touching, dist, -1.0)))
        out.update(distance_max_m=float(dist[k]), distance_frame=k)
    return out


def _near_box(geometry: SceneGeometry, name: str, pos: np.ndarray, quat: np.ndarray, points: np.ndarray) -> bool:
    """Whether any point lies within the object's local bounding box (could be inside it)."""
    lo, hi = geometry.object_mesh(name).bounds
    local = (points - pos) @ matrices_from_quats(quat)
    return bool(np.any(np.all((local >= lo) & (local <= hi), axis=1)))


# ---- objects --------------------------------------------------------------------------------


def object_points(geometry: SceneGeometry, name: str) -> np.ndarray:
    """Vertices plus deterministic surface samples of an object's visual mesh (body frame)."""
    mesh = geometry.object_mesh(name)
    samples, _ = trimesh.sample.sample_surface(mesh, OBJECT_SAMPLES, seed=0)
    return np.concatenate([np.asarray(mesh.vertices), samples])


def object_metrics(o: int, gt: GroundTruth, geometry: SceneGeometry) -> dict:
    """Float above the support while not held, and penetration into the static world."""
    name = gt.object_names[o]
    local = object_points(geometry, name)
    Tw = transforms(gt.object_pos[:, o], gt.object_quat[:, o])  # (T,4,4)
    pts = np.einsum("tij,pj->tpi", Tw[:, :3, :3], local) + Tw[:, None, :3, 3]  # (T,P,3)
    flat = pts.reshape(-1, 3)
    gap = (flat[:, 2] - geometry.support_height(flat[:, :2], flat[:, 2])).reshape(pts.shape[:2]).min(axis=1)
    depth, owner = geometry.deepest(flat)
    depth = depth.reshape(pts.shape[:2])
    free = ~gt.object_held[:, o].astype(bool)
    out = {"free_frames": int(free.sum()), "float_max_m": 0.0, "float_frame": -1}
    if free.any():
        k = int(np.argmax(np.where(free, gap, -np.inf)))
        out.update(float_max_m=max(float(gap[k]), 0.0), float_frame=k)
    worst = int(np.argmax(depth))
    hit = depth.max() > CONTACT_EPS_M
    out.update(penetration_max_m=float(depth.max()), penetration_frame=worst // depth.shape[1] if hit else -1,
               penetration_item=geometry.static_names[owner.reshape(-1)[worst]] if hit else "")
    return out


# ---- body -----------------------------------------------------------------------------------


def body_penetration(character: CharacterModel, bones_w: np.ndarray, geometry: SceneGeometry,
                     chunk: int = 64) -> dict:
    """Deepest character vertex inside the static world, with its frame and item (all vertices,
    skinned ``chunk`` frames at a time to bound memory)."""
    V = len(character.vertices)
    best, where, per_item = 0.0, (-1, -1), {}
    for t0 in range(0, bones_w.shape[0], chunk):
        depth, owner = geometry.deepest(skin(character, bones_w[t0:t0 + chunk]).reshape(-1, 3))
        k = int(np.argmax(depth))
        if depth[k] > max(best, CONTACT_EPS_M):
            best, where = float(depth[k]), (t0 + k // V, int(owner[k]))
        for i in np.unique(owner[depth > CONTACT_EPS_M]):
            name = geometry.static_names[i]
            per_item[name] = max(per_item.get(name, 0.0), float(depth[owner == i].max()))
    return {"body_penetration_max_m": best, "body_penetration_frame": where[0],
            "body_penetration_item": geometry.static_names[where[1]] if where[1] >= 0 else "",
            "body_penetration_items": per_item}


# ---- smoothness and ranges --------------------------------------------------------------------


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of wxyz quaternions (..., 4)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def rotation_vectors(q: np.ndarray) -> np.ndarray:
    """wxyz quaternions (..., 4) -> rotation vectors (..., 3) (axis times angle, angle <= pi)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(s, q[..., :1])
    return np.where(s > 1e-12, v * angle / np.maximum(s, 1e-12), 2 * v)


def angular_velocity(q: np.ndarray, fps: float) -> np.ndarray:
    """(T-1,J,3) angular velocity (parent frame) from rotations q (T,J,4) between frames."""
    conj = q[:-1] * np.array([1.0, -1.0, -1.0, -1.0])
    return rotation_vectors(quat_mul(q[1:], conj)) * fps


def smoothness(gt: GroundTruth) -> dict:
    """Peak joint angular speed/acceleration (with the bone) and root linear speed/acceleration."""
    w = angular_velocity(gt.joint_rot, gt.fps)
    speed = np.linalg.norm(w, axis=-1)
    accel = np.linalg.norm(np.diff(w, axis=0), axis=-1) * gt.fps
    v = np.diff(gt.root_pos, axis=0) * gt.fps
    a = np.diff(v, axis=0) * gt.fps
    out = {"joint_speed_max_rad_s": 0.0, "joint_speed_bone": "", "joint_speed_frame": -1,
           "joint_accel_max_rad_s2": 0.0, "joint_accel_bone": "", "joint_accel_frame": -1,
           "root_speed_max_m_s": float(np.linalg.norm(v, axis=1).max()) if len(v) else 0.0,
           "root_accel_max_m_s2": float(np.linalg.norm(a, axis=1).max()) if len(a) else 0.0}
    for key, arr, offset in (("joint_speed", speed, 1), ("joint_accel", accel, 1)):
        if arr.size:
            t, j = np.unravel_index(int(np.argmax(arr)), arr.shape)
            unit = "rad_s" if key == "joint_speed" else "rad_s2"
            out.update({f"{key}_max_{unit}": float(arr[t, j]), f"{key}_bone": gt.bone_names[j],
                        f"{key}_frame": int(t + offset)})
    return out


def hinge_flexion(gt: GroundTruth, character: CharacterModel, hinge: str) -> np.ndarray:
    """(T,) signed flexion angle (degrees) of a hinge joint from the gt joint positions.

    The sign comes from the hinge axis carried by the proximal bone: cross(proximal segment,
    rest flexion direction) in the rest pose, rotated with that bone."""
    prox, mid, dist, flex_dir = HINGES[hinge]
    u = gt.joint(mid) - gt.joint(prox)
    f = gt.joint(dist) - gt.joint(mid)
    rest_pos = character.bone_rest[:, :3, 3]
    child = int(np.argmin(np.linalg.norm(rest_pos - character.joints[mid], axis=1)))
    bone = int(character.bone_parents[child])
    axis_rest = np.cross(character.joints[mid] - character.joints[prox], flex_dir)
    axis_rest /= np.linalg.norm(axis_rest)
    R = matrices_from_quats(gt.bone_quat_w[:, bone]) @ character.bone_rest[bone, :3, :3].T  # (T,3,3)
    axis = R @ axis_rest
    c = np.cross(u, f)
    angle = np.degrees(np.arctan2(np.linalg.norm(c, axis=1), np.einsum("ti,ti->t", u, f)))
    return np.where(np.einsum("ti,ti->t", c, axis) < 0, -angle, angle)


def joint_ranges(gt: GroundTruth, character: CharacterModel) -> dict:
    """Knee and elbow flexion extremes and the number of (frame, joint) range violations."""
    out: dict = {"joint_range_violations": 0}
    for kind, (lo, hi) in JOINT_RANGES_DEG.items():
        flex = [hinge_flexion(gt, character, h) for h in HINGES if h.endswith(kind)
                and all(j in gt.joint_names for j in HINGES[h][:3])]
        if not flex:
            continue
        a = np.stack(flex)
        out[f"{kind}_flexion_max_deg"] = float(a.max())
        out[f"{kind}_flexion_min_deg"] = float(a.min())
        out["joint_range_violations"] += int(((a < lo - RANGE_TOL_DEG) | (a > hi + RANGE_TOL_DEG)).sum())
    return out


# ---- all together ------------------------------------------------------------------------------


def consistency_metrics(gt: GroundTruth, character: CharacterModel, geometry: SceneGeometry) -> dict:
    """Every metric of the module as a JSON-ready dict (see LIMITS for the bounded ones)."""
    bones_w = gt.bone_world()
    out: dict = {"frames": gt.frames, "fps": float(gt.fps)}

    feet = {ch: foot_metrics(skin(character, bones_w, sole_vertices(character, b)), gt.contact_of(ch).astype(bool),
                             gt.fps, geometry)
            for ch, b in FEET.items() if ch in gt.contact_names}
    out["feet"] = feet
    out["foot_skate_max_m_s"] = max((f["skate_max_m_s"] for f in feet.values()), default=0.0)
    planted = [f["skate_mean_m_s"] for f in feet.values() if f["stance_frames"] > 1]
    out["foot_skate_mean_m_s"] = float(np.mean(planted)) if planted else 0.0
    out["foot_below_support_max_m"] = max((f["below_support_max_m"] for f in feet.values()), default=0.0)
    out["foot_below_support_all_frames_max_m"] = max((f["below_support_all_frames_max_m"] for f in feet.values()), default=0.0)

    hands = {ch: hand_metrics(skin(character, bones_w, bone_vertices(character, b)), ch, gt, geometry)
             for ch, b in HANDS.items() if ch in gt.contact_names}
    out["hands"] = hands
    out["hand_object_distance_max_m"] = max((h["distance_max_m"] for h in hands.values()), default=0.0)
    out["hand_object_penetration_max_m"] = max((h["penetration_max_m"] for h in hands.values()), default=0.0)

    objects = {name: object_metrics(o, gt, geometry) for o, name in enumerate(gt.object_names)}
    out["objects"] = objects
    out["object_float_max_m"] = max((v["float_max_m"] for v in objects.values()), default=0.0)
    out["object_penetration_max_m"] = max((v["penetration_max_m"] for v in objects.values()), default=0.0)

    out.update(body_penetration(character, bones_w, geometry))
    out.update(smoothness(gt))
    out.update(joint_ranges(gt, character))
    return _rounded(out)


def check(metrics: dict) -> list[str]:
    """Readable sentences for every metric above its bound in LIMITS (empty: all within)."""
    where = {
        "foot_skate_max_m_s": lambda m: _worst(m.get("feet", {}), "skate_max_m_s", "skate_frame"),
        "foot_below_support_max_m": lambda m: _worst(m.get("feet", {}), "below_support_max_m"),
        "hand_object_distance_max_m": lambda m: _worst(m.get("hands", {}), "distance_max_m", "distance_frame"),
        "hand_object_penetration_max_m": lambda m: _worst(m.get("hands", {}), "penetration_max_m", "penetration_frame"),
        "object_float_max_m": lambda m: _worst(m.get("objects", {}), "float_max_m", "float_frame"),
        "object_penetration_max_m": lambda m: _worst(m.get("objects", {}), "penetration_max_m", "penetration_frame"),
        "body_penetration_max_m": lambda m: f" ({m.get('body_penetration_item', '?')}, frame {m.get('body_penetration_frame', '?')})",
        "joint_speed_max_rad_s": lambda m: f" ({m.get('joint_speed_bone', '?')}, frame {m.get('joint_speed_frame', '?')})",
        "joint_accel_max_rad_s2": lambda m: f" ({m.get('joint_accel_bone', '?')}, frame {m.get('joint_accel_frame', '?')})",
        "joint_range_violations": lambda m: " (knee flexion {}..{} deg, elbow {}..{} deg)".format(
            m.get("knee_flexion_min_deg"), m.get("knee_flexion_max_deg"), m.get("elbow_flexion_min_deg"),
            m.get("elbow_flexion_max_deg")),
    }
    problems = []
    for key, bound in LIMITS.items():
        value = metrics.get(key)
        if value is not None and value > bound:
            problems.append(f"{key} = {value:g} exceeds {bound:g}{where[key](metrics)}")
    return problems


def sequence_metrics(sequence_dir: Path) -> dict:
    """consistency_metrics for a sequence directory with scene/ and video/gt.npz."""
    sequence_dir = Path(sequence_dir)
    with np.load(sequence_dir / "scene" / "character.npz") as z:
        character = CharacterModel.from_arrays(z)
    gt = GroundTruth.load(sequence_dir / "video" / "gt.npz")
    return consistency_metrics(gt, character, SceneGeometry.load(sequence_dir / "scene"))


def _worst(group: dict, key: str, frame_key: str | None = None) -> str:
    if not group:
        return ""
    name = max(group, key=lambda n: group[n].get(key, 0.0))
    frame = f", frame {group[name][frame_key]}" if frame_key else ""
    return f" ({name}{frame})"


def _r(x: float) -> float:
    return float(round(float(x), 6))


def _rounded(value):
    """Floats to 6 decimals (micrometres, micro-radians) throughout a nested dict."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return _r(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    return value
