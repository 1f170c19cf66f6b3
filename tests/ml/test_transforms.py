"""Each transform against an independent NumPy/SciPy computation (REFERENCE.md for Fourier cropping)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from perc_platform.errors import ParameterError
from perc_platform.ml import transforms as T


def np_standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)


def np_percentile(x: np.ndarray, q: float = 95.0, clip: bool = True) -> np.ndarray:
    lo, hi = np.percentile(x, [100 - q, q], axis=(1, 2), keepdims=True)
    out = (x - lo) / (hi - lo)
    return np.clip(out, 0, 1) if clip else out


def np_minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    return (x - lo) / (hi - lo)


def np_fourier_crop(x: np.ndarray, d: int) -> np.ndarray:
    n = x.shape[-1]
    f = np.fft.fftshift(np.fft.fft2(x.astype(np.float64)), axes=(-2, -1))
    c = n // 2
    kept = f[:, c - d // 2: c - d // 2 + d, c - d // 2: c - d // 2 + d]
    return np.fft.ifft2(np.fft.ifftshift(kept, axes=(-2, -1))).real * (d / n) ** 2


def np_soft_mask(n: int, radius: float, width: float) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = np.hypot(yy, xx)
    mask = np.where(r <= radius, 1.0, 0.0)
    edge = (r > radius) & (r < radius + width)
    mask[edge] = 0.5 * (1 + np.cos(np.pi * (r[edge] - radius) / width))
    return mask


@pytest.fixture
def images() -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.standard_normal((6, 32, 32)) * 3 + 1).astype(np.float32)


def run(transform: T.Transform, x: np.ndarray, seed: int = 0) -> np.ndarray:
    return transform(torch.from_numpy(x.copy()), torch.Generator().manual_seed(seed)).numpy()


def test_standardize(images: np.ndarray) -> None:
    np.testing.assert_allclose(run(T.Standardize(), images), np_standardize(images), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("q,clip", [(95.0, True), (99.0, False)])
def test_percentile_normalize(images: np.ndarray, q: float, clip: bool) -> None:
    got = run(T.PercentileNormalize(q, clip=clip), images)
    np.testing.assert_allclose(got, np_percentile(images, q, clip), rtol=1e-4, atol=1e-5)
    if clip:
        assert got.min() == 0.0 and got.max() == 1.0


def test_minmax(images: np.ndarray) -> None:
    got = run(T.MinMax(), images)
    np.testing.assert_allclose(got, np_minmax(images), rtol=1e-5, atol=1e-6)
    assert np.allclose(got.min(axis=(1, 2)), 0) and np.allclose(got.max(axis=(1, 2)), 1)


@pytest.mark.parametrize("d", [16, 15, 8])
def test_fourier_crop_matches_reference_formula(images: np.ndarray, d: int) -> None:
    got = run(T.FourierCrop(d), images)
    assert got.shape == (6, d, d)
    np.testing.assert_allclose(got, np_fourier_crop(images, d), rtol=1e-4, atol=1e-4)
    assert T.FourierCrop(d).pixel_size(2.0, 32) == pytest.approx(2.0 * 32 / d)


def test_fourier_crop_keeps_a_constant_image_constant() -> None:
    got = run(T.FourierCrop(8), np.full((1, 32, 32), 2.5, np.float32))
    np.testing.assert_allclose(got, 2.5, rtol=1e-5)


def test_soft_circular_mask(images: np.ndarray) -> None:
    got = run(T.CircularMask(radius=10, width=4), images)
    np.testing.assert_allclose(got, images * np_soft_mask(32, 10, 4), rtol=1e-5, atol=1e-6)
    default = T.soft_circular_mask((32, 32)).numpy()
    np.testing.assert_allclose(default, np_soft_mask(32, 16 - 1.6, 1.6), atol=1e-6)


@pytest.mark.parametrize("sigma", [0.8, 2.0])
def test_gaussian_blur_matches_scipy(images: np.ndarray, sigma: float) -> None:
    want = scipy.ndimage.gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma), mode="mirror",
                                         truncate=4.0)
    np.testing.assert_allclose(run(T.GaussianBlur(sigma), images), want, rtol=1e-4, atol=1e-5)


def dihedral(image: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(f, k) for f in (image, image[:, ::-1]) for k in range(4)]


def test_random_flips_and_rotations_are_dihedral_and_seeded(images: np.ndarray) -> None:
    both = T.Compose([T.RandomFlip(), T.RandomRotate90()])
    got = run(both, images, seed=5)
    for out, image in zip(got, images, strict=True):
        assert any(np.array_equal(out, v) for v in dihedral(image))
    np.testing.assert_array_equal(got, run(both, images, seed=5))


def test_random_flip_always_and_never() -> None:
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    np.testing.assert_array_equal(run(T.RandomFlip(p=1.0), x), x[:, ::-1, ::-1])
    np.testing.assert_array_equal(run(T.RandomFlip(p=1.0, vertical=False), x), x[:, :, ::-1])
    np.testing.assert_array_equal(run(T.RandomFlip(p=0.0), x), x)


def test_random_rotate90_uses_every_turn() -> None:
    x = np.tile(np.arange(16, dtype=np.float32).reshape(1, 4, 4), (64, 1, 1))
    got = run(T.RandomRotate90(), x, seed=1)
    turns = [next(k for k in range(4) if np.array_equal(g, np.rot90(x[0], k))) for g in got]
    assert set(turns) == {0, 1, 2, 3}


def test_plain_callables_compose(images: np.ndarray) -> None:
    pipeline = T.compose([lambda x: x * 2, T.MinMax(), lambda x: x - 0.5])
    np.testing.assert_allclose(run(pipeline, images), np_minmax(images * 2) - 0.5, rtol=1e-5, atol=1e-6)
    assert T.compose(None) is None
    with pytest.raises(ParameterError):
        T.compose(3)


def test_bad_inputs_say_what_to_do(images: np.ndarray) -> None:
    with pytest.raises(ParameterError, match="batches"):
        T.Standardize()(torch.zeros(4, 4))
    with pytest.raises(ParameterError, match="floating"):
        T.MinMax()(torch.zeros(1, 4, 4, dtype=torch.int16))
    with pytest.raises(ParameterError, match="enlarge"):
        T.FourierCrop(64)(torch.from_numpy(images))
    with pytest.raises(ParameterError, match="square"):
        T.RandomRotate90()(torch.zeros(1, 4, 6))


# -- Rotate and Rescale (issue 20): against scipy.ndimage and against the analytic image -----------------------
def blob_image(box: int, angle: float = 0.0) -> np.ndarray:
    """Gaussian blobs turned counter-clockwise by ``angle`` (x, y pixel coords), computed analytically."""
    from perc_platform.testing.views import render

    blobs = np.array([[4.0, 1.0, 1.0], [-3.0, 5.0, 0.7], [0.5, -6.0, 0.9], [-5.0, -2.0, 0.4]])
    return render(blobs, box, 1.6, angle)


@pytest.mark.parametrize("angle", [17.0, 90.0, 133.0, -100.0])
def test_bilinear_rotation_matches_scipy_rotate(angle: float) -> None:
    """Odd box: scipy rotates about the same centre pixel; its positive angle is clockwise with rows as y."""
    image = blob_image(33)
    ours = T.Rotate(angle)(torch.from_numpy(image[None]))[0].numpy()
    theirs = scipy.ndimage.rotate(image, -angle, reshape=False, order=1, mode="constant")
    np.testing.assert_allclose(ours, theirs, atol=1e-6 * image.max())


@pytest.mark.parametrize("box", [32, 33])
@pytest.mark.parametrize("angle", [23.0, 90.0, 161.0, -47.0])
def test_fourier_rotation_matches_the_analytic_turn(box: int, angle: float) -> None:
    image, expected = blob_image(box), blob_image(box, angle)
    ours = T.Rotate(angle, method="fourier")(torch.from_numpy(image[None]))[0].numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-4 * expected.max())
    bilinear = T.Rotate(angle)(torch.from_numpy(image[None]))[0].numpy()
    if angle % 90:  # quarter turns are exact either way
        assert np.abs(bilinear - expected).max() > 10 * np.abs(ours - expected).max()  # interpolation blurs


def test_rotation_range_is_seeded_and_per_image() -> None:
    images = torch.from_numpy(np.repeat(blob_image(33)[None], 6, axis=0))
    turn = T.Rotate((0.0, 360.0))
    a = turn(images, torch.Generator().manual_seed(4))
    b = turn(images, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    draws = 360.0 * torch.rand(6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for i, angle in enumerate(draws.tolist()):  # each image by its own draw
        np.testing.assert_allclose(a[i].numpy(), scipy.ndimage.rotate(images[i].numpy(), -angle, reshape=False,
                                                                       order=1, mode="constant"), atol=1e-5)


def band_limited(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """A trigonometric polynomial of period ``n`` with frequencies below n / 4 (band-limited for n / 2 too)."""
    w = 2 * np.pi / n
    return (np.cos(3 * w * x + 0.3) * np.sin(5 * w * y + 1.1) + 0.5 * np.cos(w * (2 * x + 6 * y)) + 0.2)


@pytest.mark.parametrize("size", [20, 48, 64, 100])
def test_rescale_up_and_down_samples_the_same_function(size: int) -> None:
    n = 32
    yy, xx = np.mgrid[:n, :n]
    out = T.Rescale(size)(torch.from_numpy(band_limited(xx, yy, n)[None]))[0].numpy()
    q = np.arange(size) * n / size  # the new pixels, in old pixel units
    np.testing.assert_allclose(out, band_limited(q[None, :], q[:, None], n), atol=1e-9)


def test_rescale_to_a_pixel_size() -> None:
    to_one = T.Rescale(pixel_size=1.0, input_pixel_size=1.5)
    assert to_one.size_for(64) == 96 and to_one.pixel_size_after(1.5, 64) == pytest.approx(1.0)
    assert T.Rescale(pixel_size=3.0, input_pixel_size=1.5).size_for(64) == 32
    out = to_one(torch.zeros((2, 64, 64)))
    assert out.shape == (2, 96, 96)
    with pytest.raises(ParameterError, match="box= .* or pixel_size="):
        T.Rescale()
    with pytest.raises(ParameterError, match="input_pixel_size"):
        T.Rescale(pixel_size=1.0)
    with pytest.raises(ParameterError, match="range"):
        T.Rotate((10.0, 5.0))
