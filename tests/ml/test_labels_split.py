"""Labels from metadata columns and CAKED file-name prefixes; seeded, stratified, reloadable splits."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import xarray as xr

import perc_platform
from perc_platform.errors import DataNotFoundError, FormatError, ParameterError
from perc_platform.ml import ParticleLoader, Split, make_split, resolve_labels, train_validation_loaders
from perc_platform.ml._labels import file_prefix_classes


@pytest.fixture
def caked_folder(tmp_path: Path) -> Path:
    """24 single-particle files in three classes, named ``{class}_{i}.mrc`` (CAKED convention)."""
    rng = np.random.default_rng(0)
    for i in range(24):
        cls = ["ribosome", "proteasome", "apoferritin"][i % 3]
        with mrcfile.new(tmp_path / f"{cls}_{i:03d}.mrc") as mrc:
            mrc.set_data(rng.standard_normal((16, 16)).astype(np.float32) + i)
    return tmp_path


def test_labels_from_file_name_prefixes(caked_folder: Path) -> None:
    images = perc_platform.open_particles(str(caked_folder / "*.mrc"))
    loader = ParticleLoader(images, 5, "stream", device="cpu", labels="file_prefix", seed=0)
    assert loader.classes == ("apoferritin", "proteasome", "ribosome")
    seen = 0
    for b in loader:
        for index, code, image in zip(b["index"].tolist(), b["label"].tolist(), b["image"], strict=True):
            name = images.image_name.values[index].split("@")[1]
            assert name.startswith(loader.classes[code] + "_")  # type: ignore[index]
            with mrcfile.open(caked_folder / name) as mrc:
                np.testing.assert_array_equal(image.numpy(), mrc.data)
            seen += 1
    assert seen == 24


def test_unknown_and_missing_classes_raise(caked_folder: Path, relion31: xr.DataArray) -> None:
    images = perc_platform.open_particles(str(caked_folder / "*.mrc"))
    with pytest.raises(ParameterError, match="unknown class.*proteasome"):
        resolve_labels(images, "file_prefix", classes=["apoferritin", "ribosome"])
    with pytest.raises(ParameterError, match="no label"):
        resolve_labels(relion31, [1.0, np.nan, 2.0, 1.0, 1.0])
    with pytest.raises(ParameterError, match="no label"):
        resolve_labels(relion31, ["a", "", "b", "a", "a"])
    with pytest.raises(ParameterError, match="neither a per-particle column"):
        resolve_labels(relion31, "no_such_column")
    with pytest.raises(ParameterError, match="one label per particle"):
        resolve_labels(relion31, [1, 2])
    with pytest.raises(ParameterError, match="convention"):
        file_prefix_classes(["noprefix.mrc"])
    fixed = resolve_labels(relion31, "class_number", classes=[3, 1])
    assert fixed is not None and fixed.codes.tolist() == [1] * 5 and fixed.classes == (3, 1)


def test_split_is_seeded_disjoint_and_stratified() -> None:
    labels = np.repeat([0, 1, 2, 3], [40, 30, 20, 10])
    a = make_split(100, 0.2, seed=4, stratify=labels)
    assert np.array_equal(a.train, make_split(100, 0.2, seed=4, stratify=labels).train)
    assert not np.array_equal(a.validation, make_split(100, 0.2, seed=5, stratify=labels).validation)
    assert np.intersect1d(a.train, a.validation).size == 0
    assert np.array_equal(np.union1d(a.train, a.validation), np.arange(100))
    assert np.bincount(labels[a.validation]).tolist() == [8, 6, 4, 2]  # 20% of every class
    plain = make_split(100, 0.25, seed=4)
    assert plain.validation.size == 25 and not plain.stratified
    with pytest.raises(ParameterError):
        make_split(10, 1.5)


def test_split_saves_and_reloads(tmp_path: Path, sta: xr.DataArray) -> None:
    split = make_split(219, 0.3, seed=1)
    path = split.save(tmp_path / "split.json")
    back = Split.load(path)
    assert np.array_equal(back.train, split.train) and np.array_equal(back.validation, split.validation)
    assert (back.seed, back.fraction, back.n) == (1, 0.3, 219)
    loader = ParticleLoader(sta, 64, "memory", device="cpu", split=(path, "validation"))
    assert sorted(i for b in loader for i in b["index"].tolist()) == split.validation.tolist()
    with pytest.raises(ParameterError, match="made for 219"):
        ParticleLoader(sta.isel(particle=slice(0, 10)), 4, "memory", device="cpu", split=(back, "train"))
    with pytest.raises(DataNotFoundError):
        Split.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(FormatError):
        Split.load(tmp_path / "bad.json")
    with pytest.raises(ParameterError):
        split["test"]


def test_train_validation_loaders(tmp_path: Path, sta: xr.DataArray) -> None:
    train, val, split = train_validation_loaders(sta, 32, validation=0.25, seed=3, labels="group_name",
                                                 mode="stream", device="cpu", save_split=tmp_path / "s.json")
    assert split.stratified
    t = sorted(i for b in train for i in b["index"].tolist())
    v = [i for b in val for i in b["index"].tolist()]
    assert v == sorted(v)  # validation does not shuffle
    assert sorted(t + v) == list(range(219)) and not set(t) & set(v)
    codes = train.dataset.labels.codes  # type: ignore[union-attr]
    assert set(codes[v].tolist()) == set(range(6))  # every group in validation
    _again, _, reloaded = train_validation_loaders(sta, 32, split=tmp_path / "s.json", mode="stream", device="cpu")
    assert np.array_equal(reloaded.validation, split.validation)
