"""One planner per template task. Each appends walking, reaching and object keys to an Animator."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial import ConvexHull

from grail.errors import GrailError
from grail.video.body import rot_z
from grail.rotations import homogeneous
from grail.video.gait import minjerk
from grail.video.tasks import Animator, face_aligned_yaw, fwd_of, left_of
from grail.video.world import Body, item_transform


CARRY_REACH = 0.88  # share of the arm's length a carried object's grasp may use


def _focus(a: Animator, kind: str = "objects") -> Body:
    spec = a.world.spec
    bodies = a.world.objects if kind == "objects" else a.world.furniture
    if spec.focus in bodies:
        return bodies[spec.focus]
    if not bodies:
        raise GrailError(f"the task {spec.task!r} needs {kind}", field=kind)
    return next(iter(bodies.values()))


def _look(a: Animator, target: np.ndarray, t0: float = 0.0, blend: float = 0.6) -> None:
    """Gaze at `target` from t0 on, moving the gaze point there over `blend` s (from straight
    ahead when the character was not looking at anything)."""
    tl = a.tl
    k = tl.frame_of(t0)
    prev = tl.look_at[k].copy()
    if k == 0 or not np.any(prev):
        prev = np.r_[a.centre[:2] + 2.0 * fwd_of(a.yaw)[:2], a.centre[2] + 1.0]
    u = minjerk((tl.times - t0) / blend)[:, None]
    sel = tl.times >= t0
    tl.look_at[sel] = (prev + u * (np.asarray(target, float) - prev))[sel]


def approach_yaw(a: Animator, target_xy: np.ndarray) -> float:
    d = target_xy - a.centre[:2]
    return float(np.arctan2(d[1], d[0]) + np.deg2rad(a.style.approach_deg))


def stand_off(a: Animator, obj: Body, yaw: float, clearance: float) -> np.ndarray:
    """Pelvis position in front of an object (and of the furniture it stands on)."""
    F = fwd_of(yaw)
    c = a.object_centre(obj)
    support = a.world.support_of(obj)
    reach_back = obj.extent_along(-F, c)
    if support is not None:
        top = support.world[support.world[:, 2] > support.top - 0.05]
        reach_back = max(reach_back, float(np.max((top - c) @ -F)))
    return c[:2] - F[:2] * (reach_back + clearance)


def reachable_stand(a: Animator, obj: Body, yaw: float, clearance: float) -> np.ndarray:
    """The nearest stance in front of the object from which a posture reaches it with the legs
    clear of the furniture: at a low stool the knees of a squat need room, so step back."""
    g = a.plan_grasp(obj.item.name, yaw, register=False)
    for extra in (0.0, 0.05, 0.1, 0.15):
        stand = stand_off(a, obj, yaw, clearance + extra)
        feet = a.planner.stance(stand, yaw)
        try:
            a.posture_for(g, stand, yaw, float(np.mean([f.pos[2] for f in feet])), feet=feet)
        except GrailError:
            continue
        return stand
    return stand_off(a, obj, yaw, clearance)  # let the final check report it


def pick_up(a: Animator, obj: Body, carry: bool = True) -> None:
    """Walk to the object, reach, grasp, lift and bring it in front of the chest."""
    support = a.world.support_of(obj)
    c = a.object_centre(obj)
    yaw = face_aligned_yaw(obj, c, approach_yaw(a, c[:2]))
    clearance = a.style.body_clearance if support is not None else 0.2 + 0.04 * a.rng.random()
    stand = reachable_stand(a, obj, yaw, clearance)
    a.go_to(stand, yaw, tolerance_deg=20)
    _look(a, c, 0.0)
    yaw = a.yaw
    g = a.plan_grasp(obj.item.name, yaw)
    a.grasp_yaw[obj.item.name] = yaw
    bend, drop = a.posture_for(g, a.centre[:2], yaw, a.centre[2])
    a.reach_and_grasp(g, 0.6 + 0.3 * bend, bend, drop)
    t = a.tl.now
    lifted = obj.T.copy()
    lifted[2, 3] += a.style.lift
    a.move_object(obj.item.name, t, "world", obj.T.copy())
    a.tl.phase("lift")
    t_lift = t + 0.45 + 0.2 * drop / 0.3
    a.move_object(obj.item.name, t_lift, "chest_at", lifted)
    a.tl.now = t_lift
    if carry:
        a.tl.phase("carry")
        t_carry = t_lift + 0.6
        for name in ("pelvis_pitch", "spine_pitch", "drop"):
            a.tl.key(name, t_lift, a.tl.tracks[name].value_at(t_lift))
            a.tl.key(name, t_carry, 0.0)
        a.carry[obj.item.name] = carry_pose(a, obj, g, yaw)
        a.move_object(obj.item.name, t_carry, "chest", a.carry[obj.item.name])
        a.tl.now = t_carry


def carry_pose(a: Animator, obj: Body, g, yaw: float) -> np.ndarray:
    """Object pose relative to the chest (upright, keeping its heading relative to the body): in
    front of the chest with two hands; with one hand, where that hand hangs comfortably forward
    of its shoulder, at three quarters of the arm's length."""
    R_body = rot_z(-yaw) @ obj.T[:3, :3]
    if len(g.sides) == 2:
        c = a.object_centre(obj)
        depth = obj.extent_along(-fwd_of(yaw), c)
        centre_offset = obj.T[:3, 3] - c  # body origin relative to the bounding-box centre
        return homogeneous(R_body, _two_hand_carry_centre(a, g, R_body, depth) + rot_z(-yaw) @ centre_offset)
    side = "LR"[g.sides[0]]
    rig = a.rig
    shoulder = rig.arm[side]["shoulder"] - rig.sk.rest_pos("spine01")  # chest frame = rest world axes
    palm = shoulder + rig.arm_length * np.array([0.45, 0.0, -0.6])
    return homogeneous(R_body, palm - R_body @ g.local[g.sides[0]][:3, 3])


