"""SerialEM ``.mdoc`` metadata (tilt series, frame sets) read with ``mdocfile``, as per-section arrays.

``mdocfile`` parses and validates the text (one pydantic model per section). We take its section models
rather than its ``to_dataframe()``, because that table copies every global field over the sections'
own values, so a section's ``PixelSpacing`` is lost when the header does not state one.

Units follow the conventions: ``PixelSpacing`` is already in Angstrom, ``ExposureDose`` and
``PriorRecordDose`` in electrons per square Angstrom, ``TiltAngle`` in degrees, ``ExposureTime`` in
seconds. ``SubFramePath`` is written by SerialEM on Windows (``D:\\frames\\TS_01_000_0.0.mrc``);
``sub_frame_names`` holds the bare file names, which is what is found beside the mdoc on a Linux share.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd

from perc_platform.errors import DataNotFoundError, MdocFormatError

__all__ = ["MdocFile", "parse_mdoc_text", "read_mdoc"]

_MAX_MDOC_BYTES = 64 * 2**20


@dataclasses.dataclass(frozen=True)
class MdocFile:
    """One mdoc file: global values and one entry per section (``[ZValue = N]`` or ``[FrameSet = N]``).

    Arrays are in file order; ``kind`` says which header each section had and ``section`` its number.
    Missing values are NaN (numbers) or ``""`` (text).
    """

    source: str
    image_file: str | None
    pixel_size: float | None
    voltage: float | None
    kind: np.ndarray
    section: np.ndarray
    tilt_angle: np.ndarray
    dose: np.ndarray
    prior_dose: np.ndarray
    exposure_time: np.ndarray
    section_pixel_size: np.ndarray
    num_sub_frames: np.ndarray
    sub_frame_paths: list[str]
    table: pd.DataFrame

    @property
    def sub_frame_names(self) -> list[str]:
        """File names of ``SubFramePath`` without the (Windows) folder SerialEM wrote them in."""
        return [PureWindowsPath(p).name if p else "" for p in self.sub_frame_paths]

    def tilt_series_order(self) -> np.ndarray:
        """Positions of the ``ZValue`` sections sorted by Z (the image order of the stack); checks 0..n-1."""
        rows = np.flatnonzero(self.kind == "ZValue")
        order = rows[np.argsort(self.section[rows], kind="stable")]
        z = self.section[order]
        if z.size == 0:
            raise MdocFormatError(f"{self.source}: no [ZValue = N] sections; this is not a tilt-series mdoc")
        if not np.array_equal(z, np.arange(z.size)):
            raise MdocFormatError(f"{self.source}: ZValue sections are {z.tolist()[:8]}...; a tilt series "
                                  f"numbers its {z.size} images 0 to {z.size - 1} once each")
        return order

    def tilt_angles(self) -> np.ndarray:
        """Tilt angle of each image of the tilt series, in stack (Z) order, in degrees."""
        angles = self.tilt_angle[self.tilt_series_order()]
        if np.isnan(angles).any():
            raise MdocFormatError(f"{self.source}: a ZValue section has no TiltAngle")
        return angles


def _number(value: Any) -> float:
    return float(value) if value is not None else math.nan


def _single(values: list[float]) -> float | None:
    """The one value all sections that state it agree on (None when none states it, or they differ)."""
    found = {v for v in values if not math.isnan(v)}
    return found.pop() if len(found) == 1 else None


def parse_mdoc_text(text: str, source: str = "<mdoc>") -> MdocFile:
    """Parse the text of an mdoc file; raise MdocFormatError naming ``source`` when it is not one."""
    from mdocfile.data_models import Mdoc

    if "[ZValue" not in text and "[FrameSet" not in text and "[MontSection" not in text:
        raise MdocFormatError(f"{source}: no [ZValue = N] or [FrameSet = N] section; this is not a SerialEM mdoc")
    try:
        mdoc = Mdoc.from_string(text)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MdocFormatError(f"{source}: not a valid SerialEM mdoc ({first}); check the file") from None
    sections = [s.model_dump() for s in mdoc.section_data]
    kinds = ["ZValue" if s["ZValue"] is not None else "FrameSet" if s["FrameSet"] is not None else "MontSection"
             for s in sections]
    numbers = [s["ZValue"] if s["ZValue"] is not None else s["FrameSet"] if s["FrameSet"] is not None
               else s["MontSection"] for s in sections]
    glob = mdoc.global_data
    spacing = [_number(s["PixelSpacing"]) for s in sections]
    pixel = float(glob.PixelSpacing) if glob.PixelSpacing is not None else _single(spacing)
    volts = [_number(s["Voltage"]) for s in sections]
    voltage = float(glob.Voltage) if glob.Voltage is not None else _single(volts)
    if pixel is not None and not pixel > 0:
        raise MdocFormatError(f"{source}: PixelSpacing = {pixel} is not a positive size in Angstrom")
    return MdocFile(
        source=source,
        image_file=str(glob.ImageFile) if glob.ImageFile is not None else None,
        pixel_size=pixel,
        voltage=voltage,
        kind=np.array(kinds, dtype=str),
        section=np.array(numbers, dtype=np.int64),
        tilt_angle=np.array([_number(s["TiltAngle"]) for s in sections]),
        dose=np.array([_number(s["ExposureDose"]) for s in sections]),
        prior_dose=np.array([_number(s["PriorRecordDose"]) for s in sections]),
        exposure_time=np.array([_number(s["ExposureTime"]) for s in sections]),
        section_pixel_size=np.array([v if not math.isnan(v) else (pixel or math.nan) for v in spacing]),
        num_sub_frames=np.array([_number(s["NumSubFrames"]) for s in sections]),
        sub_frame_paths=[str(s["SubFramePath"]) if s["SubFramePath"] is not None else "" for s in sections],
        table=pd.DataFrame(sections),
    )


def read_mdoc(path_or_url: str, storage_options: dict[str, Any] | None = None) -> MdocFile:
    """Read a SerialEM mdoc from a local path or fsspec URL (size-bounded), with ``mdocfile``."""
    from perc_platform.storage.ranges import open_input  # remote files through the network policy

    try:
        with open_input(str(path_or_url), storage_options) as handle:
            raw = handle.read(_MAX_MDOC_BYTES + 1)
    except FileNotFoundError:
        raise DataNotFoundError(f"mdoc file {path_or_url} does not exist; check the path or URL") from None
    if len(raw) > _MAX_MDOC_BYTES:
        raise MdocFormatError(f"{path_or_url}: larger than {_MAX_MDOC_BYTES >> 20} MiB; not an mdoc file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # SerialEM writes the Windows code page in titles and paths
    if "\x00" in text:
        raise MdocFormatError(f"{path_or_url}: holds binary data; an mdoc file is text")
    return parse_mdoc_text(text.replace("\r\n", "\n"), str(path_or_url))
