"""The model-based object tracker (grail.recon.object_track) on a generated pickup_table video:
metric accuracy while the box is untouched, the energy's shape, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _video_helpers import copy_sequence
from grail.errors import GrailError
from grail.recon.object_track import (ObjectModel, RegionTracker, SilhouetteEnergy, TrackOptions, first_pose,
                                      pose_errors, rotvec_from_quat, silhouette)
from grail.render.video_io import read_frames
from grail.rotations import matrices_from_quats
from grail.video.render import load_scene_camera, scaled_camera

SIZE = (320, 180)  # the box is ~10 px wide here: the test's default 192x108 leaves it ~6 px
FRAMES = 60        # the child walks up; the hand reaches the box later (reach phase from ~frame 60)


@pytest.fixture(scope="module")
def clip(composed, tmp_path_factory):
    """(frames, camera, model, gt) of a pickup_table seed-0 video rendered at SIZE."""
    from grail.video.generate import GenerateOptions, generate_sequence

    seq = copy_sequence(composed("pickup_table", 0), tmp_path_factory.mktemp("object_track"))
    generate_sequence(seq, GenerateOptions(width=SIZE[0], height=SIZE[1]))
    frames = np.stack(list(read_frames(seq / "video" / "video.mp4")))
    camera = scaled_camera(load_scene_camera(seq / "scene"), frames.shape[2], frames.shape[1])
    with np.load(seq / "video" / "gt.npz") as z:
        gt = {k: z[k] for k in ("object_names", "object_pos", "object_quat", "object_held", "phase")}
    return seq, frames, camera, ObjectModel.from_scene(seq / "scene", "target"), gt


def test_first_pose_is_gt_frame_zero_and_mesh_matches_the_render(clip):
    seq, frames, camera, model, gt = clip
    pos0, quat0 = first_pose(seq / "scene", "target")
    assert list(gt["object_names"]) == ["target"]
    np.testing.assert_allclose(pos0, gt["object_pos"][0, 0], atol=1e-5)
    np.testing.assert_allclose(abs(quat0 @ gt["object_quat"][0, 0]), 1.0, atol=1e-6)
    # the body-frame mesh at the gt pose covers the box in the video: mean colour is the box's
    mask = silhouette(camera, model, pos0, quat0)
    assert 40 < mask.sum() < 400
    inside = frames[0][mask].astype(float).mean(0)
    chroma, want = inside / inside.sum(), np.array([0.72, 0.55, 0.35]) / 1.62  # shading scales, hue stays
    assert np.abs(chroma - want).max() < 0.04, inside


def test_tracks_the_untouched_box_to_a_centimetre(clip):
    _, frames, camera, model, gt = clip
    held = gt["object_held"][:FRAMES, 0]
    assert not held.any()
    calls = []
    track = RegionTracker().track(frames[:FRAMES], camera, model, gt["object_pos"][0, 0], gt["object_quat"][0, 0],
                                  progress=lambda i, n: calls.append((i, n)))
    assert track.pos.shape == (FRAMES, 3) and track.quat.shape == (FRAMES, 4)
    assert track.score.shape == track.lost.shape == (FRAMES,)
    np.testing.assert_allclose(np.linalg.norm(track.quat, axis=1), 1.0, atol=1e-9)
    dp, dr = pose_errors(track, gt["object_pos"][:FRAMES, 0], gt["object_quat"][:FRAMES, 0])
    assert dp.max() < 0.015, f"position error up to {dp.max() * 100:.2f} cm"
    # a near-cube 10 px wide: its yaw barely changes the outline (~22 deg off here; at 1280x720 the
    # same clip stays within a degree while untouched), so rotation is held to what this size shows
    assert dr.max() < 25.0, f"rotation error up to {dr.max():.2f} deg"
    assert track.score.min() > 0.4 and not track.lost.any(), track.score  # ~0.5 at 10 px; 0.97 at 1280x720
    assert calls[-1] == (FRAMES, FRAMES)


def test_energy_is_lowest_at_the_true_pose(clip):
    _, frames, camera, model, gt = clip
    pos0, quat0 = gt["object_pos"][0, 0], gt["object_quat"][0, 0]
    energy = SilhouetteEnergy(frames[:FRAMES], camera, model, pos0, quat0, TrackOptions())
    t = 30
    pos, quat = gt["object_pos"][t, 0], gt["object_quat"][t, 0]
    energy.focus(t, pos, quat)
    rv = rotvec_from_quat(quat)
    tilt = rotvec_from_quat(np.array([np.cos(0.1), 0.0, 0.0, np.sin(0.1)]))  # 11.5 deg about z
    R_tilted = matrices_from_quats(np.array([np.cos(0.1), 0.0, 0.0, np.sin(0.1)])) @ matrices_from_quats(quat)
    from grail.rotations import quats_from_matrices
    cand_pos = np.stack([pos, pos + [0.03, 0, 0], pos + [0, 0.03, 0], pos + [0, 0, 0.03], pos])
    cand_rv = np.stack([rv, rv, rv, rv, rotvec_from_quat(quats_from_matrices(R_tilted))])
    p = torch.tensor(cand_pos, requires_grad=True)
    r = torch.tensor(cand_rv, requires_grad=True)
    e = energy(torch.full((5,), t, dtype=torch.long), p, r)
    assert e.shape == (5,)
    assert torch.all(e[1:] > e[0] + 0.02), e  # +0.03..0.3 of the object area here
    e.sum().backward()
    assert torch.all(torch.isfinite(p.grad)) and torch.all(torch.isfinite(r.grad))
    assert np.linalg.norm(tilt) > 0.19
    # the tracker's numpy linearisation is the same energy
    E_np, J = energy.linearise(t, cand_pos[1], matrices_from_quats(quat))
    assert abs(E_np - float(e[1].detach())) < 1e-9 and J.shape[1] == 6
    # and its Jacobian (summed over samples) is autograd's position gradient
    assert np.allclose(J.sum(0)[:3], p.grad[1].numpy(), rtol=1e-6, atol=1e-9), (J.sum(0)[:3], p.grad[1])
    # ignoring every pixel leaves nothing to explain: all poses cost the same
    energy.set_ignore(np.ones(frames[:FRAMES].shape[:3], bool))
    flat = energy(torch.full((5,), t, dtype=torch.long), p.detach(), r.detach())
    assert float(flat.max() - flat.min()) < 1e-9


def test_bad_input_names_the_field(clip, tmp_path):
    seq, frames, camera, model, gt = clip
    pos0, quat0 = gt["object_pos"][0, 0], gt["object_quat"][0, 0]
    tracker = RegionTracker()
    with pytest.raises(GrailError, match="frames") as err:
        tracker.track(frames[:3, :, :, 0], camera, model, pos0, quat0)
    assert err.value.field == "frames"
    with pytest.raises(GrailError, match="320x180") as err:
        tracker.track(frames[:3, :90, :160], camera, model, pos0, quat0)
    assert err.value.field == "frames"
    with pytest.raises(GrailError) as err:
        tracker.track(frames[:3], camera, model, pos0, np.zeros(4))
    assert err.value.field == "quat0"
    with pytest.raises(GrailError, match="outside the view") as err:
        tracker.track(frames[:3], camera, model, camera.position - 5 * camera.R_world_cam[:, 2], quat0)
    with pytest.raises(GrailError, match="'teapot'") as err:
        ObjectModel.from_scene(seq / "scene", "teapot")
    assert err.value.field == "objects" and err.value.file.endswith("spec.yaml")
    energy = SilhouetteEnergy(frames[:3], camera, model, pos0, quat0)
    with pytest.raises(GrailError) as err:
        energy.set_ignore(np.zeros((2, 4, 4), bool))
    assert err.value.field == "ignore"
    broken = copy_sequence(seq, tmp_path)
    (broken / "scene" / "meshes" / "target_visual.obj").write_text("not a mesh\n")
    with pytest.raises(GrailError, match="target_visual.obj"):
        ObjectModel.from_scene(broken / "scene", "target")
