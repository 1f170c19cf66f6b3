"""Where ``classify2d``'s batches come from: ``ParticleLoader`` stream mode, or a plain resumable sequence.

Batches are dicts of tensors (``image``, ``index`` and any metadata columns); a source is resumable by its
``state_dict``, and a run over a grown particle set works in *segments* of particle positions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr

from perc_platform.errors import ParameterError

if TYPE_CHECKING:
    from perc_platform.processing.classify2d._classifier import StreamingClassifier2D

__all__ = ["batch_source", "handed_out", "run_segments", "training_images"]


class _SequentialBatches:
    """The fallback batch source: consecutive slices of the DataArray, resumable by batch number."""

    def __init__(self, images: xr.DataArray, batch_size: int, columns: list[str],
                 segment: tuple[int, int] | None = None) -> None:
        self.images, self.batch_size, self.columns = images, int(batch_size), columns
        self.start, self.stop = segment if segment is not None else (0, int(images.shape[0]))
        self.next = 0

    def __len__(self) -> int:
        return -(-(self.stop - self.start) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while self.start + self.next * self.batch_size < self.stop:
            a = self.start + self.next * self.batch_size
            b = min(self.stop, a + self.batch_size)
            batch = {"image": torch.from_numpy(np.ascontiguousarray(self.images[a:b].values, dtype=np.float32)),
                     "index": torch.arange(a, b)}
            for c in self.columns:
                batch[c] = torch.from_numpy(np.asarray(self.images.coords[c].values[a:b], dtype=np.float64))
            self.next += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"next": self.next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next = int(state["next"])

    def set_epoch(self, epoch: int) -> None:
        self.next = 0


def batch_source(images: xr.DataArray, batch_size: int, device: torch.device, seed: int, shuffle: bool,
                  columns: list[str], loader: str, segment: tuple[int, int]) -> Any:
    """Batches of the particles ``segment[0] <= i < segment[1]`` (``index`` holds their global positions)."""
    if loader not in ("auto", "particle_loader", "sequential"):
        raise ParameterError(f"loader={loader!r}: use 'auto', 'particle_loader' or 'sequential'")
    if loader != "sequential":
        try:
            from perc_platform.ml import ParticleLoader
        except ImportError:
            if loader == "particle_loader":
                raise
        else:
            return ParticleLoader(images, batch_size, mode="stream", device=device, seed=seed, shuffle=shuffle,
                                  metadata=columns, split=np.arange(*segment))
    return _SequentialBatches(images, batch_size, columns, segment)


def run_segments(saved: list[list[int]] | None, n: int, where: Path | None) -> list[tuple[int, int]]:
    """The run's segments of particle positions: the saved ones, plus the particles that arrived since."""
    if not saved:
        return [(0, n)]
    segments = [(int(a), int(b)) for a, b in saved]
    last = segments[-1][1]
    if n < last:
        raise ParameterError(f"{where}: the saved run covers {last} particles but only {n} are given now; a "
                             "resumed run needs the same particles (in the same order), new ones appended at the end")
    if n > last:
        segments.append((last, n))
    return segments


def training_images(clf: StreamingClassifier2D, source: Any, size: int) -> torch.Tensor:
    """Preprocessed images of the first ``size`` particles to arrive (then the source starts over)."""
    parts, have = [], 0
    stream = iter(source)
    try:
        for batch in stream:
            parts.append(clf.preprocess(batch))
            have += parts[-1].shape[0]
            if have >= size:
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    source.set_epoch(0)
    if not parts:
        raise ParameterError("no particles to train on: the selection is empty")
    return torch.cat(parts)[:size]


def handed_out(source: Any) -> int:
    """Batches of the source's current pass already handed out (from its resumable state)."""
    state = source.state_dict()
    if "next" in state:
        return int(state["next"])
    return int(sum(state.get("consumed", {}).values()))
