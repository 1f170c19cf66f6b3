"""Particle stacks with STAR metadata: values, per-particle coords, pixel size, lazy multi-file stacks."""

from __future__ import annotations

import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import starfile
import xarray as xr

import perc_platform as pp
from perc_platform.datasets import select_particles
from perc_platform.errors import DataNotFoundError, PercError, StarFormatError
from perc_platform.testing import write_stack, write_star
from tests.io.mrc_helpers import mrcfile_read

STA = "ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs"


def test_relion31_stack_with_optics(shared: Path) -> None:
    images = pp.open_particles(shared / "particles" / "relion31.mrcs", star=shared / "particles" / "relion31.star")
    assert isinstance(images.data, da.Array)
    assert images.dims == ("particle", "y", "x") and images.shape == (5, 256, 256)
    assert images.attrs["pixel_size"] == pytest.approx(2.806)
    assert images.attrs["voltage"] == pytest.approx(300.0)
    assert images.attrs["amplitude_contrast"] == pytest.approx(0.1)
    reference = starfile.read(shared / "particles" / "relion31.star")["particles"]
    for coord, column in [("defocus_u", "rlnDefocusU"), ("defocus_v", "rlnDefocusV"),
                          ("defocus_angle", "rlnDefocusAngle"), ("angle_rot", "rlnAngleRot"),
                          ("angle_tilt", "rlnAngleTilt"), ("angle_psi", "rlnAnglePsi"),
                          ("shift_x", "rlnOriginXAngst"), ("shift_y", "rlnOriginYAngst"),
                          ("class_number", "rlnClassNumber")]:
        np.testing.assert_allclose(images[coord].values, reference[column].to_numpy(), err_msg=coord)
    stack = mrcfile_read(shared / "particles" / "relion31.mrcs")
    index = reference["rlnImageName"].str.split("@").str[0].astype(int).to_numpy() - 1
    np.testing.assert_array_equal(images.values, stack[index])
    pp.conventions.validate_particles(images)


def test_relion30_tilt_stack_pixel_size_from_detector(shared: Path) -> None:
    star = shared / "particles" / "sta_testing_bin8.star"
    images = pp.open_particles(star=star)  # the stack is found beside the STAR file
    reference = starfile.read(star)
    assert images.shape == (219, 64, 64) and len(reference) == 219
    detector, magnification = reference["rlnDetectorPixelSize"].iloc[0], reference["rlnMagnification"].iloc[0]
    expected_pixel = float(detector) * 1e4 / float(magnification)
    assert images.attrs["pixel_size"] == pytest.approx(expected_pixel) == pytest.approx(1.96)
    assert images.attrs["spherical_aberration"] == pytest.approx(2.7)
    np.testing.assert_allclose(images["defocus_u"].values, reference["rlnDefocusU"].to_numpy())
    np.testing.assert_allclose(images["ctf_bfactor"].values, reference["rlnCtfBfactor"].to_numpy())
    stack = mrcfile_read(shared / "particles" / STA)
    index = reference["rlnImageName"].str.split("@").str[0].astype(int).to_numpy() - 1
    np.testing.assert_array_equal(images.values, stack[index])
    assert stack.shape[0] == 220  # one image is not referenced by the STAR file


def test_relion30_shifts_in_pixels_become_angstrom(shared: Path, tmp_path: Path) -> None:
    star = shared / "particles" / "FinalRefinement-OriginalParticles-PfCRT.star"
    reference = starfile.read(star)
    reference = reference if not isinstance(reference, dict) else next(
        df for df in reference.values() if "rlnImageName" in getattr(df, "columns", []))
    write_stack(tmp_path / "FinalRefinement-OriginalParticles-PfCRT.mrcs", 5, (16, 16))
    shutil.copy(star, tmp_path / star.name)
    images = pp.open_particles(tmp_path / "FinalRefinement-OriginalParticles-PfCRT.mrcs", star=tmp_path / star.name)
    pixel = 1.035 * 1e4 / 10000
    assert images.attrs["pixel_size"] == pytest.approx(pixel)
    np.testing.assert_allclose(images["shift_x"].values, reference["rlnOriginX"].to_numpy() * pixel)


def test_star_with_missing_stack_names_it(shared: Path, tmp_path: Path) -> None:
    star = tmp_path / "relion31.star"
    shutil.copy(shared / "particles" / "relion31.star", star)
    with pytest.raises(DataNotFoundError, match="relion31.mrcs") as info:
        pp.open_particles(star=star)
    assert str(star) in str(info.value)
    with pytest.raises(DataNotFoundError, match="toy_images_a.mrcs"):
        pp.open_particles(star=shared / "particles" / "relion5.star")


def test_star_pointing_past_the_stack(shared: Path, tmp_path: Path) -> None:
    write_stack(tmp_path / "s.mrcs", 3, (8, 8))
    write_star(tmp_path / "s.star", "s.mrcs", 4)
    with pytest.raises(StarFormatError, match="image 4"):
        pp.open_particles(star=tmp_path / "s.star")


