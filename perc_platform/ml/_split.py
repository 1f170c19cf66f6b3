"""Seeded train/validation splits of particle positions, optionally stratified by label; saved as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from perc_platform.errors import DataNotFoundError, FormatError, ParameterError
from perc_platform.storage.cache import write_atomically

__all__ = ["Split", "make_split"]


@dataclasses.dataclass(frozen=True)
class Split:
    """Particle positions of a train/validation split of ``n`` particles (sorted, disjoint, covering all)."""

    train: np.ndarray
    validation: np.ndarray
    n: int
    seed: int
    fraction: float
    stratified: bool

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in ("train", "validation"):
            raise ParameterError(f"a split has 'train' and 'validation' parts, not {name!r}")
        return self.train if name == "train" else self.validation

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the split as JSON (atomically) and return the path."""
        path = Path(path)
        payload = {"format": "perc-split-1", "n": self.n, "seed": self.seed, "fraction": self.fraction,
                   "stratified": self.stratified, "train": self.train.tolist(),
                   "validation": self.validation.tolist()}
        return write_atomically(path, lambda tmp: tmp.write_text(json.dumps(payload)))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Split:
        """Read a split written by :meth:`save`."""
        try:
            payload: dict[str, Any] = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DataNotFoundError(f"{path}: no such split file; save one with Split.save") from None
        except json.JSONDecodeError as exc:
            raise FormatError(f"{path}: not a split file ({exc})") from None
        if payload.get("format") != "perc-split-1":
            raise FormatError(f"{path}: not a perc split file (format {payload.get('format')!r})")
        return cls(train=np.asarray(payload["train"], dtype=np.int64),
                   validation=np.asarray(payload["validation"], dtype=np.int64), n=int(payload["n"]),
                   seed=int(payload["seed"]), fraction=float(payload["fraction"]),
                   stratified=bool(payload["stratified"]))

    def check(self, n: int) -> None:
        """Raise if this split was made for a different number of particles."""
        if n != self.n:
            raise ParameterError(f"the split was made for {self.n} particles but the data has {n}; make a new "
                                 "split for these particles")


def make_split(n: int, validation: float = 0.2, seed: int = 0, stratify: np.ndarray | None = None) -> Split:
    """Split positions ``0..n-1`` into train and validation parts.

    With ``stratify`` (one label per particle) each class is split in the same proportion, so that every class
    with at least two particles lands in both parts.
    """
    if not 0.0 <= validation < 1.0:
        raise ParameterError(f"validation={validation} must be a fraction in [0, 1)")
    rng = np.random.default_rng([int(seed), 0x5E1])
    picked: list[np.ndarray] = []
    if stratify is None:
        groups = [np.arange(n, dtype=np.int64)]
    else:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ParameterError(f"stratify has shape {labels.shape}; give one label per particle ({n})")
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for group in groups:
        k = round(validation * group.size)
        if stratify is not None and validation > 0 and group.size >= 2:
            k = min(max(k, 1), group.size - 1)
        picked.append(rng.permutation(group)[:k])
    val = np.sort(np.concatenate(picked)) if picked else np.empty(0, np.int64)
    train = np.setdiff1d(np.arange(n, dtype=np.int64), val, assume_unique=True)
    return Split(train=train, validation=val.astype(np.int64), n=n, seed=int(seed), fraction=float(validation),
                 stratified=stratify is not None)