def _two_hand_carry_centre(a: Animator, g, R_body: np.ndarray, depth: float) -> np.ndarray:
    """Where (chest frame) the centre of an object held in both hands goes: its back face 17 cm
    in front of the chest and its centre 17 cm below it, or the nearest place to that from which
    both wrists are within CARRY_REACH of their shoulders (a wide box is held closer and higher)."""
    rig = a.rig
    chest = rig.sk.rest_pos("spine01")
    backs, heights = np.meshgrid(np.linspace(0.12, 0.24, 13), np.linspace(-0.32, 0.0, 17))
    centres = np.c_[backs.ravel() + depth, np.zeros(backs.size), heights.ravel()]
    worst = np.zeros(len(centres))
    for s in g.sides:
        arm = rig.arm["LR"[s]]
        R_hand = R_body @ g.local[s][:3, :3]
        wrist = centres + R_body @ g.local[s][:3, 3] - R_hand @ arm["palm_offset"]
        worst = np.maximum(worst, np.linalg.norm(wrist - (arm["shoulder"] - chest), axis=1) / rig.arm_length)
    cost = (backs.ravel() - 0.17) ** 2 + (heights.ravel() + 0.17) ** 2
    ok = worst <= CARRY_REACH
    best = int(np.argmin(np.where(ok, cost, np.inf))) if ok.any() else int(np.argmin(worst))
    return centres[best]


#: How far a put-down object's footprint stays inside the edge of the top it is put on.
TOP_MARGIN_M = 0.02


def onto_top(spot: np.ndarray, centre: np.ndarray, footprint: np.ndarray, top: np.ndarray,
             margin: float = TOP_MARGIN_M) -> np.ndarray:
    """The spot (2,) moved toward the top's centre (2,) until the footprint (N,2, about the spot)
    lies inside the top's outline (M,2 points) by `margin`: the walk-up spot is chosen before the
    body's final heading turns the object, and a wide object or a narrow top would otherwise be
    set down overhanging the edge, held up by nothing (place_table s0: 6.9 cm past it)."""
    planes = ConvexHull(top).equations  # n . x + d <= 0 inside, n unit
    for share in np.linspace(1.0, 0.0, 41):
        moved = centre + share * (spot - centre)
        if np.all((footprint + moved) @ planes[:, :2].T + planes[:, 2] <= -margin):
            return moved
    return centre


def place_on(a: Animator, obj: Body, target: Body) -> None:
    """Carry the held object to a furniture top and put it down there, upright."""
    name = obj.item.name
    top = target.world[target.world[:, 2] > target.top - 0.01]
    centre = 0.5 * (top.min(0) + top.max(0))
    yaw = approach_yaw(a, centre[:2])
    F = fwd_of(yaw)
    edge = float(np.max((top - centre) @ -F))
    inset = 0.12 + 0.06 * a.rng.random()
    g = next(g for g in a.grasps if g.obj == name)
    spot = centre[:2] - F[:2] * (edge - inset)
    if len(g.sides) == 1:  # one hand puts it down on its own side
        spot = spot + left_of(yaw)[:2] * (0.1 if g.sides[0] == 0 else -0.1)
    _look(a, np.r_[spot, target.top], a.tl.now)
    a.go_to(spot - F[:2] * (inset + a.style.body_clearance + 0.05), yaw, tolerance_deg=20)
    yaw = a.yaw
    R = rot_z(yaw - a.grasp_yaw[name]) @ obj.T[:3, :3]
    bbox_offset = R @ (a.object_centre(obj) - obj.T[:3, 3])
    footprint = (obj.local @ R.T)[:, :2] - bbox_offset[:2]  # about the spot, once turned
    spot = onto_top(spot, centre[:2], footprint, top[:, :2])
    height = obj.T[2, 3] - obj.world[:, 2].min()
    T = homogeneous(R, np.r_[spot - bbox_offset[:2], target.top + height + 0.001])
    a.tl.phase("place")
    t0 = a.tl.now
    above = T.copy()
    above[2, 3] += 0.05
    a.move_object(name, t0, "chest", a.carry[name])
    bend, drop = a.posture_for(g, a.centre[:2], yaw, a.centre[2], T_obj=T, limit=0.88)
    for track, v in (("pelvis_pitch", 0.5 * bend), ("spine_pitch", 0.5 * bend), ("drop", drop)):
        a.tl.key(track, t0, 0.0)
        a.tl.key(track, t0 + 0.6, v)
    a.move_object(name, t0 + 0.6, "world", above)
    a.move_object(name, t0 + 0.9, "world", T)
    a.tl.now = t0 + 0.9