def test_glob_over_many_files_is_lazy_and_ordered(tmp_path: Path) -> None:
    paths = [write_stack(tmp_path / f"part_{i:02d}.mrcs", 7 + i, (12, 10), seed=i) for i in range(4)]
    images = pp.open_particles(str(tmp_path / "part_*.mrcs"), chunk_size=5)
    expected = np.concatenate([mrcfile_read(p) for p in paths])
    assert images.shape == expected.shape
    # a file of at least one chunk starts a chunk, so each chunk is one contiguous range of a file
    bounds = np.cumsum((0,) + images.chunks[0])
    assert set(np.cumsum([0, 7, 8, 9])).issubset(set(bounds.tolist()))
    assert images.chunks[0] == (5, 2, 5, 3, 5, 4, 5, 5)
    np.testing.assert_array_equal(images.values, expected)
    picks = np.array([30, 2, 2, 17, 8])
    np.testing.assert_array_equal(select_particles(images, picks).values, expected[picks])
    np.testing.assert_array_equal(images[picks, 3:9, ::2].values, expected[picks, 3:9, ::2])


def test_a_slice_of_a_stack_is_a_stack_the_loaders_read_directly(tmp_path: Path) -> None:
    from perc_platform.ml import ParticleLoader
    from perc_platform.ml._reader import MrcChunkReader, chunk_reader_for

    paths = [write_stack(tmp_path / f"s_{i}.mrcs", 9 + i, (8, 6), seed=i) for i in range(3)]
    images = pp.open_particles(str(tmp_path / "s_*.mrcs"), chunk_size=4)
    expected = np.concatenate([mrcfile_read(p) for p in paths])
    for key in (slice(None, 13), slice(2, None, 3), slice(None, None, -2), [27, 0, 5, -1]):
        sub = images.isel(particle=key)
        np.testing.assert_array_equal(sub.values, expected[key])
        assert isinstance(chunk_reader_for(sub), MrcChunkReader), key  # not a fallback through dask blocks
        assert max(sub.chunks[0]) <= 4  # the stack's chunk size is kept
        names = [f"{i + 1:06d}@{p.name}" for p in paths for i in range(mrcfile_read(p).shape[0])]
        assert list(sub.image_name.values) == list(np.array(names)[key])
    np.testing.assert_array_equal(images[3:20][4:9].values, expected[7:12])  # a slice of a slice
    np.testing.assert_array_equal(images[5:9, 2:5].values, expected[5:9, 2:5])  # not whole images: dask's
    np.testing.assert_array_equal(images[4].values, expected[4])
    batches = ParticleLoader(images[3:25], batch_size=5, mode="stream", shuffle=False, device="cpu")
    got = np.concatenate([b["image"].numpy() for b in batches])
    np.testing.assert_array_equal(got, expected[3:25])


def test_small_files_share_chunks(tmp_path: Path) -> None:
    sizes = [1, 2, 1, 3, 1, 9, 2, 1]
    paths = [write_stack(tmp_path / f"f_{i:02d}.mrcs", k, (8, 8), seed=i) for i, k in enumerate(sizes)]
    images = pp.open_particles(str(tmp_path / "f_*.mrcs"), chunk_size=4)
    # files 1+2+1 fill a chunk, 3+1 the next; the 9-image file starts a chunk and is cut into 4 + 4 + 1, and
    # its last image shares a chunk with the small files after it (1 + 2 + 1)
    assert images.chunks[0] == (1 + 2 + 1, 3 + 1, 4, 4, 1 + 2 + 1)
    expected = np.concatenate([mrcfile_read(p).reshape(-1, 8, 8) for p in paths])
    np.testing.assert_array_equal(images.values, expected)
    np.testing.assert_array_equal(images[::-3].values, expected[::-3])


@pytest.mark.parametrize("dtype", ["int8", "int16", "float32", "uint16", "float16"])
def test_stack_modes(tmp_path: Path, dtype: str) -> None:
    path = write_stack(tmp_path / "m.mrcs", 6, (9, 11), dtype=dtype)
    images = pp.open_particles(path)
    assert images.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(images.values, mrcfile_read(path))


def test_big_endian_stack(tmp_path: Path) -> None:
    from tests.io.mrc_helpers import to_big_endian

    path = write_stack(tmp_path / "be.mrcs", 4, (6, 6), dtype="int16")
    little = mrcfile_read(path)
    to_big_endian(path)
    images = pp.open_particles(path)
    assert images.dtype == np.dtype("int16") and images.dtype.isnative
    np.testing.assert_array_equal(images.values, little)


def test_engine_and_open_mfdataset(shared: Path) -> None:
    path = shared / "particles" / STA
    stack = mrcfile_read(path)
    ds = xr.open_dataset(path, engine="mrc")
    assert ds["image"].dims == ("particle", "y", "x")
    np.testing.assert_array_equal(ds["image"][::7].values, stack[::7])
    both = xr.open_mfdataset([path, path], engine="mrc", concat_dim="particle", combine="nested")
    assert isinstance(both["image"].data, da.Array)
    assert both["image"].shape == (440, 64, 64)
    np.testing.assert_array_equal(both["image"][215:225].values, np.concatenate([stack, stack])[215:225])
    with_star = xr.open_dataset(path, engine="mrc", star=str(shared / "particles" / "sta_testing_bin8.star"))
    assert with_star.sizes["particle"] == 219 and with_star["image"].attrs["pixel_size"] == pytest.approx(1.96)


def test_errors_are_perc_errors(tmp_path: Path) -> None:
    with pytest.raises(PercError):
        pp.open_particles()
    with pytest.raises(DataNotFoundError, match="nothing_here"):
        pp.open_particles(str(tmp_path / "nothing_here_*.mrcs"))
