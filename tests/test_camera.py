"""Pinhole camera: OpenCV projection, the MuJoCo camera it maps to, and constrained sampling."""

from __future__ import annotations

import numpy as np
import pytest

from grail.errors import GrailError
from grail.scene.camera import CameraConstraints, PinholeCamera, in_frame, sample_camera


def test_look_at_projects_target_to_principal_point_and_keeps_up_up():
    cam = PinholeCamera.look_at([3.0, -2.0, 1.5], [0.0, 0.0, 0.8], 55.0, 640, 360)
    uv, z = cam.project(np.array([[0.0, 0.0, 0.8], [0.0, 0.0, 1.8], [0.0, 0.0, -0.2]]))
    np.testing.assert_allclose(uv[0], [319.5, 179.5], atol=1e-9)
    assert z[0] == pytest.approx(np.linalg.norm([3.0, -2.0, 0.7]))
    assert uv[1, 1] < uv[0, 1] < uv[2, 1]  # world up is image up (v grows downwards)
    assert abs(uv[1, 0] - uv[0, 0]) < 1e-6 and abs(uv[2, 0] - uv[0, 0]) < 1e-6  # no roll


def test_vertical_fov_spans_the_image_height():
    cam = PinholeCamera.look_at([0.0, -5.0, 1.0], [0.0, 0.0, 1.0], 60.0, 200, 100)
    half = 5.0 * np.tan(np.radians(30.0))
    uv, _ = cam.project(np.array([[0.0, 0.0, 1.0 + half], [0.0, 0.0, 1.0 - half]]))
    np.testing.assert_allclose(uv[:, 1], [-0.5, 99.5], atol=1e-9)  # edges of the first and last rows


def test_pixel_rays_invert_projection_and_mujoco_frame_matches():
    import mujoco

    cam = PinholeCamera.look_at([2.0, 1.0, 1.2], [0.0, 0.2, 0.5], 48.0, 320, 240)
    pts = np.random.default_rng(0).uniform([-0.5, -0.5, 0.0], [0.5, 0.5, 1.0], (20, 3))
    uv, z = cam.project(pts)
    rays = cam.pixel_rays(uv)
    expected = (pts - cam.position) / np.linalg.norm(pts - cam.position, axis=1, keepdims=True)
    np.testing.assert_allclose(rays, expected, atol=1e-9)
    R = np.zeros(9)
    mujoco.mju_quat2Mat(R, cam.mujoco_quat())
    R = R.reshape(3, 3)
    np.testing.assert_allclose(R[:, 2], -cam.R_world_cam[:, 2], atol=1e-9)  # MuJoCo looks down -z
    np.testing.assert_allclose(R[:, 1], -cam.R_world_cam[:, 1], atol=1e-9)  # and has y up
    xy = np.array(cam.mujoco_xyaxes().split(), float)
    np.testing.assert_allclose(xy, np.r_[R[:, 0], R[:, 1]], atol=1e-8)


def test_json_round_trip():
    cam = PinholeCamera.look_at([1.0, -3.0, 1.4], [0.0, 0.0, 0.7], 52.5, 1280, 720)
    back = PinholeCamera.from_json(cam.to_json())
    np.testing.assert_allclose(back.T_world_cam, cam.T_world_cam, atol=1e-8)
    np.testing.assert_allclose(back.K, cam.K, atol=1e-8)


def _constraints(**kw) -> CameraConstraints:
    base = dict(fov_deg=(50.0, 60.0), distance=(3.0, 4.0), height=(1.0, 1.5), azimuth_deg=(-110.0, -70.0), look_at_jitter=0.05, margin_px=4, max_tries=50)
    base.update(kw)
    return CameraConstraints(**base)


def test_sampling_is_deterministic_and_meets_constraints():
    box = np.random.default_rng(1).uniform([-0.6, -0.3, 0.0], [0.6, 0.3, 1.3], (200, 3))
    samples = [sample_camera(_constraints(), np.random.default_rng(5), 320, 180, np.array([0, 0, 0.65]), {"body": box}) for _ in range(2)]
    np.testing.assert_array_equal(samples[0].camera.T_world_cam, samples[1].camera.T_world_cam)
    cam = samples[0].camera
    assert samples[0].tries >= 1
    assert np.linalg.norm(cam.position - samples[0].target) == pytest.approx(samples[0].distance)
    uv, _ = cam.project(samples[0].target[None])
    np.testing.assert_allclose(uv[0], [159.5, 89.5], atol=1e-6)  # it looks at its target
    assert in_frame(cam, box, 4)
    assert 1.0 <= cam.position[2] <= 1.5
    assert 3.0 - 0.2 <= np.linalg.norm(cam.position - np.array([0, 0, 0.65])) <= 4.0 + 0.2
    az = np.degrees(np.arctan2(cam.position[1], cam.position[0]))
    assert -115 <= az <= -65


def test_unsatisfiable_constraints_fail_with_a_tally():
    big = np.array([[-5.0, 0, 0], [5.0, 0, 0], [0, 0, 3.0]])
    with pytest.raises(GrailError, match=r"camera: no camera met the constraints in 50 tries: body out of frame \(50\)"):
        sample_camera(_constraints(fov_deg=(10.0, 12.0)), np.random.default_rng(0), 320, 180, np.zeros(3), {"body": big})
