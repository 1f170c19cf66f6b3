"""Property-based tests: random and mutated MRC headers and STAR files either parse to a valid object or
raise a perc_platform error -- never anything else, never a hang, never an allocation above the limit."""

from __future__ import annotations

import os
import tempfile
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perc_platform.errors import PercError, StarFormatError
from perc_platform.io import MrcStackArray, MrcVolumeArray, open_mrc_file, parse_header
from perc_platform.io.star import parse_star_text, particle_metadata

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LIMIT = 32 * 2**20  # PERC_MAX_ARRAY_BYTES during these tests
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUTCOMES: dict[str, dict[str, int]] = {}


def _count(parser: str, outcome: str) -> None:
    OUTCOMES.setdefault(parser, {}).setdefault(outcome, 0)
    OUTCOMES[parser][outcome] += 1


@pytest.fixture(autouse=True, scope="module")
def _needs_shared(shared: Path) -> None:
    """The seeds below come from ../shared/data: without it every test here fails with where it looked."""


def _real_header(name: str) -> bytes:
    # Read at import to seed the strategies; a missing ../shared must not abort collection (see _needs_shared).
    path = SHARED / name
    return path.read_bytes()[:1024] if path.is_file() else bytes(1024)


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
    path = SHARED / "particles" / name
    return path.read_text() if path.is_file() else "data_\n"


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


def _blocks(text: str) -> list[tuple[int, int]]:
    """(first, end) line numbers of each data_ block."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("data_")]
    return list(zip(starts, [*starts[1:], len(lines)], strict=True))


def _loop_rows(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith(("data_", "loop_", "_",
                                                                                                "#"))]


@st.composite
def structural_stars(draw: st.DrawFn) -> str:
    """Real STAR files with their structure mutated: repeated blocks and loops, missing or repeated optics
    groups, empty quoted values, pairs beside loops, image names without a stack or without '@', wide rows."""
    text = draw(st.sampled_from(STARS))
    for _ in range(draw(st.integers(1, 3))):
        lines = text.splitlines()
        blocks = _blocks(text)
        action = draw(st.sampled_from(["repeat_block", "repeat_loop", "group", "optics_row", "empty_quoted",
                                       "pair", "name", "wide"]))
        rows = _loop_rows(lines)
        if action == "repeat_block" and blocks:
            first, end = draw(st.sampled_from(blocks))
            lines += ["", *lines[first:end]]
        elif action == "repeat_loop" and blocks:
            first, end = draw(st.sampled_from(blocks))
            loop = [line for line in lines[first + 1:end] if line.strip()]
            lines[end:end] = ["", *loop]
        elif action in ("group", "optics_row", "empty_quoted", "name") and rows:
            i = draw(st.sampled_from(rows))
            parts = lines[i].split()
            j = draw(st.integers(0, len(parts) - 1))
            if action == "group":
                parts[j] = draw(st.sampled_from(["2", "7", "0", "opticsGroup9"]))
            elif action == "optics_row":
                lines.insert(i, lines[i])
                continue
            elif action == "empty_quoted":
                parts[j] = draw(st.sampled_from(["''", '""', "' '"]))
            else:
                parts[j] = draw(st.sampled_from(["1@", "@", "@s.mrcs", "s.mrcs", "sub/t.mrc", "'1@'", "1@@s"]))
            lines[i] = " ".join(parts)
        elif action == "pair" and blocks:
            _, end = draw(st.sampled_from(blocks))
            name = draw(st.sampled_from(["_rlnImageName", "_rlnOpticsGroup", "_rlnVoltage", "_rlnFoo"]))
            lines.insert(end, f"{name} {draw(st.sampled_from(['1', '000001@x.mrcs', 'abc']))}")
        elif action == "wide" and rows and blocks:
            # k more columns on the last loop's header and on every row of it
            first, end = blocks[-1]
            k = draw(st.integers(1, 1000))
            header_end = max((n for n in range(first, end) if lines[n].strip().startswith("_")), default=None)
            if header_end is None:
                continue
            lines[header_end + 1:header_end + 1] = [f"_rlnWide{c}" for c in range(k)]
            extra = " " + " ".join(["0.5"] * k)
            lines = [line + extra if first < n and (n > header_end + k) and n < end + k and line.strip()
                     and not line.strip().startswith(("_", "#", "loop_", "data_")) else line
                     for n, line in enumerate(lines)]
        text = "\n".join(lines) + "\n"
    return text


def _reference_table(text: str) -> pd.DataFrame | None:
    """The particle table as the ``starfile`` package reads it, or None where it cannot read the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ref.star"
        path.write_text(text, encoding="utf-8")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                blocks = starfile.read(path, always_dict=True)
        except Exception:  # any failure of the reference means "no reference"
            return None
    tables = {name: (pd.DataFrame([block]) if isinstance(block, dict) else block) for name, block in blocks.items()
              if name != "optics"}
    tables = {name: t for name, t in tables.items() if "rlnImageName" in t.columns}
    if "particles" in tables:
        return tables["particles"]
    return next(iter(tables.values())) if len(tables) == 1 else None


def _same_values(ours: pd.Series, theirs: pd.Series) -> bool:
    a, b = pd.to_numeric(ours, errors="coerce"), pd.to_numeric(theirs, errors="coerce")
    if a.notna().all() and b.notna().all():
        return bool(np.allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-12, equal_nan=True))
    return ours.astype(str).tolist() == theirs.astype(str).tolist()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example,
                                                                   HealthCheck.data_too_large])
@given(text=structural_stars())
def test_structural_mutations_give_star_errors_or_the_right_data(text: str) -> None:
    try:
        table = parse_star_text(text, "fuzz.star")
        meta = particle_metadata(table)
    except StarFormatError:
        _count("STAR structure", "clear error")
        return
    _count("STAR structure", "parsed")
    assert len(meta.stack_names) == len(meta.image_index) == len(table.particles)
    assert all(meta.stack_names) and (np.asarray(meta.image_index) >= 0).all()
    if "'" in text or '"' in text or table.values:
        return  # starfile splits quoted values and mixes pairs beside a loop into it: no reference there
    reference = _reference_table(text)
    if reference is None:
        return
    _count("STAR structure", "checked against starfile")
    assert list(reference.columns) == list(table.particles.columns)
    assert len(reference) == len(table.particles)
    for column in table.particles.columns:
        assert _same_values(table.particles[column], reference[column]), column


def test_zz_report_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    """Print how many inputs each parser saw and how they ended (read by the closing note)."""
    with capsys.disabled():
        for parser, outcomes in sorted(OUTCOMES.items()):
            print(f"\nfuzz {parser}: {sum(outcomes.values())} inputs, {outcomes}")
    if not OUTCOMES:
        pytest.skip("reports the fuzz tests' counts; run it with them (the whole file)")
    assert set(OUTCOMES) == {"MRC header", "MRC file", "STAR", "STAR structure"}
    assert all(sum(o.values()) >= 1000 for p, o in OUTCOMES.items() if p != "STAR structure")
    structure = OUTCOMES["STAR structure"]
    assert structure.get("clear error", 0) >= 50 and structure.get("checked against starfile", 0) >= 20


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
