"""``recon/overlay.mp4``: the video with what the reconstruction believes drawn over it: the detected
keypoints (yellow dots), the reconstructed skeleton reprojected (green; red while its keypoint is
more than 10 % of the person's height off), the object's reprojected outline (cyan), and the
contact labels and filter verdict as text. It is how a person checks a reconstruction at a glance."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from grail.recon.keypoints import KEYPOINTS
from grail.recon.object_track import silhouette
from grail.recon.refine import project
from grail.render.video_io import VideoWriter

BONES = [("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
         ("right_shoulder", "right_hip"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
         ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_hip", "left_knee"),
         ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
         ("left_shoulder", "head"), ("right_shoulder", "head")]


def write_overlay(path: Path, rec) -> dict:
    """Draw every frame of `rec` (a grail.recon.stage.Reconstruction) and encode it."""
    video, obs, hoi = rec.video, rec.obs, rec.hoi
    camera = video.camera
    joints = hoi.joint_pos[:, [hoi.joint_names.index(k) for k in KEYPOINTS]]
    uv = project(torch.as_tensor(joints), camera)[0].numpy()
    height = max(1.0, float(np.median(np.ptp(obs.keypoints[..., 1], axis=1))))
    W, H = camera.width - camera.width % 2, camera.height - camera.height % 2
    line = max(1, int(round(camera.height / 360)))
    with VideoWriter(path, video.fps, W, H) as writer:
        for t, frame in enumerate(video.frames):
            img = np.ascontiguousarray(frame.copy())
            if hoi.object_names:
                _draw_object(img, camera, rec, t, line)
            _draw_skeleton(img, uv[t], obs.keypoints[t], obs.keypoint_conf[t], height, line)
            _draw_text(img, rec, t, line)
            writer.write(img[:H, :W])
    return {"frames": len(video.frames), "width": W, "height": H}


def _draw_skeleton(img: np.ndarray, uv: np.ndarray, seen_uv: np.ndarray, conf: np.ndarray, height: float,
                   line: int) -> None:
    index = {k: i for i, k in enumerate(KEYPOINTS)}
    off = np.linalg.norm(uv - seen_uv, axis=-1) > 0.1 * height
    for a, b in BONES:
        i, j = index[a], index[b]
        bad = (off[i] and conf[i] > 0) or (off[j] and conf[j] > 0)
        cv2.line(img, _pt(uv[i]), _pt(uv[j]), (230, 40, 40) if bad else (40, 220, 60), line, cv2.LINE_AA)
    for k in np.flatnonzero(conf > 0):
        cv2.circle(img, _pt(seen_uv[k]), line + 1, (250, 220, 30), -1, cv2.LINE_AA)


def _draw_object(img: np.ndarray, camera, rec, t: int, line: int) -> None:
    mask = silhouette(camera, rec.object_model, rec.hoi.object_pos[t, 0], rec.hoi.object_quat[t, 0])
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, (40, 220, 230), line, cv2.LINE_AA)


def _draw_text(img: np.ndarray, rec, t: int, line: int) -> None:
    hoi = rec.hoi
    labels = [n.replace("_", " ") for n, on in zip(hoi.contact_names, hoi.contact[t]) if on]
    verdict = "pass" if rec.metrics["filter"]["passed"] else "FAIL"
    text = f"{t:4d}  {rec.obs.estimator.split(' ')[0][:24]}  filter {verdict}  contact: {', '.join(labels) or '-'}"
    scale = 0.4 * line
    cv2.putText(img, text, (6, 14 * line), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), line + 2, cv2.LINE_AA)
    cv2.putText(img, text, (6, 14 * line), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), line, cv2.LINE_AA)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(np.clip(p[0], -1e4, 1e4)))), int(round(float(np.clip(p[1], -1e4, 1e4))))

