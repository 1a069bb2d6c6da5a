"""The mjlab task: the G1 (29 DoF, mjlab's actuator constants and action scale) tracking motions
from a library, with reference-relative observations split into a reference group and a
proprioception group (the policy's latent interface reads them separately), BeyondMimic-style
rewards and terminations, and domain randomisation.

Built on mjlab's own G1 tracking configuration (robot, self-collision sensor, anchor and tracked
bodies, rewards, terminations); what differs is the motion source (a library, not one file), the
observation groups, mass randomisation and actuator delay.
"""

from __future__ import annotations

import dataclasses

from mjlab.envs import ManagerBasedRlEnvCfg
from mjlab.envs.mdp import dr
from mjlab.managers.event_manager import EventTermCfg
from mjlab.managers.observation_manager import ObservationGroupCfg, ObservationTermCfg
from mjlab.managers.scene_entity_config import SceneEntityCfg
from mjlab.tasks.tracking import mdp
from mjlab.tasks.tracking.config.g1.env_cfgs import unitree_g1_flat_tracking_env_cfg
from mjlab.utils.noise import UniformNoiseCfg as Unoise

from grail.tasks.tracking.command import LibraryMotionCommandCfg
from grail.tasks.tracking.config import DomainRandomisation, TrackerTaskConfig

TASK_NAME = "grail-tracking-g1"
COMMAND = "motion"

# (name, size) of each policy-input term, in order: the layout the policy card records.
REFERENCE_TERMS = (("motion_joint_pos", 29), ("motion_joint_vel", 29), ("motion_anchor_pos_b", 3),
                   ("motion_anchor_ori_b", 6))
PROPRIO_TERMS = (("base_lin_vel", 3), ("base_ang_vel", 3), ("joint_pos", 29), ("joint_vel", 29), ("actions", 29))


def _term(func, noise: float | None = None, **params) -> ObservationTermCfg:
    return ObservationTermCfg(func=func, params=params, noise=Unoise(n_min=-noise, n_max=noise) if noise else None)


def _observations(noisy: bool) -> dict[str, ObservationGroupCfg]:
    """Reference and proprioception groups for the actor; a privileged group for the critic."""
    c = {"command_name": COMMAND}
    reference = {
        "motion_joint_pos": _term(_ref_joint_pos, **c),
        "motion_joint_vel": _term(_ref_joint_vel, **c),
        "motion_anchor_pos_b": _term(mdp.motion_anchor_pos_b, 0.25, **c),
        "motion_anchor_ori_b": _term(mdp.motion_anchor_ori_b, 0.05, **c),
    }
    proprio = {
        "base_lin_vel": _term(mdp.builtin_sensor, 0.5, sensor_name="robot/imu_lin_vel"),
        "base_ang_vel": _term(mdp.builtin_sensor, 0.2, sensor_name="robot/imu_ang_vel"),
        "joint_pos": ObservationTermCfg(func=mdp.joint_pos_rel, noise=Unoise(n_min=-0.01, n_max=0.01),
                                        params={"biased": True}),
        "joint_vel": _term(mdp.joint_vel_rel, 0.5),
        "actions": _term(mdp.last_action),
    }
    critic = {
        "command": _term(mdp.generated_commands, **c),
        "motion_anchor_pos_b": _term(mdp.motion_anchor_pos_b, **c),
        "motion_anchor_ori_b": _term(mdp.motion_anchor_ori_b, **c),
        "body_pos": _term(mdp.robot_body_pos_b, **c),
        "body_ori": _term(mdp.robot_body_ori_b, **c),
        "base_lin_vel": _term(mdp.builtin_sensor, sensor_name="robot/imu_lin_vel"),
        "base_ang_vel": _term(mdp.builtin_sensor, sensor_name="robot/imu_ang_vel"),
        "joint_pos": _term(mdp.joint_pos_rel),
        "joint_vel": _term(mdp.joint_vel_rel),
        "actions": _term(mdp.last_action),
    }
    return {"reference": ObservationGroupCfg(terms=reference, concatenate_terms=True, enable_corruption=noisy),
            "proprio": ObservationGroupCfg(terms=proprio, concatenate_terms=True, enable_corruption=noisy),
            "critic": ObservationGroupCfg(terms=critic, concatenate_terms=True, enable_corruption=False)}


def _ref_joint_pos(env, command_name: str):
    return env.command_manager.get_term(command_name).joint_pos


def _ref_joint_vel(env, command_name: str):
    return env.command_manager.get_term(command_name).joint_vel


def _with_delay(robot_cfg, lags: tuple[int, int]):
    """The robot with every actuator's command delayed by lags[0]..lags[1] physics steps."""
    if lags[1] <= 0:
        return robot_cfg
    actuators = tuple(dataclasses.replace(a, delay_min_lag=lags[0], delay_max_lag=lags[1])
                      for a in robot_cfg.articulation.actuators)
    robot_cfg.articulation = dataclasses.replace(robot_cfg.articulation, actuators=actuators)
    return robot_cfg


def _scaled(ranges: dict[str, tuple[float, float]], k: float) -> dict[str, tuple[float, float]]:
    return {axis: (lo * k, hi * k) for axis, (lo, hi) in ranges.items()} if k else {}


def tracker_env_cfg(task: TrackerTaskConfig) -> ManagerBasedRlEnvCfg:
    """mjlab environment configuration for the tracker."""
    rnd = DomainRandomisation.none() if task.play else task.randomisation
    cfg = unitree_g1_flat_tracking_env_cfg(play=task.play)
    base = cfg.commands[COMMAND]
    k = rnd.start_perturbation
    cfg.commands[COMMAND] = LibraryMotionCommandCfg(
        entity_name=base.entity_name, resampling_time_range=base.resampling_time_range, debug_vis=False,
        pose_range=_scaled(base.pose_range, k), velocity_range=_scaled(base.velocity_range, k),
        joint_position_range=tuple(v * k for v in base.joint_position_range),
        anchor_body_name=base.anchor_body_name, body_names=base.body_names, motion_library=str(task.motions),
        sampling_mode="start" if task.play else task.sampling_mode)
    cfg.observations = _observations(rnd.observation_noise)
    cfg.scene.num_envs = task.num_envs
    cfg.scene.entities["robot"] = _with_delay(cfg.scene.entities["robot"], rnd.action_delay_physics_steps)
    cfg.episode_length_s = task.episode_length_s if not task.play else cfg.episode_length_s
    events = cfg.events
    if rnd.friction is None:
        events.pop("foot_friction", None)
    else:
        events["foot_friction"].params["ranges"] = rnd.friction
    if not rnd.push:
        events.pop("push_robot", None)
    else:
        events["push_robot"].interval_range_s = rnd.push_interval_s
    if not rnd.com_offset:
        events.pop("base_com", None)
    if not rnd.encoder_bias:
        events.pop("encoder_bias", None)
    if rnd.torso_mass_alpha != (0.0, 0.0):
        events["torso_mass"] = EventTermCfg(mode="startup", func=dr.pseudo_inertia, params={
            "asset_cfg": SceneEntityCfg("robot", body_names=("torso_link",)), "alpha_range": rnd.torso_mass_alpha})
    return cfg


def term_layout() -> list[dict]:
    """The policy input, term by term: what the policy card records."""
    out, at = [], 0
    for group, terms in (("reference", REFERENCE_TERMS), ("proprio", PROPRIO_TERMS)):
        for name, size in terms:
            out.append({"name": name, "start": at, "size": size, "group": group})
            at += size
    return out
