"""The voxels of the regions of a fit, on the fitting device, and their random mini-batches.

Each region keeps its own generator on the host (so a region's draws do not depend on its batch mates,
and the CPU and GPU fits of a region see the same points). The voxels of all regions go to the device
once, padded to one ``(R, N)`` tensor; indices for a run of steps are drawn on the host, pinned and
copied without blocking, and turned into coordinates and targets on the device.
"""

from __future__ import annotations

import numpy as np
import torch

from perc_platform.neural_maps._regions import local_coords

__all__ = ["FitData", "Region"]


class Region:
    """One region's host-side data, random state and fit record."""

    def __init__(self, values: np.ndarray, seed: int, check_points: int, subdivisions: int = 1) -> None:
        self.shape = values.shape
        self.subdivisions = subdivisions
        self.flat = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
        self.gen = torch.Generator().manual_seed(seed)
        n = self.flat.numel()
        self.check = (torch.arange(n) if n <= check_points
                      else torch.randint(0, n, (check_points,), generator=self.gen))
        # the error of a zero residual (the base alone)
        self.start_mae = float(self.flat[self.check].abs().mean())
        self.start_mse = float(self.flat[self.check].pow(2).mean())
        self.best = float("inf")
        self.since_best = 0
        self.steps = 0
        self.mae = float("nan")
        self.mse = float("nan")
        self.reason = "max_steps"

    def draw(self, steps: int, size: int) -> torch.Tensor:
        """``(steps, size)`` random flat voxel indices (int32) from this region's generator."""
        return torch.randint(0, self.flat.numel(), (steps, size), generator=self.gen, dtype=torch.int32)


class FitData:
    """All regions' voxels, shapes and check points on ``device``; rows follow the regions' order."""

    def __init__(self, regions: list[Region], device: torch.device) -> None:
        self.device = device
        self.pin = device.type == "cuda"
        n_max = max(r.flat.numel() for r in regions)
        c_max = max(r.check.numel() for r in regions)
        values = torch.zeros(len(regions), n_max)
        check = torch.zeros(len(regions), c_max, dtype=torch.long)
        count = torch.zeros(len(regions))
        for row, reg in enumerate(regions):
            values[row, :reg.flat.numel()] = reg.flat
            check[row, :reg.check.numel()] = reg.check
            count[row] = reg.check.numel()
        shape = torch.tensor([r.shape for r in regions], dtype=torch.long)
        # the region's points span 0 .. (n - 1) / subdivisions in voxel units (local_coords, as queries)
        upper = (shape.to(torch.float32) - 1) / torch.tensor([[r.subdivisions] for r in regions])
        self.values = self._send(values)
        self.check = self._send(check)
        self.check_mask = self._send(torch.arange(c_max)[None, :] < count[:, None])
        self.check_count = self._send(count)
        self.plane = self._send(shape[:, 1:2] * shape[:, 2:3])
        self.width = self._send(shape[:, 2:3])
        self.height = self._send(shape[:, 1:2])
        self.step = self._send(torch.tensor([[1.0 / r.subdivisions] for r in regions]))
        self.upper = self._send(upper[:, None, :])

    def _send(self, t: torch.Tensor) -> torch.Tensor:
        if self.pin:  # page-locked, so the copy is asynchronous and overlaps the device's work
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def draw(self, regions: list[Region], rows: list[int], steps: int, size: int) -> torch.Tensor:
        """``(len(rows), steps, size)`` indices on the device, drawn by each region's own generator."""
        return self._send(torch.stack([regions[r].draw(steps, size) for r in rows]))

    def points(self, rows: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates ``(len(rows), N, 3)`` in [-1, 1] and targets ``(len(rows), N)`` of flat indices."""
        idx = idx.long()
        zyx = torch.stack([idx // self.plane[rows], (idx // self.width[rows]) % self.height[rows],
                           idx % self.width[rows]], dim=-1).to(torch.float32)
        zyx = zyx * self.step[rows][:, :, None]
        coords = local_coords(zyx, torch.zeros(3, device=self.device), self.upper[rows])
        flat = rows[:, None] * self.values.shape[1] + idx  # a gather, no copy of the rows' voxels
        return coords, self.values.reshape(-1)[flat]
