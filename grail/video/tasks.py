"""Task planners: what the character does in each template task, as footsteps and keyframes.

Every planner works from the scene only (object and furniture geometry, terrain heights) and the
seed (speed, approach angle, stance, hand choice, timing), and raises a one-line GrailError when
the task cannot be done (goal unreachable, object too heavy or too large, no room to sit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grail.errors import GrailError
from grail.video.body import BodyRig, MotionChannels, PoseResult, rot_z
from grail.video.gait import Footprint, FootPose, GaitParams, GaitPlanner, minjerk, wrap
from grail.video.ik import frame
from grail.video.path import PASS_CLEARANCE_M, Footprint2D, RoutePlanner
from grail.video.timeline import Timeline, Track
from grail.rotations import homogeneous, matrix_from_quat
from grail.video.world import Body, SceneWorld, yaw_of

ONE_HAND_MAX_WIDTH = 0.10  # m across the grasp
ONE_HAND_MAX_MASS = 1.0  # kg; a G1-sized child lifts about this in one hand
TWO_HAND_MAX_WIDTH = 0.45
TWO_HAND_MAX_MASS = 3.0
REACH_LIMIT = 0.95  # share of the arm length a grasp may use
LEG_CLEARANCE_M = 0.075  # thigh and shin axes to furniture while reaching: their radius plus a margin
HAND_ARC_M = 0.15  # a hand going to an object on furniture rises by this mid-way, clearing the top's edge
MAX_WALK_SPEED = 1.05  # m/s: a brisk walk for a G1-sized child; a plan that runs late walks faster, up to this
APPROACH_M = 0.35  # straight final stretch of a walk that ends facing something
WALK_TURN = np.deg2rad(60)  # heading change a walk may make on its first or last steps (more: turn in place)


@dataclass
class Style:
    """Per-seed variety."""

    speed: float
    step_length: float
    stance_width: float
    approach_deg: float
    hand: int  # preferred hand for one-handed grasps: 0 left, 1 right
    first_foot: int
    pause: float  # s of hesitation before acting
    body_clearance: float  # m between the belly and furniture when reaching
    lift: float  # m an object is lifted off its support

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Style":
        return cls(speed=float(rng.uniform(0.62, 0.85)), step_length=float(rng.uniform(0.3, 0.37)),
                   stance_width=float(rng.uniform(0.17, 0.23)), approach_deg=float(rng.uniform(-10, 10)),
                   hand=int(rng.integers(2)), first_foot=int(rng.integers(2)), pause=float(rng.uniform(0.05, 0.25)),
                   body_clearance=float(rng.uniform(0.16, 0.2)), lift=float(rng.uniform(0.08, 0.14)))


@dataclass
class ObjectKey:
    """A key of an object's trajectory: fixed in the world, or carried in the pelvis frame."""

    t: float
    frame: str  # "world" | "body" (pelvis yaw frame) | "body_xy" (follows the pelvis in the plane)
    #            | "chest" (T relative to the chest) | "chest_at" (T in the world at t, then moving with the chest)
    T: np.ndarray  # (4,4)


@dataclass
class Grasp:
    obj: str
    sides: list[int]
    local: dict[int, np.ndarray]  # hand palm frame in the object frame (4,4), per side
    palm_dir_local: dict[int, np.ndarray]
    t_grasp: float = 0.0
    t_release: float = np.inf
    gap: dict[int, Track] = field(default_factory=dict)
    arc: float = 0.0  # m the hand's way to and from the grasp rises (over the edge of the support)


def horizontal(v: np.ndarray) -> np.ndarray:
    v = np.array([v[0], v[1], 0.0])
    return v / max(np.linalg.norm(v), 1e-9)


def left_of(yaw: float) -> np.ndarray:
    return np.array([-np.sin(yaw), np.cos(yaw), 0.0])


def fwd_of(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw), np.sin(yaw), 0.0])


