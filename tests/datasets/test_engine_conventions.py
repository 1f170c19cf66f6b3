"""The ``mrc`` engine takes the keywords xarray passes every engine, and closes like any other engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from perc_platform.testing import write_stack
from tests.io.mrc_helpers import mrcfile_read

DECODERS = [{"decode_times": False}, {"decode_cf": False}, {"mask_and_scale": False}, {"decode_coords": "all"},
            {"use_cftime": False}, {"concat_characters": False}, {"decode_timedelta": False},
            {"decode_times": True, "mask_and_scale": True, "decode_coords": True}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "stack.mrcs"
    write_stack(path, 12, (16, 16), seed=2)
    return path


@pytest.mark.parametrize("keywords", DECODERS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_open_dataset_accepts_the_standard_decoding_keywords(stack: Path, keywords: dict) -> None:
    with xr.open_dataset(stack, engine="mrc", **keywords) as ds:
        np.testing.assert_array_equal(ds["image"].values, mrcfile_read(stack))


def test_drop_variables_and_chunks_keywords(stack: Path) -> None:
    with xr.open_dataset(stack, engine="mrc", chunks={"particle": 5}, drop_variables=["image"]) as ds:
        assert "image" not in ds
    with xr.open_dataset(stack, engine="mrc", chunks={"particle": 5}) as ds:
        assert ds["image"].data.chunks[0] == (5, 5, 2)
        np.testing.assert_array_equal(ds["image"][3:9].values, mrcfile_read(stack)[3:9])


def test_open_mfdataset_closes(stack: Path) -> None:
    both = xr.open_mfdataset([stack, stack], engine="mrc", concat_dim="particle", combine="nested",
                             decode_times=False)
    np.testing.assert_array_equal(both["image"].values, np.concatenate([mrcfile_read(stack)] * 2))
    both.close()
    with xr.open_mfdataset([stack, stack], engine="mrc", concat_dim="particle", combine="nested") as again:
        assert again.sizes["particle"] == 24
