"""SIREN initialisation and forward pass against REFERENCE.md, checked with plain NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from perc_platform.errors import ParameterError
from perc_platform.neural_maps._siren import SirenConfig, init_siren, layer_widths, siren_forward


def test_default_shape_is_the_reference() -> None:
    config = SirenConfig()
    assert (config.hidden_layers, config.hidden_width, config.omega_0) == (4, 256, 30.0)
    assert layer_widths(config) == [3, 256, 256, 256, 256, 1]


def test_init_bounds_follow_the_paper() -> None:
    config = SirenConfig()
    params = init_siren(config, [0, 1])
    widths = layer_widths(config)
    for i, n_in in enumerate(widths[:-1]):
        w = params[f"w{i}"].numpy()
        bound = 1 / n_in if i == 0 else math.sqrt(6 / n_in) / config.omega_0
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound  # uniform over the whole interval, not a narrower one
        assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound  # std of U(-b, b)
        assert np.abs(params[f"b{i}"].numpy()).max() <= 1 / math.sqrt(n_in)


def test_each_region_draws_its_own_weights() -> None:
    config = SirenConfig(2, 16)
    both = init_siren(config, [11, 22])
    alone = init_siren(config, [22])
    for name in both:
        assert torch.equal(both[name][1], alone[name][0])
        assert not torch.equal(both[name][0], both[name][1])


def test_forward_matches_numpy() -> None:
    config = SirenConfig(3, 8, omega_0=30.0)
    params = init_siren(config, [3, 4])
    x = torch.rand(2, 5, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    got = siren_forward(params, x, config.omega_0).numpy()
    for r in range(2):
        h = x[r].numpy().astype(np.float64)
        for i in range(4):
            h = h @ params[f"w{i}"][r].numpy() + params[f"b{i}"][r].numpy()
            if i < 3:
                h = np.sin(30.0 * h)
        np.testing.assert_allclose(got[r], h[:, 0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"hidden_layers": 0}, {"hidden_width": 0}, {"omega_0": 0.0}])
def test_bad_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ParameterError):
        SirenConfig(**kwargs)  # type: ignore[arg-type]