def plan_pickup(a: Animator) -> None:
    obj = _focus(a)
    pick_up(a, obj)
    a.tl.phase("hold")


def plan_place(a: Animator) -> None:
    obj = _focus(a)
    dest = [b for n, b in a.world.furniture.items() if n != obj.item.support]
    if not dest:
        raise GrailError("place needs a second furniture piece to put the object on", field="furniture")
    pick_up(a, obj)
    g = a.grasps[-1]
    place_on(a, obj, dest[-1])
    a.release(g)
    t = a.tl.now  # hands free: stand up straight again
    for name in ("pelvis_pitch", "spine_pitch", "drop"):
        a.tl.key(name, t, a.tl.tracks[name].value_at(t))
        a.tl.key(name, t + 0.7, 0.0)
    a.tl.now = t + 0.7
    a.tl.phase("stand")


def plan_push(a: Animator) -> None:
    obj = _focus(a)
    c = a.object_centre(obj)
    yaw = approach_yaw(a, c[:2])
    a.style.approach_deg = 0.0
    F = fwd_of(yaw)
    stand = c[:2] - F[:2] * (obj.extent_along(-F, c) + 0.36)
    a.go_to(stand, yaw)
    yaw = a.yaw
    # a box below the hips is pushed with the palms tilted onto its top back edge, a taller one
    # with the palms flat on its back face near the top
    top = obj.world[:, 2].max()
    tilt = float(np.clip((a.rig.pelvis_height - top) / 0.25, 0.0, 1.0)) * np.deg2rad(50)
    h = top - (0.07 if tilt < np.deg2rad(20) else 0.015)
    g = a.plan_grasp(obj.item.name, yaw, sides=[0, 1], palm_forward=True, contact_height=h, palm_down=tilt)
    # elbows kept bent (reach <= 0.85): walking moves the shoulders a few cm against the box;
    # a shallow squat only (the legs keep stepping)
    bend, drop = a.posture_for(g, a.centre[:2], yaw, a.centre[2], max_drop=0.12, limit=0.85)
    a.reach_and_grasp(g, 0.8, bend, drop)
    a.tl.phase("push")
    t0 = a.tl.now
    base = homogeneous(rot_z(yaw), np.r_[a.centre[:2], 0.0])
    rel = np.linalg.inv(base) @ obj.T
    a.move_object(obj.item.name, t0, "world", obj.T.copy())  # at rest until the push starts
    a.move_object(obj.item.name, t0 + 0.02, "body_xy", rel)
    distance = 0.45 + 0.35 * a.rng.random()
    slow = a.planner.p
    old = (slow.step_length, slow.step_period)
    slow.step_length, slow.step_period = 0.24, 0.5
    g_walk = a.planner.walk(a.tl.feet, a.centre[:2] + F[:2] * distance, t0, a.style.first_foot)
    slow.step_length, slow.step_period = old
    a.tl.add_gait(g_walk)
    a.tl.now += 0.1
    a.release(g, duration=0.9)  # the hands turn back from palms-forward: a large wrist rotation
    for name in ("pelvis_pitch", "spine_pitch", "drop"):
        a.tl.key(name, a.tl.now - 0.3, a.tl.tracks[name].value_at(a.tl.now - 0.3))
        a.tl.key(name, a.tl.now + 0.3, 0.0)
    a.tl.phase("stand")


