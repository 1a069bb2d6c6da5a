"""The generate stage: ``scene/`` -> ``video/`` (video.mp4, video.json, gt.npz) for one sequence.

Backends are chosen by name; ``procedural`` is the embedded CPU default. Everything is written
into the stage's temporary directory and renamed into place by the sequence store, so a failed
or interrupted run leaves no half-written video.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from grail import __version__
from grail.errors import GrailError
from grail.rotations import quats_from_matrices
from grail.sequence import Sequence, StageResult, hash_file

BACKENDS = ("procedural",)
JOINT_CHECK_FRAMES = 12  # frames sampled for the joint-to-mask agreement


@dataclass
class GenerateOptions:
    backend: str = "procedural"
    width: int | None = None  # default: the scene camera's resolution
    height: int | None = None
    check_joints: bool = True


def stage_inputs(seq: Sequence, options: GenerateOptions) -> dict[str, str]:
    scene = seq.stage_dir("scene")
    return {"spec": hash_file(scene / "spec.yaml"), "character": hash_file(scene / "character.npz"),
            "scene_xml": hash_file(scene / "scene.xml"), "camera": hash_file(scene / "camera.json"),
            "backend": options.backend, "size": f"{options.width}x{options.height}", "grail": __version__}


def render_video(synthesis, scene_dir: Path, out: Path, width: int | None, height: int | None,
                 progress: Callable[[int, int], None] | None = None, check_joints: bool = True) -> dict:
    """Render and encode every frame; returns sizes, timings and the joint-to-mask agreement."""
    from grail.render.video_io import VideoWriter
    from grail.video.render import VideoRenderer, joint_mask_agreement, load_scene_camera

    cam = load_scene_camera(scene_dir)
    width, height = width or cam.width, height or cam.height
    gt = synthesis.gt
    bw = gt.bone_world()
    poses = {n: (T[:, :3, 3], quats_from_matrices(T[:, :3, :3])) for n, T in synthesis.objects.items()}
    check = set(np.linspace(0, gt.frames - 1, JOINT_CHECK_FRAMES).astype(int).tolist()) if check_joints else set()
    masks, depths, checked = [], [], []
    t0 = time.perf_counter()
    with VideoRenderer(scene_dir, synthesis.character, synthesis.spec.character.colors, width, height) as r, \
            VideoWriter(out, gt.fps, width, height) as writer:
        for i in range(gt.frames):
            objects = {n: (p[i], q[i]) for n, (p, q) in poses.items()}
            writer.write(r.frame(bw[i], objects))
            if i in check:
                mask, _, depth = r.segmentation_and_depth(bw[i], objects)
                masks.append(mask)
                depths.append(depth)
                checked.append(i)
            if progress:
                progress(i + 1, gt.frames)
        camera = r.camera
    info = {"render_s": round(time.perf_counter() - t0, 3), "width": width, "height": height,
            "K": np.round(camera.K, 6).tolist()}
    if checked:
        agreement = joint_mask_agreement(gt.joint_pos, camera, np.stack(masks), np.stack(depths), checked, names=gt.joint_names)
        info["joint_mask_agreement"] = agreement
    return info


def generate_dir(scene_dir: Path, out_dir: Path, options: GenerateOptions,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Write video.mp4, gt.npz and video.json for the scene into out_dir (the stage's temp dir)."""
    from grail.video.geometry import SceneGeometry
    from grail.video.metrics import check, consistency_metrics
    from grail.video.procedural import synthesize

    t0 = time.perf_counter()
    synthesis = synthesize(scene_dir)
    synth_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    metrics = consistency_metrics(synthesis.gt, synthesis.character, SceneGeometry.load(scene_dir))
    metrics_s = time.perf_counter() - t1
    violations = check(metrics)
    synthesis.gt.save(out_dir / "gt.npz")
    info = render_video(synthesis, scene_dir, out_dir / "video.mp4", options.width, options.height, progress,
                        options.check_joints)
    spec = synthesis.spec
    record = {
        "backend": options.backend, "model": "grail-procedural", "prompt": spec.prompt, "seed": spec.seed,
        "task": spec.task, "fps": synthesis.gt.fps, "frames": synthesis.gt.frames,
        "resolution": [info["width"], info["height"]], "seconds": round(synthesis.gt.frames / synthesis.gt.fps, 4),
        "K": info["K"], "quat_order": "wxyz",
        "phases": _phase_spans(synthesis.gt.phase, synthesis.gt.fps),
        "physical_consistency": {"metrics": metrics, "violations": violations},
        "joint_mask_agreement": info.get("joint_mask_agreement"),
        "timings_s": {"synthesis": round(synth_s, 3), "metrics": round(metrics_s, 3), "render_encode": info["render_s"]},
    }
    (out_dir / "video.json").write_text(json.dumps(record, indent=2) + "\n")
    return {"frames": synthesis.gt.frames, "violations": len(violations),
            "joint_mask_fraction": (info.get("joint_mask_agreement") or {}).get("fraction"),
            **record["timings_s"]}


def _phase_spans(phase: np.ndarray, fps: float) -> list[dict]:
    spans, start = [], 0
    for i in range(1, len(phase) + 1):
        if i == len(phase) or phase[i] != phase[start]:
            spans.append({"phase": str(phase[start]), "start_s": round(start / fps, 4), "end_s": round(i / fps, 4)})
            start = i
    return spans


def generate_sequence(seq_dir: Path, options: GenerateOptions | None = None, force: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> tuple[Sequence, StageResult]:
    """Run the generate stage of a composed sequence (skipped when done and unchanged)."""
    options = options or GenerateOptions()
    if options.backend not in BACKENDS:
        raise GrailError(f"unknown video backend {options.backend!r} (available: {', '.join(BACKENDS)})", field="--backend")
    seq_dir = Path(seq_dir)
    seq = Sequence.open_after(seq_dir, "scene", "grail compose")
    inputs = stage_inputs(seq, options)
    scene_dir = seq.stage_dir("scene")
    return seq, seq.run_stage("video", lambda tmp: generate_dir(scene_dir, Path(tmp), options, progress), inputs, force=force)
