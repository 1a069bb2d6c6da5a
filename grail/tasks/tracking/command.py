"""A motion command over a whole library, for mjlab's tracking terms.

mjlab's ``MotionCommand`` tracks one motion and keeps its adaptive sampling inside it. This term
keeps every property those rewards, observations and terminations read, but its frame index is
global over a :class:`MotionLibrary`: each environment plays one motion, and when it starts
(reset, or the end of its motion) it draws a motion and a start time from 1-second bins over the
whole library, weighted by how often episodes recently failed in each bin (an exponential moving
average) plus a uniform floor, so hard motions and hard moments get more practice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from mjlab.managers import CommandTerm
from mjlab.tasks.tracking.mdp.commands import MotionCommand, MotionCommandCfg
from mjlab.utils.lab_api.math import quat_from_euler_xyz, quat_mul, sample_uniform

from grail.tasks.tracking.library import MotionLibrary

_AXES = ("x", "y", "z", "roll", "pitch", "yaw")


class LibraryMotionCommand(MotionCommand):
    cfg: "LibraryMotionCommandCfg"

    def __init__(self, cfg: "LibraryMotionCommandCfg", env) -> None:
        CommandTerm.__init__(self, cfg, env)  # MotionCommand's own __init__ reads a single file
        self.robot = env.scene[cfg.entity_name]
        self.robot_anchor_body_index = self.robot.body_names.index(cfg.anchor_body_name)
        self.motion_anchor_body_index = cfg.body_names.index(cfg.anchor_body_name)
        self.body_indexes = torch.tensor(self.robot.find_bodies(cfg.body_names, preserve_order=True)[0],
                                         dtype=torch.long, device=self.device)
        self.motion = MotionLibrary.load(cfg.motion_library, list(self.robot.joint_names), list(cfg.body_names),
                                         fps=1.0 / env.step_dt, device=self.device)
        self.motion_ids = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.time_steps = self.motion.start[self.motion_ids].clone()
        nb = len(cfg.body_names)
        self.body_pos_relative_w = torch.zeros(self.num_envs, nb, 3, device=self.device)
        self.body_quat_relative_w = torch.zeros(self.num_envs, nb, 4, device=self.device)
        self.body_quat_relative_w[:, :, 0] = 1.0
        self._make_bins(int(round(cfg.bin_seconds / env.step_dt)))
        for key in ("error_anchor_pos", "error_anchor_rot", "error_anchor_lin_vel", "error_anchor_ang_vel",
                    "error_body_pos", "error_body_rot", "error_joint_pos", "error_joint_vel",
                    "sampling_entropy", "sampling_top1_prob"):
            self.metrics[key] = torch.zeros(self.num_envs, device=self.device)
        self._ghost_model = None
        self._ghost_color = np.array(cfg.viz.ghost_color, dtype=np.float32)
        self._pending_forward = False

    # ------------------------------------------------------------------ bins over the library

    def _make_bins(self, frames_per_bin: int) -> None:
        """Cut each motion into bins of about `frames_per_bin` frames (the last frame is never a start)."""
        motion_of, first, size = [], [], []
        for m, n in enumerate(self.motion.length.tolist()):
            starts = max(n - 1, 1)
            count = max(1, math.ceil(starts / max(frames_per_bin, 1)))
            edges = np.linspace(0, starts, count + 1)
            for k in range(count):
                motion_of.append(m)
                first.append(int(edges[k]))
                size.append(max(int(edges[k + 1]) - int(edges[k]), 1))
        self.bin_motion = torch.tensor(motion_of, dtype=torch.long, device=self.device)
        self.bin_first = torch.tensor(first, dtype=torch.long, device=self.device)
        self.bin_size = torch.tensor(size, dtype=torch.long, device=self.device)
        self.bin_count = len(motion_of)
        self.bin_failed_count = torch.zeros(self.bin_count, device=self.device)
        self._current_bin_failed = torch.zeros(self.bin_count, device=self.device)

    def _bin_of(self, env_ids: torch.Tensor) -> torch.Tensor:
        """The bin each environment's current frame falls in."""
        motion = self.motion_ids[env_ids]
        local = self.time_steps[env_ids] - self.motion.start[motion]
        same = self.bin_motion[None, :] == motion[:, None]
        inside = same & (self.bin_first[None, :] <= local[:, None])
        return torch.where(inside, torch.arange(self.bin_count, device=self.device)[None, :], -1).max(dim=1).values

    def bin_probabilities(self) -> torch.Tensor:
        p = self.bin_failed_count + self.cfg.adaptive_uniform_ratio / float(self.bin_count)
        return p / p.sum()

    def motion_failure_share(self) -> torch.Tensor:
        """Per motion, the share of the recent failure mass (for logs and reports)."""
        share = torch.zeros(self.motion.num_motions, device=self.device)
        share.index_add_(0, self.bin_motion, self.bin_failed_count)
        return share / share.sum().clamp_min(1e-12)

    # ------------------------------------------------------------------ sampling

    def _adaptive_sampling(self, env_ids: torch.Tensor) -> None:
        failed = self._env.termination_manager.terminated[env_ids]
        if torch.any(failed):
            bins = self._bin_of(env_ids[failed])
            self._current_bin_failed[:] = torch.bincount(bins, minlength=self.bin_count).float()
        p = self.bin_probabilities()
        self._start_in_bins(env_ids, torch.multinomial(p, len(env_ids), replacement=True))
        entropy = -(p * (p + 1e-12).log()).sum()
        self.metrics["sampling_entropy"][:] = entropy / math.log(self.bin_count) if self.bin_count > 1 else 1.0
        self.metrics["sampling_top1_prob"][:] = p.max()

    def _uniform_sampling(self, env_ids: torch.Tensor) -> None:
        self._start_in_bins(env_ids, torch.randint(0, self.bin_count, (len(env_ids),), device=self.device))

    def _start_in_bins(self, env_ids: torch.Tensor, bins: torch.Tensor) -> None:
        offset = self.bin_first[bins] + (torch.rand(len(env_ids), device=self.device) * self.bin_size[bins]).long()
        self.motion_ids[env_ids] = self.bin_motion[bins]
        self.time_steps[env_ids] = self.motion.start[self.bin_motion[bins]] + offset

    def assign(self, env_ids: torch.Tensor, motion_ids: torch.Tensor) -> None:
        """Pin motions to environments; with sampling_mode 'start' they restart them from frame 0."""
        self.motion_ids[env_ids] = motion_ids
        self.time_steps[env_ids] = self.motion.start[motion_ids]

    def _resample_command(self, env_ids: torch.Tensor) -> None:
        if self.cfg.sampling_mode == "start":
            self.time_steps[env_ids] = self.motion.start[self.motion_ids[env_ids]]
        elif self.cfg.sampling_mode == "uniform":
            self._uniform_sampling(env_ids)
        else:
            self._adaptive_sampling(env_ids)
        self._write_randomised_reference(env_ids)
        self._pending_forward = True

    def _write_randomised_reference(self, env_ids: torch.Tensor) -> None:
        """Start the robot at the reference frame, perturbed by the configured ranges."""
        n = len(env_ids)

        def draw(ranges: dict[str, tuple[float, float]]) -> torch.Tensor:
            r = torch.tensor([ranges.get(k, (0.0, 0.0)) for k in _AXES], device=self.device)
            return sample_uniform(r[:, 0], r[:, 1], (n, 6), device=self.device)

        pose, vel = draw(self.cfg.pose_range), draw(self.cfg.velocity_range)
        root_pos = self.body_pos_w[env_ids, 0] + pose[:, :3]
        root_ori = quat_mul(quat_from_euler_xyz(pose[:, 3], pose[:, 4], pose[:, 5]), self.body_quat_w[env_ids, 0])
        lin = self.body_lin_vel_w[env_ids, 0] + vel[:, :3]
        ang = self.body_ang_vel_w[env_ids, 0] + vel[:, 3:]
        lo, hi = self.cfg.joint_position_range
        joint_pos = self.joint_pos[env_ids] + sample_uniform(lo, hi, (n, self.joint_pos.shape[1]), device=self.device)
        self._write_reference_state_to_sim(env_ids, root_pos, root_ori, lin, ang, joint_pos, self.joint_vel[env_ids])

    def _update_command(self, env_ids: torch.Tensor | None = None) -> None:
        if env_ids is None:
            self.time_steps += 1
        else:
            self.time_steps[env_ids] += 1
        end = self.motion.start[self.motion_ids] + self.motion.length[self.motion_ids]
        done = torch.where(self.time_steps >= end)[0]
        if done.numel() > 0:
            self._resample_command(done)
        if self._pending_forward:
            self._pending_forward = False
            self._env.sim.forward()
        self.update_relative_body_poses()
        if env_ids is None and self.cfg.sampling_mode == "adaptive":
            a = self.cfg.adaptive_alpha
            self.bin_failed_count = a * self._current_bin_failed + (1 - a) * self.bin_failed_count
            self._current_bin_failed.zero_()

    def local_frame(self) -> torch.Tensor:
        """Each environment's frame within its own motion."""
        return self.time_steps - self.motion.start[self.motion_ids]


@dataclass(kw_only=True)
class LibraryMotionCommandCfg(MotionCommandCfg):
    motion_file: str = ""            # unused: motions come from the library
    motion_library: str = ""
    bin_seconds: float = 1.0
    sampling_mode: Literal["adaptive", "uniform", "start"] = "adaptive"

    def build(self, env) -> LibraryMotionCommand:
        return LibraryMotionCommand(self, env)
