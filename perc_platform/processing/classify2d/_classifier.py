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
from perc_platform.processing.classify2d._align import (
    Alignment,
    align,
    align_subset,
    shift_grid,
    subpixel_offsets,
    warp,
)
from perc_platform.processing.classify2d._config import Classify2DConfig
from perc_platform.processing.classify2d._pca import (
    SteerableBasis,
    fit_basis,
    lowpass_filter,
    polar_grid,
    polar_points,
    polar_spectra,
    project,
    projector,
)

__all__ = ["CTF_COLUMNS", "StreamingClassifier2D"]

#: Per-particle batch columns that CTF correction reads (defocus in A, angles in degrees).
CTF_COLUMNS = ("defocus_u", "defocus_v", "defocus_angle", "phase_shift")
#: The fine search of trial centres tries only this many of the closest classes of the coarse search.
_FINE_CLASSES = 3
_OPTICS = ("voltage", "spherical_aberration", "amplitude_contrast")
_RESULTS = {"class": (np.int32, -1), "rotation": (np.float32, np.nan), "shift": (np.float32, np.nan),
            "distance": (np.float32, np.nan), "mirror": (np.int8, 0)}


def _class_sums(images: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-class sums ``(k, N, N)`` (float64) of ``images`` ``(B, N, N)``: one one-hot matrix product."""
    onehot = torch.nn.functional.one_hot(labels, k).to(torch.float64)  # (B, k)
    return (onehot.T @ images.reshape(images.shape[0], -1).double()).reshape(k, *images.shape[1:])


def _sq_distances(feats: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(n, k)`` by one matrix product."""
    return ((feats**2).sum(1)[:, None] + (centres**2).sum(1)[None, :] - 2.0 * feats @ centres.T).clamp(min=0.0)


def _kmeans(feats: torch.Tensor, k: int, gen: torch.Generator, iterations: int = 25
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ seeding: (labels, centres)."""
    first = int(torch.randint(feats.shape[0], (1,), generator=gen))
    centres = feats[first: first + 1].clone()
    for _ in range(1, k):
        d2 = _sq_distances(feats, centres).min(dim=1).values
        weights = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / d2.numel())
        pick = int(torch.multinomial(weights.float().cpu(), 1, generator=gen))
        centres = torch.cat([centres, feats[pick: pick + 1]])
    labels = _sq_distances(feats, centres).argmin(dim=1)
    for _ in range(iterations):
        onehot = torch.nn.functional.one_hot(labels, k).to(feats.dtype)  # (n, k)
        counts = onehot.sum(0)
        filled = counts > 0
        centres[filled] = (onehot.T @ feats)[filled] / counts[filled, None]
        new = _sq_distances(feats, centres).argmin(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels, centres


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
        self.n_theta = config.n_theta(self.grid.n_m)
        self.lowpass = lowpass_filter(self.box, self.pixel_size, config.resolution, self.device)
        largest, step = config.shifts_pixels(self.box, self.pixel_size)
        coarse = 2.0 * step if largest >= 2.0 * step else step
        self.coarse_step, self.step = coarse, step
        self.coarse_shifts = shift_grid(largest, coarse, self.device)
        self.fine_offsets = shift_grid(step, step, self.device) if coarse > step else None
        self.max_shift = largest
        self._points = polar_points(self.grid, self.box)
        self.basis: SteerableBasis | None = None
        self._projector = torch.zeros(0)
        self.prior: torch.Tensor | None = None  # (K, N, N) the starting references
        self.prior_weight: torch.Tensor | None = None  # (K,) how many particles each starting reference counts for
        self.sums: torch.Tensor | None = None  # (K, N, N) float64 sums of aligned particles
        self.counts: torch.Tensor | None = None  # (K,) int64
        self.references: torch.Tensor | None = None  # (K, N, N) current references
        self._ref_coeffs: torch.Tensor | None = None
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
        images = batch["image"].to(self.device, torch.float32)
        if images.ndim != 3 or images.shape[1:] != (self.box, self.box):
            raise ParameterError(f"batch images have shape {tuple(images.shape)}; expected (B, {self.box}, "
                                 f"{self.box})")
        mean = images.mean(dim=(1, 2), keepdim=True)
        std = images.std(dim=(1, 2), keepdim=True).clamp(min=1e-12)
        spectrum = torch.fft.rfft2((images - mean) / std)
        spectrum = spectrum * self.lowpass
        if self.config.ctf is not None:
            spectrum = spectrum * self._ctf_filter(batch)
        return torch.fft.irfft2(spectrum, s=(self.box, self.box))

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
        spectra = torch.cat([self._spectra(part) for part in images.split(256)], dim=1)
        self._set_basis(fit_basis(spectra, self.grid, self.config.variance).to(self.device))
        assert self.basis is not None
        return self.basis

    def _set_basis(self, basis: SteerableBasis) -> None:
        self.basis = basis
        self._projector = projector(basis, self.grid)

    def _spectra(self, images: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        return polar_spectra(images, self.grid, shifts, self._points)

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
        refs = self._seed(images)
        sizes = torch.ones(k, dtype=torch.float64, device=self.device)
        for _ in range(self.config.init_iterations):
            self._set_refs_only(refs)
            found = self.search(images)
            labels = found.distance.argmin(dim=1)
            aligned = self._aligned(images, found, labels)
            refs, sizes = self._class_means(aligned, labels, k, found.distance.gather(1, labels[:, None])[:, 0])
            refs = torch.stack([self._recentre(r) for r in refs])
        self.set_references(refs, sizes)

    def _set_refs_only(self, refs: torch.Tensor) -> None:
        self.references = refs
        self._ref_coeffs = self._coefficients_of(refs)

    def _seed(self, images: torch.Tensor, restarts: int = 5, rounds: int = 2) -> torch.Tensor:
        """Initial references: k-means on rotation-invariant PCA features (|coefficients|, best of
        ``restarts``), then each cluster's members aligned to its most central member and averaged (twice)."""
        assert self.basis is not None
        k = self.config.classes
        coeffs = torch.cat([project(self._spectra(p), self._projector) for p in images.split(256)], dim=1)
        feats = coeffs.abs().permute(1, 0, 2)[:, self.basis.valid].double()
        feats = (feats - feats.mean(0)) / feats.std(0).clamp(min=1e-12)
        gen = torch.Generator().manual_seed(int(self.config.seed))
        best: tuple[float, torch.Tensor, torch.Tensor] | None = None
        for _ in range(restarts):
            labels, centres = _kmeans(feats, k, gen)
            inertia = float(_sq_distances(feats, centres).gather(1, labels[:, None]).sum())
            if best is None or inertia < best[0]:
                best = (inertia, labels, centres)
        assert best is not None
        _, labels, centres = best
        refs = []
        for j in range(k):
            members = torch.nonzero(labels == j).flatten()
            if members.numel() == 0:
                members = torch.randint(feats.shape[0], (1,), generator=gen)
            central = members[_sq_distances(feats[members], centres[j: j + 1])[:, 0].argmin()]
            ref = images[central]
            for _ in range(rounds):
                self._set_refs_only(ref[None])
                found = self.search(images[members])
                aligned = self._aligned(images[members], found, torch.zeros(members.numel(), dtype=torch.long,
                                                                              device=self.device))
                ref = self._recentre(aligned.mean(0))
            refs.append(ref)
        return torch.stack(refs)

    # -- alignment and assignment -------------------------------------------------------------------------
    def _coefficients_of(self, images: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        """Frequency-major PCA coefficients ``(n_m, B * S, J)`` of images around ``S`` centres each."""
        assert self.basis is not None
        return project(self._spectra(images, shifts), self._projector)

    def search(self, images: torch.Tensor, chunk: int = 128) -> Alignment:
        """Distance, angle, centre (:attr:`Alignment.shift`, pixels) and mirror flag of preprocessed ``images``
        to every reference: trial centres coarse then fine, the best one refined to sub-pixel."""
        assert self._ref_coeffs is not None
        refs = self._ref_coeffs
        k = refs.shape[1]
        if self.config.mirror:  # the mirrored particle against a reference = the particle against its conjugate
            refs = torch.cat([refs, refs.conj()], dim=1).resolve_conj()
        outs = [self._search_part(part, refs, k) for part in images.split(chunk)]
        joined = [torch.cat([getattr(o, f) for o in outs]) for f in ("distance", "shift_index", "angle", "shift",
                                                                      "mirror")]
        return Alignment(joined[0], joined[1], joined[2], joined[3], mirror=joined[4])

    def _search_part(self, part: torch.Tensor, refs: torch.Tensor, k: int) -> Alignment:
        rows = torch.arange(part.shape[0], device=self.device)
        coarse_n = self.coarse_shifts.shape[0]
        coarse = align(self._coefficients_of(part, self.coarse_shifts), refs, self.n_theta, coarse_n)
        shifts = self.coarse_shifts[coarse.shift_index]  # (b, K2, 2)
        distance, angle = coarse.distance, coarse.angle
        assert coarse.trials is not None
        trials, grid_step = coarse.trials, self.coarse_step
        fine_better = torch.zeros_like(distance, dtype=torch.bool)
        if self.fine_offsets is not None:
            centre = shifts[rows, distance.argmin(dim=1)]  # (b, 2)
            trial = centre[:, None, :] + self.fine_offsets[None]
            chosen = distance.topk(min(_FINE_CLASSES, distance.shape[1]), dim=1, largest=False).indices
            fine = align_subset(self._coefficients_of(part, trial), refs, chosen, self.n_theta, trial.shape[1])
            fine_shift = trial.gather(1, fine.shift_index[..., None].expand(-1, -1, 2))
            fine_better = fine.distance <= distance  # equal: the same centre, found again on the fine grid
            distance = torch.where(fine_better, fine.distance, distance)
            angle = torch.where(fine_better, fine.angle, angle)
            shifts = torch.where(fine_better[..., None], fine_shift, shifts)
            assert fine.trials is not None
            fine_trials = fine.trials
        best = distance.argmin(dim=1)  # the candidate each particle is assigned by
        if self.config.subpixel and (self.fine_offsets is not None or coarse_n > 1):
            offset = subpixel_offsets(trials[rows, :, best]) * grid_step
            if self.fine_offsets is not None:  # the fine grid, where the best candidate came from it
                fine_offset = subpixel_offsets(fine_trials[rows, :, best]) * self.step
                offset = torch.where(fine_better[rows, best][:, None], fine_offset, offset)
            refined = shifts[rows, best] + offset
            shifts = shifts.clone()
            shifts[rows, best] = refined.clamp(-self.max_shift - self.step, self.max_shift + self.step)
        if self.config.mirror:  # fold the conjugate references back: per class, the better of the two
            mirrored = distance[:, k:] < distance[:, :k]
            pick = torch.arange(k, device=self.device)[None, :] + k * mirrored.long()
            distance, angle = distance.gather(1, pick), angle.gather(1, pick)
            shifts = shifts.gather(1, pick[..., None].expand(-1, -1, 2))
            shift_index = coarse.shift_index.gather(1, pick)
        else:
            mirrored = torch.zeros_like(distance, dtype=torch.bool)
            shift_index = coarse.shift_index
        return Alignment(distance, shift_index, angle, shifts, mirror=mirrored)

    def _aligned(self, images: torch.Tensor, found: Alignment, labels: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(images.shape[0], device=self.device)
        assert found.shift is not None
        mirror = None if found.mirror is None else found.mirror[rows, labels]
        return warp(images, found.angle[rows, labels], found.shift[rows, labels], mirror)

    def _class_means(self, aligned: torch.Tensor, labels: torch.Tensor, k: int, distance: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class means of aligned images; a class left (nearly) empty takes the worse half of the largest."""
        labels = labels.clone()
        counts = torch.bincount(labels, minlength=k)
        for j in range(k):
            if counts[j] >= 2:
                continue
            largest = int(counts.argmax())
            members = torch.nonzero(labels == largest).flatten()
            if members.numel() < 4:
                continue
            far = members[distance[members].argsort(descending=True)[: members.numel() // 2]]
            labels[far] = j
            counts = torch.bincount(labels, minlength=k)
        means = (_class_sums(aligned, labels, k) / counts.clamp(min=1)[:, None, None]).float()
        return means, counts.double().clamp(min=1.0)

    def _recentre(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` shifted so that the centre of mass of its positive part sits at the box centre."""
        weights = image.clamp(min=0.0)
        total = float(weights.sum())
        if total <= 0:
            return image
        coords = torch.arange(self.box, dtype=image.dtype, device=self.device) - self.box // 2
        cx = float((weights.sum(0) * coords).sum()) / total
        cy = float((weights.sum(1) * coords).sum()) / total
        if abs(cx) < 0.5 and abs(cy) < 0.5:
            return image
        zero = torch.zeros(1, device=self.device)
        return warp(image[None], zero, torch.tensor([[cx, cy]], device=self.device))[0]

    def _update_references(self) -> None:
        assert self.prior is not None and self.prior_weight is not None and self.sums is not None
        assert self.counts is not None
        weight = self.prior_weight[:, None, None]
        refs = (self.prior.double() * weight + self.sums) / (weight + self.counts[:, None, None].double())
        self._set_refs_only(refs.float())

    # -- streaming ----------------------------------------------------------------------------------------
    def partial_fit(self, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Classify one batch, add it to the running averages and return its per-particle results."""
        if not self.ready:
            raise ParameterError("the classifier has no basis/references yet: call initialize() (create mode) or "
                                 "fit_basis() and set_references() (update mode) first")
        assert self.sums is not None and self.counts is not None
        images = self.preprocess(batch)
        found = self.search(images)
        labels = found.distance.argmin(dim=1)
        aligned = self._aligned(images, found, labels)
        self.sums += _class_sums(aligned, labels, self.counts.numel())
        self.counts += torch.bincount(labels, minlength=self.counts.numel())
        self._update_references()
        rows = torch.arange(images.shape[0], device=self.device)
        assert found.shift is not None and found.mirror is not None
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
            self._set_refs_only(torch.from_numpy(np.array(arrays["references"])).to(dev))
        n = int(np.asarray(arrays["result_class"]).shape[0])
        self.results = {k: np.array(arrays[f"result_{k}"]) if f"result_{k}" in arrays else
                        np.full((n, 2) if k == "shift" else n, fill, dtype=dt) for k, (dt, fill) in _RESULTS.items()}
        self.batches_done = int(meta["batches_done"])
        self.particles_done = int(meta["particles_done"])
