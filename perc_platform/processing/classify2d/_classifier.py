"""The streaming classifier: batches of particles in, running class averages and per-particle poses out.

:class:`StreamingClassifier2D` consumes batches as dicts of torch tensors -- ``image`` ``(B, Y, X)``,
``index`` ``(B,)`` and, for CTF correction, ``defocus_u``, ``defocus_v``, ``defocus_angle``, ``phase_shift``
-- so any iterator of such batches drives it (``perc_platform.ml.ParticleLoader`` does). Per batch it

1. normalises each image, corrects its CTF (optional) and low-passes it;
2. aligns it to every current reference in steerable-PCA space (:mod:`._pca`, :mod:`._align`): all in-plane
   angles at once, trial centres coarse then fine;
3. assigns it to the class at the smallest PCA-space distance;
4. adds the aligned image to its class's running average; the references become the updated averages.

``create`` mode first learns the PCA basis and initial references from a training subset (k-means on
rotation-invariant PCA features, then a few rounds of alignment and averaging); ``update`` mode starts from
given references, which keep their class numbers. :meth:`state_dict` holds everything needed to resume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from perc_platform.errors import ParameterError
from perc_platform.processing.classify2d._align import Alignment, shift_grid, warp
from perc_platform.processing.classify2d._config import Classify2DConfig
from perc_platform.processing.classify2d._features import FeatureMap
from perc_platform.processing.classify2d._fourier import band_of, noise_covariance, ring_matrix
from perc_platform.processing.classify2d._pca import SteerableBasis, fit_basis, lowpass_filter, polar_grid
from perc_platform.processing.classify2d._search import PoseSearch
from perc_platform.processing.classify2d._seeding import class_means, class_sums, initial_references, recentre

__all__ = ["CTF_COLUMNS", "StreamingClassifier2D"]

#: Per-particle batch columns that CTF correction reads (defocus in A, angles in degrees).
CTF_COLUMNS = ("defocus_u", "defocus_v", "defocus_angle", "phase_shift")
#: The fine search tries only this many (reference, mirror) candidates per particle, the best of the coarse one.
_CANDIDATES = 4
#: The coarse search uses this many of the strongest PCA components (at most).
_COARSE_COMPONENTS = 12
_OPTICS = ("voltage", "spherical_aberration", "amplitude_contrast")
_RESULTS = {"class": (np.int32, -1), "rotation": (np.float32, np.nan), "shift": (np.float32, np.nan),
            "distance": (np.float32, np.nan), "mirror": (np.int8, 0)}


class StreamingClassifier2D:
    """Streaming PCA-based 2-D alignment and classification (see the module docstring).

    Parameters
    ----------
    config
        The settings (:class:`Classify2DConfig`).
    box, pixel_size
        Image side (pixels) and pixel size (Angstrom).
    optics
        ``voltage`` (kV), ``spherical_aberration`` (mm), ``amplitude_contrast``: needed for CTF correction.
    device
        Where the work runs (default CUDA when available).
    n_particles
        Size of the per-particle result arrays (they grow when a larger ``index`` arrives).
    """

    def __init__(self, config: Classify2DConfig, box: int, pixel_size: float, *,
                 optics: dict[str, float] | None = None, device: str | torch.device | None = None,
                 n_particles: int = 0) -> None:
        if box < 8 or not pixel_size > 0:
            raise ParameterError(f"box={box}, pixel_size={pixel_size}: need a box of at least 8 pixels and a "
                                 "positive pixel size (Angstrom)")
        self.config = config
        self.box, self.pixel_size = int(box), float(pixel_size)
        self.optics = {k: float(v) for k, v in (optics or {}).items() if k in _OPTICS}
        if config.ctf is not None and len(self.optics) < len(_OPTICS):
            raise ParameterError(f"ctf={config.ctf!r} needs the optics {list(_OPTICS)}; have {sorted(self.optics)}")
        self.device = torch.device(device) if device is not None else \
            torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.grid = polar_grid(self.box, self.pixel_size, config.resolution, config.sigma_pixels(self.box),
                               self.device)
        self.lowpass = lowpass_filter(self.box, self.pixel_size, config.resolution, self.device)
        self.band = band_of(self.lowpass)
        # how often each rfft2 column stands in the full spectrum (Parseval over the half-plane)
        self._columns = torch.full((self.box // 2 + 1,), 2.0, device=self.device)
        self._columns[0] = 1.0
        if self.box % 2 == 0:
            self._columns[-1] = 1.0
        self._rings = ring_matrix(self.band, self.grid.radii, self.grid.n_m, self.box)  # (n_m, F, n_r)
        largest, step = config.shifts_pixels(self.box, self.pixel_size)
        coarse = 2.0 * step if largest >= 2.0 * step else step
        self.coarse_step, self.step = coarse, step
        self.coarse_shifts = shift_grid(largest, coarse, self.device)
        self.fine_offsets = shift_grid(step, step, self.device) if coarse > step else None
        self.max_shift = largest
        self.basis: SteerableBasis | None = None
        self._search: PoseSearch | None = None
        self.prior: torch.Tensor | None = None  # (K, N, N) the starting references
        self.prior_weight: torch.Tensor | None = None  # (K,) how many particles each starting reference counts for
        self.sums: torch.Tensor | None = None  # (K, N, N) float64 sums of aligned particles
        self.counts: torch.Tensor | None = None  # (K,) int64
        self.references: torch.Tensor | None = None  # (K, N, N) current references
        self.batches_done = 0
        self.particles_done = 0
        self.results = {k: np.full((n_particles, 2) if k == "shift" else n_particles, fill, dtype=dt)
                        for k, (dt, fill) in _RESULTS.items()}

    # -- preparation ------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether the basis and references are set (streaming can start)."""
        return self.basis is not None and self.references is not None

    def preprocess(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Normalised, CTF-corrected (optional) and low-passed images ``(B, N, N)`` (float32) of a batch."""
        return self._prepare(batch)[0]

    def _prepare(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`preprocess`'s images and their band coefficients ``(B, F)`` (what the search reads)."""
        images = batch["image"]
        if images.ndim != 3 or images.shape[1:] != (self.box, self.box):
            raise ParameterError(f"batch images have shape {tuple(images.shape)}; expected (B, {self.box}, "
                                 f"{self.box})")
        images = images.to(self.device, torch.float32, non_blocking=True)
        spectrum = torch.fft.rfft2(images)
        # mean and (unbiased) standard deviation from the spectrum (Parseval), cheaper than two passes over pixels
        n = self.box * self.box
        power = (spectrum.real.square() + spectrum.imag.square()) * self._columns
        dc = spectrum[:, 0, 0]
        var = (power.sum(dim=(1, 2)) - (dc.real.square() + dc.imag.square())) / (n * (n - 1.0))
        spectrum = spectrum * (self.lowpass / var.clamp(min=1e-24).sqrt()[:, None, None])
        spectrum[:, 0, 0] = 0.0
        if self.config.ctf is not None:
            spectrum = spectrum * self._ctf_filter(batch)
        return torch.fft.irfft2(spectrum, s=(self.box, self.box)), spectrum.flatten(1)[:, self.band.index]

    def _band_of(self, images: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(images).flatten(1)[:, self.band.index]

    def _ctf_filter(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from perc_platform.processing.ctf import ctf, frequency_grid

        missing = [c for c in ("defocus_u", "defocus_v") if c not in batch]
        if missing:
            raise ParameterError(f"ctf={self.config.ctf!r} needs per-particle {missing} in each batch (open the "
                                 "particles with their STAR file, or pass ctf=None)")
        n = batch["image"].shape[0]
        column = {c: batch[c].detach().cpu().numpy().astype(np.float64) if c in batch else np.zeros(n)
                  for c in CTF_COLUMNS}
        s_x, s_y = frequency_grid((self.box, self.box), self.pixel_size, rfft=True)
        values = ctf(s_x, s_y, column["defocus_u"], column["defocus_v"], column["defocus_angle"],
                     phase_shift=column["phase_shift"], **self.optics)
        transfer = torch.from_numpy(values.astype(np.float32)).to(self.device)
        if self.config.ctf == "phase_flip":
            return torch.sign(transfer)
        return transfer / (transfer * transfer + 1.0 / self.config.wiener_snr)

    def fit_basis(self, images: torch.Tensor) -> SteerableBasis:
        """Learn the PCA basis from preprocessed training images ``(n, N, N)``."""
        spectra = torch.cat([self._ring_spectra(self._band_of(part)) for part in images.split(256)], dim=1)
        noise = noise_covariance(self.band, self._rings, self.box) if self.config.denoise else None
        self._set_basis(fit_basis(spectra, self.grid, self.config.variance, noise).to(self.device))
        assert self.basis is not None
        return self.basis

    def _ring_spectra(self, band: torch.Tensor) -> torch.Tensor:
        """Angular spectra ``(n_m, B, n_r)`` of the rings about the box centre (:mod:`._fourier`)."""
        moved = band * torch.polar(torch.ones_like(self.band.fx), 2.0 * np.pi * (self.box // 2)
                                   * (self.band.fx + self.band.fy))
        mirror = self.band.mirror
        even, odd = moved + mirror * moved.conj(), moved - mirror * moved.conj()
        return torch.stack([(even if m % 2 == 0 else odd) @ self._rings[m] for m in range(self.grid.n_m)])

    def _set_basis(self, basis: SteerableBasis) -> None:
        self.basis = basis
        full = FeatureMap(basis, self.grid, self.band, self._rings, self.box)
        self._search = PoseSearch(full, _COARSE_COMPONENTS, self.coarse_shifts, self.fine_offsets, self.step,
                                  self.coarse_step, self.max_shift, self.config.angular_step, mirror=self.config.mirror,
                                  subpixel=self.config.subpixel, candidates=_CANDIDATES)

    def set_references(self, references: torch.Tensor | np.ndarray, sizes: Any = None) -> None:
        """Start from ``references`` ``(K, N, N)`` (in the preprocessed image domain) counting as ``sizes``."""
        refs = references.to(self.device, torch.float32) if isinstance(references, torch.Tensor) else \
            torch.as_tensor(np.asarray(references, dtype=np.float32)).to(self.device)
        if refs.ndim != 3 or refs.shape[1:] != (self.box, self.box):
            raise ParameterError(f"references have shape {tuple(refs.shape)}; expected (K, {self.box}, {self.box})")
        k = refs.shape[0]
        if sizes is None:
            weight = torch.full((k,), float(self.config.reference_weight), dtype=torch.float64)
        else:
            weight = torch.as_tensor(np.asarray(sizes, dtype=np.float64)).clamp(min=1.0)
        self.prior, self.prior_weight = refs, weight.to(self.device)
        self.sums = torch.zeros((k, self.box, self.box), dtype=torch.float64, device=self.device)
        self.counts = torch.zeros(k, dtype=torch.int64, device=self.device)
        self._update_references()

    def initialize(self, images: torch.Tensor) -> None:
        """Create mode: PCA basis (unless set) and initial references from preprocessed training images."""
        k = self.config.classes
        if images.shape[0] < k:
            raise ParameterError(f"{images.shape[0]} training particles cannot seed {k} classes; raise "
                                 "training_size or lower classes")
        if self.basis is None:
            self.fit_basis(images)
        refs = initial_references(self, images)
        sizes = torch.ones(k, dtype=torch.float64, device=self.device)
        for _ in range(self.config.init_iterations):
            self.set_search_references(refs)
            found = self.search(images)
            labels = found.distance.argmin(dim=1)
            aligned = self.aligned(images, found, labels)
            refs, sizes = class_means(aligned, labels, k, found.distance.gather(1, labels[:, None])[:, 0])
            refs = torch.stack([recentre(r) for r in refs])
        self.set_references(refs, sizes)

    def set_search_references(self, refs: torch.Tensor) -> None:
        """Search against ``refs`` ``(K, N, N)`` from now on (the running averages are left alone)."""
        assert self._search is not None
        self.references = refs
        self._search.set_references(self._band_of(refs))

    # -- alignment and assignment -------------------------------------------------------------------------
    def coefficients(self, images: torch.Tensor) -> torch.Tensor:
        """Packed complex PCA coefficients ``(B, D)`` of preprocessed images about the box centre."""
        assert self._search is not None
        full = self._search.full
        return full.complex(full.inputs(self._band_of(images)) @ full.matrix(torch.zeros((1, 2), device=self.device)))

    def search(self, images: torch.Tensor) -> Alignment:
        """Distance, angle, centre (pixels) and mirror flag of preprocessed ``images`` to every reference
        (:mod:`._search`; ``inf`` distance where a reference was not among the particle's candidates)."""
        return self._search_band(self._band_of(images))

    def _search_band(self, band: torch.Tensor, chunk: int = 128) -> Alignment:
        assert self._search is not None
        outs = [self._search.run(part) for part in band.split(chunk)]
        return Alignment(*(torch.cat([getattr(o, f) for o in outs]) for f in ("distance", "angle", "shift",
                                                                              "mirror")))

    def aligned(self, images: torch.Tensor, found: Alignment, labels: torch.Tensor) -> torch.Tensor:
        """``images`` warped onto their reference ``labels`` with the poses ``found``."""
        rows = torch.arange(images.shape[0], device=self.device)
        return warp(images, found.angle[rows, labels], found.shift[rows, labels], found.mirror[rows, labels])

    def _update_references(self) -> None:
        assert self.prior is not None and self.prior_weight is not None and self.sums is not None
        assert self.counts is not None
        weight = self.prior_weight[:, None, None]
        refs = (self.prior.double() * weight + self.sums) / (weight + self.counts[:, None, None].double())
        self.set_search_references(refs.float())

    # -- streaming ----------------------------------------------------------------------------------------
    def partial_fit(self, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Classify one batch, add it to the running averages and return its per-particle results."""
        if not self.ready:
            raise ParameterError("the classifier has no basis/references yet: call initialize() (create mode) or "
                                 "fit_basis() and set_references() (update mode) first")
        assert self.sums is not None and self.counts is not None
        images, band = self._prepare(batch)
        found = self._search_band(band)
        labels = found.distance.argmin(dim=1)
        aligned = self.aligned(images, found, labels)
        self.sums += class_sums(aligned, labels, self.counts.numel())
        self.counts += torch.bincount(labels, minlength=self.counts.numel())
        self._update_references()
        rows = torch.arange(images.shape[0], device=self.device)
        out: dict[str, np.ndarray] = {"class": labels.cpu().numpy().astype(np.int32),
               "rotation": found.angle[rows, labels].cpu().numpy().astype(np.float32),
               "shift": found.shift[rows, labels].cpu().numpy().astype(np.float32),
               "distance": found.distance[rows, labels].cpu().numpy().astype(np.float32),
               "mirror": found.mirror[rows, labels].cpu().numpy().astype(np.int8)}
        index = batch["index"].detach().cpu().numpy().astype(np.int64) if "index" in batch else \
            np.arange(self.particles_done, self.particles_done + images.shape[0])
        self._store(index, out)
        self.batches_done += 1
        self.particles_done += int(images.shape[0])
        return {"index": index, **out}

    def _store(self, index: np.ndarray, values: dict[str, np.ndarray]) -> None:
        need = int(index.max()) + 1 if index.size else 0
        have = self.results["class"].shape[0]
        if need > have:
            for key, (dtype, fill) in _RESULTS.items():
                extra = np.full((need - have, 2) if key == "shift" else need - have, fill, dtype=dtype)
                self.results[key] = np.concatenate([self.results[key], extra])
        for key, value in values.items():
            self.results[key][index] = value

    @property
    def class_sizes(self) -> np.ndarray:
        """Particles assigned to each class so far (streamed particles only)."""
        return np.zeros(0, np.int64) if self.counts is None else self.counts.cpu().numpy()

    # -- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as NumPy arrays and JSON-able values (no pickled objects)."""
        arrays: dict[str, np.ndarray] = {f"result_{k}": v for k, v in self.results.items()}
        if self.basis is not None:
            arrays.update(basis_vectors=self.basis.vectors.cpu().numpy(), basis_valid=self.basis.valid.cpu().numpy(),
                          basis_eigenvalues=self.basis.eigenvalues.cpu().numpy())
        for name in ("prior", "prior_weight", "sums", "counts", "references"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value.cpu().numpy()
        meta = {"config": self.config.to_dict(), "box": self.box, "pixel_size": self.pixel_size,
                "optics": self.optics, "batches_done": self.batches_done, "particles_done": self.particles_done,
                "explained": None if self.basis is None else self.basis.explained}
        return {"arrays": arrays, "meta": meta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the config, box and pixel size must match)."""
        arrays, meta = state["arrays"], state["meta"]
        if (meta["box"], float(meta["pixel_size"])) != (self.box, self.pixel_size):
            raise ParameterError(f"saved state is for box {meta['box']} at {meta['pixel_size']} A; these particles "
                                 f"are box {self.box} at {self.pixel_size} A")
        dev = self.device
        if "basis_vectors" in arrays:
            self._set_basis(SteerableBasis(torch.from_numpy(arrays["basis_vectors"]).to(dev),
                                           torch.from_numpy(arrays["basis_valid"]).to(dev),
                                           torch.from_numpy(arrays["basis_eigenvalues"]).to(dev),
                                           float(meta["explained"])))
        for name in ("prior", "prior_weight", "sums", "counts"):
            if name in arrays:
                setattr(self, name, torch.from_numpy(np.array(arrays[name])).to(dev))
        if "references" in arrays and self.basis is not None:
            self.set_search_references(torch.from_numpy(np.array(arrays["references"])).to(dev))
        n = int(np.asarray(arrays["result_class"]).shape[0])
        self.results = {k: np.array(arrays[f"result_{k}"]) if f"result_{k}" in arrays else
                        np.full((n, 2) if k == "shift" else n, fill, dtype=dt) for k, (dt, fill) in _RESULTS.items()}
        self.batches_done = int(meta["batches_done"])
        self.particles_done = int(meta["particles_done"])
