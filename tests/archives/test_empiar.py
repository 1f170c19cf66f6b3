"""Acceptance 1: a mini EMPIAR entry on the loopback archive: imagesets, glob/regex selection, exact values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import intake
import numpy as np
import pytest

from perc_platform.archives import empiar
from perc_platform.catalogs import catalog_path
from perc_platform.datasets import apply_gain, select_particles
from perc_platform.errors import DataNotFoundError, FormatError, IdentifierError, ParameterError
from perc_platform.testing import LoopbackServer
from perc_platform.testing.empiar import empiar_archive
from tests.io.mrc_helpers import mrcfile_read

from .empiar_entry import BOX, EXTRACT, NUMBER, STACKS, TIFF_DIR, TIFF_NAMES, build_tree, tiff_movie_and_gain

EID = f"EMPIAR-{NUMBER}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    return build_tree(tmp_path_factory.mktemp("empiar"), shared)


@pytest.fixture
def server(tree: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    monkeypatch.setenv("PERC_BACKOFF", "0.01")
    monkeypatch.setenv("PERC_RETRIES", "3")
    with empiar_archive(tree) as srv:
        yield srv


def stack(tree: Path, name: str) -> np.ndarray:
    return mrcfile_read(tree / NUMBER / EXTRACT / name)


# -- metadata ---------------------------------------------------------------------------------------

def test_entry_metadata_lists_imagesets_with_counts_sizes_and_pixel_size(server: LoopbackServer) -> None:
    entry = empiar.fetch_empiar_entry(NUMBER)
    keyed = entry.keyed_imagesets()
    assert set(keyed) == {"particles", "particles_real", "micrographs", "movies"}
    particles = keyed["particles"]
    assert particles.directory == "data/particles" and particles.data_format == "MRCS"
    assert particles.num_images_or_tilt_series == sum(STACKS.values())
    assert (particles.image_width, particles.image_height, particles.kind) == (BOX, BOX, "particles")
    movies = keyed["movies"]
    assert (movies.kind, movies.num_images_or_tilt_series, movies.frames_per_image) == ("movies", 2, 6)
    assert movies.pixel_width == pytest.approx(0.8)
    assert keyed["micrographs"].voxel_type == "SIGNED 16 BIT INTEGER"


def test_real_entry_xml_becomes_the_api_shape(server: LoopbackServer) -> None:
    entry = empiar.fetch_empiar_entry("EMPIAR-10934")
    assert entry.title.startswith("Cryo-EM multiframe micrographs of human Pol kappa")
    assert entry.emdb_ids == ["EMD-12602"]
    (key, imageset), = entry.keyed_imagesets().items()
    assert key == "movies" and imageset.kind == "movies"
    assert imageset.directory == "data/CL44-1_20201106_111915"
    assert (imageset.data_format, imageset.num_images_or_tilt_series, imageset.frames_per_image) == ("TIFF", 3889, 45)
    assert (imageset.image_width, imageset.image_height) == (11520, 8184)
    assert imageset.pixel_width == pytest.approx(0.543) and imageset.voxel_type == "UNSIGNED BYTE"


def test_api_json_with_string_numbers_and_unknown_fields() -> None:
    data = {"EMPIAR-10025": {"title": "T20S", "new_field": 1, "imagesets": [
        {"name": "particles", "directory": "/data/x", "category": "picked particles - single frame - processed",
         "num_images_or_tilt_series": "1200", "pixel_width": "1.275", "image_width": "", "other": None}],
        "cross_references": [{"name": "EMD-2984"}, {"name": "PDB-1"}]}}
    entry = empiar.entry_from_json("EMPIAR-10025", data)
    s = entry.imagesets[0]
    assert (s.num_images_or_tilt_series, s.pixel_width, s.image_width, s.directory) == (1200, 1.275, None, "data/x")
    assert entry.emdb_ids == ["EMD-2984"]


def test_bad_ids_and_unknown_entries_are_clear(server: LoopbackServer) -> None:
    with pytest.raises(IdentifierError):
        empiar.fetch_empiar_entry("../10999")
    with pytest.raises(DataNotFoundError, match=r"EMPIAR-12345 entry metadata not found.*entry/12345"):
        empiar.fetch_empiar_entry(12345)
    with pytest.raises(DataNotFoundError, match="has no imageset 'nope'.*particles"):
        empiar.fetch_empiar_entry(NUMBER).imageset("nope")


# -- listings and selection -------------------------------------------------------------------------

APACHE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN"><html><head><title>Index of /empiar/x</title>
</head><body><h1>Index of /empiar/x</h1><table><tr><th><a href="?C=N;O=D">Name</a></th>
<th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th></tr>
<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/empiar/">Parent Directory</a></td>
<td>&nbsp;</td><td align="right">  - </td></tr>
<tr><td><img src="/icons/folder.gif"></td><td><a href="Movies/">Movies/</a></td>
<td align="right">2021-12-31 10:00  </td><td align="right">  - </td></tr>
<tr><td><a href="stack%201.mrcs">stack 1.mrcs</a></td><td align="right">2021-12-31 10:00</td>
<td align="right">1.2G</td></tr>
<tr><td><a href="run.star">run.star</a></td><td align="right">2021-12-31 10:00</td><td align="right">3660</td></tr>
<tr><td><a href="https://elsewhere.org/x.mrcs">x</a></td></tr><tr><td><a href="../up.mrcs">up</a></td></tr>
</table></body></html>"""