def plan_sit(a: Animator) -> None:
    chair = _focus(a, "furniture")
    R = chair.T[:3, :3]
    front = R @ np.array([1.0, 0.0, 0.0])
    seat_h = float(chair.item.params.get("seat_height", chair.top))
    seat_x = float(chair.item.params.get("seat_x", 0.32))
    seat = chair.T[:3, 3] + R @ np.array([0.05 * seat_x, 0.0, 0.0])
    stand = seat[:2] + front[:2] * (0.5 * seat_x + 0.14)
    _check_room(a, chair, stand)
    sit_yaw = float(np.arctan2(front[1], front[0]))
    a.go_to(stand)  # facing the chair, then turn around in place: a walk that turns swings the knees into it
    a.turn_to(sit_yaw)
    _look(a, np.r_[stand + front[:2] * 2.0, 0.8], a.tl.now)
    a.tl.phase("sit")
    t0 = a.tl.now
    back = float(np.dot(a.centre[:2] - seat[:2], front[:2]))
    drop = a.rig.pelvis_height - 0.015 - (seat_h + a.seat_offset) + (a.centre[2])
    for name, mid, end in (("pelvis_pitch", 0.55, 0.15), ("spine_pitch", 0.45, 0.05), ("drop", 0.45 * drop, drop),
                           ("shift", -0.4 * back, -back)):
        a.tl.key(name, t0, 0.0)
        a.tl.key(name, t0 + 0.55, mid)
        a.tl.key(name, t0 + 1.1, end)
    a.pelvis_contact.append((t0 + 1.1, np.inf))
    a.tl.now = t0 + 1.1
    if a.tl.duration - a.tl.now > 1.6 and a.rng.random() < 0.5:
        a.wait(0.3)
        t1 = a.tl.now
        a.pelvis_contact[-1] = (t0 + 1.1, t1)
        a.tl.phase("stand_up")
        for name, mid in (("pelvis_pitch", 0.6), ("spine_pitch", 0.45), ("drop", 0.5 * drop), ("shift", -0.5 * back)):
            a.tl.key(name, t1, a.tl.tracks[name].value_at(t1))
            a.tl.key(name, t1 + 0.55, mid)
            a.tl.key(name, t1 + 1.1, 0.0)
        a.tl.now = t1 + 1.1
    a.tl.phase("sit" if len(a.pelvis_contact) and np.isinf(a.pelvis_contact[-1][1]) else "stand")


def _check_room(a: Animator, chair: Body, stand: np.ndarray) -> None:
    """Something in front of the seat (a wall, other furniture, a step) leaves no room to sit."""
    for name, other in a.world.furniture.items():
        if name == chair.item.name:
            continue
        w = other.world
        if np.min(np.linalg.norm(w[:, :2] - stand, axis=1)) < 0.3:
            raise GrailError(f"the chair faces {name}: no room to stand up in front of it", field="furniture")
    pts = stand + np.array([[dx, dy] for dx in (-0.2, 0, 0.2) for dy in (-0.2, 0, 0.2)])
    h = a.world.ground.height(pts)
    if np.ptp(h) > 0.01 or abs(h.mean()) > 0.01:
        raise GrailError("the chair faces a step or wall: no flat floor in front of it", field="furniture")


def plan_locomotion(a: Animator) -> None:
    """Walk along the terrain's direction as far as the scene (and the clip) allows."""
    spec = a.world.spec
    if not spec.terrain:
        raise GrailError(f"the task {spec.task!r} needs terrain", field="terrain")
    t = spec.terrain[0]
    body_T = item_transform(t)
    axis = body_T[:3, 0]
    yaw = float(np.arctan2(axis[1], axis[0]))
    p = t.params
    ends = {"stairs_up": (p.get("steps", 3) - 1) * p.get("run", 0.3) + p.get("landing", 0.6) - 0.3,
            "stairs_down": p.get("landing", 1.0) + (p.get("steps", 3) - 1) * p.get("run", 0.3) + 0.5,
            "curb": p.get("depth", 1.2) - 0.3, "slope": p.get("length", 1.5) + p.get("landing", 0.5) - 0.3}
    end = body_T[:3, 3] + axis * ends.get(t.kind, 1.0)
    start = a.centre
    along = float(np.dot(end[:2] - start[:2], axis[:2]))
    if along < 0.3:
        raise GrailError("the character starts past the end of the terrain: nothing to walk", field="character.placement")
    goal = start[:2] + axis[:2] * along
    _look(a, np.r_[goal + axis[:2] * 1.5, 0.3], 0.0)
    a.go_to(goal, yaw)
    a.tl.phase("stand")


PLANS: dict[str, Callable[[Animator], None]] = {
    "pickup_table": plan_pickup,
    "pickup_ground": plan_pickup,
    "place_table": plan_place,
    "push_box": plan_push,
    "sit_chair": plan_sit,
    "stairs_up": plan_locomotion,
    "stairs_down": plan_locomotion,
    "curb_step": plan_locomotion,
    "slope_walk": plan_locomotion,
}
