"""What physics rules out of a fitted body: the scene's solids, and a centre of mass beyond the
feet (grail.recon.physical), measured against independent references: the support map, the
anthropometric height of the centre of mass, and the ground truth's own motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grail.recon.body import TorchRig
from grail.recon.physical import SceneSolids, balance_excess, centre_of_mass, segment_weights
from grail.recon.supports import SupportMap


@pytest.fixture(scope="module")
def chair_scene(composed):
    return composed("sit_chair", 0) / "scene"


def _chair_seat_centre(scene_dir) -> np.ndarray:
    from grail.scene.spec import load_resolved

    chair = next(f for f in load_resolved(scene_dir / "spec.yaml").furniture if f.kind == "chair")
    return np.asarray(chair.pose.pos, float)


def test_solids_agree_with_the_support_map_on_the_seat(chair_scene):
    """Just above the seat's top (as the support map finds it from above: it agrees with MuJoCo's
    rays, test_recon_supports) a point is outside by that much; just below it, inside by that
    much; the floor is a solid too."""
    centre = _chair_seat_centre(chair_scene)
    support = SupportMap.from_scene(chair_scene / "scene.xml", centre[:2], half_extent=1.0)
    seat = float(support(np.array([[*centre[:2], 2.0]]))[0])  # from high above
    assert seat > 0.15  # the seat, not the floor
    solids = SceneSolids.from_scene(chair_scene / "scene.xml")
    points = torch.tensor([[*centre[:2], seat + 0.01], [*centre[:2], seat - 0.01],
                           [centre[0] + 2.5, centre[1] + 2.5, 0.3], [centre[0] + 2.5, centre[1] + 2.5, -0.04]])
    clearance = solids.clearance(points).numpy()
    assert np.allclose(clearance, [0.01, -0.01, 0.3, -0.04], atol=2e-3), clearance


def test_solids_leave_out_the_movable_objects(composed):
    """The box on the table moves: a point inside it is free space, a point in the table is not."""
    from grail.recon.object_track import ObjectModel
    from grail.recon.stage import movable_objects
    from grail.rotations import matrices_from_quats

    scene_dir = composed("pickup_table", 0) / "scene"
    (name, pos, quat), = movable_objects(scene_dir.parent)
    centre = pos + matrices_from_quats(quat) @ ObjectModel.from_scene(scene_dir, name).vertices.mean(axis=0)
    static = SceneSolids.from_scene(scene_dir / "scene.xml", (name,))
    everything = SceneSolids.from_scene(scene_dir / "scene.xml")
    inside_box = torch.tensor(centre[None])
    assert float(everything.clearance(inside_box)[0]) < 0
    assert float(static.clearance(inside_box)[0]) > 0


def test_centre_of_mass_sits_at_the_anthropometric_height(composed):
    """Standing at rest, the centre of mass lies between the feet, and at 52-58 % of the body's
    height (the standing adult's 55-57 %; a child's sits a little higher, toward the head)."""
    scene_dir = composed("pickup_table", 0) / "scene"
    rig = TorchRig.load(scene_dir / "character.npz")
    names = list(rig.joint_bones)
    weights = torch.tensor(segment_weights(names))
    assert abs(float(weights.sum()) - 1.0) < 1e-12
    pos, _ = rig.forward(torch.zeros((1, 3), dtype=torch.float64), torch.zeros((1, rig.bones, 3), dtype=torch.float64))
    joints = rig.joints(pos, names)
    com = centre_of_mass(joints, weights)
    ankles = rig.joints(pos, ("left_ankle", "right_ankle"))
    assert float(balance_excess(com, ankles[:, 0], ankles[:, 1], 0.0)[0]) < 0.03
    with np.load(scene_dir / "character.npz") as z:
        height = float(np.ptp(z["vertices"][:, 2]))  # the rest mesh, standing
    above_ground = float(com[0, 2]) + float(rig.offsets[0, 2])  # the rest root stands at its offset (rest_height)
    share = above_ground / height
    assert 0.52 < share < 0.58, share


def test_balance_excess_is_the_horizontal_distance_beyond_reach():
    ankles = torch.tensor([[0.0, 0.1, 0.06], [0.0, -0.1, 0.06]], dtype=torch.float64)
    com = torch.tensor([[0.5, 0.0, 0.5], [0.2, 0.0, 0.2], [0.0, 0.6, 0.5], [0.3, 0.4, 0.0]], dtype=torch.float64)
    excess = balance_excess(com, ankles[0].expand(4, 3), ankles[1].expand(4, 3), 0.35).numpy()
    assert np.allclose(excess, [0.15, 0.0, 0.15, 0.3 * np.sqrt(2) - 0.35], atol=1e-12)  # the last beyond an end


def test_the_ground_truth_breaks_no_physical_term(truth_of):
    """The procedural motions (sitting down, reaching to the table) stay out of the scene's
    solids and within reach of their feet: the terms cost next to nothing at the truth (a wrist over
    the table may come a millimetre or two inside its 3 cm margin)."""
    from grail.recon.fit_human import FitOptions, HumanTerms
    from grail.recon.oracle import oracle_observations

    for template in ("sit_chair", "pickup_table"):
        scene_dir, gt, camera = truth_of(template, 0)
        rig = TorchRig.load(scene_dir / "character.npz")
        obs = oracle_observations(gt.joint_names, gt.joint_pos, gt.fps, camera)
        solids = SceneSolids.from_scene(scene_dir / "scene.xml", tuple(o for o in gt.object_names))
        terms = HumanTerms(obs, camera, rig, lambda p: np.zeros(len(p)), FitOptions(), solids=solids)
        cost = terms._physical(torch.tensor(gt.bone_pos_w))
        assert float(cost.max()) < 0.05, (template, float(cost.max()))
        sunk = torch.tensor(gt.bone_pos_w) - torch.tensor([0.0, 0.0, 0.4])  # through the floor
        assert float(terms._physical(sunk).min()) > 1.0
