"""Streaming 2-D classification (issue 9): simulated views with known poses, real stacks through the CLI.

Ground truth comes from ``perc_platform.testing.views`` (exact projections of Gaussian blobs, random in-plane
turns and shifts, noise at SNR 0.1); class averages are compared with the clean views after an independent
alignment (scipy rotations + FFT cross-correlation), purity is counted with NumPy.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
import torch
import xarray as xr
from scipy import ndimage

from perc_platform.cli.main import main
from perc_platform.errors import ParameterError
from perc_platform.processing.classify2d import (
    Classify2DConfig,
    StreamingClassifier2D,
    classify2d,
    load_classification,
)
from perc_platform.processing.classify2d._fourier import band_of, ring_matrix
from perc_platform.processing.classify2d._pca import effective_resolution, lowpass_filter
from perc_platform.testing.views import SyntheticViews, make_views, render

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "particles"
PIXEL = 2.0
FAST: dict[str, Any] = {"training_size": 240, "init_iterations": 3}


def as_particles(views: SyntheticViews) -> xr.DataArray:
    return xr.DataArray(views.images, dims=("particle", "y", "x"), name="image", attrs={"pixel_size": PIXEL})


def purity(classes: np.ndarray, truth: np.ndarray) -> float:
    """Share of particles in the majority ground-truth view of their class."""
    done = classes >= 0
    return sum(np.bincount(truth[done][classes[done] == k]).max() for k in np.unique(classes[done])) / done.sum()


def aligned_correlation(image: np.ndarray, clean: np.ndarray, step: float = 2.0) -> float:
    """Best Pearson correlation of ``image`` with ``clean`` over in-plane turns and (circular) shifts."""
    target = (clean - clean.mean()) / clean.std()
    spectrum = np.conj(np.fft.fft2(target))
    best = -1.0
    for angle in np.arange(0.0, 360.0, step):
        turned = ndimage.rotate(image, angle, reshape=False, order=1, mode="constant")
        turned = (turned - turned.mean()) / turned.std()
        corr = np.fft.ifft2(np.fft.fft2(turned) * spectrum).real / turned.size
        best = max(best, float(corr.max()))
    return best


@pytest.fixture(scope="module")
def views() -> SyntheticViews:
    return make_views(600, box=64, views=3, snr=0.1, seed=1)


@pytest.fixture(scope="module")
def created(views: SyntheticViews, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("create")
    return classify2d(as_particles(views), 3, batch_size=100, seed=0, output=out, **FAST), out


def test_alignment_recovers_turn_and_shift() -> None:
    """Noise-free particles aligned to their clean views give back the drawn angle and shift."""
    sv = make_views(12, box=64, snr=1e6, seed=4)
    clf = StreamingClassifier2D(Classify2DConfig(classes=3, mask=False), 64, PIXEL)
    clf.fit_basis(clf.preprocess({"image": torch.from_numpy(make_views(200, seed=4).images)}))
    clf.set_references(clf.preprocess({"image": torch.from_numpy(sv.clean)}))
    found = clf.search(clf.preprocess({"image": torch.from_numpy(sv.images)}))
    rows = np.arange(12)
    assert np.array_equal(found.distance.argmin(1).numpy(), sv.view)
    angle = found.angle.numpy()[rows, sv.view]
    error = (angle - sv.rotation + 180.0) % 360.0 - 180.0
    assert np.abs(error).max() < 3.0
    shift = found.shift.numpy()[rows, sv.view]  # type: ignore[union-attr]
    assert np.abs(shift - sv.shift).max() < 0.8  # grid step 1 px


def test_ring_spectra_match_sampled_rings() -> None:
    """The Jacobi-Anger ring map of a band-limited image equals the FFT (NumPy) of the image sampled on rings."""
    box, sigma = 64, 2.5
    blobs = np.array([[3.0, -5.0, 1.0], [-7.0, 2.0, 0.6], [1.0, 9.0, 0.8]])
    image = render(blobs, box, sigma)  # Gaussians: negligible beyond the band kept below
    lowpass = lowpass_filter(box, 1.0, 2.5)
    band = band_of(lowpass)
    radii = torch.tensor([2.0, 5.5, 9.0, 14.0])
    q = ring_matrix(band, radii, 12, box)
    x = torch.fft.rfft2(torch.from_numpy(image)).flatten()[band.index].to(torch.complex64)
    centre = torch.exp(2j * np.pi * (box // 2) * (band.fx + band.fy))
    x = x * centre
    n_phi = 256
    phi = np.arange(n_phi) * 2 * np.pi / n_phi
    for m in (0, 1, 4, 7):
        y = x + (-1) ** m * band.mirror * x.conj()
        ours = (y @ q[m]).numpy()
        for i, r in enumerate(radii.tolist()):
            px, py = r * np.cos(phi), r * np.sin(phi)
            values = sum(w * np.exp(-0.5 * ((px - bx) ** 2 + (py - by) ** 2) / sigma**2) for bx, by, w in blobs)
            expected = np.fft.fft(values)[m] / n_phi
            assert abs(ours[i] - expected) < 1e-3 * max(1.0, abs(expected)), (m, r, ours[i], expected)


def test_basis_covers_the_asked_variance(views: SyntheticViews) -> None:
    images = torch.from_numpy(views.images[:200])
    for share in (0.5, 0.75):
        clf = StreamingClassifier2D(Classify2DConfig(variance=share, denoise=False), 64, PIXEL)
        basis = clf.fit_basis(clf.preprocess({"image": images}))
        assert share <= basis.explained < share + 0.05
        # denoise keeps a subset: fewer components, a smaller share of the (noise-dominated) variance
        clf = StreamingClassifier2D(Classify2DConfig(variance=share), 64, PIXEL)
        denoised = clf.fit_basis(clf.preprocess({"image": images}))
        assert 1 <= denoised.n_components < basis.n_components and denoised.explained < share


def test_denoise_drops_the_components_of_pure_noise() -> None:
    """White noise has no component above its own level: denoise keeps (nearly) nothing, the variance rule many."""
    noise = torch.from_numpy(np.random.default_rng(3).standard_normal((600, 64, 64)).astype(np.float32))
    kept = {}
    for denoise in (False, True):
        clf = StreamingClassifier2D(Classify2DConfig(denoise=denoise), 64, PIXEL)
        kept[denoise] = clf.fit_basis(clf.preprocess({"image": noise})).n_components
    assert kept[False] > 50
    assert kept[True] <= 3
    assert effective_resolution(8.0, 2.0) == 8.0
    assert effective_resolution(8.0, 5.0) == 10.0  # floored to Nyquist


def test_create_mode_purity_and_class_averages(created, views: SyntheticViews) -> None:  # type: ignore[no-untyped-def]
    """Acceptance 1: purity >= 0.9; each view has a class average correlating >= 0.9 with its clean view."""
    result, _ = created
    classes = result.assignments["class"].values
    assert (classes >= 0).all()
    assert purity(classes, views.view) >= 0.9
    averages = result.averages.values
    for v in range(3):
        best = max(aligned_correlation(averages[k], views.clean[v]) for k in range(averages.shape[0]))
        assert best >= 0.9, (v, best)
    # the views have no mirror images: few particles match mirrored, and the others' poses agree with the
    # truth up to one turn per class (the class average's own orientation)
    mirrored = result.assignments["mirror"].values
    assert mirrored.mean() < 0.1
    for k in range(3):
        members = (classes == k) & ~mirrored
        offset = np.deg2rad(views.rotation[members] - result.assignments["rotation"].values[members])
        assert np.abs(np.mean(np.exp(1j * offset))) > 0.95
    assert int(result.sizes.sum()) == 600
    assert result.averages.dims == ("class", "y", "x")


def test_update_mode_keeps_class_identities(created, views: SyntheticViews) -> None:  # type: ignore[no-untyped-def]
    """Acceptance 2: a second batch of the same views lands (>= 95%) in the class of its view."""
    result, folder = created
    first = result.assignments["class"].values
    view_of_class = {k: int(np.bincount(views.view[first == k]).argmax()) for k in np.unique(first)}
    second = make_views(300, box=64, snr=0.1, seed=2, blobs=views.blobs)
    for references in (result, folder):
        again = classify2d(as_particles(second), mode="update", references=references, batch_size=100, seed=5)
        classes = again.assignments["class"].values
        assert again.averages.sizes["class"] == 3
        hits = np.array([view_of_class.get(int(k), -1) for k in classes]) == second.view
        assert hits.mean() >= 0.95


RESUME: dict[str, Any] = {"batch_size": 60, "seed": 3, "training_size": 120, "init_iterations": 2}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """300 simulated particles in an ``.mrcs`` stack, opened lazily, and one uninterrupted run over them."""
    from perc_platform.datasets import open_particles

    folder = tmp_path_factory.mktemp("stack")
    sv = make_views(300, box=64, snr=0.1, seed=7)
    path = folder / "views.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(sv.images)
        mrc.voxel_size = PIXEL
    images = open_particles(path)
    images.attrs["pixel_size"] = PIXEL
    whole = classify2d(images, 3, output=folder / "whole", **RESUME)
    return sv, path, images, whole


def test_results_readable_after_every_batch_and_resume_matches(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Acceptance 3: the state after each batch loads; stop after 2 batches, resume: same as uninterrupted."""
    sv, _, images, whole = stack
    seen: list[int] = []

    def check(info: dict) -> None:  # type: ignore[type-arg]
        saved = load_classification(tmp_path / "parts")
        assert int(saved.sizes.sum()) == info["particles_done"]
        assert int((saved.assignments["class"].values >= 0).sum()) == info["particles_done"]
        seen.append(info["batches_done"])

    first = classify2d(images, 3, output=tmp_path / "parts", max_batches=2, progress=check, **RESUME)
    assert int((first.assignments["class"].values >= 0).sum()) == 120
    with pytest.raises(ParameterError, match="classes: saved 3, now 4"):
        classify2d(images, 4, output=tmp_path / "parts", **RESUME)
    rest = classify2d(images, 3, output=tmp_path / "parts", progress=check, **RESUME)
    assert seen == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(rest.assignments["class"].values, whole.assignments["class"].values)
    np.testing.assert_allclose(rest.assignments["rotation"].values, whole.assignments["rotation"].values)
    # float32 running sums: torch's summation order may vary with threads (differences of a few 1e-6)
    np.testing.assert_allclose(rest.averages.values, whole.averages.values, rtol=0, atol=1e-5)
    assert purity(whole.assignments["class"].values, sv.view) >= 0.9


