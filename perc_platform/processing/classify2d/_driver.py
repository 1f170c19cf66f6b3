"""``classify2d``: stream a particle DataArray through the classifier, saving the state after every batch.

Batches come from ``perc_platform.ml.ParticleLoader`` in stream mode (bounded memory, read-ahead) when it is
installed, otherwise from a plain sequential iterator over the DataArray. With ``output=`` the run writes
``state.npz`` after every batch (atomically: a reader -- :func:`load_classification` -- always sees a whole
batch) and ``classes.mrcs``/``classes.star``/``classes.png``/``particles.star`` every ``write_every`` batches
and at the end; a run that stops (``max_batches``, an error, a kill) resumes from the last saved batch
and ends with exactly the result an uninterrupted run with the same seed gives.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from perc_platform.conventions import validate_particles
from perc_platform.errors import DataNotFoundError, ParameterError
from perc_platform.processing.classify2d._batches import batch_source, handed_out, run_segments, training_images
from perc_platform.processing.classify2d._classifier import CTF_COLUMNS, StreamingClassifier2D
from perc_platform.processing.classify2d._config import Classify2DConfig
from perc_platform.processing.classify2d._outputs import (
    class_averages,
    load_state,
    particle_assignments,
    save_state,
    write_classes,
    write_montage,
    write_particle_star,
)

__all__ = ["Classification2D", "classify2d", "load_classification"]

STATE = "state.npz"
Progress = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class Classification2D:
    """A classification (finished or in progress): averages, per-particle results, settings and timings."""

    averages: xr.DataArray
    assignments: xr.Dataset
    config: Classify2DConfig
    classifier: StreamingClassifier2D
    stats: dict[str, Any]

    @property
    def sizes(self) -> np.ndarray:
        return np.asarray(self.averages.coords["size"].values)

    def write(self, folder: str | os.PathLike[str], image_names: Any = None, montage: bool = True) -> dict[str, Path]:
        """Write ``classes.mrcs``, ``classes.star``, ``particles.star`` and (by default) ``classes.png``."""
        folder = Path(folder)
        stack, star = write_classes(self.averages, folder / "classes.mrcs")
        paths = {"classes_mrcs": stack, "classes_star": star,
                 "particles_star": write_particle_star(self.assignments, folder / "particles.star", image_names)}
        if montage:
            paths["montage"] = write_montage(self.averages, folder / "classes.png")
        return paths


def _result(clf: StreamingClassifier2D, n: int | None, particle: Any, stats: dict[str, Any]) -> Classification2D:
    refs = clf.references.cpu().numpy() if clf.references is not None else np.zeros((0, clf.box, clf.box))
    averages = class_averages(refs, clf.class_sizes, clf.pixel_size,
                              f"2-D classification ({clf.config.mode}): {clf.particles_done} particles in "
                              f"{clf.batches_done} batches")
    return Classification2D(averages, particle_assignments(clf.results, clf.pixel_size, n, particle), clf.config,
                            clf, stats)


def load_classification(folder: str | os.PathLike[str], device: str | torch.device | None = "cpu"
                        ) -> Classification2D:
    """The latest saved state of a run in ``folder`` (readable while the run goes on)."""
    path = Path(folder) / STATE
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no classification state here; run classify2d(..., output={str(folder)!r})")
    state = load_state(path)
    meta = state["meta"]
    clf = StreamingClassifier2D(Classify2DConfig.from_dict(meta["config"]), meta["box"], meta["pixel_size"],
                                optics=meta.get("optics"), device=device)
    clf.load_state_dict(state)
    return _result(clf, meta.get("n_particles"), None, dict(meta.get("stats", {})))


def _references_from(references: Any) -> tuple[np.ndarray, Any, dict[str, Any] | None, bool]:
    """(images, sizes, saved state with the basis or None, whether the images are in the classifier's domain)."""
    if isinstance(references, (str, os.PathLike)):
        state = load_state(Path(references) / STATE)
        return state["arrays"]["references"], state["arrays"]["counts"] + state["arrays"]["prior_weight"], state, True
    if isinstance(references, Classification2D):
        return _references_from_result(references)
    if isinstance(references, xr.DataArray):
        sizes = references.coords["size"].values if "size" in references.coords else None
        return np.asarray(references.values), sizes, None, references.name == "class_average"
    return np.asarray(references), None, None, False


def _references_from_result(result: Classification2D) -> tuple[np.ndarray, Any, dict[str, Any], bool]:
    state = result.classifier.state_dict()
    arrays = state["arrays"]
    return arrays["references"], arrays["counts"] + arrays["prior_weight"], state, True


def classify2d(images: xr.DataArray, classes: int = 50, *, mode: str = "create", references: Any = None,
               output: str | os.PathLike[str] | None = None, resume: bool = True, batch_size: int = 256,
               device: str | torch.device | None = None, seed: int = 0, shuffle: bool = True,
               max_batches: int | None = None, progress: Progress | None = None, write_every: int = 10,
               loader: str = "auto", **settings: Any) -> Classification2D:
    """Streaming 2-D classification of ``images`` ``(particle, y, x)``; see the module docstring.

    Parameters
    ----------
    classes, mode, references
        ``mode="create"`` makes ``classes`` classes from scratch; ``mode="update"`` starts from
        ``references`` -- a previous :class:`Classification2D`, its output folder, its ``averages``, or any
        ``(K, y, x)`` images (those are low-passed and normalised like particles) -- and keeps their numbers.
    output, resume
        Folder for the state and files; with ``resume`` an existing state there is continued.
    batch_size, device, seed, shuffle, loader
        Batches of the loader (``"auto"``: ``ParticleLoader`` stream mode when available, else sequential).
    max_batches
        Stop after this many batches in total (the state stays resumable).
    progress
        Called after every batch with a dict: ``batches_done``, ``batches``, ``particles_done``,
        ``particles_s``, ``data_wait_share``, ``class_sizes``.
    settings
        Further :class:`Classify2DConfig` fields (``variance``, ``resolution``, ``mask``, ``ctf``, ...).
    """
    validate_particles(images)
    pixel_size = images.attrs.get("pixel_size")
    if not pixel_size:
        raise ParameterError("images lack attrs['pixel_size'] (Angstrom); set it before classifying")
    box = int(images.shape[-1])
    if images.shape[-2] != box:
        raise ParameterError(f"images are {images.shape[-2]} x {box}; 2-D classification needs square images")
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ref_images: np.ndarray | None = None
    ref_sizes: Any = None
    ref_state: dict[str, Any] | None = None
    in_domain = False
    if mode == "update":
        if references is None:
            raise ParameterError("mode='update' needs references= (a previous result, its folder or class images)")
        ref_images, ref_sizes, ref_state, in_domain = _references_from(references)
        classes = int(ref_images.shape[0])
    config = Classify2DConfig(classes=classes, mode=mode, seed=seed, **settings)  # type: ignore[arg-type]
    optics = {k: float(images.attrs[k]) for k in ("voltage", "spherical_aberration", "amplitude_contrast")
              if k in images.attrs}
    n = int(images.shape[0])
    clf = StreamingClassifier2D(config, box, float(pixel_size), optics=optics, device=dev, n_particles=n)
    columns = [c for c in CTF_COLUMNS if c in images.coords] if config.ctf is not None else []
    folder = Path(output) if output is not None else None
    stats: dict[str, Any] = {"seconds": 0.0, "wait_seconds": 0.0, "init_seconds": 0.0, "particles": 0}
    saved_meta: dict[str, Any] = {}
    if folder is not None and resume and (folder / STATE).is_file():
        state = load_state(folder / STATE)
        saved = Classify2DConfig.from_dict(state["meta"]["config"])
        if saved != config:
            changed = ", ".join(f"{k}: saved {v!r}, now {getattr(config, k)!r}" for k, v in saved.to_dict().items()
                                if getattr(config, k) != v)
            raise ParameterError(f"{folder / STATE} was made with other settings ({changed}); use the same settings "
                                 "to resume, or resume=False (--restart) to start over")
        clf.load_state_dict(state)
        saved_meta = state["meta"]
        stats.update(saved_meta.get("stats", {}))
    # older states (one segment of n_particles) resume as that segment
    old = [[0, int(saved_meta["n_particles"])]] if saved_meta and "segments" not in saved_meta else None
    segments = run_segments(saved_meta.get("segments", old), n, folder)
    current = int(saved_meta.get("segment", 0))
    source = batch_source(images, batch_size, dev, seed, shuffle, columns, loader,
                           segments[min(current, len(segments) - 1)])
    if saved_meta:
        if current < len(segments) and saved_meta.get("loader"):
            source.load_state_dict(saved_meta["loader"])
    else:
        start = time.perf_counter()
        if ref_state is not None:  # update mode from a previous run: the same PCA space
            clf.load_state_dict(_basis_only(ref_state, n))
        if config.mode == "create" or clf.basis is None:
            training = training_images(clf, source, config.training_size)
            if config.mode == "create":
                clf.initialize(training)
            else:
                clf.fit_basis(training)
        if config.mode == "update":
            assert ref_images is not None
            refs = ref_images if in_domain else _to_domain(clf, ref_images)
            clf.set_references(refs, ref_sizes)
        stats["init_seconds"] = time.perf_counter() - start
    stopped = False
    while current < len(segments) and not stopped:
        total_batches = clf.batches_done + len(source) - handed_out(source)
        stream = iter(source)
        while True:
            if max_batches is not None and clf.batches_done >= max_batches:
                stopped = True
                break
            t0 = time.perf_counter()
            batch = next(stream, None)
            t1 = time.perf_counter()
            if batch is None:
                break
            clf.partial_fit(batch)
            t2 = time.perf_counter()
            stats["wait_seconds"] += t1 - t0
            stats["seconds"] += t2 - t0
            stats["particles"] = clf.particles_done
            done_segment = handed_out(source) >= len(source)
            info = {"batches_done": clf.batches_done, "batches": total_batches,
                    "particles_done": clf.particles_done,
                    "particles_s": clf.particles_done / max(stats["seconds"], 1e-9),
                    "data_wait_share": stats["wait_seconds"] / max(stats["seconds"], 1e-9),
                    "class_sizes": clf.class_sizes.tolist(), "segment": current}
            if folder is not None:
                state = clf.state_dict()
                # a finished segment is saved as the start of the next one (its loader state is spent)
                state["meta"].update(loader=None if done_segment else source.state_dict(), stats=stats,
                                     n_particles=n, segments=[list(g) for g in segments],
                                     segment=current + 1 if done_segment else current)
                save_state(folder / STATE, state)
                if clf.batches_done % max(1, write_every) == 0:
                    _result(clf, n, None, stats).write(folder, _names(images), montage=True)
            if progress is not None:
                progress(info)
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        if not stopped:
            current += 1
            if current < len(segments):
                source = batch_source(images, batch_size, dev, seed, shuffle, columns, loader, segments[current])
    stats["particles_s"] = clf.particles_done / max(stats["seconds"], 1e-9) if stats["seconds"] else 0.0
    stats["data_wait_share"] = stats["wait_seconds"] / max(stats["seconds"], 1e-9) if stats["seconds"] else 0.0
    stats["segments"] = [list(g) for g in segments]
    result = _result(clf, n, images.coords["particle"].values if "particle" in images.coords else None, stats)
    if folder is not None:
        result.write(folder, _names(images))
    return result


def _basis_only(state: dict[str, Any], n: int) -> dict[str, Any]:
    arrays = {k: v for k, v in state["arrays"].items() if k.startswith("basis_")}
    arrays.update({f"result_{k}": np.full((n, 2) if k == "shift" else n, fill, dtype=dt)
                   for k, (dt, fill) in {"class": (np.int32, -1), "rotation": (np.float32, np.nan),
                                         "shift": (np.float32, np.nan), "distance": (np.float32, np.nan)}.items()})
    meta = {**state["meta"], "batches_done": 0, "particles_done": 0}
    return {"arrays": arrays, "meta": meta}


def _to_domain(clf: StreamingClassifier2D, images: np.ndarray) -> torch.Tensor:
    """External references low-passed and normalised like particles (no CTF correction)."""
    return clf.preprocess({"image": torch.as_tensor(np.asarray(images, dtype=np.float32))})


def _names(images: xr.DataArray) -> Any:
    return images.coords["image_name"].values if "image_name" in images.coords else None
