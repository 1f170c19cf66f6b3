"""What a 2-D classification gives back: class averages, per-particle poses, a montage, MRC/STAR files, state.

* :func:`class_averages`: DataArray ``class_average`` ``(class, y, x)`` with a ``size`` coord;
* :func:`particle_assignments`: Dataset over ``particle`` (aligned with the input particles) with ``class``
  (-1 where not yet classified), ``rotation`` (degrees: the class average turned counter-clockwise by this
  angle matches the particle; RELION's ``rlnAnglePsi`` is its negative), ``shift_x``/``shift_y`` (Angstrom,
  RELION's ``rlnOriginX/YAngst``: the particle's centre sits at the box centre minus the shift) and
  ``distance`` (squared PCA-space distance to its class) and ``mirror`` (the particle matched its class
  mirrored: ``y -> -y`` about its centre, then the turn and shift);
* :func:`write_montage` (PNG, matplotlib Agg), :func:`write_classes` (``.mrcs`` + ``.star``) and
  :func:`write_particle_star`;
* :func:`save_state` / :func:`load_state`: one ``.npz`` (arrays plus a JSON string, no pickle), replaced
  atomically so that readers never see half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from perc_platform.conventions import add_history
from perc_platform.io.star_writer import write_star
from perc_platform.storage.cache import write_atomically

__all__ = ["class_averages", "load_state", "particle_assignments", "save_state", "write_classes",
           "write_montage", "write_particle_star"]


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``{"arrays": {name: ndarray}, "meta": json-able}`` to one ``.npz`` atomically."""
    arrays = dict(state["arrays"])
    arrays["meta_json"] = np.array(json.dumps(state["meta"]))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return write_atomically(path, write)


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read what :func:`save_state` wrote (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: np.array(data[k]) for k in data.files if k != "meta_json"}
        meta = json.loads(str(data["meta_json"]))
    return {"arrays": arrays, "meta": meta}


def class_averages(references: np.ndarray, sizes: np.ndarray, pixel_size: float, history: str = "") -> xr.DataArray:
    """Class averages ``(class, y, x)`` with ``size`` (particles per class) and the pixel size."""
    k, _ny, _nx = references.shape
    out = xr.DataArray(np.asarray(references, dtype=np.float32), dims=("class", "y", "x"), name="class_average",
                       coords={"class": np.arange(k), "size": ("class", np.asarray(sizes, dtype=np.int64))},
                       attrs={"pixel_size": float(pixel_size)})
    if history:
        add_history(out, history)
    return out


def particle_assignments(results: dict[str, np.ndarray], pixel_size: float, n: int | None = None,
                         particle: Any = None) -> xr.Dataset:
    """Per-particle ``class``, ``rotation``, ``shift_x``, ``shift_y``, ``distance`` as a Dataset over ``particle``.

    ``results`` are the classifier's arrays (shifts in pixels, as particle-centre offsets); ``n`` pads or
    cuts them to the number of input particles, ``particle`` gives the input's ``particle`` coord.
    """
    size = results["class"].shape[0] if n is None else int(n)

    def fit(values: np.ndarray, fill: Any) -> np.ndarray:
        if values.shape[0] >= size:
            return values[:size]
        pad = np.full((size - values.shape[0], *values.shape[1:]), fill, dtype=values.dtype)
        return np.concatenate([values, pad])

    shift = fit(results["shift"], np.nan).astype(np.float64)
    data = {"class": ("particle", fit(results["class"], -1)),
            "rotation": ("particle", fit(results["rotation"], np.nan)),
            "shift_x": ("particle", (-shift[:, 0] * pixel_size).astype(np.float32)),
            "shift_y": ("particle", (-shift[:, 1] * pixel_size).astype(np.float32)),
            "distance": ("particle", fit(results["distance"], np.nan))}
    if "mirror" in results:
        data["mirror"] = ("particle", fit(results["mirror"], 0).astype(bool))
    coords = {"particle": particle} if particle is not None else {}
    ds = xr.Dataset(data, coords=coords, attrs={"pixel_size": float(pixel_size)})
    ds["rotation"].attrs["units"] = "degrees (counter-clockwise turn of the class average onto the particle)"
    ds["shift_x"].attrs["units"] = ds["shift_y"].attrs["units"] = "Angstrom (RELION rlnOriginX/YAngst)"
    return ds


def write_montage(averages: xr.DataArray, path: str | os.PathLike[str], columns: int | None = None) -> Path:
    """A PNG grid of the class averages, each titled with its class number and size (matplotlib Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = averages.sizes["class"]
    columns = columns or int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / columns))
    fig = Figure(figsize=(1.4 * columns, 1.55 * rows), dpi=100)
    FigureCanvasAgg(fig)
    sizes = averages.coords["size"].values if "size" in averages.coords else np.zeros(k, int)
    for i in range(rows * columns):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.set_axis_off()
        if i < k:
            ax.imshow(np.asarray(averages[i].values), cmap="gray", origin="upper")
            ax.set_title(f"{i + 1} ({int(sizes[i])})", fontsize=7)
    fig.tight_layout(pad=0.3)
    return write_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_classes(averages: xr.DataArray, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Class averages as an ``.mrcs`` stack and a STAR table (``rlnReferenceImage``, sizes, distribution)."""
    from perc_platform.io.mrc_writer import write_stack

    path = Path(path)
    stack = path.with_suffix(".mrcs")
    write_stack(stack, np.asarray(averages.values, dtype=np.float32),
                pixel_size=float(averages.attrs.get("pixel_size", 1.0)))
    sizes = averages.coords["size"].values.astype(np.int64)
    table = pd.DataFrame({"rlnReferenceImage": [f"{i + 1:06d}@{stack.name}" for i in range(sizes.size)],
                          "rlnClassNumber": np.arange(1, sizes.size + 1),
                          "rlnClassDistribution": sizes / max(1, int(sizes.sum())),
                          "perc_class_size": sizes})
    return stack, write_star(path.with_suffix(".star"), {"model_classes": table})


def write_particle_star(assignments: xr.Dataset, path: str | os.PathLike[str], image_names: Any = None) -> Path:
    """A RELION-style particle STAR table with ``rlnClassNumber`` (1-based), ``rlnAnglePsi`` and origins."""
    classified = np.flatnonzero(assignments["class"].values >= 0)
    columns: dict[str, Any] = {}
    if image_names is not None:
        columns["rlnImageName"] = np.asarray(image_names)[classified].astype(str)
    columns["rlnClassNumber"] = assignments["class"].values[classified].astype(np.int64) + 1
    columns["rlnAnglePsi"] = np.round((-assignments["rotation"].values[classified].astype(np.float64)) % 360.0, 3)
    columns["rlnOriginXAngst"] = np.round(assignments["shift_x"].values[classified].astype(np.float64), 3)
    columns["rlnOriginYAngst"] = np.round(assignments["shift_y"].values[classified].astype(np.float64), 3)
    if "mirror" in assignments:
        columns["perc_mirror"] = assignments["mirror"].values[classified].astype(np.int64)
    columns["perc_particle"] = classified
    return write_star(path, {"particles": pd.DataFrame(columns)})
