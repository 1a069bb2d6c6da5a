"""The tracker's actor with a latent interface, as an rsl-rl model.

    z = encoder(reference terms)            what to track, as a latent
    action = decoder(proprioception, z)     how to track it with this body

Later adaptors (object-aware, terrain-aware) produce or correct `z` without retraining the decoder,
so the latent is a first-class output: the ONNX graph returns it beside the action.
Observation normalisation (running mean/std) covers both groups and is part of the exported graph.
"""

from __future__ import annotations

import copy

import torch
from rsl_rl.models import MLPModel
from rsl_rl.modules import MLP
from tensordict import TensorDict
from torch import nn


class LatentTrackerModel(MLPModel):
    """rsl-rl ``MLPModel`` whose MLP (the decoder) reads proprioception plus an encoded reference."""

    def __init__(self, obs: TensorDict, obs_groups: dict[str, list[str]], obs_set: str, output_dim: int,
                 hidden_dims: tuple[int, ...] | list[int] = (512, 256, 128), activation: str = "elu",
                 obs_normalization: bool = True, distribution_cfg: dict | None = None, latent_dim: int = 32,
                 encoder_dims: tuple[int, ...] | list[int] = (256, 128), reference_group: str = "reference",
                 output_init_scale: float = 1.0) -> None:
        groups = list(obs_groups[obs_set])
        if not groups or groups[0] != reference_group:
            raise ValueError(f"the {obs_set!r} observation set must start with the {reference_group!r} group, got {groups}")
        # Read by _get_latent_dim while MLPModel builds its MLP, so set before nn.Module's bookkeeping.
        object.__setattr__(self, "reference_dim", int(obs[reference_group].shape[-1]))
        object.__setattr__(self, "latent_dim", int(latent_dim))
        super().__init__(obs, obs_groups, obs_set, output_dim, hidden_dims, activation, obs_normalization,
                         distribution_cfg)
        self.encoder = MLP(self.reference_dim, self.latent_dim, encoder_dims, activation)
        _scale_output_layer(self.mlp, output_init_scale)

    def _get_latent_dim(self) -> int:
        return self.obs_dim - self.reference_dim + self.latent_dim

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent z, proprioception) from normalised concatenated observations."""
        return self.encoder(x[..., :self.reference_dim]), x[..., self.reference_dim:]

    def get_latent(self, obs: TensorDict, masks: torch.Tensor | None = None, hidden_state=None) -> torch.Tensor:
        x = self.obs_normalizer(torch.cat([obs[g] for g in self.obs_groups], dim=-1))
        z, proprio = self.split(x)
        return torch.cat([proprio, z], dim=-1)

    def as_onnx(self, verbose: bool = False) -> nn.Module:
        return LatentTrackerExport(self)

    def as_jit(self) -> nn.Module:
        return LatentTrackerExport(self)


def _scale_output_layer(mlp: nn.Module, scale: float) -> None:
    """Shrink the last linear layer so the untrained policy's actions are near zero, i.e. it holds the
    default pose: its first episodes then last as long as a standing robot does, not as long as
    random joint targets let it."""
    last = [m for m in mlp.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(scale)
        last.bias.mul_(scale)


class LatentTrackerExport(nn.Module):
    """Deterministic inference on the concatenated observation: (actions, latent)."""

    input_names = ["obs"]
    output_names = ["actions", "latent"]
    is_recurrent = False

    def __init__(self, model: LatentTrackerModel) -> None:
        super().__init__()
        self.obs_normalizer = copy.deepcopy(model.obs_normalizer)
        self.encoder = copy.deepcopy(model.encoder)
        self.decoder = copy.deepcopy(model.mlp)
        self.reference_dim = model.reference_dim
        self.input_size = model.obs_dim
        self.deterministic_output = (model.distribution.as_deterministic_output_module()
                                     if model.distribution is not None else nn.Identity())

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.obs_normalizer(obs)
        z = self.encoder(x[..., :self.reference_dim])
        action = self.deterministic_output(self.decoder(torch.cat([x[..., self.reference_dim:], z], dim=-1)))
        return action, z

    def get_dummy_inputs(self) -> tuple[torch.Tensor]:
        return (torch.zeros(1, self.input_size),)
