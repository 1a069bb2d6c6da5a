"""Export a trained tracker: ``policy.onnx`` (obs -> actions, latent) and its policy card, with a
numerical check that onnxruntime and torch agree. The directory appears only when complete.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mujoco
import numpy as np
import torch
from tensordict import TensorDict

from grail.errors import GrailError
from grail.export.card import ONNX_NAME, Latent, MotionSpec, Observation, ObservationTerm, PolicyCard
from grail.tasks.tracking.env_cfg import COMMAND, PROPRIO_TERMS, REFERENCE_TERMS, TASK_NAME, term_layout, tracker_env_cfg
from grail.tasks.tracking.evaluate import END_EFFECTORS, load_actor
from grail.tasks.tracking.config import TrainConfig, latest_checkpoint
from grail.tasks.tracking.train import build_env

AGREEMENT_TOLERANCE = 1e-4


def controller_facts(env) -> dict:
    """Gains, limits, default pose and action scale as the training simulator used them, per joint."""
    robot, action = env.scene["robot"], env.action_manager.get_term("joint_pos")
    names = list(action.target_names)
    if names != list(robot.joint_names):
        raise GrailError("the action order differs from the joint order; the card assumes one order", field="joints")
    m = env.sim.mj_model
    kp, kd, armature, effort = [], [], [], []
    for name in names:
        a = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"robot/{name}")
        j = m.actuator_trnid[a, 0]
        kp.append(float(m.actuator_gainprm[a, 0]))
        kd.append(float(-m.actuator_biasprm[a, 2]))
        armature.append(float(m.dof_armature[m.jnt_dofadr[j]]))
        effort.append(float(m.actuator_forcerange[a, 1]))
    return {"joint_names": names, "kp": kp, "kd": kd, "armature": armature, "effort_limit": effort,
            "default_joint_pos": robot.data.default_joint_pos[0].tolist(), "action_scale": action.scale[0].tolist(),
            "physics_dt": float(env.physics_dt), "decimation": int(env.cfg.decimation)}


def _card(config: TrainConfig, env, checkpoint: Path, iteration: int) -> PolicyCard:
    cmd_cfg = env.cfg.commands[COMMAND]
    return PolicyCard(
        task=TASK_NAME, robot="g1_29dof_rev_1_0", **controller_facts(env),
        observation=Observation(size=sum(s for _, s in REFERENCE_TERMS + PROPRIO_TERMS),
                                terms=[ObservationTerm(**t) for t in term_layout()]),
        latent=Latent(dim=config.policy.latent_dim, reference_terms=[n for n, _ in REFERENCE_TERMS],
                      proprio_terms=[n for n, _ in PROPRIO_TERMS]),
        motion=MotionSpec(anchor_body=cmd_cfg.anchor_body_name, tracked_bodies=list(cmd_cfg.body_names),
                          end_effector_bodies=list(END_EFFECTORS), fps=1.0 / env.step_dt),
        source_run=str(Path(config.out)), checkpoint=str(checkpoint), iteration=iteration)


def _write_onnx(module: torch.nn.Module, path: Path, size: int) -> None:
    torch.onnx.export(module, (torch.zeros(1, size),), str(path), export_params=True, opset_version=18,
                      input_names=["obs"], output_names=["actions", "latent"],
                      dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}, "latent": {0: "batch"}},
                      dynamo=False)


def onnx_torch_difference(module: torch.nn.Module, path: Path, size: int, samples: int = 256, seed: int = 0) -> float:
    """Largest |onnx - torch| over actions and latents for random observations at several scales."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(samples, size, generator=g) * torch.logspace(-2, 1, samples)[:, None]
    with torch.no_grad():
        ref = [t.numpy() for t in module(obs)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["actions", "latent"], {"obs": obs.numpy().astype(np.float32)})
    return float(max(np.abs(a - b).max() for a, b in zip(ref, got)))


def export_policy(run: Path | str, out: Path | str, checkpoint: Path | str | None = None,
                  motions: str | None = None) -> PolicyCard:
    """Write policy.onnx + policy.json into `out` (replaced only when the export checked out)."""
    config = TrainConfig.load(run)
    ckpt = latest_checkpoint(checkpoint or run)
    env = build_env(tracker_env_cfg(config.task(play=True, num_envs=1, motions=motions)), "cpu")
    obs, _ = env.reset()
    actor = load_actor(config, ckpt, TensorDict(obs, batch_size=[1]))
    iteration = int(torch.load(ckpt, map_location="cpu", weights_only=False).get("iter", 0))
    card = _card(config, env, ckpt, iteration)
    env.close()
    module = actor.as_onnx().eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        _write_onnx(module, tmp / ONNX_NAME, card.observation.size)
        diff = onnx_torch_difference(module, tmp / ONNX_NAME, card.observation.size)
        if not diff <= AGREEMENT_TOLERANCE:
            raise GrailError(f"ONNX and torch disagree by {diff:.2e} (> {AGREEMENT_TOLERANCE:g})", file=tmp / ONNX_NAME)
        card = card.model_copy(update={"torch_onnx_max_abs_diff": diff})
        card.save(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return card
