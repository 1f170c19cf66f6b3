"""SIREN (Sitzmann et al., 2020) with one set of weights per region, stacked so all regions run in one bmm.

A layer computes ``sin(omega_0 * (x W + b))``; the last layer is linear. Initialisation (REFERENCE.md):
first-layer weights uniform in ``(-1/n, 1/n)``, later layers uniform in
``(-sqrt(6/n)/omega_0, sqrt(6/n)/omega_0)`` with ``n`` the layer's input width; biases as PyTorch's
``nn.Linear`` default, ``(-1/sqrt(n), 1/sqrt(n))``. Inputs are coordinates scaled to ``[-1, 1]``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from perc_platform.errors import ParameterError

__all__ = ["SirenConfig", "init_siren", "layer_widths", "siren_forward"]


@dataclass(frozen=True)
class SirenConfig:
    """Shape of the SIREN of every region.

    Defaults are the reference's: 4 hidden layers of width 256, ``omega_0 = 30``.
    """

    hidden_layers: int = 4
    hidden_width: int = 256
    omega_0: float = 30.0

    def __post_init__(self) -> None:
        if self.hidden_layers < 1 or self.hidden_width < 1 or not self.omega_0 > 0:
            raise ParameterError(f"invalid SIREN shape {self}; use hidden_layers >= 1, hidden_width >= 1, "
                                 "omega_0 > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_widths(config: SirenConfig) -> list[int]:
    """Widths from the 3 input coordinates to the 1 output value."""
    return [3] + [config.hidden_width] * config.hidden_layers + [1]


def init_siren(config: SirenConfig, seeds: list[int]) -> dict[str, torch.Tensor]:
    """Stacked initial weights, one slice per seed: ``w{i}`` ``(R, n_in, n_out)`` and ``b{i}`` ``(R, 1, n_out)``.

    Each region draws from its own generator, so a region's weights do not depend on which other regions
    are fitted alongside it (distributed and in-process fits start from the same weights).
    """
    widths = layer_widths(config)
    per_region: list[dict[str, torch.Tensor]] = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        params: dict[str, torch.Tensor] = {}
        for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
            bound = 1.0 / n_in if i == 0 else math.sqrt(6.0 / n_in) / config.omega_0
            params[f"w{i}"] = (torch.rand(n_in, n_out, generator=gen) * 2 - 1) * bound
            params[f"b{i}"] = (torch.rand(1, n_out, generator=gen) * 2 - 1) / math.sqrt(n_in)
        per_region.append(params)
    return {name: torch.stack([p[name] for p in per_region]) for name in per_region[0]}


def siren_forward(params: dict[str, torch.Tensor], x: torch.Tensor, omega_0: float,
                  autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Values ``(R, N)`` of the stacked SIRENs at coordinates ``x`` ``(R, N, 3)`` in ``[-1, 1]``.

    With ``autocast_dtype`` (bfloat16 or float16) the hidden-to-hidden products, which hold nearly all
    the arithmetic (``width^2`` per point against ``4 width`` for the first and last layers), run under
    ``torch.autocast``; the first layer (the coordinates: bfloat16 would move a point of a 64^3 region by
    up to a quarter of a half-voxel step), the sine arguments and the output layer stay float32.
    """
    n_layers = len(params) // 2
    h = x
    for i in range(n_layers):
        if autocast_dtype is not None and 0 < i < n_layers - 1:
            with torch.autocast(x.device.type, dtype=autocast_dtype):
                h = torch.baddbmm(params[f"b{i}"], h, params[f"w{i}"])
            h = h.float()
        else:
            h = torch.baddbmm(params[f"b{i}"], h, params[f"w{i}"])
        if i < n_layers - 1:
            h = torch.sin(omega_0 * h)
    return h.squeeze(-1)
