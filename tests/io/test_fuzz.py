"""Property-based tests: random and mutated MRC headers and STAR files either parse to a valid object or
raise a perc_platform error -- never anything else, never a hang, never an allocation above the limit."""

from __future__ import annotations

import os
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perc_platform.errors import PercError
from perc_platform.io import MrcStackArray, MrcVolumeArray, open_mrc_file, parse_header
from perc_platform.io.star import parse_star_text, particle_metadata

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LIMIT = 32 * 2**20  # PERC_MAX_ARRAY_BYTES during these tests
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUTCOMES: dict[str, dict[str, int]] = {}


def _count(parser: str, outcome: str) -> None:
    OUTCOMES.setdefault(parser, {}).setdefault(outcome, 0)
    OUTCOMES[parser][outcome] += 1


def _real_header(name: str) -> bytes:
    return (SHARED / name).read_bytes()[:1024]


def _small_header(shape: tuple[int, int, int], dtype: str) -> bytes:
    """A valid header for a small file, so that some mutated files hold all their data and are read."""
    import mrcfile

    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "s.mrc")
    with mrcfile.new(path, data=np.zeros(shape, dtype)) as mrc:
        mrc.flush()
        header = bytes(mrc.header.tobytes())
    os.remove(path)
    os.rmdir(tmp)
    return header


REAL_HEADERS = [_real_header("maps/emd_1832.map"), _real_header("maps/EMD-3001.map"),
                _real_header("particles/relion31.mrcs")]
SMALL_HEADERS = [_small_header((4, 8, 8), "float32"), _small_header((3, 5, 7), "int16"),
                 _small_header((2, 6, 6), "float16")]
HEADERS = REAL_HEADERS + SMALL_HEADERS


@st.composite
def mutated_headers(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(HEADERS)))
    for _ in range(draw(st.integers(0, 6))):
        word = draw(st.integers(0, 55))
        value = draw(st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, -1, 2, 3, 4, 12, 101,
                                                                                   2**31 - 1, -(2**31)])))
        raw[4 * word: 4 * word + 4] = int(value).to_bytes(4, "little", signed=True)
    if draw(st.booleans()):
        cut = draw(st.integers(0, 1024))
        raw = raw[:cut]
    return bytes(raw)


@pytest.fixture(autouse=True)
def _limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_MAX_ARRAY_BYTES", str(LIMIT))


@FUZZ
@given(raw=st.one_of(st.binary(min_size=0, max_size=1500), mutated_headers()))
def test_header_parser_never_fails_unexpectedly(raw: bytes) -> None:
    try:
        header = parse_header(raw, "fuzz", max_bytes=LIMIT)
    except PercError:
        _count("MRC header", "clear error")
        return
    _count("MRC header", "parsed")
    assert header.nx > 0 and header.ny > 0 and header.nz > 0
    assert header.data_bytes <= LIMIT
    assert sorted(header.zyx_axes) == [0, 1, 2]


@FUZZ
@given(header=mutated_headers(), extra=st.integers(0, 1200), kind=st.sampled_from(["stack", "volume"]))
def test_mutated_files_open_and_read_or_fail_clearly(header: bytes, extra: int, kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzz.mrc")
        with open(path, "wb") as handle:
            handle.write(header + bytes(extra))
        tracemalloc.start()
        try:
            mrc = open_mrc_file(path)
            array = MrcStackArray([mrc]) if kind == "stack" else MrcVolumeArray(mrc)
            block = array[0]
            assert block.size * block.itemsize <= LIMIT
            _count("MRC file", "read")
        except PercError:
            _count("MRC file", "clear error")
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak < LIMIT + 8 * 2**20


def _real_star(name: str) -> str:
    return (SHARED / "particles" / name).read_text()


STARS = [_real_star("relion31.star"), _real_star("sta_testing_bin8.star")[:6000], _real_star("relion5.star"),
         _real_star("FinalRefinement-OriginalParticles-PfCRT.star")]
TOKENS = ["data_", "data_optics", "data_particles", "loop_", "_rlnImageName", "_rlnOpticsGroup", "_rlnVoltage",
          "_rlnImagePixelSize", "1", "0", "-3", "1e999", "nan", "000001@a.mrcs", "@", "x@y", "'quoted value'",
          '"', "'", "#", "\n", " ", "\t", "99999999999999999999@s.mrcs", "_rlnDetectorPixelSize",
          "_rlnMagnification", "0@s.mrcs"]


@st.composite
def mutated_stars(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(STARS)).splitlines()
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "replace", "token", "truncate"]))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "replace":
            lines[i] = draw(st.text(max_size=40))
        elif action == "token":
            parts = lines[i].split() or [""]
            parts[draw(st.integers(0, len(parts) - 1))] = draw(st.sampled_from(TOKENS))
            lines[i] = " ".join(parts)
        else:
            lines = lines[: i + 1]
    return "\n".join(lines)


@FUZZ
@given(text=st.one_of(mutated_stars(), st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join),
                      st.text(max_size=300)))
def test_star_parser_never_fails_unexpectedly(text: str) -> None:
    try:
        table = parse_star_text(text, "fuzz.star")
        meta = particle_metadata(table)
    except PercError:
        _count("STAR", "clear error")
        return
    _count("STAR", "parsed")
    assert len(meta.stack_names) == len(meta.image_index) == len(table.particles)
    assert (np.asarray(meta.image_index) >= 0).all()


def test_zz_report_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    """Print how many inputs each parser saw and how they ended (read by the closing note)."""
    with capsys.disabled():
        for parser, outcomes in sorted(OUTCOMES.items()):
            print(f"\nfuzz {parser}: {sum(outcomes.values())} inputs, {outcomes}")
    if not OUTCOMES:
        pytest.skip("reports the fuzz tests' counts; run it with them (the whole file)")
    assert set(OUTCOMES) == {"MRC header", "MRC file", "STAR"}
    assert all(sum(o.values()) >= 1000 for o in OUTCOMES.values())


def test_found_by_fuzzing_duplicate_columns_and_mixed_group_ids() -> None:
    duplicated = STARS[0].replace("_rlnVoltage #5", "_rlnOpticsGroup #5", 1)
    with pytest.raises(PercError, match="appears more than once"):
        parse_star_text(duplicated, "dup.star")
    mixed = STARS[0].replace("           1 opticsGroup1", "         1.0 opticsGroup1", 1)
    assert mixed != STARS[0]
    table = parse_star_text(mixed, "mixed.star")
    meta = particle_metadata(table)  # no warning, no crash
    assert len(meta.stack_names) == len(table.particles)
    assert meta.attrs["pixel_size"] == 2.806  # optics group "1.0" still joins the particles' "1"
    assert meta.attrs["voltage"] == 300.0
