"""Names of dimensions, coordinates and attributes, and checks that objects follow them.

The data model (DESIGN.md section 4):

* particles: DataArray ``image`` with dims ``("particle", "y", "x")``, per-particle metadata as coords on
  ``particle``, attrs ``pixel_size`` (A), ``voltage`` (kV), ``spherical_aberration`` (mm),
  ``amplitude_contrast``;
* volumes: DataArray ``density`` with dims ``("z", "y", "x")`` and absolute Angstrom coords;
* structures: Dataset with ``position`` ``("atom", "axis")`` in Angstrom and per-atom coords.

Units are fixed (Angstrom, degrees, kV, mm) and names carry no unit suffix.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from perc_platform._version import __version__
from perc_platform.errors import InputError

__all__ = [
    "DENSITY_NAME",
    "GAIN_FLIPS",
    "GAIN_ROTATIONS",
    "IMAGE_NAME",
    "MICROGRAPH_DIMS",
    "MOVIE_DIMS",
    "OPTICS_ATTRS",
    "PARTICLE_COORDS",
    "PARTICLE_DIMS",
    "PROVENANCE_ATTRS",
    "STRUCTURE_DIMS",
    "SUBTOMOGRAM_DIMS",
    "TILT_SERIES_DIMS",
    "VOLUME_DIMS",
    "add_history",
    "orient_gain",
    "provenance",
    "validate_particles",
    "validate_structure",
    "validate_volume",
]

PARTICLE_DIMS = ("particle", "y", "x")
MICROGRAPH_DIMS = ("micrograph", "y", "x")
MOVIE_DIMS = ("movie", "frame", "y", "x")
VOLUME_DIMS = ("z", "y", "x")
TILT_SERIES_DIMS = ("tilt", "y", "x")
SUBTOMOGRAM_DIMS = ("particle", "z", "y", "x")
STRUCTURE_DIMS = ("atom", "axis")
IMAGE_NAME = "image"
DENSITY_NAME = "density"

#: Per-particle coordinates and the RELION column each one comes from.
PARTICLE_COORDS: Mapping[str, str] = {
    "image_name": "rlnImageName",
    "micrograph": "rlnMicrographName",
    "optics_group": "rlnOpticsGroup",
    "defocus_u": "rlnDefocusU",
    "defocus_v": "rlnDefocusV",
    "defocus_angle": "rlnDefocusAngle",
    "phase_shift": "rlnPhaseShift",
    "ctf_bfactor": "rlnCtfBfactor",
    "ctf_scalefactor": "rlnCtfScalefactor",
    "angle_rot": "rlnAngleRot",
    "angle_tilt": "rlnAngleTilt",
    "angle_psi": "rlnAnglePsi",
    "shift_x": "rlnOriginXAngst",
    "shift_y": "rlnOriginYAngst",
    "class_number": "rlnClassNumber",
    "group_name": "rlnGroupName",
    "random_subset": "rlnRandomSubset",
    "coordinate_x": "rlnCoordinateX",
    "coordinate_y": "rlnCoordinateY",
}

#: Optics attributes on particle arrays and the RELION column each one comes from.
OPTICS_ATTRS: Mapping[str, str] = {
    "voltage": "rlnVoltage",
    "spherical_aberration": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
}

PROVENANCE_ATTRS = ("source_id", "source_uri", "retrieved", "perc_platform_version", "history")


def provenance(source_id: str, source_uri: str, history: str) -> dict[str, Any]:
    """Provenance attrs for a new object: id, URI, retrieval time, version and a first history line."""
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return {
        "source_id": source_id,
        "source_uri": source_uri,
        "retrieved": now,
        "perc_platform_version": __version__,
        "history": f"{now} {history}",
    }


def add_history(obj: xr.DataArray | xr.Dataset, line: str) -> None:
    """Append one line to ``obj.attrs["history"]`` (in place; history is append-only)."""
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    previous = obj.attrs.get("history", "")
    obj.attrs["history"] = f"{previous}\n{now} {line}" if previous else f"{now} {line}"


def _require(condition: bool, what: str, fix: str) -> None:
    if not condition:
        raise InputError(f"{what}; {fix}")


def validate_particles(images: xr.DataArray) -> xr.DataArray:
    """Check that ``images`` follows the particle convention and return it unchanged."""
    _require(isinstance(images, xr.DataArray), f"expected an xarray.DataArray, got {type(images).__name__}",
             "pass the `image` variable of a particle dataset")
    dims = tuple(images.dims)
    _require(dims in (PARTICLE_DIMS, MICROGRAPH_DIMS), f"particle array {images.name!r} has dims {dims}",
             f"expected {PARTICLE_DIMS} (or {MICROGRAPH_DIMS})")
    pixel = images.attrs.get("pixel_size")
    _require(pixel is None or (np.isfinite(pixel) and pixel > 0), f"pixel_size={pixel!r} is not positive",
             "set attrs['pixel_size'] in Angstrom")
    for name, coord in images.coords.items():
        if name in PARTICLE_COORDS:
            _require(coord.dims == (dims[0],), f"coord {name!r} has dims {coord.dims}",
                     f"per-particle coords lie along {dims[0]!r}")
    return images


def validate_volume(density: xr.DataArray) -> xr.DataArray:
    """Check that ``density`` follows the volume convention and return it unchanged."""
    _require(isinstance(density, xr.DataArray), f"expected an xarray.DataArray, got {type(density).__name__}",
             "pass the `density` variable of a map dataset")
    _require(tuple(density.dims) == VOLUME_DIMS, f"volume {density.name!r} has dims {density.dims}",
             f"expected {VOLUME_DIMS}")
    for dim in VOLUME_DIMS:
        _require(dim in density.coords, f"volume lacks the {dim!r} coordinate",
                 "give absolute Angstrom coords (origin + index * voxel_size)")
        values = np.asarray(density.coords[dim].values, dtype=float)
        if values.size > 1:
            steps = np.diff(values)
            _require(bool(np.all(steps > 0)) and np.allclose(steps, steps[0], rtol=1e-4),
                     f"coord {dim!r} is not evenly increasing", "coords must be origin + index * voxel_size")
    return density


def validate_structure(structure: xr.Dataset) -> xr.Dataset:
    """Check that ``structure`` follows the structure convention and return it unchanged."""
    _require(isinstance(structure, xr.Dataset), f"expected an xarray.Dataset, got {type(structure).__name__}",
             "open structures with perc_platform.open_structure")
    _require("position" in structure and tuple(structure["position"].dims) == STRUCTURE_DIMS,
             "structure lacks `position` with dims ('atom', 'axis')", "store atom positions in Angstrom")
    for name in ("chain_id", "res_id", "res_name", "atom_name", "element"):
        _require(name in structure.coords, f"structure lacks the {name!r} coordinate",
                 "add the per-atom coords of the convention")
    return structure


# -- gain references ---------------------------------------------------------------------------------------
# RELION's motioncorr job (--gain_rot, --gain_flip; its GUI help, pipeline_jobs.cpp): "Rotate the gain reference by
# this number times 90 degrees clockwise in relion_display. This is the same as -RotGain in MotionCor2. Note that
# MotionCor2 uses a different convention for rotation so it says 'counter-clockwise'." and "Flip the gain reference
# after rotation. This is the same as -FlipGain in MotionCor2. 0 means do nothing, 1 means flip Y (upside down) and
# 2 means flip X (left to right)." relion_display draws row 0 at the top, so clockwise there is
# ``np.rot90(gain, -n)`` on the array as RELION holds it; drawn with y up (as MotionCor2/IMOD describe images) the
# same operation looks counter-clockwise, which is why the two tools agree on the numbers. RELION holds MRC rows in
# file order and flips TIFF images along the slow axis when it reads them (RELION docs, Conventions: "TIFF images
# are flipped along the slow axis when being read"); perc-platform keeps both in file order, so
# :func:`orient_gain` converts to RELION's order, applies the option, and converts back to the movie's order.

#: ``gain_rot`` / ``-RotGain`` values: quarter turns clockwise as relion_display shows the gain.
GAIN_ROTATIONS: Mapping[int, str] = {0: "no rotation", 1: "90 degrees", 2: "180 degrees", 3: "270 degrees"}
#: ``gain_flip`` / ``-FlipGain`` values, applied after the rotation.
GAIN_FLIPS: Mapping[int, str] = {0: "no flipping", 1: "flip upside down (Y)", 2: "flip left to right (X)"}


def orient_gain(gain: np.ndarray, rotation: int = 0, flip: int = 0, *, gain_is_tiff: bool = False,
                movie_is_tiff: bool = False) -> np.ndarray:
    """The gain as RELION/MotionCor2 would apply it with ``rotation``/``flip``, in the movie's array order.

    ``gain`` and the movie are arrays in file order (rows as stored, as mrcfile and tifffile read them).
    """
    if rotation not in GAIN_ROTATIONS or flip not in GAIN_FLIPS:
        raise InputError(f"gain rotation={rotation}, flip={flip}: rotation is one of {dict(GAIN_ROTATIONS)}, "
                         f"flip one of {dict(GAIN_FLIPS)} (RELION --gain_rot/--gain_flip, MotionCor2 "
                         "-RotGain/-FlipGain)")
    out = np.flipud(gain) if gain_is_tiff else gain  # into RELION's order
    out = np.rot90(out, -rotation)
    if flip == 1:
        out = np.flipud(out)
    elif flip == 2:
        out = np.fliplr(out)
    if movie_is_tiff:
        out = np.flipud(out)  # back into the movie's file order
    return np.ascontiguousarray(out)
