"""Configurations of the tracker's task, policy, PPO and training run, and the run directory's
files. No simulator is imported here, so a bad request fails before mjlab and warp load."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from grail.atomic import write_text_atomic
from grail.errors import GrailError


@dataclass
class DomainRandomisation:
    """What changes between episodes or environments so a policy survives another simulator."""

    friction: tuple[float, float] | None = (0.3, 1.2)  # foot friction, absolute; None: the asset's (0.6)
    torso_mass_alpha: tuple[float, float] = (-0.1, 0.1)  # log-scale of torso density (pseudo-inertia)
    push_interval_s: tuple[float, float] = (1.0, 3.0)
    push: bool = True
    observation_noise: bool = True
    action_delay_physics_steps: tuple[int, int] = (0, 2)  # 0-10 ms at 200 Hz physics
    com_offset: bool = True
    encoder_bias: bool = True
    # Scale of mjlab's start perturbation (root pose ±5 cm / ±0.1-0.2 rad, root velocity ±0.5 m/s and
    # ±0.5-0.8 rad/s, joints ±0.1 rad), drawn at every episode start; 0 starts on the reference.
    start_perturbation: float = 1.0

    @classmethod
    def none(cls) -> "DomainRandomisation":
        return cls(friction=None, torso_mass_alpha=(0.0, 0.0), push=False, observation_noise=False,
                   action_delay_physics_steps=(0, 0), com_offset=False, encoder_bias=False, start_perturbation=0.0)


@dataclass
class TrackerTaskConfig:
    motions: str = ""
    num_envs: int = 64
    episode_length_s: float = 10.0
    sampling_mode: str = "adaptive"
    randomisation: DomainRandomisation = field(default_factory=DomainRandomisation)
    play: bool = False  # evaluation: no noise, pushes or start perturbations; motions start at frame 0


RUN_FILE = "run.json"
POLICY_CLASS = "grail.tasks.tracking.policy:LatentTrackerModel"


@dataclass
class PolicyConfig:
    latent_dim: int = 32
    encoder_dims: tuple[int, ...] = (256, 128)
    decoder_dims: tuple[int, ...] = (512, 256, 128)
    critic_dims: tuple[int, ...] = (512, 256, 128)
    # Exploration noise, in action units (one unit is 0.25 x effort / stiffness rad, 0.4-0.6 rad on the
    # legs). mjlab's recipe starts at 1.0; there the action-rate penalty alone (0.1 x 2 x 29 x std^2 x
    # 0.02 s = 0.12 a step) outweighs every tracking term (at most 0.1 a step), so with rewards clipped
    # at zero the first iterations see no reward at all. 0.4 costs 0.02 a step.
    init_std: float = 0.4
    output_init_scale: float = 0.01  # untrained actions near zero: the robot holds its default pose


@dataclass
class PPOConfig:
    """PPO settings of mjlab's G1 tracking recipe (BeyondMimic)."""

    steps_per_env: int = 24
    learning_epochs: int = 5
    mini_batches: int = 4
    learning_rate: float = 1e-3
    entropy_coef: float = 0.005
    gamma: float = 0.99
    lam: float = 0.95
    desired_kl: float = 0.01
    clip_param: float = 0.2
    max_grad_norm: float = 1.0
    # Clip each step's total reward at zero (legged_gym's only_positive_rewards). Early in training
    # the action-rate and self-collision penalties outweigh the tracking terms, and with a negative
    # reward per step the quickest return is to fall: a 64-environment CPU run learned to end its
    # episodes in 6 steps (mean reward -3.7 -> -0.16 while episodes shortened from 19 to 6 steps).
    only_positive_rewards: bool = True


@dataclass
class TrainConfig:
    motions: str
    out: str
    device: str = "cpu"
    num_envs: int = 64
    iterations: int = 100
    seed: int = 0
    save_interval: int = 50
    episode_length_s: float = 10.0
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    randomisation: DomainRandomisation = field(default_factory=DomainRandomisation)

    def task(self, play: bool = False, num_envs: int | None = None, motions: str | None = None) -> TrackerTaskConfig:
        return TrackerTaskConfig(motions=motions or self.motions, num_envs=num_envs or self.num_envs,
                                 episode_length_s=self.episode_length_s, randomisation=self.randomisation, play=play)

    def rsl_rl(self) -> dict:
        """The runner configuration rsl-rl reads (a plain dict; it pops keys, so build a fresh one each time)."""
        p, o = self.policy, self.ppo
        return {
            "seed": self.seed, "num_steps_per_env": o.steps_per_env, "save_interval": self.save_interval,
            "obs_groups": {"actor": ["reference", "proprio"], "critic": ["critic"]},
            "logger": "tensorboard", "upload_model": False, "clip_actions": None, "check_for_nan": True,
            "actor": {"class_name": POLICY_CLASS, "hidden_dims": list(p.decoder_dims), "activation": "elu",
                      "obs_normalization": True, "latent_dim": p.latent_dim, "encoder_dims": list(p.encoder_dims),
                      "output_init_scale": p.output_init_scale,
                      "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": p.init_std,
                                           "std_type": "scalar"}},
            "critic": {"class_name": "MLPModel", "hidden_dims": list(p.critic_dims), "activation": "elu",
                       "obs_normalization": True},
            "algorithm": {"class_name": "PPO", "num_learning_epochs": o.learning_epochs,
                          "num_mini_batches": o.mini_batches, "learning_rate": o.learning_rate,
                          "schedule": "adaptive", "gamma": o.gamma, "lam": o.lam, "entropy_coef": o.entropy_coef,
                          "desired_kl": o.desired_kl, "max_grad_norm": o.max_grad_norm, "value_loss_coef": 1.0,
                          "use_clipped_value_loss": True, "clip_param": o.clip_param,
                          "normalize_advantage_per_mini_batch": False, "optimizer": "adam",
                          "rnd_cfg": None, "symmetry_cfg": None},
        }

    def save(self, run: Path) -> None:
        write_text_atomic(run / RUN_FILE, json.dumps({"task": "tracking", **dataclasses.asdict(self)}, indent=1) + "\n")

    @classmethod
    def load(cls, run: Path | str) -> "TrainConfig":
        path = Path(run) / RUN_FILE
        if not path.is_file():
            raise GrailError("not a training run (no run.json): train one with `grail train tracker`", file=path)
        data = json.loads(path.read_text())
        data.pop("task", None)
        try:
            return cls(**{**data, "policy": PolicyConfig(**_tuples(data["policy"])), "ppo": PPOConfig(**data["ppo"]),
                          "randomisation": DomainRandomisation(**_tuples(data["randomisation"]))})
        except (TypeError, KeyError) as exc:
            raise GrailError(f"unreadable run configuration ({exc})", file=path) from None


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def checkpoints(run: Path | str) -> list[Path]:
    """The run's checkpoints, oldest iteration first."""
    found = [(int(m.group(1)), p) for p in Path(run).glob("model_*.pt") if (m := re.fullmatch(r"model_(\d+)\.pt", p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(path: Path | str) -> Path:
    """A checkpoint file, or the newest one in a run directory."""
    path = Path(path)
    if path.is_file():
        return path
    found = checkpoints(path)
    if not found:
        raise GrailError("no checkpoint (model_<iteration>.pt) in the run", file=path)
    return found[-1]


def resolve_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N'; CUDA must be there."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GrailError("CUDA is not available on this machine", field="--device")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise GrailError(f"unknown device {device!r} (cpu or cuda)", field="--device")
    return "cuda:0" if device == "cuda" else device


