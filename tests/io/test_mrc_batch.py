"""Opening many local MRC files in one column-wise pass gives the files that one-by-one opening gives."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perc_platform.errors import (
    DataNotFoundError,
    MrcFormatError,
    PercError,
    TruncatedFileError,
    UnsupportedModeError,
)
from perc_platform.io import open_image_files
from perc_platform.io.mrc_batch import PARALLEL_FROM, open_local_mrc_files, read_local_headers
from perc_platform.io.mrc_file import open_mrc_file
from tests.io.mrc_helpers import to_big_endian
from tests.io.test_fuzz import mutated_headers

MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}


def _write(path: Path, i: int) -> Path:
    """A file whose header varies with ``i``: shape, mode, voxel size, origin, axis order, labels, NSYMBT."""
    rng = np.random.default_rng(i)
    mode = list(MODES)[i % len(MODES)]
    shape = (1 + i % 3, 4 + i % 5, 6 + i % 4)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data((rng.standard_normal(shape) * 10).astype(MODES[mode]))
        if i % 4 == 0:
            mrc.set_image_stack()
        mrc.voxel_size = (1.0 + i / 10, 2.0, 3.5)
        mrc.header.origin = (i, -2.5, 0.25)
        if i % 7 == 3:
            mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 1, 2
        if i % 5 == 1:
            mrc.set_extended_header(np.zeros(8 * (1 + i % 3), dtype=np.uint8))
        for k in range(i % 3):
            mrc.add_label(f"label {k} of file {i}")
    return path


@pytest.fixture
def many(tmp_path: Path) -> list[Path]:
    return [_write(tmp_path / f"{i % 4}_{i:04d}.mrc", i) for i in range(PARALLEL_FROM + 44)]


def test_same_files_as_one_by_one_and_as_mrcfile(many: list[Path]) -> None:
    batch = open_local_mrc_files([str(p) for p in many], threads=4)  # above PARALLEL_FROM: the pool reads
    assert len(batch) == len(many)
    for path, got in zip(many, batch, strict=True):
        assert got == open_mrc_file(str(path))  # every header field, the URL and the options
        with mrcfile.open(path, header_only=True) as mrc:  # the independent reading
            h = mrc.header
            assert got.url == os.path.abspath(path)
            assert got.header.shape == (int(h.nz), int(h.ny), int(h.nx))
            assert got.dtype == mrcfile.utils.data_dtype_from_header(h)
            assert got.header.data_offset == 1024 + int(h.nsymbt)
            assert (got.header.mapc, got.header.mapr, got.header.maps) == (int(h.mapc), int(h.mapr), int(h.maps))
            assert got.header.origin == pytest.approx(tuple(float(v) for v in h.origin.item()))
            assert got.header.voxel_size == pytest.approx(tuple(float(v) for v in mrc.voxel_size.item()))
            assert got.header.nlabl == int(h.nlabl)
            assert got.header.labels == tuple(lab.decode().strip() for lab in h.label[:int(h.nlabl)])
            assert got.header.ispg == int(h.ispg)


def test_headers_and_sizes_read_by_the_pool_match_the_files(many: list[Path], tmp_path: Path) -> None:
    short = tmp_path / "short.mrc"
    short.write_bytes(b"\x01" * 100)
    paths = [str(p) for p in many] + [str(short), str(tmp_path / "absent.mrc")]
    heads, sizes = read_local_headers(paths, threads=3)
    for i, path in enumerate(paths[:-2]):
        assert heads[i].tobytes() == Path(path).read_bytes()[:1024]
        assert sizes[i] == os.path.getsize(path)
    assert heads[-2, :100].tolist() == [1] * 100 and not heads[-2, 100:].any() and sizes[-2] == 100
    assert sizes[-1] == -1


def test_files_the_columns_refuse_are_opened_one_by_one(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"f{i}.mrc", 2) for i in range(3)]
    to_big_endian(paths[1])  # big-endian: not decoded column-wise, opened by open_mrc_file
    files = open_image_files([str(p) for p in paths])
    assert [f.dtype for f in files] == [np.dtype("<f4"), np.dtype(">f4"), np.dtype("<f4")]
    assert files[1] == open_mrc_file(str(paths[1]))


def _corrupt(path: Path, at: int, word: bytes) -> Path:
    raw = bytearray(path.read_bytes())
    raw[at:at + len(word)] = word
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(("damage", "error", "match"), [
    (lambda p: _corrupt(p, 12, np.int32(4).tobytes()), UnsupportedModeError, "mode 4"),
    (lambda p: _corrupt(p, 208, b"XXXX"), MrcFormatError, "MAP"),
    (lambda p: _corrupt(p, 64, np.array([1, 1, 2], "<i4").tobytes()), MrcFormatError, "MAPC"),
    (lambda p: p.write_bytes(p.read_bytes()[:1500]), TruncatedFileError, "truncated"),
    (lambda p: p.unlink(), DataNotFoundError, "no such file"),
])
def test_a_bad_file_among_many_raises_its_own_error(tmp_path: Path, damage, error, match) -> None:
    paths = [_write(tmp_path / f"g{i:03d}.mrc", 2) for i in range(PARALLEL_FROM + 2)]
    damage(paths[100])
    with pytest.raises(error, match=match) as caught:
        open_image_files([str(p) for p in paths])
    assert "g100.mrc" in str(caught.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(mutated_headers(), st.integers(0, 1200)), min_size=1, max_size=4))
def test_mutated_headers_give_what_one_by_one_gives(headers: list[tuple[bytes, int]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_MAX_ARRAY_BYTES", str(32 * 2**20))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (header, extra) in enumerate(headers):
            paths.append(os.path.join(tmp, f"m{i}.mrc"))
            Path(paths[-1]).write_bytes(header + bytes(extra))
        try:
            expected: list[object] | PercError = [open_mrc_file(p) for p in paths]
        except PercError as error:
            expected = error
        try:
            got: list[object] | PercError = open_local_mrc_files(paths)
        except PercError as error:
            got = error
        if isinstance(expected, PercError):
            assert type(got) is type(expected) and str(got) == str(expected)
        else:
            assert repr(got) == repr(expected)  # repr: a NaN statistic is equal to itself there
