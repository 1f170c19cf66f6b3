"""SerialEM mdoc files (the real ones mdocfile ships) against values read off the text by hand here."""

from __future__ import annotations

import re
from pathlib import Path

import mdocfile
import numpy as np
import pytest

from perc_platform.errors import DataNotFoundError, MdocFormatError
from perc_platform.io import read_mdoc


def hand_sections(path: Path) -> tuple[dict[str, str], list[tuple[str, int, dict[str, str]]]]:
    """Global key = value pairs, then (header kind, number, key = value pairs) per section, by plain splitting."""
    head: dict[str, str] = {}
    sections: list[tuple[str, int, dict[str, str]]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        header = re.fullmatch(r"\[(ZValue|FrameSet) = (\d+)\]", line)
        if header:
            sections.append((header.group(1), int(header.group(2)), {}))
        elif "=" in line and not line.startswith("["):
            key, value = (part.strip() for part in line.split("=", 1))
            (sections[-1][2] if sections else head)[key] = value
    return head, sections


def test_tilt_series_mdoc(shared: Path) -> None:
    path = shared / "metadata" / "tilt_series.mdoc"
    head, sections = hand_sections(path)
    mdoc = read_mdoc(str(path))
    assert mdoc.pixel_size == float(head["PixelSpacing"]) == 5.4
    assert mdoc.image_file == head["ImageFile"] == "TS_01.mrc"
    assert len(sections) == mdoc.section.size > 10
    by_z = sorted(sections, key=lambda s: s[1])
    np.testing.assert_allclose(mdoc.tilt_angles(), [float(s[2]["TiltAngle"]) for s in by_z])
    np.testing.assert_allclose(mdoc.dose, [float(s[2]["ExposureDose"]) for s in sections])
    np.testing.assert_allclose(mdoc.exposure_time, [float(s[2]["ExposureTime"]) for s in sections])
    assert mdoc.num_sub_frames.tolist() == [int(s[2]["NumSubFrames"]) for s in sections]
    assert mdoc.sub_frame_paths == [s[2]["SubFramePath"] for s in sections]
    assert mdoc.sub_frame_names == [s[2]["SubFramePath"].rsplit("\\", 1)[1] for s in sections]
    assert mdoc.sub_frame_names[0] == "TS_01_000_0.0.mrc"
    # and what mdocfile's own table says
    table = mdocfile.read(path)
    np.testing.assert_allclose(mdoc.tilt_angle, table["TiltAngle"].to_numpy())


def test_frame_set_mdoc_keeps_section_pixel_size(shared: Path) -> None:
    path = shared / "metadata" / "frame_set_multiple.mdoc"
    head, sections = hand_sections(path)
    mdoc = read_mdoc(str(path))
    assert "PixelSpacing" not in head and mdoc.voltage == float(head["Voltage"]) == 300.0
    frame_sets = [s for s in sections if s[0] == "FrameSet"]
    assert mdoc.kind.tolist() == [s[0] for s in sections]
    assert mdoc.section.tolist() == [s[1] for s in sections]
    assert mdoc.pixel_size == float(frame_sets[0][2]["PixelSpacing"]) == 1.2827  # lost by mdocfile.read's table
    np.testing.assert_allclose(mdoc.dose, [float(s[2].get("ExposureDose", "nan")) for s in sections])
    np.testing.assert_allclose(mdoc.prior_dose, [float(s[2].get("PriorRecordDose", "nan")) for s in sections])
    assert mdoc.sub_frame_names[0] == frame_sets[0][2]["SubFramePath"].rsplit("\\", 1)[1]


@pytest.mark.parametrize("text, match", [
    ("PixelSpacing = 2\n", "no \\[ZValue"),
    ("PixelSpacing = 2\n[ZValue = 0]\nTiltAngle = steep\n", "not a valid SerialEM mdoc"),
    ("PixelSpacing = -2\n[ZValue = 0]\nTiltAngle = 1\n", "not a positive size"),
    ("[ZValue = 0]\nTiltAngle = 1\n\x00\x00[ZValue = 1]", "binary"),
])
def test_hostile_mdoc_gives_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.mdoc"
    path.write_text(text)
    with pytest.raises(MdocFormatError, match=match):
        read_mdoc(str(path))


def test_tilt_series_order_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "twice.mdoc"
    path.write_text("PixelSpacing = 2\n[ZValue = 0]\nTiltAngle = 1\n[ZValue = 0]\nTiltAngle = 3\n")
    with pytest.raises(MdocFormatError, match="0 to 1 once each"):
        read_mdoc(str(path)).tilt_angles()
    with pytest.raises(DataNotFoundError, match="nothing.mdoc"):
        read_mdoc(str(tmp_path / "nothing.mdoc"))
