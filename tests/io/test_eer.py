"""EER through the format layer: files built from a known list of electron events, rendered at 1x/2x/4x.

Every frame is checked against an independent numpy histogram of the events and against tifffile's own EER
decoding (imagecodecs' codec) page by page; fractions against a numpy sum; remote reads by the bytes moved.
"""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile

from perc_platform.errors import FormatError, ParameterError, TruncatedFileError
from perc_platform.io import StackArray, eer_file, format_for, open_image_file
from perc_platform.storage._http_ranges import GAP_BUDGET
from perc_platform.storage.policy import grant_host
from perc_platform.testing import LoopbackServer
from perc_platform.testing.eer import random_events, write_eer

SHAPE = (24, 40)  # sensor rows, columns
FRAMES = 7


def histogram(events: list[np.ndarray], factor: int) -> np.ndarray:
    """Counts per rendered pixel per raw frame: event (y, x, sy, sx) lies at (4y + sy, 4x + sx) on the 4x grid."""
    out = np.zeros((len(events), SHAPE[0] * factor, SHAPE[1] * factor), np.int64)
    for k, ev in enumerate(events):
        rows = ev[:, 0] * factor + ev[:, 2] * factor // 4
        cols = ev[:, 1] * factor + ev[:, 3] * factor // 4
        np.add.at(out[k], (rows, cols), 1)
    return out


def tifffile_frames(path: Path, factor: int) -> np.ndarray:
    with tifffile.TiffFile(path, superres={1: 0, 2: 1, 4: 2}[factor]) as tif:
        return np.stack([p.asarray() for p in tif.pages if p.compression != 1]).astype(np.int64)


CASES = [pytest.param(65001, None, None, False, id="65001-one-strip"),
         pytest.param(65000, None, 8, True, id="65000-strips-integrated"),
         pytest.param(65002, (6, 2, 2), 6, False, id="65002-6bit-runs-strips")]


@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize(("compression", "bits", "rows", "integrated"), CASES)
def test_frames_equal_the_events_and_tifffile(tmp_path: Path, compression: int, bits: tuple[int, int, int] | None,
                                             rows: int | None, integrated: bool, factor: int) -> None:
    # dense enough that runs longer than the rle field (all-ones continuation codes) occur, and sparse rows too
    events = random_events(FRAMES, SHAPE, 60, seed=compression)
    events[2] = events[2][:1]  # one event: a long final run
    events[3] = events[3][:0]  # an empty frame
    path = write_eer(tmp_path / "movie.eer", events, SHAPE, compression=compression, bits=bits,
                     rows_per_strip=rows, integrated=integrated)
    file = open_image_file(str(path), super_resolution=factor)
    assert file.format == "eer" and file.shape == (FRAMES, SHAPE[0] * factor, SHAPE[1] * factor)
    array = StackArray([file])
    expected = histogram(events, factor)
    reference = tifffile_frames(path, factor)
    np.testing.assert_array_equal(reference, expected)  # the file says what we meant to write
    for frame in range(FRAMES):
        got = array[frame]
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, expected[frame])
    np.testing.assert_array_equal(array[np.array([5, 0, 5])], expected[[5, 0, 5]])


def test_single_strip_equals_imagecodecs_on_the_raw_strip_bytes(tmp_path: Path) -> None:
    events = random_events(3, SHAPE, 80, seed=5)
    path = write_eer(tmp_path / "m.eer", events, SHAPE)
    array = StackArray([open_image_file(str(path), super_resolution=4)])
    with tifffile.TiffFile(path) as tif:
        for k, page in enumerate(tif.pages):
            tif.filehandle.seek(page.dataoffsets[0])
            blob = tif.filehandle.read(page.databytecounts[0])
            direct = imagecodecs.eer_decode(blob, (SHAPE[0] * 4, SHAPE[1] * 4), 7, 2, 2, superres=2)
            np.testing.assert_array_equal(array[k], direct)


