"""Precision of a fit (float32 or mixed) and the Adam of the stacked region weights.

Mixed precision runs the SIREN's hidden-to-hidden matrix products under ``torch.autocast`` (bfloat16
where the device supports it, else float16 with a ``torch.amp.GradScaler``); the master weights, the
optimiser, the loss and every reported error stay float32 (see :func:`siren_forward`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from perc_platform.errors import ParameterError

__all__ = ["PRECISIONS", "StackedAdam", "precision_name", "resolve_precision"]

#: ``auto``: mixed on CUDA, float32 elsewhere; ``mixed``: bfloat16 where supported, else float16;
#: ``bfloat16`` / ``float16``: that autocast type (float16 with a GradScaler); ``float32``: no autocast.
PRECISIONS = ("auto", "float32", "mixed", "bfloat16", "float16")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of a fit on ``device``, or ``None`` for a float32 fit."""
    if precision not in PRECISIONS:
        raise ParameterError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "float32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "float16":
        return torch.float16
    # CPUs autocast in bfloat16; GPUs before Ampere (no bf16 tensor cores) get float16 and a GradScaler.
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def precision_name(dtype: torch.dtype | None) -> str:
    """``"float32"``, ``"bfloat16"`` or ``"float16"``."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


class StackedAdam(torch.optim.Optimizer):
    """Adam, elementwise, on stacked region weights: every region's slice is updated independently.

    It takes a ``torch.amp.GradScaler`` without a host sync: the scaler sets ``grad_scale`` and
    ``found_inf`` (device tensors) on the optimiser before :meth:`step` (the contract of PyTorch's fused
    Adam, ``_step_supports_amp_scaling``), and a step with non-finite gradients leaves weights, moments
    and the step count as they were. :meth:`select` keeps the rows of the regions still fitting.
    """

    _step_supports_amp_scaling = True

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, count: torch.Tensor | None = None) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        device = params[0].device
        self.count = torch.zeros((), dtype=torch.float32, device=device) if count is None else count
        for p in params:
            self.state[p]["m"] = torch.zeros_like(p)
            self.state[p]["v"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        if closure is not None:
            raise ParameterError("StackedAdam.step takes no closure")
        grad_scale: torch.Tensor | None = getattr(self, "grad_scale", None)
        found_inf: torch.Tensor | None = getattr(self, "found_inf", None)
        skip = None if found_inf is None else found_inf > 0
        self.count += 1.0 if found_inf is None else 1.0 - found_inf
        for group in self.param_groups:
            b1, b2 = group["betas"]
            c1, c2 = 1 - b1 ** self.count, 1 - b2 ** self.count
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if grad_scale is None else p.grad / grad_scale
                m, v = self.state[p]["m"], self.state[p]["v"]
                if skip is None:
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    p.sub_(m / ((v / c2).sqrt_().add_(group["eps"])) * (group["lr"] / c1))
                else:  # the same update, kept only where the scaled gradients were finite
                    g = torch.where(skip, torch.zeros_like(g), g)
                    m_new = m * b1 + g * (1 - b1)
                    v_new = v * b2 + g * g * (1 - b2)
                    p_new = p - m_new / ((v_new / c2).sqrt() + group["eps"]) * (group["lr"] / c1)
                    m.copy_(torch.where(skip, m, m_new))
                    v.copy_(torch.where(skip, v, v_new))
                    p.copy_(torch.where(skip, p, p_new))
                p.grad = None

    def select(self, rows: torch.Tensor) -> tuple[list[torch.Tensor], StackedAdam]:
        """New leaf weights holding ``rows`` of each stacked weight, and an optimiser with their moments."""
        old = list(self.param_groups[0]["params"])
        new = [p.detach().index_select(0, rows).requires_grad_(True) for p in old]
        group = self.param_groups[0]
        out = StackedAdam(new, group["lr"], group["betas"], group["eps"], self.count)
        for p, q in zip(old, new, strict=True):
            out.state[q]["m"] = self.state[p]["m"].index_select(0, rows)
            out.state[q]["v"] = self.state[p]["v"].index_select(0, rows)
        return new, out
