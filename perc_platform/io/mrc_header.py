"""MRC2014 header: parse the 1024-byte main header ourselves (REFERENCE.md), no mrcfile at run time.

The header says everything a lazy reader needs: the shape, the dtype, where the data starts
(1024 + NSYMBT), the axis order (MAPC/MAPR/MAPS) and the placement in Angstrom.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np

from perc_platform.errors import MrcFormatError, SizeLimitError, TruncatedFileError, UnsupportedModeError

__all__ = ["HEADER_BYTES", "MODE_DTYPES", "MrcHeader", "label_text", "parse_header"]

HEADER_BYTES = 1024

#: MRC modes read by perc-platform and their (little-endian) dtypes; 0 is signed int8 in MRC2014.
MODE_DTYPES: dict[int, str] = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}
_MODE_NAMES = {3: "complex int16", 4: "complex float32", 101: "packed 4-bit"}

# Field layout of the words the reader uses: (name, byte offset, struct code, count).
_INT_FIELDS = (("nx", 0), ("ny", 4), ("nz", 8), ("mode", 12), ("nxstart", 16), ("nystart", 20),
               ("nzstart", 24), ("mx", 28), ("my", 32), ("mz", 36), ("mapc", 64), ("mapr", 68),
               ("maps", 72), ("ispg", 88), ("nsymbt", 92), ("nversion", 108), ("nlabl", 220))
_FLOAT_FIELDS = (("cella", 40, 3), ("cellb", 52, 3), ("dmin", 76, 1), ("dmax", 80, 1), ("dmean", 84, 1),
                 ("origin", 196, 3), ("rms", 216, 1))


@dataclasses.dataclass(frozen=True)
class MrcHeader:
    """The parts of an MRC2014 header that placement and lazy reading need.

    ``shape`` is the file order (sections, rows, columns) = (NZ, NY, NX). ``voxel_size``, ``origin`` and
    ``start`` are per physical axis (x, y, z) in Angstrom / voxels.
    """

    nx: int
    ny: int
    nz: int
    mode: int
    nxstart: int
    nystart: int
    nzstart: int
    mx: int
    my: int
    mz: int
    cella: tuple[float, float, float]
    cellb: tuple[float, float, float]
    mapc: int
    mapr: int
    maps: int
    dmin: float
    dmax: float
    dmean: float
    ispg: int
    nsymbt: int
    exttyp: str
    nversion: int
    origin: tuple[float, float, float]
    rms: float
    nlabl: int
    labels: tuple[str, ...]
    byteorder: Literal["<", ">"]

    @property
    def dtype(self) -> np.dtype:
        """dtype of the data as stored in the file (with the file's byte order)."""
        return _stored_dtype(self.byteorder, self.mode)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.nz, self.ny, self.nx)

    @property
    def data_offset(self) -> int:
        return HEADER_BYTES + self.nsymbt

    @property
    def section_bytes(self) -> int:
        """Bytes of one section (one image of a stack)."""
        return self.nx * self.ny * self.dtype.itemsize

    @property
    def data_bytes(self) -> int:
        return self.section_bytes * self.nz

    @property
    def file_axis_of(self) -> dict[int, int]:
        """File axis (0 sections, 1 rows, 2 columns) that runs along physical axis 1=X, 2=Y, 3=Z."""
        return {self.maps: 0, self.mapr: 1, self.mapc: 2}

    @property
    def zyx_axes(self) -> tuple[int, int, int]:
        """Transpose that turns the file array into (z, y, x)."""
        axis = self.file_axis_of
        return (axis[3], axis[2], axis[1])

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel size along x, y, z (CELLA / M), 0.0 where the header leaves it unset."""
        sampling = (self.mx, self.my, self.mz)
        return tuple(  # type: ignore[return-value]
            float(c) / m if m > 0 and c > 0 else 0.0 for c, m in zip(self.cella, sampling, strict=True)
        )

    @property
    def start(self) -> tuple[int, int, int]:
        """NXSTART/NYSTART/NZSTART re-ordered from (columns, rows, sections) to physical (x, y, z)."""
        by_file_axis = {2: self.nxstart, 1: self.nystart, 0: self.nzstart}
        axis = self.file_axis_of
        return (by_file_axis[axis[1]], by_file_axis[axis[2]], by_file_axis[axis[3]])

    @property
    def placement(self) -> tuple[float, float, float]:
        """Angstrom position of voxel (0, 0, 0) along x, y, z.

        The ORIGIN field when it is non-zero (as Chimera/ChimeraX and EMDB do), otherwise
        NXSTART/NYSTART/NZSTART times the voxel size.
        """
        if any(o != 0.0 for o in self.origin):
            return self.origin
        return tuple(s * v for s, v in zip(self.start, self.voxel_size, strict=True))  # type: ignore[return-value]

    @property
    def is_stack(self) -> bool:
        """True when ISPG says image stack (0) or volume stack (401+)."""
        return self.ispg == 0 or self.ispg >= 401


@functools.cache
def _stored_dtype(byteorder: str, mode: int) -> np.dtype:
    # Asked per file when thousands of files are opened and checked against each other: made once per kind.
    return np.dtype(byteorder + MODE_DTYPES[mode])


def label_text(raw: bytes) -> str:
    """One 80-character label as text: writers pad with spaces or with NUL bytes (mrcfile), neither kept."""
    return raw.decode("ascii", "replace").replace("\x00", "").strip()


def _fail_mode(mode: int, source: str) -> None:
    known = ", ".join(f"{m} ({np.dtype(d).name})" for m, d in MODE_DTYPES.items())
    name = _MODE_NAMES.get(mode, "unknown")
    raise UnsupportedModeError(
        f"{source}: MRC mode {mode} ({name}) is not supported; perc-platform reads modes {known}. "
        "Convert the file (e.g. `relion_image_handler --i in --o out.mrc` or mrcfile) to float32."
    )


def _byteorder(raw: bytes, source: str) -> Literal["<", ">"]:
    machst = raw[212:214]
    if machst == b"\x44\x44" or machst == b"\x44\x41":
        return "<"
    if machst == b"\x11\x11":
        return ">"
    # Old or sloppy writers leave MACHST empty: guess from the mode word, which must be small.
    le = int(np.frombuffer(raw, "<i4", 1, 12)[0])
    be = int(np.frombuffer(raw, ">i4", 1, 12)[0])
    if 0 <= le <= 200:
        return "<"
    if 0 <= be <= 200:
        return ">"
    raise MrcFormatError(f"{source}: cannot tell the byte order (MACHST {machst!r}, mode word {le}); "
                         "this does not look like an MRC file")


def parse_header(raw: bytes, source: str = "<bytes>", *, max_bytes: int | None = None,
                 extended: bytes | None = None) -> MrcHeader:
    """Parse the first 1024 bytes of an MRC file.

    Parameters
    ----------
    raw
        At least the first 1024 bytes of the file.
    source
        Name of the input, used in error messages.
    max_bytes
        Refuse headers whose data would need more bytes than this (before anything is allocated).
    extended
        Unused; the extended header is skipped (its length is NSYMBT).
    """
    if len(raw) < HEADER_BYTES:
        raise TruncatedFileError(f"{source}: {len(raw)} bytes is shorter than the 1024-byte MRC header; "
                                 "the file is truncated or not an MRC file")
    raw = bytes(raw[:HEADER_BYTES])
    order = _byteorder(raw, source)
    ints = {name: int(np.frombuffer(raw, order + "i4", 1, off)[0]) for name, off in _INT_FIELDS}
    with np.errstate(invalid="ignore", over="ignore"):
        floats = {name: np.frombuffer(raw, order + "f4", n, off).astype(float) for name, off, n in _FLOAT_FIELDS}
    for name in ("cella", "cellb", "origin"):  # non-finite geometry means "not set"
        floats[name] = np.where(np.isfinite(floats[name]), floats[name], 0.0)
    if raw[208:212] not in (b"MAP ", b"MAP\x00") and not (ints["nversion"] == 0 and raw[208:212] == b"\x00" * 4):
        raise MrcFormatError(f"{source}: missing the 'MAP ' tag at byte 208 (found {raw[208:212]!r}); "
                             "this is not an MRC/CCP4 file")
    if ints["mode"] not in MODE_DTYPES:
        _fail_mode(ints["mode"], source)
    nx, ny, nz = ints["nx"], ints["ny"], ints["nz"]
    if min(nx, ny, nz) < 1:
        raise MrcFormatError(f"{source}: dimensions NX, NY, NZ = {nx}, {ny}, {nz} must all be positive")
    axes = (ints["mapc"], ints["mapr"], ints["maps"])
    if axes == (0, 0, 0):
        axes = (1, 2, 3)
    if sorted(axes) != [1, 2, 3]:
        raise MrcFormatError(f"{source}: MAPC/MAPR/MAPS = {axes} is not a permutation of 1, 2, 3")
    if ints["nsymbt"] < 0:
        raise MrcFormatError(f"{source}: negative extended header length NSYMBT = {ints['nsymbt']}")
    itemsize = np.dtype(MODE_DTYPES[ints["mode"]]).itemsize
    need = nx * ny * nz * itemsize
    if max_bytes is not None and need > max_bytes:
        raise SizeLimitError(f"{source}: header claims {nx}x{ny}x{nz} voxels ({need / 2**30:.1f} GiB), above the "
                             f"limit of {max_bytes / 2**30:.1f} GiB; raise PERC_MAX_ARRAY_BYTES if this is real")
    nlabl = max(0, min(ints["nlabl"], 10))
    labels = tuple(label_text(raw[224 + 80 * i: 304 + 80 * i]) for i in range(nlabl))
    cella, cellb, origin = (tuple(float(v) for v in floats[k]) for k in ("cella", "cellb", "origin"))
    return MrcHeader(
        nx=nx, ny=ny, nz=nz, mode=ints["mode"], nxstart=ints["nxstart"], nystart=ints["nystart"],
        nzstart=ints["nzstart"], mx=ints["mx"], my=ints["my"], mz=ints["mz"],
        cella=cella, cellb=cellb, mapc=axes[0], mapr=axes[1], maps=axes[2],  # type: ignore[arg-type]
        dmin=float(floats["dmin"][0]), dmax=float(floats["dmax"][0]), dmean=float(floats["dmean"][0]),
        ispg=ints["ispg"], nsymbt=ints["nsymbt"], exttyp=raw[104:108].decode("ascii", "replace").strip("\x00 "),
        nversion=ints["nversion"], origin=origin, rms=float(floats["rms"][0]),  # type: ignore[arg-type]
        nlabl=nlabl, labels=labels, byteorder=order,
    )