def test_parse_listing_of_an_apache_page() -> None:
    assert empiar.parse_listing(APACHE) == [("Movies/", None), ("stack 1.mrcs", None), ("run.star", 3660)]


def test_recursive_listing_with_glob_and_regex(server: LoopbackServer) -> None:
    everything = empiar.list_files(NUMBER)
    assert {f.path for f in everything} >= {f"{EXTRACT}/{n}" for n in STACKS} | {"data/particles/run.star"}
    mrcs = empiar.list_files(NUMBER, "data/particles", pattern="*.mrcs")
    assert [f.name for f in mrcs] == sorted(STACKS)
    assert all(f.size == (BOX * BOX * 4 * STACKS[f.name] + 1024) for f in mrcs)
    assert mrcs[0].url == f"{server.url}/empiar/files/{NUMBER}/{EXTRACT}/stack_001.mrcs"
    by_path = empiar.list_files(NUMBER, "data/particles", pattern="Extract/*/mics/stack_00[13].mrcs")
    assert [f.name for f in by_path] == ["stack_001.mrcs", "stack_003.mrcs"]
    by_regex = empiar.list_files(NUMBER, "data", regex=r"^(particles/Extract/.*_002|real/relion31)\.mrcs$")
    assert [f.path for f in by_regex] == [f"{EXTRACT}/stack_002.mrcs", "data/real/relion31.mrcs"]
    both = empiar.list_files(NUMBER, "data", pattern="*.mrc*", regex="movie")
    assert [f.name for f in both] == ["movie_000.mrc", "movie_001.mrc"]
    with pytest.raises(ParameterError, match="regex"):
        empiar.list_files(NUMBER, regex="(")


def test_the_archive_file_pattern_walks_only_its_folders(server: LoopbackServer) -> None:
    imageset = empiar.fetch_empiar_entry(10934).imagesets[0]
    files = empiar.list_files(10934, pattern=imageset.micrographs_file_pattern)
    assert [f.path for f in files] == [f"{TIFF_DIR}/{TIFF_NAMES[0]}"]  # the movie, not the gain reference
    listed = sorted(r.path for r in server.requests if r.path.startswith("/empiar/files/10934"))
    assert listed[0] == "/empiar/files/10934/data/CL44-1_20201106_111915/Images-Disc1/"  # the literal prefix