class Animator:
    """Shared machinery of all tasks: state, walking, reaching, object trajectories."""

    def __init__(self, world: SceneWorld, rig: BodyRig, seed: int, params: GaitParams | None = None, pace: float = 1.0):
        self.world, self.rig = world, rig
        spec = world.spec
        self.rng = np.random.default_rng([int(seed), 0x9E37])
        self.style = Style.sample(self.rng)
        st = self.style
        p = params or GaitParams()
        p.step_length = st.step_length
        st.speed = min(st.speed * pace, MAX_WALK_SPEED)
        p.step_period = st.step_length / st.speed
        p.stance_width = st.stance_width
        leg = rig.leg["L"]
        fp = Footprint(heel=leg["heel_x"] - 0.005, toe=leg["toe_x"], half_width=leg["half_width"])
        self.planner = GaitPlanner(world.ground, fp, p)
        self.routes = RoutePlanner([Footprint2D.of_points(n, b.world) for n, b in world.furniture.items()])
        c = spec.character.pose
        self.start_yaw = yaw_of(matrix_from_quat(np.asarray(c.quat, float)))
        self.start_xy = np.asarray(c.pos[:2], float)
        feet = []
        for k, s in enumerate(("L", "R")):
            ref = rot_z(self.start_yaw) @ leg_ref(rig, s) + np.r_[self.start_xy, 0.0]
            z = float(world.ground.height(ref[None, :2])[0])
            feet.append(FootPose(np.r_[ref[:2], z], self.start_yaw))
        self.tl = Timeline(rig, self.planner, spec.fps, spec.duration_s, feet)
        self.grasps: list[Grasp] = []
        self.object_keys: dict[str, list[ObjectKey]] = {
            name: [ObjectKey(0.0, "world", b.T.copy())] for name, b in world.objects.items()}
        self.pelvis_contact: list[tuple[float, float]] = []
        self.grasp_yaw: dict[str, float] = {}
        self.carry: dict[str, np.ndarray] = {}
        self._intro()

    @property
    def seat_offset(self) -> float:
        """Height of the pelvis above a seat when sitting: the thigh's radius under the hip."""
        rig, c = self.rig, self.rig.character
        hip, knee = rig.leg["L"]["hip"], rig.leg["L"]["knee"]
        thigh = c.vertices[np.isin(c.skin_bone_indices[:, 0], [rig.i["upperleg01.L"], rig.i["upperleg02.L"]])]
        axis = (knee - hip) / np.linalg.norm(knee - hip)
        rel = thigh - hip
        along = rel @ axis
        radial = np.linalg.norm(rel - along[:, None] * axis, axis=1)
        near = (along > 0.05) & (along < 0.15)
        return float(np.percentile(radial[near], 90)) + 0.005

    # ---- time and state --------------------------------------------------------------------
    def _intro(self) -> None:
        """Frame 0 is the compose render's rest pose; the arms relax over the first 0.4 s."""
        tl, rig = self.tl, self.rig
        z0 = 0.5 * (tl.initial_feet[0].pos[2] + tl.initial_feet[1].pos[2])
        T0 = homogeneous(rot_z(self.start_yaw), np.r_[self.start_xy, z0])
        n = tl.frame_of(0.5) + 1
        for k, s in enumerate(("L", "R")):
            palm = T0[:3, :3] @ rig.arm[s]["palm_point"] + T0[:3, 3]
            tl.hand_pos[k, :n] = palm
            tl.hand_rot[k, :n] = T0[:3, :3]
            tl.hand_weight[k] = Track([(0.0, np.array(1.0)), (0.45, np.array(0.0))])
        tl.tracks["drop"].keys = [(0.0, np.array(tl.height_offset)), (0.4, np.array(0.0))]
        tl.now = 0.25 + self.style.pause

    @property
    def yaw(self) -> float:
        f = self.tl.feet
        return float(np.arctan2(np.sin(f[0].yaw) + np.sin(f[1].yaw), np.cos(f[0].yaw) + np.cos(f[1].yaw)))

    @property
    def centre(self) -> np.ndarray:
        f = self.tl.feet
        return 0.5 * (f[0].pos + f[1].pos)

    def wait(self, seconds: float) -> None:
        self.tl.now += seconds

    # ---- locomotion ------------------------------------------------------------------------
    def turn_to(self, yaw: float) -> None:
        g = self.planner.turn(self.tl.feet, yaw, self.tl.now)
        if g.steps:
            self.tl.phase("turn")
            self.tl.add_gait(g)
            self.tl.now += 0.05

    def go_to(self, xy: np.ndarray, final_yaw: float | None = None, tolerance_deg: float = 8.0) -> None:
        """Walk to a stance centre around the furniture, turning towards `final_yaw` on the last
        steps (up to WALK_TURN) and in place for the rest."""
        xy = np.asarray(xy, float)[:2]
        if np.linalg.norm(xy - self.centre[:2]) > 0.08:
            route = [self.centre[:2], *self._route(xy, final_yaw)]
            first, last = route[1] - route[0], route[-1] - route[-2]
            heading = float(np.arctan2(first[1], first[0]))
            if abs(wrap(heading - self.yaw)) > WALK_TURN:
                self.turn_to(heading)
            end_heading = float(np.arctan2(last[1], last[0]))
            end_yaw = None
            if final_yaw is not None:
                end_yaw = end_heading + float(np.clip(wrap(final_yaw - end_heading), -WALK_TURN, WALK_TURN))
            self.tl.phase("walk")
            g = self.planner.walk(self.tl.feet, xy, self.tl.now, self.style.first_foot, via=route[1:-1], final_yaw=end_yaw)
            self.tl.add_gait(g)
            self.tl.now += 0.05
        if final_yaw is not None and abs(wrap(final_yaw - self.yaw)) > np.deg2rad(tolerance_deg):
            self.turn_to(final_yaw)

    def _route(self, xy: np.ndarray, final_yaw: float | None) -> list[np.ndarray]:
        """Waypoints to xy; with a final heading, the last APPROACH_M are walked along it when
        that stretch is clear (a person lines up with a table before stepping up to it)."""
        start = self.centre[:2]
        if final_yaw is not None and np.linalg.norm(xy - start) > 2 * APPROACH_M:
            before = xy - APPROACH_M * fwd_of(final_yaw)[:2]
            clear = self.routes.clearance(before)[0] >= PASS_CLEARANCE_M and self.routes.segment_ok(before, xy)
            if clear and np.dot(xy - start, fwd_of(final_yaw)[:2]) > APPROACH_M:
                return [*self.routes.route(start, before), xy]
        return self.routes.route(start, xy)

    # ---- objects and hands -------------------------------------------------------------------
    def object_centre(self, body: Body) -> np.ndarray:
        w = body.world
        return 0.5 * (w.min(0) + w.max(0))

    def plan_grasp(self, name: str, yaw: float, height_frac: float = 0.5, sides: list[int] | None = None,
                   palm_forward: bool = False, contact_height: float | None = None, palm_down: float = 0.0,
                   register: bool = True) -> Grasp:
        """Palms on the object's sides (across the body's left-right axis), or on its back face."""
        body = self.world.objects[name]
        item = body.item
        c = self.object_centre(body)
        w = body.world
        c[2] = w[:, 2].min() + height_frac * np.ptp(w[:, 2]) if contact_height is None else contact_height
        L, F = left_of(yaw), fwd_of(yaw)
        width = body.extent_along(L, c, 0.03) + body.extent_along(-L, c, 0.03)
        if sides is None:
            sides = [self.style.hand] if width <= ONE_HAND_MAX_WIDTH and item.mass <= ONE_HAND_MAX_MASS else [0, 1]
        if not palm_forward:  # pushing (palms on the back face) neither lifts nor spans the object
            self._check_grasp(body, width, sides)
        local, palm_local = {}, {}
        inv = np.linalg.inv(body.T)
        for s in sides:
            if palm_forward:  # flat on the back face, fingers pointing inwards (the hand turns least from hanging)
                lateral = (0.5 - s) * 2 * min(0.14, 0.5 * width - 0.06)
                back = grasp_axis(body, c, -F)
                point, normal = body.surface_hit(c + L * lateral, back)
                palm = -normal * np.cos(palm_down) - np.array([0.0, 0.0, np.sin(palm_down)])  # tilted onto the top edge
                fingers = (L if s == 1 else -L) + np.array([0.0, 0.0, 0.2])
            else:  # flat on the face the body's side axis meets; both palms on parallel faces
                axis = grasp_axis(body, c, L) if len(sides) == 2 else grasp_axis(body, c, L if s == 0 else -L)
                point, normal = body.surface_hit(c, axis if s == 0 or len(sides) == 1 else -axis)
                palm, fingers = -normal, F - 0.25 * np.array([0, 0, 1.0])
            fingers = fingers - np.dot(fingers, palm) * palm  # the palm lies flat: its normal is exact
            R = frame(fingers, palm) @ frame(self.rig.arm["LR"[s]]["fingers"], self.rig.arm["LR"[s]]["palm"]).T
            local[s] = self._touching(name, inv @ homogeneous(R, point), s)
            palm_local[s] = inv[:3, :3] @ palm
        support = self.world.support_of(body)
        g = Grasp(name, sides, local, palm_local, arc=HAND_ARC_M if support is not None else 0.0)
        if register:  # a trial grasp (choosing where to stand) is not part of the plan
            self.grasps.append(g)
        return g

    def _touching(self, name: str, hand_in_obj: np.ndarray, side: int, margin: float = 0.002) -> np.ndarray:
        """Slide a hand pose (object frame) along its palm normal until the hand's nearest rest
        vertex is `margin` off the object's surface: on a ball or a can the concave palm would
        otherwise float by the depth of the palm's hollow, on a box it sits on the face."""
        a = self.rig.arm["LR"[side]]
        shape = self.world.objects[name].shape
        out = hand_in_obj.copy()
        palm = out[:3, :3] @ frame(a["fingers"], a["palm"])[:, 1]
        for _ in range(3):
            verts = (a["hand_verts"] - a["palm_point"]) @ out[:3, :3].T + out[:3, 3]
            gap = float(shape.signed_distance_local(verts).min()) - margin
            out[:3, 3] += palm * gap
            if abs(gap) < 2e-4:
                break
        return out

    def _check_grasp(self, body: Body, width: float, sides: list[int]) -> None:
        item = body.item
        field = f"objects[{self.world.spec.objects.index(item)}]"
        if len(sides) == 1 and (width > ONE_HAND_MAX_WIDTH or item.mass > ONE_HAND_MAX_MASS):
            raise GrailError(f"{item.name} ({width:.2f} m, {item.mass:.2f} kg) is too big or heavy for one hand", field=field)
        if width > TWO_HAND_MAX_WIDTH:
            raise GrailError(f"{item.name} is {width:.2f} m across: too large to grasp (max {TWO_HAND_MAX_WIDTH} m)", field=f"{field}.params")
        if item.mass > TWO_HAND_MAX_MASS and len(sides) == 2:
            raise GrailError(f"{item.name} weighs {item.mass:.2f} kg: too heavy to carry (max {TWO_HAND_MAX_MASS} kg)", field=f"{field}.mass")

    def posture_for(self, g: Grasp, pelvis_xy: np.ndarray, yaw: float, ground_z: float,
                    max_bend: float = 1.7, max_drop: float = 0.46, T_obj: np.ndarray | None = None,
                    limit: float = REACH_LIMIT, feet: list[FootPose] | None = None) -> tuple[float, float]:
        """Smallest trunk bend and squat depth that bring the palms within reach without the
        legs touching furniture (`feet`: the stance to evaluate, by default the current one)."""
        feet = feet or self.tl.feet
        bends = np.linspace(0.0, max_bend, 18)
        drops = np.linspace(0.0, max_drop, 12)
        B, Dp = [a.ravel() for a in np.meshgrid(bends, drops)]
        n = len(B)
        ch = MotionChannels.standing(n, np.r_[pelvis_xy, ground_z + self.rig.pelvis_height - 0.015], yaw)
        ch.root_pos[:, 2] -= Dp
        ch.pelvis_pitch, ch.spine_pitch = 0.5 * B, 0.5 * B
        for k in (0, 1):
            ch.sole_pos[k] = feet[k].pos
            ch.foot_rot[k] = rot_z(np.full(n, feet[k].yaw))
        body = self.world.objects[g.obj]
        for s in g.sides:
            T = (body.T if T_obj is None else T_obj) @ g.local[s]
            ch.hand_pos[s], ch.hand_rot[s], ch.hand_weight[s] = T[:3, 3], T[:3, :3], 1.0
        pose = self.rig.solve(ch)
        reach = pose.arm_reach[g.sides].max(0)
        cost = B ** 2 + 10 * Dp ** 2
        ok = (reach <= limit) & (self._leg_clearance(pose) >= LEG_CLEARANCE_M)
        if not ok.any():
            raise GrailError(f"{g.obj} is out of reach from where the character can stand", field="objects")
        best = int(np.argmin(np.where(ok, cost, np.inf)))
        return float(B[best]), float(Dp[best])

    def _leg_clearance(self, pose: PoseResult) -> np.ndarray:
        """(N,) distance from the thighs and shins (their axes) to the furniture, per pose: a squat
        must not push the knees into a table leg."""
        i, bw = self.rig.i, pose.bone_world[:, :, :3, 3]
        joints = [(f"upperleg01.{s}", f"lowerleg01.{s}", f"foot.{s}") for s in "LR"]
        pts = []
        for hip, knee, ankle in joints:
            for u in (0.35, 0.7, 1.0):
                pts.append(bw[:, i[hip]] + u * (bw[:, i[knee]] - bw[:, i[hip]]))
            pts.append(0.5 * (bw[:, i[knee]] + bw[:, i[ankle]]))
        pts = np.stack(pts, 1)  # (N,P,3)
        if not self.world.furniture:
            return np.full(len(pts), np.inf)
        d = np.min([b.clearance(pts.reshape(-1, 3)) for b in self.world.furniture.values()], axis=0)
        return d.reshape(pts.shape[:2]).min(axis=1)

    def reach_and_grasp(self, g: Grasp, duration: float, bend: float, drop: float, hold: float = 0.15) -> None:
        tl = self.tl
        t0, t1 = tl.now, tl.now + duration
        tl.phase("reach")
        # the trunk leads and the hand follows: a hand blended in while the shoulder is still high
        # would aim below its reach and snap the elbow straight and back
        for name, v in (("pelvis_pitch", 0.5 * bend), ("spine_pitch", 0.5 * bend), ("drop", drop)):
            tl.key(name, t0, tl.tracks[name].value_at(t0))
            tl.key(name, t1 - 0.1 * duration, v)
        for s in g.sides:
            tl.hand_weight[s].set(t0 + 0.1 * duration, tl.hand_weight[s].value_at(t0))
            tl.hand_weight[s].set(t1 - 0.05, 1.0)
            g.gap[s] = Track([(0.0, np.array(0.07)), (t1 - 0.22, np.array(0.07)), (t1, np.array(0.0))])
        g.t_grasp = t1
        tl.phase("grasp", t1)
        tl.now = t1 + hold

    def release(self, g: Grasp, duration: float = 0.7) -> None:
        tl = self.tl
        t0 = tl.now
        g.t_release = t0
        tl.phase("release")
        for s in g.sides:
            g.gap[s].set(t0, 0.0)
            g.gap[s].set(t0 + 0.5 * duration, 0.07)
            tl.hand_weight[s].set(t0 + 0.15, 1.0)
            tl.hand_weight[s].set(t0 + duration, 0.0)
        tl.now = t0 + duration

    def move_object(self, name: str, t: float, frame_: str, T: np.ndarray) -> None:
        self.object_keys[name].append(ObjectKey(t, frame_, T))

    # ---- final assembly ------------------------------------------------------------------------
    def finish(self) -> tuple[MotionChannels, dict]:
        tl = self.tl
        if tl.now > tl.duration + 1e-6:
            raise GrailError(f"the task needs {tl.now:.1f} s but the template allows {tl.duration:.1f} s",
                             field="duration_s")
        ch = tl.channels()
        first = self.rig.solve(ch)  # the trunk's motion, for objects carried against the chest
        self.chest = homogeneous(first.deltas[:, self.rig.i["spine01"]], first.bone_world[:, self.rig.i["spine01"], :3, 3])
        objects = self._object_trajectories(ch)
        self._hands(ch, objects)
        return ch, objects

    def _object_trajectories(self, ch: MotionChannels) -> dict[str, np.ndarray]:
        tl = self.tl
        base = homogeneous(rot_z(tl.base_yaw), np.c_[tl.base_xy, ch.root_pos[:, 2]])
        out = {}
        for name, keys in self.object_keys.items():
            keys = sorted(keys, key=lambda k: k.t)
            worlds = [self._key_world(k, base) for k in keys]
            T = worlds[0].copy()
            for (k0, w0), (k1, w1) in zip(zip(keys[:-1], worlds[:-1]), zip(keys[1:], worlds[1:])):
                sel = tl.times >= k0.t
                u = np.clip((tl.times - k0.t) / max(k1.t - k0.t, 1e-6), 0, 1)
                u = minjerk(u)
                blended = blend_poses(w0, w1, u)
                T[sel] = blended[sel]
            out[name] = T
        return out

    def _key_world(self, k: ObjectKey, base: np.ndarray) -> np.ndarray:
        n = len(base)
        if k.frame == "world":
            return np.broadcast_to(k.T, (n, 4, 4)).copy()
        if k.frame == "body":
            return base @ k.T
        if k.frame == "chest":
            return self.chest @ k.T
        if k.frame == "chest_at":
            return self.chest @ (np.linalg.inv(self.chest[self.tl.frame_of(k.t)]) @ k.T)
        flat = base.copy()  # body_xy: follows the pelvis in the plane, height from the key
        out = flat @ k.T
        out[:, 2, 3] = k.T[2, 3]
        return out

    def _hands(self, ch: MotionChannels, objects: dict[str, np.ndarray]) -> None:
        tl = self.tl
        contact = np.zeros((2, tl.frames), bool)
        contact_obj = np.full((2, tl.frames), -1)
        names = list(objects)
        arc = np.zeros((2, tl.frames))
        for g in self.grasps:
            T_obj = objects[g.obj]
            for s in g.sides:
                gap = g.gap[s].sample(tl.times)
                H = T_obj @ g.local[s]
                palm_w = np.einsum("tij,j->ti", T_obj[:, :3, :3], g.palm_dir_local[s])
                pos = H[:, :3, 3] - gap[:, None] * palm_w + np.array([0, 0, 1.0]) * gap[:, None] * 0.4
                sel = (tl.times >= max(g.t_grasp - 1.2, 0.5)) & (tl.times <= g.t_release + 1.0)
                ch.hand_pos[s, sel] = pos[sel]
                ch.hand_rot[s, sel] = H[sel, :3, :3]
                arc[s, sel] = g.arc
                held = (tl.times >= g.t_grasp - 1e-9) & (tl.times < g.t_release - 1e-9)
                contact[s] |= held
                contact_obj[s, held] = names.index(g.obj)
        ch.hand_weight = np.stack([w.sample(tl.times) for w in tl.hand_weight])
        ch.hand_arc = arc
        self.hand_contact, self.hand_object = contact, contact_obj