KILLED = textwrap.dedent("""
    import os, signal, sys
    from perc_platform.datasets import open_particles
    from perc_platform.processing.classify2d import classify2d

    def stop(info):
        if info["batches_done"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up: like a crash or a kill -9

    images = open_particles(sys.argv[1])
    images.attrs["pixel_size"] = float(sys.argv[3])
    classify2d(images, 3, output=sys.argv[2], batch_size=60, seed=3, training_size=120, init_iterations=2,
               progress=stop)
""")


def test_killed_run_resumes_to_the_same_result(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Acceptance 3: a process killed (SIGKILL) mid-run resumes from its state and matches a full run."""
    _, path, images, whole = stack
    proc = subprocess.run([sys.executable, "-c", KILLED, str(path), str(tmp_path / "killed"), str(PIXEL)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    partial = load_classification(tmp_path / "killed")
    assert int(partial.sizes.sum()) == 180
    resumed = classify2d(images, 3, output=tmp_path / "killed", **RESUME)
    np.testing.assert_array_equal(resumed.assignments["class"].values, whole.assignments["class"].values)
    # float32 running sums: torch's summation order may vary with threads (differences of a few 1e-6)
    np.testing.assert_allclose(resumed.averages.values, whole.averages.values, rtol=0, atol=1e-5)


def test_outputs_on_disk(created) -> None:  # type: ignore[no-untyped-def]
    result, folder = created
    with mrcfile.open(folder / "classes.mrcs", permissive=True) as mrc:
        assert mrc.data.shape == (3, 64, 64)
        np.testing.assert_allclose(mrc.data, result.averages.values, atol=1e-6)
        assert float(mrc.voxel_size.x) == pytest.approx(PIXEL)
    rows = [line.split() for line in (folder / "classes.star").read_text().splitlines() if "@classes.mrcs" in line]
    assert [int(r[3]) for r in rows] == result.sizes.tolist()
    particles = [line.split() for line in (folder / "particles.star").read_text().splitlines()
                 if line and line[0].isdigit()]
    assert len(particles) == 600
    assert np.array_equal(np.array([int(r[0]) for r in particles]) - 1, result.assignments["class"].values)
    assert (folder / "classes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_are_checked() -> None:
    with pytest.raises(ParameterError, match="variance"):
        Classify2DConfig(variance=1.5)
    with pytest.raises(ParameterError, match="ctf"):
        Classify2DConfig(ctf="flip")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="optics"):
        StreamingClassifier2D(Classify2DConfig(ctf="wiener"), 64, PIXEL)
    with pytest.raises(ParameterError, match="references"):
        classify2d(as_particles(make_views(4, seed=0)), mode="update")


@pytest.mark.parametrize("how", ["stack", "entry"])
def test_cli_on_a_real_stack_with_ctf_correction(how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``perc classify2d`` on real particles (219 STA tilt images, CTF from the STAR file), phase-flipped:
    given as a stack path with its STAR file, or as the shipped catalog's ``local_particles`` entry."""
    stack = SHARED / "ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs"
    star = SHARED / "sta_testing_bin8.star"
    out = tmp_path / "run"
    source = [str(stack), "--star", str(star)] if how == "stack" else \
        ["--entry", "local_particles", "--param", f"urlpath={stack}", "--param", f"star={star}"]
    code = main(["classify2d", *source, "--classes", "4", "--training-size", "100", "--batch-size", "64",
                 "--ctf", "phase_flip", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "batch 4/4" in printed and "particles/s" in printed and "class sizes:" in printed
    result = load_classification(out)
    assert int(result.sizes.sum()) == 219
    with mrcfile.open(out / "classes.mrcs", permissive=True) as mrc:
        assert mrc.data.shape == (4, 64, 64) and np.isfinite(mrc.data).all()


@pytest.mark.parametrize("kind", ["phase_flip", "wiener"])
def test_ctf_correction_matches_processing_ctf(kind: str) -> None:
    """The per-batch CTF correction equals ``processing.ctf.phase_flip`` / ``wiener_filter`` on the DataArray."""
    from perc_platform.processing.ctf import phase_flip, wiener_filter

    rng = np.random.default_rng(0)
    n = 6
    coords = {"defocus_u": rng.uniform(12000, 20000, n), "defocus_v": rng.uniform(11000, 12000, n),
              "defocus_angle": rng.uniform(0, 180, n), "phase_shift": np.zeros(n)}
    optics = {"voltage": 300.0, "spherical_aberration": 2.7, "amplitude_contrast": 0.1}
    raw = rng.normal(size=(n, 64, 64)).astype(np.float32)
    normalised = (raw - raw.mean(axis=(1, 2), keepdims=True)) / raw.std(axis=(1, 2), ddof=1, keepdims=True)
    images = xr.DataArray(normalised, dims=("particle", "y", "x"), name="image",
                          coords={k: ("particle", v) for k, v in coords.items()}, attrs={"pixel_size": PIXEL, **optics})
    expected = (phase_flip(images) if kind == "phase_flip" else wiener_filter(images, snr=2.0)).values
    plain = StreamingClassifier2D(Classify2DConfig(), 64, PIXEL)
    expected = plain.preprocess({"image": torch.from_numpy(expected)}).numpy()  # the same low-pass (linear)
    clf = StreamingClassifier2D(Classify2DConfig(ctf=kind, wiener_snr=2.0), 64, PIXEL, optics=optics)  # type: ignore[arg-type]
    batch = {"image": torch.from_numpy(raw), **{k: torch.from_numpy(v) for k, v in coords.items()}}
    got = clf.preprocess(batch).numpy()
    # the reference normalises again after filtering; compare shapes of the images, not their scale
    for a, b in zip(got, expected, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999
