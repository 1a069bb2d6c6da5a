"""Building blocks of the procedural animator, against geometry worked out by hand: walking
routes around furniture, polyline walks that turn into their final heading, the eased arm
reach, the hand's swing about the shoulder, the palm's contact plane, ray hits on objects and a
put-down spot kept on its table top."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from grail.video.body import blend_about, palm_contact_plane
from grail.video.gait import Footprint, GaitParams, GaitPlanner, polyline_path, wrap
from grail.video.ik import solve_two_bone
from grail.video.path import MIN_CLEARANCE_M, PASS_CLEARANCE_M, Footprint2D, RoutePlanner
from grail.video.plans import TOP_MARGIN_M, onto_top
from grail.video.world import Body


def square(name: str, centre, half: float) -> Footprint2D:
    c = np.asarray(centre, float)
    corners = c + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [0.2, 0.3]])  # an inner point too
    return Footprint2D.of_points(name, np.c_[corners, np.zeros(len(corners))])


class FlatGround:
    def height(self, xy: np.ndarray) -> np.ndarray:
        return np.zeros(np.asarray(xy).shape[:-1])


# ---- routes ---------------------------------------------------------------------------------


def test_footprint_signed_distance():
    f = square("stool", [0.0, 0.0], 0.2)
    assert len(f.hull) == 4, "the inner point is not on the hull"
    d = f.distance(np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.1, 0.0], [0.2, 0.1]]))
    np.testing.assert_allclose(d, [-0.2, 0.3, np.hypot(0.3, 0.3), -0.1, 0.0], atol=1e-12)


def test_route_is_straight_when_clear():
    planner = RoutePlanner([square("table", [0.0, 2.0], 0.3)])
    route = planner.route(np.array([0.0, 0.0]), np.array([1.5, 0.0]))
    assert len(route) == 1 and np.allclose(route[0], [1.5, 0.0])


def test_route_goes_around_furniture_in_the_way():
    stool = square("stool", [0.0, 0.0], 0.18)
    planner = RoutePlanner([stool])
    start, goal = np.array([-1.0, 0.05]), np.array([1.0, -0.05])
    assert not planner.segment_ok(start, goal), "the straight line crosses the stool"
    route = [start, *planner.route(start, goal)]
    assert len(route) >= 3, "no detour"
    assert np.allclose(route[-1], goal)
    pts = np.concatenate([a + np.linspace(0, 1, 50)[:, None] * (b - a) for a, b in zip(route[:-1], route[1:])])
    clear = stool.distance(pts)
    assert clear.min() >= PASS_CLEARANCE_M - 0.03, clear.min()
    length = sum(np.linalg.norm(b - a) for a, b in zip(route[:-1], route[1:]))
    assert length < 1.6 * np.linalg.norm(goal - start), length


def test_route_may_leave_a_stance_close_to_furniture():
    """Standing 0.17 m from a table (to reach it) and walking away is allowed; cutting across the
    table to the other side is not."""
    table = square("table", [0.0, 0.0], 0.3)
    planner = RoutePlanner([table])
    stance = np.array([-0.47, 0.0])
    assert planner.segment_ok(stance, np.array([-1.5, 0.0]))
    assert not planner.segment_ok(stance, np.array([0.8, 0.0]))
    route = [stance, *planner.route(stance, np.array([0.8, 0.0]))]
    pts = np.concatenate([a + np.linspace(0, 1, 50)[:, None] * (b - a) for a, b in zip(route[:-1], route[1:])])
    assert table.distance(pts).min() >= MIN_CLEARANCE_M


# ---- walking along a polyline ------------------------------------------------------------------


def test_polyline_path_headings():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    path = polyline_path(pts, final_yaw=np.pi, start_yaw=-0.3)
    xy, yaw = path(0.0)
    assert np.allclose(xy, [0, 0]) and yaw == pytest.approx(-0.3)
    xy, yaw = path(0.5)
    assert np.allclose(xy, [0.5, 0.0]) and yaw == pytest.approx(0.0)
    xy, yaw = path(1.0)
    assert np.allclose(xy, [1.0, 0.0]) and yaw == pytest.approx(np.pi / 4, abs=1e-6), "half-way round the corner"
    xy, yaw = path(2.0)
    assert np.allclose(xy, [1.0, 1.0]) and abs(wrap(yaw - np.pi)) < 1e-6
    s = np.linspace(0, 2, 401)
    yaws = np.array([path(v)[1] for v in s])
    assert np.abs(np.diff(yaws)).max() < np.deg2rad(2.5), "the heading turns gradually, never jumps"


def test_walk_via_points_ends_at_goal_with_final_heading():
    params = GaitParams()
    planner = GaitPlanner(FlatGround(), Footprint(-0.05, 0.12, 0.04), params)
    start = planner.stance(np.zeros(2), 0.0)
    via, goal, final = [np.array([1.0, 0.6])], np.array([2.0, 0.6]), np.deg2rad(40)
    gait = planner.walk(start, goal, 0.0, 0, via=via, final_yaw=final)
    centre = 0.5 * (gait.feet[0].pos[:2] + gait.feet[1].pos[:2])
    assert np.linalg.norm(centre - goal) < 0.03
    for f in gait.feet:
        assert abs(wrap(f.yaw - final)) < params.toe_out + 1e-6
    sides = [s.side for s in gait.steps]
    assert all(a != b for a, b in zip(sides[:-1], sides[1:])), "feet alternate"
    for st in gait.steps:
        assert np.linalg.norm(st.end.pos[:2] - st.start.pos[:2]) < 1.5 * params.step_length * 2


# ---- arms and hands ---------------------------------------------------------------------------


def _hinge_sweep(dists: np.ndarray, soft_from: float | None) -> tuple[np.ndarray, np.ndarray]:
    """End distance and hinge angle of a 0.2 + 0.19 m limb reaching along x to each distance."""
    root, pole = np.zeros((1, 3)), np.array([[0.0, 0.0, -1.0]])
    ends, angles = [], []
    for d in dists:
        sol = solve_two_bone(root, np.array([[d, 0.0, 0.0]]), 0.2, 0.19, pole, soft_from=soft_from)
        u, v = sol.middle[0] - root[0], sol.end[0] - sol.middle[0]
        ends.append(np.linalg.norm(sol.end[0]))
        angles.append(np.arccos(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v)))
    return np.array(ends), np.array(angles)


def test_soft_reach_is_exact_within_reach_and_continuous_beyond():
    L = 0.39
    dists = np.linspace(0.5 * L, 1.6 * L, 800)
    ends, soft = _hinge_sweep(dists, 0.955)
    inside = dists <= 0.955 * L
    np.testing.assert_allclose(ends[inside], dists[inside], atol=1e-9)
    assert np.all(np.diff(ends) > 0) and ends.max() < 0.999 * L + 1e-9
    _, hard = _hinge_sweep(dists, None)
    soft_step, hard_step = np.abs(np.diff(soft)).max(), np.abs(np.diff(hard)).max()
    assert soft_step < 0.5 * hard_step, (soft_step, hard_step)  # the clip snaps; easing spreads it out


def test_blend_about_swings_on_an_arc():
    a = np.array([[0.0, 0.0, -0.4]])  # hanging
    b = np.array([[0.3, 0.0, 0.0]])  # forward, shorter
    for w in (0.0, 0.25, 0.5, 1.0):
        out = blend_about(a, b, np.array([w]))[0]
        assert np.linalg.norm(out) == pytest.approx((1 - w) * 0.4 + w * 0.3)
        angle = np.arctan2(out[0], -out[2])
        assert angle == pytest.approx(w * np.pi / 2)
    same = blend_about(a, a, np.array([0.3]))
    np.testing.assert_allclose(same, a)


def test_palm_contact_plane_touches_a_concave_palm():
    rng = np.random.default_rng(3)
    u, v = rng.uniform(-1, 1, (2, 2000))
    # a palm 8 x 10 cm whose middle is hollow by 1 cm, facing -y; thickness 2 cm behind it
    front = np.c_[0.04 * u, -0.01 * (u ** 2 + v ** 2), 0.05 * v]
    back = front + np.array([0.0, 0.02, 0.0])
    pts = np.vstack([front, back]) + np.array([0.3, 0.1, 0.5])
    normal, point = palm_contact_plane(pts, np.array([0.0, -1.0, 0.0]))
    assert np.degrees(np.arccos(normal @ [0, -1, 0])) < 5
    depth = (pts - point) @ normal
    assert depth.max() < 1e-9, "no part of the hand is beyond the contact plane"
    assert depth.max() > -1e-3, "the plane touches the hand"
    assert (point - pts.mean(0)) @ normal > 0.015, "the contact lies at the rim, not in the hollow"


def test_surface_hit_on_a_turned_box():
    mesh = trimesh.creation.box(extents=[0.4, 0.2, 0.3])
    yaw = np.deg2rad(30)
    T = np.eye(4)
    T[:3, :3] = [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]
    T[:3, 3] = [1.0, 2.0, 0.15]
    body = Body(item=None, T=T, local=np.asarray(mesh.vertices), collision_local=[], faces=np.asarray(mesh.faces))
    side = T[:3, 1]  # the box's own +y face
    point, normal = body.surface_hit(T[:3, 3], side)
    np.testing.assert_allclose(normal, side, atol=1e-9)
    np.testing.assert_allclose(point, T[:3, 3] + 0.1 * side, atol=1e-9)
    world_y = np.array([0.0, 1.0, 0.0])  # 30 degrees off the face normal: same face, farther point
    point, normal = body.surface_hit(T[:3, 3], world_y)
    np.testing.assert_allclose(normal, side, atol=1e-9)
    assert np.dot(point - T[:3, 3], side) == pytest.approx(0.1)


# ---- putting an object down -----------------------------------------------------------------


def test_a_put_down_spot_is_moved_onto_the_top_by_the_margin():
    top = np.array([[0.0, 0.0], [0.6, 0.0], [0.6, 0.4], [0.0, 0.4], [0.3, 0.2]])  # 60 x 40 cm, a point inside
    centre = np.array([0.3, 0.2])
    footprint = np.array([[-0.1, -0.05], [0.1, -0.05], [0.1, 0.05], [-0.1, 0.05]])  # 20 x 10 cm box
    inside = np.array([0.25, 0.2])
    assert np.array_equal(onto_top(inside, centre, footprint, top), inside)  # already on: unchanged
    moved = onto_top(np.array([0.58, 0.2]), centre, footprint, top)  # overhangs the x = 0.6 edge by 8 cm
    assert moved[1] == pytest.approx(0.2)  # toward the centre, along the line to it
    edge = moved[0] + 0.1
    assert 0.6 - TOP_MARGIN_M - 0.01 <= edge <= 0.6 - TOP_MARGIN_M  # within a step (1/40 of 28 cm) of the margin
    too_big = np.array([[-0.4, -0.3], [0.4, -0.3], [0.4, 0.3], [-0.4, 0.3]])
    assert np.array_equal(onto_top(np.array([0.5, 0.1]), centre, too_big, top), centre)  # cannot fit: the centre
