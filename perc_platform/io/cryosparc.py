"""cryoSPARC ``.cs`` particle metadata (a NumPy structured array saved with ``np.save``) in RELION terms.

Read with NumPy rather than ``cryosparc-tools``: a ``.cs`` file on disk is a plain ``.npy`` array, and
``cryosparc-tools`` brings an HTTP client and a compiled extension for a job-server API this platform does
not talk to; its ``Dataset`` also leaves the conversion to RELION conventions (the part that matters here)
to the caller. The tests use it as the independent reader.

The conversion follows pyem's ``csparc2star`` (the reference converter, also what cryoDRGN agrees with):

* ``alignments3D/pose`` is a rotation vector whose rotation matrix (Rodrigues) is the transpose of RELION's
  Euler matrix, so ``(rot, tilt, psi)`` are its intrinsic ZYZ Euler angles, in degrees;
* ``alignments3D/shift`` is in pixels of ``alignments3D/psize_A`` with RELION's sign (``rlnOriginX/Y``);
  it is stored in Angstrom (``shift_x``/``shift_y``) like ``rlnOriginX/YAngst``;
* ``alignments2D/pose`` is the in-plane angle psi (radians), used when there is no 3D alignment;
* ``ctf/df_angle_rad`` and ``ctf/phase_shift_rad`` become degrees; classes, splits and exposure groups are
  0-based in cryoSPARC and 1-based in RELION;
* ``blob/idx`` is the 0-based image index in ``blob/path``; a path that starts with ``>`` is relative to
  the cryoSPARC project folder (the marker is dropped and the rest resolved like a STAR file's paths).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from perc_platform.errors import CsFormatError, DataNotFoundError
from perc_platform.io.star import ParticleMetadata

__all__ = ["cs_particle_metadata", "read_cs"]

_MAX_CS_BYTES = 2 * 2**30
_POSE_FIELDS = ("alignments3D", "alignments2D")

# field -> (shape of one row, dtype kinds accepted), checked when present; other fields are not read.
_SCHEMA: dict[str, tuple[tuple[int, ...], str]] = {
    "uid": ((), "ui"),
    "blob/path": ((), "SU"),
    "blob/idx": ((), "ui"),
    "blob/shape": ((2,), "ui"),
    "blob/psize_A": ((), "fiu"),
    "ctf/accel_kv": ((), "fiu"),
    "ctf/cs_mm": ((), "fiu"),
    "ctf/amp_contrast": ((), "fiu"),
    "ctf/df1_A": ((), "fiu"),
    "ctf/df2_A": ((), "fiu"),
    "ctf/df_angle_rad": ((), "fiu"),
    "ctf/phase_shift_rad": ((), "fiu"),
    "ctf/bfactor": ((), "fiu"),
    "ctf/scale": ((), "fiu"),
    "ctf/exp_group_id": ((), "ui"),
    "alignments3D/pose": ((3,), "f"),
    "alignments3D/shift": ((2,), "f"),
    "alignments3D/psize_A": ((), "fiu"),
    "alignments3D/class": ((), "ui"),
    "alignments3D/split": ((), "ui"),
    "alignments2D/pose": ((), "f"),
    "alignments2D/shift": ((2,), "f"),
    "alignments2D/psize_A": ((), "fiu"),
    "alignments2D/class": ((), "ui"),
    "alignments2D/split": ((), "ui"),
    "location/micrograph_path": ((), "SU"),
}

# Scalar fields that map one-to-one onto convention names: (coord name, scale, offset).
_SCALARS: dict[str, tuple[str, float, float]] = {
    "ctf/df1_A": ("defocus_u", 1.0, 0.0),
    "ctf/df2_A": ("defocus_v", 1.0, 0.0),
    "ctf/df_angle_rad": ("defocus_angle", 180.0 / np.pi, 0.0),
    "ctf/phase_shift_rad": ("phase_shift", 180.0 / np.pi, 0.0),
    "ctf/bfactor": ("ctf_bfactor", 1.0, 0.0),
    "ctf/scale": ("ctf_scalefactor", 1.0, 0.0),
    "ctf/exp_group_id": ("optics_group", 1.0, 1.0),
}
_OPTICS: dict[str, str] = {"ctf/accel_kv": "voltage", "ctf/cs_mm": "spherical_aberration",
                           "ctf/amp_contrast": "amplitude_contrast", "blob/psize_A": "pixel_size"}


def read_cs(path_or_url: str, storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """Read a ``.cs`` file (local path or fsspec URL) as a checked 1-D structured array; no pickles."""
    from perc_platform.storage.ranges import open_input  # remote files through the network policy

    try:
        with open_input(str(path_or_url), storage_options) as handle:
            raw = handle.read(_MAX_CS_BYTES + 1)
    except FileNotFoundError:
        raise DataNotFoundError(f"cryoSPARC file {path_or_url} does not exist; check the path or URL") from None
    if len(raw) > _MAX_CS_BYTES:
        raise CsFormatError(f"{path_or_url}: larger than {_MAX_CS_BYTES >> 30} GiB; split the particle set")
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CsFormatError(f"{path_or_url}: not a cryoSPARC .cs file (a NumPy .npy structured array): {exc}; "
                            "export the particles from cryoSPARC again") from None
    return check_cs(array, str(path_or_url))


def check_cs(array: Any, source: str = "<cs>") -> np.ndarray:
    """Check a ``.cs`` array against the fields this module reads; raise CsFormatError naming the field."""
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        raise CsFormatError(f"{source}: holds a plain {getattr(array, 'dtype', type(array))} array, not a "
                            "structured particle table; is this a cryoSPARC .cs file?")
    if array.ndim != 1:
        raise CsFormatError(f"{source}: the particle table has shape {array.shape}; a .cs table is 1-D")
    if array.size == 0:
        raise CsFormatError(f"{source}: the particle table has no rows")
    names = set(array.dtype.names)
    missing = [f for f in ("blob/path", "blob/idx") if f not in names]
    if missing:
        raise CsFormatError(f"{source}: lacks {', '.join(missing)}; a particle .cs file names the stack and "
                            "image of each particle (use the particles output of the job, not a passthrough)")
    for name, (shape, kinds) in _SCHEMA.items():
        if name not in names:
            continue
        dtype = array.dtype[name]
        base, sub = (dtype.base, dtype.shape) if dtype.subdtype is not None else (dtype, ())
        if base.kind not in kinds or tuple(sub) != shape:
            raise CsFormatError(f"{source}: field {name} is {base}{list(sub) if sub else ''} but should be "
                                f"{shape or 'a scalar'} of kind {kinds!r}; the file is not a cryoSPARC table")
    if array.dtype["blob/idx"].kind == "i" and (array["blob/idx"] < 0).any():
        raise CsFormatError(f"{source}: blob/idx holds negative image indices; they are 0-based")
    return array


def _text(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "S":
        try:
            return np.char.decode(values, "utf-8")
        except UnicodeDecodeError:
            raise CsFormatError("a text field of the .cs file is not UTF-8") from None
    return values.astype(str)


def _euler_zyz(rotvec: np.ndarray) -> np.ndarray:
    """RELION (rot, tilt, psi) in degrees of cryoSPARC rotation vectors (see the module docstring)."""
    from scipy.spatial.transform import Rotation

    with warnings.catch_warnings():
        # At tilt 0 or 180 only rot + psi is defined; SciPy then sets psi to 0 (a valid choice) and warns.
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        return Rotation.from_rotvec(rotvec.astype(np.float64)).as_euler("ZYZ", degrees=True)


def _unique_or_coord(values: np.ndarray, name: str, coords: dict[str, np.ndarray], attrs: dict[str, float]) -> None:
    unique = np.unique(values)
    if unique.size == 1:
        # cryoSPARC stores float32: 0.07 is read back as its shortest decimal, not 0.0700000003.
        attrs[name] = float(str(unique[0]))
    else:
        coords[name] = values.astype(np.float64)


def cs_particle_metadata(cs: np.ndarray, source: str = "<cs>") -> ParticleMetadata:
    """Stacks, 0-based image indices, convention coords and optics attrs of a checked ``.cs`` table."""
    cs = check_cs(cs, source)
    names = set(cs.dtype.names or ())
    try:
        paths = _text(cs["blob/path"])
    except CsFormatError as exc:
        raise CsFormatError(f"{source}: blob/path: {exc}") from None
    stacks = [p[1:] if p.startswith(">") else p for p in paths.tolist()]
    if any(not s for s in stacks):
        raise CsFormatError(f"{source}: blob/path is empty for some particles; every row must name its stack")
    index = cs["blob/idx"].astype(np.int64)
    coords: dict[str, np.ndarray] = {}
    attrs: dict[str, float] = {}
    for field, name in _OPTICS.items():
        if field in names:
            _unique_or_coord(cs[field], name, coords, attrs)
    for field, (name, scale, offset) in _SCALARS.items():
        if field in names:
            coords[name] = cs[field].astype(np.float64) * scale + offset
    if "optics_group" in coords:
        coords["optics_group"] = coords["optics_group"].astype(np.int64)
    kind = next((k for k in _POSE_FIELDS if f"{k}/pose" in names), None)
    if kind is not None:
        pose = cs[f"{kind}/pose"].astype(np.float64)
        if kind == "alignments3D":
            angles = _euler_zyz(pose)
            for i, axis in enumerate(("rot", "tilt", "psi")):
                coords[f"angle_{axis}"] = angles[:, i]
        else:
            coords["angle_psi"] = np.rad2deg(pose)
        if f"{kind}/shift" in names:
            pixel = next((cs[f].astype(np.float64) for f in (f"{kind}/psize_A", "blob/psize_A") if f in names), None)
            if pixel is None:
                raise CsFormatError(f"{source}: {kind}/shift is in pixels but neither {kind}/psize_A nor "
                                    "blob/psize_A gives the pixel size")
            shift = cs[f"{kind}/shift"].astype(np.float64)
            coords["shift_x"], coords["shift_y"] = shift[:, 0] * pixel, shift[:, 1] * pixel
        for field, name in (("class", "class_number"), ("split", "random_subset")):
            if f"{kind}/{field}" in names:
                coords[name] = cs[f"{kind}/{field}"].astype(np.int64) + 1
    if "location/micrograph_path" in names:
        coords["micrograph"] = _text(cs["location/micrograph_path"])
    if "uid" in names:
        coords["uid"] = cs["uid"].astype(np.uint64)
    coords["image_name"] = np.array([f"{i + 1:06d}@{s}" for i, s in zip(index.tolist(), stacks, strict=True)])
    return ParticleMetadata(stack_names=stacks, image_index=index, coords=coords, attrs=attrs)