@pytest.mark.parametrize("accumulate", [True, False])
def test_fractions_are_numpy_sums_and_say_their_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       accumulate: bool) -> None:
    monkeypatch.setattr(eer_file, "_decoder_accumulates", lambda: accumulate)  # both decode paths
    events = random_events(FRAMES, SHAPE, 50, seed=9)
    path = write_eer(tmp_path / "m.eer", events, SHAPE, pixel_size=0.8, exposure_time=2.5)
    raw = histogram(events, 2)
    dropped = open_image_file(str(path), super_resolution=2, frames_per_fraction=3)
    assert dropped.shape[0] == 2 and dropped.frame_counts == (3, 3) and dropped.raw_frames == FRAMES
    np.testing.assert_array_equal(StackArray([dropped])[:], np.stack([raw[0:3].sum(0), raw[3:6].sum(0)]))
    kept = open_image_file(str(path), super_resolution=2, frames_per_fraction=3, remainder="keep")
    assert kept.frame_counts == (3, 3, 1)
    np.testing.assert_array_equal(StackArray([kept])[2], raw[6])
    np.testing.assert_array_equal(StackArray([kept])[np.array([2, 0])], np.stack([raw[6], raw[0:3].sum(0)]))
    # metadata: pixel size halves at 2x; dose = events per pixel / pixel area / raw frames (e/A^2 per raw frame)
    assert kept.pixel_size == pytest.approx(0.4)
    per_raw = sum(len(e) for e in events) / (SHAPE[0] * SHAPE[1]) / 0.8**2 / FRAMES
    assert kept.dose_per_raw_frame == pytest.approx(per_raw)
    assert kept.dose_per_frame == pytest.approx(3 * per_raw)
    assert kept.exposure_time == pytest.approx(2.5)


def test_remote_fraction_moves_only_its_strips(tmp_path: Path, server_factory: type[LoopbackServer]) -> None:
    events = random_events(FRAMES, SHAPE, 70, seed=11)
    path = write_eer(tmp_path / "movie.eer", events, SHAPE, rows_per_strip=8)
    with tifffile.TiffFile(path) as tif:
        strip_bytes = [int(np.sum(p.databytecounts)) for p in tif.pages]
    server = server_factory(tmp_path)
    grant_host(server.url)
    file = open_image_file(f"{server.url}/movie.eer", super_resolution=4, frames_per_fraction=2)
    array = StackArray([file])
    expected = histogram(events, 4)
    server.reset_counts()
    np.testing.assert_array_equal(array[1], expected[2:4].sum(0))
    # its two raw frames' strips; the small gap between them (an IFD) may be read through, within the budget
    assert strip_bytes[2] + strip_bytes[3] <= server.bytes_sent <= (1 + GAP_BUDGET) * (strip_bytes[2] + strip_bytes[3])
    server.reset_counts()
    np.testing.assert_array_equal(array[:], expected[:6].reshape(3, 2, *expected.shape[1:]).sum(1))
    needed = sum(strip_bytes[:6])  # the dropped seventh raw frame is never read
    assert needed <= server.bytes_sent <= (1 + GAP_BUDGET) * needed


def test_bad_eer_input_fails_clearly(tmp_path: Path) -> None:
    events = random_events(4, SHAPE, 20, seed=1)
    path = write_eer(tmp_path / "m.eer", events, SHAPE)
    fmt = format_for(str(path))
    assert fmt is not None and fmt.name == "eer"
    with pytest.raises(ParameterError, match=r"m\.eer.*super_resolution=3.*1.*2.*4"):
        open_image_file(str(path), super_resolution=3)
    with pytest.raises(ParameterError, match=r"frames_per_fraction=5 but the file has 4 raw frames"):
        open_image_file(str(path), frames_per_fraction=5)
    with pytest.raises(ParameterError, match="remainder='last'"):
        open_image_file(str(path), remainder="last")
    odd = write_eer(tmp_path / "odd.eer", events, SHAPE, rows_per_strip=5)
    np.testing.assert_array_equal(StackArray([open_image_file(str(odd))])[1], histogram(events, 1)[1])
    with pytest.raises(ParameterError, match=r"odd\.eer.*super-resolution only for strips.*super_resolution=1"):
        open_image_file(str(odd), super_resolution=2)
    tif = tmp_path / "plain.tif"
    tifffile.imwrite(tif, np.zeros((2, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(ParameterError, match=r"plain\.tif: super_resolution given, but the file is TIFF.*apply to EER"):
        open_image_file(str(tif), super_resolution=2)
    renamed = tmp_path / "plain.eer"
    renamed.write_bytes(tif.read_bytes())
    with pytest.raises(FormatError, match=r"plain\.eer.*compression 1, not an EER event stream"):
        open_image_file(str(renamed))
    cut = tmp_path / "cut.eer"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises((TruncatedFileError, FormatError), match=r"cut\.eer"):
        StackArray([open_image_file(str(cut))])[3]
    with pytest.raises(FileNotFoundError, match=r"missing\.eer"):
        open_image_file(str(tmp_path / "missing.eer"))
