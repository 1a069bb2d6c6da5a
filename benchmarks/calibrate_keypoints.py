"""Calibrate where MediaPipe's landmarks sit on the character: for each keypoint, the 3D offset
from its joint (in the joint bone's rest-relative frame: x forward, y left, z up) that best
explains MediaPipe's detections on rendered clips at their ground-truth poses (linear least
squares on the projection's Jacobian, iterated), one offset for the frames where the joint is
the nearer of its left/right pair to the camera and one for those where it is the further. Prints the offsets for
``grail/recon/keypoints.py`` ``MEDIAPIPE_OFFSETS_M`` and the median pixel residuals of held-out
clips with and without them.

    python benchmarks/calibrate_keypoints.py --calibrate 0 1 --held-out 2 3 4 [--root DIR]

Sequences are composed and generated into --root as in recon_quality.py; detections are cached
there as mediapipe.npz beside each clip's video.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from recon_quality import sequence

os.environ.setdefault("MUJOCO_GL", "egl")


def detections(seq: Path):
    from grail.recon.estimators import MediaPipeEstimator
    from grail.recon.observations import Observations
    from grail.recon.video_input import load_video

    cache = seq / "video" / "mediapipe.npz"
    if not cache.is_file():
        video = load_video(seq)
        MediaPipeEstimator().estimate(video.frames, video.fps, video.camera.width, video.camera.height).save(cache)
    return Observations.load(cache)


def residuals(seq: Path, offsets: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per keypoint: the Jacobians (N,2,3) of its pixel in its offset, the residuals (N,2) of the
    detections against the ground truth posed with `offsets` (2,K,3: near, far), and whether it
    was the nearer of its pair (N,), over the frames it was seen."""
    from grail.recon.body import TorchRig
    from grail.recon.keypoints import KEYPOINTS, PARTNER
    from grail.rotations import matrices_from_quats
    from grail.scene.camera import PinholeCamera
    from grail.video.gt import GroundTruth

    obs = detections(seq)
    gt = GroundTruth.load(seq / "video" / "gt.npz")
    camera = PinholeCamera.from_json(json.loads((seq / "scene" / "camera.json").read_text()))
    rig = TorchRig.load(seq / "scene" / "character.npz")
    K, R_cw = camera.K, camera.T_world_cam[:3, :3].T
    jacobians, errors, nearer = [], [], []
    eye = camera.T_world_cam[:3, 3]
    distance = np.linalg.norm(gt.bone_pos_w[:, [rig.joint_bones[n] for n in KEYPOINTS]] - eye, axis=-1)
    for k, name in enumerate(KEYPOINTS):
        bone = rig.joint_bones[name]
        delta = matrices_from_quats(gt.bone_quat_w[:, bone]) @ rig.rest_rot[bone].numpy().T  # rest-relative turn
        near = distance[:, k] < distance[:, PARTNER[k]]
        points = gt.bone_pos_w[:, bone] + (delta @ np.where(near[:, None], offsets[0, k], offsets[1, k])[..., None])[..., 0]
        X = camera.world_to_camera(points)
        uv, z = camera.project(points)
        J = np.zeros((len(X), 2, 3))
        J[:, 0, 0], J[:, 1, 1] = K[0, 0] / z, K[1, 1] / z
        J[:, 0, 2], J[:, 1, 2] = -K[0, 0] * X[:, 0] / z ** 2, -K[1, 1] * X[:, 1] / z ** 2
        seen = obs.keypoint_conf[:, k] > 0
        jacobians.append((J @ R_cw @ delta)[seen])
        errors.append((obs.keypoints[:, k] - uv)[seen])
        nearer.append(near[seen])
    return jacobians, errors, nearer


MIRROR = np.diag([1.0, -1.0, 1.0])  # left <-> right in the rest frame (y is left)
#: The joints calibrated on the side nearer the camera and on the side further from it. Where
#: MediaPipe puts a hidden (far) elbow or wrist is a guess that hangs on the visible arm: a mean
#: offset fitted to it made held-out fits worse (MediaPipe sit_chair s4 57 -> 95 mm).
CALIBRATED = (("shoulder", "hip", "knee", "ankle", "elbow", "wrist"), ("shoulder", "hip", "knee", "ankle"))