def grasp_axis(body: Body, centre: np.ndarray, side_dir: np.ndarray) -> np.ndarray:
    """Horizontal direction from the object's centre to the face a palm should lie on: the normal
    of the face that `side_dir` meets (a box face; on round objects `side_dir` itself)."""
    _, normal = body.surface_hit(centre, side_dir)
    n = horizontal(normal)
    return n if np.linalg.norm(normal[:2]) > 0.5 else horizontal(side_dir)


def face_aligned_yaw(body: Body, centre: np.ndarray, yaw: float, max_turn: float = np.deg2rad(12)) -> float:
    """The approach heading turned (by at most `max_turn`) so the body squarely faces the object's
    side faces: a box turned 30 degrees is approached turned as well, not grasped by its corners."""
    axis = grasp_axis(body, centre, left_of(yaw))
    off = float(np.arctan2(axis[1], axis[0]) - (yaw + np.pi / 2))
    off = (off + np.pi / 4) % (np.pi / 2) - np.pi / 4  # faces repeat every 90 degrees
    return yaw + float(np.clip(off, -max_turn, max_turn))


def leg_ref(rig: BodyRig, side: str) -> np.ndarray:
    """Rest sole reference point relative to the root's ground projection."""
    ref = rig.leg[side]["sole_ref"].copy()
    root = rig.sk.rest[0, :3, 3]
    return np.array([ref[0] - root[0], ref[1] - root[1], 0.0])


def blend_poses(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    from grail.video.body import slerp_matrices

    out = a.copy()
    out[:, :3, :3] = slerp_matrices(a[:, :3, :3], b[:, :3, :3], u)
    out[:, :3, 3] = a[:, :3, 3] + u[:, None] * (b[:, :3, 3] - a[:, :3, 3])
    return out