def test_metadata_and_listings_are_cached_with_a_ttl(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    empiar.fetch_empiar_entry(NUMBER)
    empiar.list_files(NUMBER, "data/particles")
    server.reset_counts()
    empiar.fetch_empiar_entry(NUMBER)
    empiar.list_files(NUMBER, "data/particles")
    assert server.count() == 0  # fresh: served from the cache
    empiar.fetch_empiar_entry(NUMBER, ttl=0)
    empiar.list_files(NUMBER, "data/particles", ttl=0)
    assert server.count("GET", "/empiar/api/*") == 1 and server.count("GET", "/empiar/files/*") == 4
    server.reset_counts()
    monkeypatch.setenv("PERC_OFFLINE", "1")
    assert len(empiar.list_files(NUMBER, "data/particles", ttl=0)) == 4  # offline: the cache, however old
    assert server.count() == 0


# -- the catalog --------------------------------------------------------------------------------------

@pytest.fixture
def entry_cat(server: LoopbackServer) -> intake.catalog.Catalog:
    return intake.open_catalog(str(catalog_path())).empiar(entry=EID)


def test_catalog_has_one_source_per_imageset(entry_cat: intake.catalog.Catalog) -> None:
    assert sorted(entry_cat) == ["micrographs", "movies", "particles", "particles_real"]
    assert entry_cat.metadata["empiar_id"] == EID
    described = entry_cat["particles"].describe()
    assert "95 images" in described["description"] and "data/particles" in described["description"]
    nested = intake.open_catalog(str(catalog_path())).empiar_entries.by_id(entry=NUMBER)
    assert sorted(nested) == sorted(entry_cat)


def test_particles_by_glob_equal_mrcfile(entry_cat: intake.catalog.Catalog, tree: Path,
                                         server: LoopbackServer) -> None:
    ds = entry_cat.particles(pattern="*.mrcs").to_dask()
    images = ds["image"]
    assert images.dims == ("particle", "y", "x") and images.shape == (95, BOX, BOX)
    assert images.attrs["source_id"] == EID and images.attrs["pixel_size"] == pytest.approx(1.0)
    expected = np.concatenate([stack(tree, name) for name in sorted(STACKS)])
    np.testing.assert_array_equal(images.values, expected)


def test_particles_by_regex_read_only_the_bytes_asked_for(entry_cat: intake.catalog.Catalog, tree: Path,
                                                          server: LoopbackServer) -> None:
    images = entry_cat.particles(regex=r"stack_00[23]\.mrcs$").to_dask()["image"]
    assert images.shape == (55, BOX, BOX)
    server.reset_counts()
    picks = np.array([3, 30, 31, 54])
    values = select_particles(images, picks).values
    expected = np.concatenate([stack(tree, "stack_002.mrcs"), stack(tree, "stack_003.mrcs")])[picks]
    np.testing.assert_array_equal(values, expected)
    assert server.bytes_sent == picks.size * BOX * BOX * 4  # the three runs, nothing more


def test_star_file_joins_metadata(entry_cat: intake.catalog.Catalog, tree: Path) -> None:
    images = entry_cat.particles(star="data/particles/run.star").to_dask()["image"]
    assert images.shape == (20, BOX, BOX)
    assert images.attrs["pixel_size"] == pytest.approx(1.7)  # the STAR optics block, not the header
    np.testing.assert_array_equal(images.values, stack(tree, "stack_001.mrcs")[::2])
    assert images["class_number"].values.tolist()[:3] == [1, 2, 3]


@pytest.mark.parametrize(("star", "stack_name", "pixel_size"), [
    ("relion31.star", "relion31.mrcs", 2.806),
    ("sta_testing_bin8.star", "ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs", 1.96),
])
def test_real_stacks_and_star_files(entry_cat: intake.catalog.Catalog, shared: Path, star: str, stack_name: str,
                                    pixel_size: float) -> None:
    images = entry_cat.particles_real(pattern=stack_name, star=f"data/real/{star}").to_dask()["image"]
    expected = mrcfile_read(shared / "particles" / stack_name)
    assert images.attrs["pixel_size"] == pytest.approx(pixel_size)
    rows = np.array([int(name.split("@")[0]) - 1 for name in images["image_name"].values])
    np.testing.assert_array_equal(images.values, expected[rows])
    plain = entry_cat.particles_real(pattern=stack_name).to_dask()["image"]
    np.testing.assert_array_equal(plain.values, expected)


def test_micrographs_and_movies(entry_cat: intake.catalog.Catalog, tree: Path) -> None:
    mics = entry_cat.micrographs().to_dask()["image"]
    assert mics.dims == ("micrograph", "y", "x") and mics.shape == (3, 40, 48) and mics.dtype == np.int16
    expected = np.stack([mrcfile_read(tree / NUMBER / "data/micrographs" / f"mic_{i:03d}.mrc") for i in range(3)])
    np.testing.assert_array_equal(mics.values, expected)
    assert mics.attrs["pixel_size"] == pytest.approx(0.9)
    movies = entry_cat.movies().to_dask()["image"]
    assert movies.dims == ("movie", "frame", "y", "x") and movies.shape == (2, 6, 32, 32)
    expected = np.stack([mrcfile_read(tree / NUMBER / "data/movies" / f"movie_{i:03d}.mrc") for i in range(2)])
    np.testing.assert_array_equal(movies.values, expected)
    assert movies["file"].values.tolist() == ["movie_000.mrc", "movie_001.mrc"]
    with pytest.raises(FormatError, match="star= joins particle metadata"):
        entry_cat.movies(star="data/particles/run.star").to_dask()


def test_bzip2_tiff_movies_are_read_through_the_seek_index(server: LoopbackServer) -> None:
    # EMPIAR-10934's movies are .tiff.bz2: read frame by frame through the cached bzip2 index
    cat = intake.open_catalog(str(catalog_path())).empiar(entry="EMPIAR-10934")
    frames, gain = tiff_movie_and_gain()
    movies = cat.movies(pattern="*fractions*").to_dask()["image"]
    assert movies.dims == ("movie", "frame", "y", "x") and movies.shape == (1, *frames.shape)
    assert movies.attrs["format"] == "tiff"
    np.testing.assert_array_equal(movies[0, 3].values, frames[3])
    np.testing.assert_array_equal(movies.values[0], frames)
    gain_url = movies.attrs["stack_files"][0].replace("fractions.tiff.bz2", "gain.tiff.bz2")
    corrected = apply_gain(movies, gain_url)  # a TIFF gain on TIFF movies: applied as stored
    np.testing.assert_allclose(corrected[0, 2].values, frames[2] * gain, rtol=1e-6)
    with pytest.raises(FormatError, match=r"gain.tiff.bz2: 1 frames of 36x40 float32.*select movies of one shape"):
        cat.movies().to_dask()  # the gain in the same folder is no movie of this shape


def test_no_matching_file_is_reported(entry_cat: intake.catalog.Catalog) -> None:
    with pytest.raises(DataNotFoundError, match=r"no file under data/particles matches pattern='\*.tif'"):
        entry_cat.particles(pattern="*.tif").to_dask()
