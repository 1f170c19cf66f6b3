"""STAR files whose structure is unusual or hostile: a clear StarFormatError or the right data, never a
silent "last one wins", another exception type or a guess (issue 15; whole-file names from issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import starfile

from perc_platform.errors import StarFormatError
from perc_platform.io.star import parse_star_text, particle_metadata

OPTICS = """data_optics
loop_
_rlnOpticsGroup
_rlnImagePixelSize
_rlnVoltage
1 1.5 300
2 2.5 200

"""
PARTICLES = """data_particles
loop_
_rlnImageName
_rlnOpticsGroup
_rlnDefocusU
000001@a.mrcs 1 10000
000002@a.mrcs 2 12000
"""


def _meta(text: str):  # type: ignore[no-untyped-def]
    return particle_metadata(parse_star_text(text, "t.star"))


def test_two_optics_groups_join_each_particle_to_its_own() -> None:
    meta = _meta(OPTICS + PARTICLES)
    assert meta.coords["pixel_size"].tolist() == [1.5, 2.5]
    assert meta.coords["voltage"].tolist() == [300.0, 200.0]


def test_a_particle_in_an_undefined_optics_group_is_an_error() -> None:
    text = OPTICS + PARTICLES.replace("000002@a.mrcs 2", "000002@a.mrcs 3")
    with pytest.raises(StarFormatError, match=r"optics group 3.*does not define"):
        _meta(text)


def test_duplicate_optics_rows_are_a_clear_error() -> None:
    text = OPTICS.replace("2 2.5 200", "2 2.5 200\n2 2.0 300") + PARTICLES
    with pytest.raises(StarFormatError, match="defined twice"):
        _meta(text)


def test_several_optics_rows_without_group_ids_on_the_particles_are_an_error() -> None:
    text = OPTICS + PARTICLES.replace("_rlnOpticsGroup\n", "").replace(" 1 10000", " 10000").replace(" 2 12000",
                                                                                                    " 12000")
    with pytest.raises(StarFormatError, match="no rlnOpticsGroup"):
        _meta(text)


def test_a_second_particle_block_is_an_error_not_last_wins() -> None:
    with pytest.raises(StarFormatError, match="data_particles appears a second time"):
        parse_star_text(OPTICS + PARTICLES + "\n" + PARTICLES.replace("10000", "99"), "t.star")


def test_a_second_loop_in_a_block_is_an_error() -> None:
    second = "\nloop_\n_rlnImageName\n000003@b.mrcs\n"
    with pytest.raises(StarFormatError, match="second 'loop_'"):
        parse_star_text(OPTICS + PARTICLES + second, "t.star")


def test_pairs_beside_a_loop_are_kept_apart_and_do_not_overwrite_it() -> None:
    table = parse_star_text(OPTICS + PARTICLES + "\n_rlnImageName 000009@z.mrcs\n_rlnDefocusU 5\n", "t.star")
    assert table.particles["rlnImageName"].tolist() == ["000001@a.mrcs", "000002@a.mrcs"]
    assert table.particles["rlnDefocusU"].tolist() == [10000, 12000]
    assert table.values["particles"] == {"rlnImageName": "000009@z.mrcs", "rlnDefocusU": "5"}


def test_a_pair_given_twice_is_an_error() -> None:
    with pytest.raises(StarFormatError, match="given twice"):
        parse_star_text("data_x\n_rlnImageName 1@a.mrcs\n_rlnImageName 2@a.mrcs\n", "t.star")


def test_empty_quoted_values_are_empty_strings() -> None:
    text = PARTICLES.replace("_rlnDefocusU\n", "_rlnDefocusU\n_rlnMicrographName\n")
    text = text.replace("10000\n", "10000 ''\n").replace("12000\n", '12000 "m 2.mrc"\n')
    meta = _meta(OPTICS + text)
    assert meta.coords["micrograph"].tolist() == ["", "m 2.mrc"]


@pytest.mark.parametrize("name", ["1@", "000001@ ", "@"])
def test_an_image_name_without_a_stack_is_an_error(name: str) -> None:
    text = PARTICLES.replace("000002@a.mrcs", f"'{name}'")
    with pytest.raises(StarFormatError, match="rlnImageName"):
        _meta(OPTICS + text)


def test_names_without_at_are_whole_files() -> None:
    text = "data_\nloop_\n_rlnImageName\n_rlnDefocusU\nsub/p1.mrc 1\nsub/p2.mrc 2\n000003@s.mrcs 3\n"
    meta = _meta(text)
    assert meta.stack_names == ["sub/p1.mrc", "sub/p2.mrc", "s.mrcs"]
    assert meta.image_index.tolist() == [0, 0, 2]
    assert meta.whole_file is not None and meta.whole_file.tolist() == [True, True, False]


def test_names_that_look_like_numbers_stay_as_written() -> None:
    meta = _meta("data_\nloop_\n_rlnImageName\n_rlnMicrographName\n1e5 007\n")
    assert meta.stack_names == ["1e5"] and meta.coords["micrograph"].tolist() == ["007"]


def test_a_wide_file_parses_and_matches_starfile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    n = 3_000  # starfile itself takes ~30 s on 20,000 columns
    header = "".join(f"_rlnCol{i}\n" for i in range(n))
    row = " ".join(str(i + 0.5) for i in range(n))
    text = f"data_particles\nloop_\n_rlnImageName\n{header}000001@a.mrcs {row}\n000002@a.mrcs {row}\n"
    table = parse_star_text(text, "wide.star")
    (tmp_path / "wide.star").write_text(text)
    reference = starfile.read(tmp_path / "wide.star")
    assert table.particles.shape == reference.shape == (2, n + 1)
    np.testing.assert_array_equal(table.particles["rlnCol2999"].to_numpy(), reference["rlnCol2999"].to_numpy())
    meta = particle_metadata(table)
    assert meta.coords["col1234"].tolist() == [1234.5, 1234.5]
