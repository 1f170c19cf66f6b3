"""Live 2-D classification of a particle set that an upstream job is still writing (xmipp streaming style).

:func:`watch_classify2d` follows a folder (or glob) where an extraction job writes particle stacks
(``*.mrcs``), STAR files (``*.star``) or cryoSPARC particle tables (``*.cs``), each table naming its stacks.
A file joins the set once it is complete: unchanged in size and time over two polls and readable whole (an
MRC whose header promises more data than the file holds is still being written). Files join in the order
they complete (by name within one poll), and that order is saved. A *round* starts when at least
``threshold`` new particles have arrived (the first round also waits for ``training_size``), or when the
input is closed -- a marker file (default ``DONE``) in the folder, or ``once=True`` -- with any particles
left. A round classifies exactly the particles that arrived since the last one, as one new segment of
:func:`classify2d`'s run in arrival order (no shuffling), and then rewrites ``classes.mrcs``/``.star``/``.png``
and ``particles.star`` (each replaced atomically).

The round boundaries are saved (``watch.json``) before each round starts, so a killed run, restarted, first
finishes its interrupted round over exactly that round's particles, then goes on with what arrived since:
no particle is counted twice, none is skipped, and since classification is deterministic given the seed
and the arrival order, the classes are the same as those of a run that was never stopped.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from perc_platform.conventions import IMAGE_NAME, PARTICLE_DIMS
from perc_platform.errors import FormatError, ParameterError, PercError
from perc_platform.io.layout import ImageFile
from perc_platform.io.mrc_array import MrcStackArray
from perc_platform.processing.classify2d._driver import Classification2D, classify2d
from perc_platform.storage.cache import write_atomically

__all__ = ["ParticleFolder", "watch_classify2d"]

WATCH_STATE = "watch.json"
RoundProgress = Callable[[dict[str, Any]], None]


def _unit_parts(path: str) -> tuple[MrcStackArray, dict[str, Any], dict[str, Any]]:
    from perc_platform.datasets.particles import particle_parts

    tables = (".star", ".cs")  # RELION STAR files and cryoSPARC particle tables name their stacks
    return particle_parts(star=path) if path.lower().endswith(tables) else particle_parts(path)


class ParticleFolder:
    """The growing set of complete particle files matching ``source`` (a folder or a glob).

    Parameters
    ----------
    source
        A folder (its files matching ``pattern``) or a glob pattern, or a list of globs.
    pattern
        File pattern inside a folder (default ``"*.mrcs"``; ``"*.star"`` follows STAR files, ``"*.cs"``
        cryoSPARC particle tables).
    marker
        Name of the file (in the folder; beside the glob's first match otherwise) that closes the input.
    """

    def __init__(self, source: str | os.PathLike[str] | Sequence[str], pattern: str | None = None,
                 marker: str = "DONE") -> None:
        given = [os.fspath(source)] if isinstance(source, (str, os.PathLike)) else [os.fspath(s) for s in source]
        if not given:
            raise ParameterError("no folder or glob to watch; give the folder the upstream job writes to")
        self.globs = [os.path.join(g, pattern or "*.mrcs") if os.path.isdir(g) else g for g in given]
        base = given[0] if os.path.isdir(given[0]) else os.path.dirname(given[0]) or "."
        self.marker = Path(base) / marker
        self.units: list[str] = []  # complete files, in arrival order
        self.sizes: list[int] = []  # particles per unit
        self._parts: dict[str, tuple[MrcStackArray, dict[str, Any], dict[str, Any]]] = {}
        self._seen: dict[str, tuple[int, int]] = {}  # candidate -> (size, mtime_ns) at the last poll
        self.last_error: str | None = None

    @property
    def n(self) -> int:
        return int(sum(self.sizes))

    @property
    def closed(self) -> bool:
        return self.marker.exists()

    def _candidates(self) -> list[str]:
        found = {os.path.abspath(p) for g in self.globs for p in glob.glob(g)}
        return sorted(p for p in found if not os.path.basename(p).startswith(".") and os.path.isfile(p)
                      and p not in self._parts)

    def poll(self, settled: bool = False) -> int:
        """Add the files that became complete; returns how many particles joined.

        ``settled=True`` (the input is closed) takes files without waiting for a second look.
        """
        before = self.n
        for path in self._candidates():
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue
            signature = (info.st_size, info.st_mtime_ns)
            if not settled and self._seen.get(path) != signature:
                self._seen[path] = signature
                continue
            try:
                parts = _unit_parts(path)
            except (PercError, OSError, ValueError) as exc:  # still being written, or broken
                self.last_error = f"{path}: {exc}"
                if settled:
                    raise FormatError(f"{path} could not be read after the input was closed ({exc}); fix or "
                                      "remove it and restart") from exc
                self._seen.pop(path, None)
                continue
            self._add(path, parts)
        return self.n - before

    def _add(self, path: str, parts: tuple[MrcStackArray, dict[str, Any], dict[str, Any]]) -> None:
        self._parts[path] = parts
        self.units.append(path)
        self.sizes.append(int(parts[0].shape[0]))

    def restore(self, units: Sequence[str], sizes: Sequence[int]) -> None:
        """Take up the saved arrival order (each file must still hold the particles it held)."""
        for path, size in zip(units, sizes, strict=True):
            parts = _unit_parts(path)
            if int(parts[0].shape[0]) != int(size):
                raise FormatError(f"{path} held {size} particles when it joined the run and holds "
                                  f"{parts[0].shape[0]} now; input files must not change once written")
            self._add(path, parts)

    def particles(self, count: int | None = None) -> xr.DataArray:
        """The particles of the first units (all, or the first ``count`` particles) in arrival order, lazily."""
        from perc_platform.datasets.selection import lazy_particles

        keep = len(self.units) if count is None else int(np.searchsorted(np.cumsum(self.sizes), count) + 1)
        chosen = [self._parts[u] for u in self.units[:keep]]
        if not chosen:
            raise ParameterError(f"no complete particle files yet in {self.globs}")
        files: list[ImageFile] = []
        where: dict[str, int] = {}
        ids, local = [], []
        for array, _, _ in chosen:
            for f in array.files:
                if f.url not in where:
                    where[f.url] = len(files)
                    files.append(f)
            remap = np.array([where[f.url] for f in array.files], dtype=np.int32)
            ids.append(remap[array.file_ids])
            local.append(array.local)
        total = sum(int(a.shape[0]) for a, _, _ in chosen) if count is None else int(count)
        common = set.intersection(*(set(c) for _, c, _ in chosen))
        coords = {k: ("particle", np.concatenate([np.asarray(c[k]) for _, c, _ in chosen])[:total])
                  for k in sorted(common)}
        attrs = dict(chosen[0][2])
        pixel = {float(a.get("pixel_size", 0.0)) for _, _, a in chosen}
        if len(pixel) > 1:
            raise FormatError(f"the watched files have different pixel sizes {sorted(pixel)}; classify them apart")
        attrs["stack_files"] = [f.url for f in files]
        array = MrcStackArray(files, np.concatenate(ids)[:total], np.concatenate(local)[:total])
        return xr.DataArray(lazy_particles(array), dims=PARTICLE_DIMS, name=IMAGE_NAME, coords=coords, attrs=attrs)


def _save_watch(folder: Path, watched: ParticleFolder, rounds: list[int]) -> None:
    state = {"units": watched.units, "sizes": watched.sizes, "rounds": rounds}
    write_atomically(folder / WATCH_STATE, lambda tmp: tmp.write_text(json.dumps(state, indent=1)))


def watch_classify2d(source: str | os.PathLike[str] | Sequence[str], output: str | os.PathLike[str],
                     classes: int = 50, *, pattern: str | None = None, threshold: int = 1000, poll: float = 5.0,
                     once: bool = False, marker: str = "DONE", restart: bool = False, timeout: float | None = None,
                     on_round: RoundProgress | None = None, batch_size: int = 256, **settings: Any
                     ) -> Classification2D | None:
    """Classify the particles an upstream job writes into ``source`` as they arrive (module docstring).

    Parameters
    ----------
    source, pattern, marker
        What to follow (see :class:`ParticleFolder`); the marker file closes the input.
    output
        Folder for the run's state, ``watch.json`` and the class/particle files.
    threshold
        New particles that start a round (the first round also needs ``training_size``).
    poll
        Seconds between looks at the folder.
    once
        Treat the input as closed: classify what is there now, in as few rounds as the threshold allows.
    restart
        Forget a previous run in ``output`` instead of resuming it.
    timeout
        Give up waiting (returning what was done) after this many seconds without a round.
    on_round
        Called after each round with ``round``, ``particles``, ``new``, ``class_sizes``, ``seconds``.
    settings
        :func:`classify2d` settings (``seed``, ``device``, ``mode``/``references`` and the
        :class:`Classify2DConfig` fields).
    """
    if threshold < 1 or poll <= 0:
        raise ParameterError(f"threshold={threshold}, poll={poll}: give a threshold >= 1 particle and poll > 0 s")
    if "shuffle" in settings:
        raise ParameterError("watch_classify2d classifies in arrival order; shuffle cannot be set")
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    if restart:
        for name in (WATCH_STATE, "state.npz"):
            (folder / name).unlink(missing_ok=True)
    watched = ParticleFolder(source, pattern, marker)
    rounds: list[int] = []
    saved = folder / WATCH_STATE
    if saved.is_file():
        state = json.loads(saved.read_text())
        watched.restore(state["units"], state["sizes"])
        rounds = [int(r) for r in state["rounds"]]
    first = max(threshold, int(settings.get("training_size", 1000)))
    result: Classification2D | None = None

    def run_round(upto: int) -> Classification2D:
        start = time.perf_counter()
        out = classify2d(watched.particles(upto), classes, output=folder, resume=True, shuffle=False,
                         batch_size=batch_size, write_every=10**9, **settings)
        if on_round is not None:
            on_round({"round": len(rounds), "particles": upto, "new": upto - (rounds[-2] if len(rounds) > 1 else 0),
                      "class_sizes": out.sizes.tolist(), "seconds": time.perf_counter() - start})
        return out

    if rounds:
        result = run_round(rounds[-1])  # finish (or rewrite the outputs of) the last round saved
    idle_since = time.monotonic()
    while True:
        closed = once or watched.closed
        watched.poll(settled=closed)
        done = rounds[-1] if rounds else 0
        pending = watched.n - done
        need = threshold if rounds else first
        if pending >= need or (closed and pending > 0):
            upto = watched.n  # every particle so far
            rounds.append(upto)
            _save_watch(folder, watched, rounds)
            result = run_round(upto)
            idle_since = time.monotonic()
            continue
        if closed:
            return result
        if timeout is not None and time.monotonic() - idle_since > timeout:
            return result
        time.sleep(poll)