def calibrate(seqs: list[Path], by_side: bool = True, rounds: int = 3) -> np.ndarray:
    """Offsets (2,K,3: near, far) of left and right keypoints fitted together as mirror images: a
    landmark sits on the body the same way on both sides (which arm does the work varies by
    template), but differently on the side that faces the camera than on the side turned away
    (`by_side`; otherwise one offset for both, on the joints calibrated on both)."""
    from grail.recon.keypoints import KEYPOINTS, PARTNER

    midline = [k for k, partner in enumerate(PARTNER) if k == partner]  # their own mirror image: the head
    offsets = np.zeros((2, len(KEYPOINTS), 3))
    for _ in range(rounds):  # Gauss-Newton: the projection is nearly linear over centimetres
        parts = [residuals(s, offsets) for s in seqs]
        for k in midline:  # no mirror image, no near or far side: one offset from every frame
            offsets[:, k] += _least_squares_step([(p[0][k], p[1][k]) for p in parts])
        for left, name in enumerate(KEYPOINTS):
            if not name.startswith("left_"):
                continue
            right = PARTNER[left]
            for side, near in enumerate((True, False) if by_side else (None,)):
                if name[len("left_"):] not in CALIBRATED[side if by_side else 1]:
                    continue
                step = _least_squares_step([(p[0][k][p[2][k] != (not near)] @ mirror, p[1][k][p[2][k] != (not near)])
                                            for p in parts for k, mirror in ((left, np.eye(3)), (right, MIRROR))])
                sides = [side] if by_side else [0, 1]
                offsets[sides, left] += step
                offsets[sides, right] += MIRROR @ step
    return offsets


def _least_squares_step(rows: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(3,) the offset change that best explains the residuals: rows of (Jacobians (...,3),
    residuals (...)) stacked into one linear least-squares problem."""
    A = np.concatenate([a for a, _ in rows]).reshape(-1, 3)
    b = np.concatenate([e for _, e in rows]).reshape(-1)
    return np.linalg.lstsq(A, b, rcond=None)[0]


def _pixel_errors(errors: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per keypoint, the pixel error lengths over all the given sequences' residuals."""
    return [np.concatenate([np.linalg.norm(seq[k], axis=1) for seq in errors]) for k in range(len(errors[0]))]


def main() -> None:
    from grail.recon.keypoints import KEYPOINTS

    ap = argparse.ArgumentParser()
    ap.add_argument("--calibrate", type=int, nargs="+", default=[0, 1], help="seeds to calibrate on")
    ap.add_argument("--held-out", type=int, nargs="+", default=[2, 3, 4], help="seeds to check on")
    ap.add_argument("--templates", nargs="*", default=None)
    ap.add_argument("--root", type=Path, default=Path.home() / ".cache" / "grail" / "recon-benchmark")
    args = ap.parse_args()
    templates = args.templates or sorted(p.stem for p in Path("scenes").glob("*.yaml"))
    fit = [sequence(t, s, args.root) for t in templates for s in args.calibrate]
    offsets, single = calibrate(fit), calibrate(fit, by_side=False)
    for side, table in enumerate(("MEDIAPIPE_NEAR_OFFSETS_M", "MEDIAPIPE_FAR_OFFSETS_M")):
        print(f"{table} = {{")
        for name, o in zip(KEYPOINTS, offsets[side]):
            print(f'    "{name}": ({o[0]:.3f}, {o[1]:.3f}, {o[2]:.3f}),')
        print("}")
    print(f"\nmedian pixel residual on held-out seeds {args.held_out}: no offsets / one offset for both sides / near and far")
    print(f"{'template':14s} " + " ".join(f"{k.replace('left_', 'L').replace('right_', 'R')[:6]:>14s}" for k in KEYPOINTS))
    totals: list[list[np.ndarray]] = [[], [], []]
    for t in templates:
        held = [sequence(t, s, args.root) for s in args.held_out]
        errors = [_pixel_errors([residuals(s, o)[1] for s in held]) for o in (np.zeros_like(offsets), single, offsets)]
        for total, error in zip(totals, errors):
            total.append(np.concatenate(error))
        print(f"{t:14s} " + " ".join("/".join(f"{np.median(e[k]):.1f}" for e in errors) for k in range(len(KEYPOINTS))))
    medians = " / ".join(f"{np.median(np.concatenate(x)):.2f}" for x in totals)
    means = " / ".join(f"{np.concatenate(x).mean():.2f}" for x in totals)
    print(f"{'all':14s} median {medians} px, mean {means} px")


if __name__ == "__main__":
    main()
