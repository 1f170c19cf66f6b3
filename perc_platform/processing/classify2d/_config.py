"""Settings of a 2-D classification run (one frozen dataclass, saved with the run's state as JSON)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from perc_platform.errors import ParameterError

__all__ = ["Classify2DConfig"]

Mode = Literal["create", "update"]
CtfCorrection = Literal["phase_flip", "wiener"]


@dataclasses.dataclass(frozen=True)
class Classify2DConfig:
    """How particles are aligned and classified.

    Parameters
    ----------
    classes
        Number of classes in ``create`` mode (default 50); in ``update`` mode, the given references set it.
    mode
        ``"create"``: classes from scratch (PCA basis and initial references from a training subset);
        ``"update"``: start from given references and keep their class identities.
    variance
        Share of the training images' variance the PCA components cover (default 0.75), less the components
        that ``denoise`` drops.
    denoise
        Estimate the noise level of the training images and drop the PCA components that do not rise above
        it (Marchenko-Pastur margin; default on): at low SNR, components carrying only noise blur alignment.
    resolution
        Images are low-passed to this resolution (Angstrom, default 8), floored to ``2 * pixel_size``.
    training_size
        Particles (the first ones to arrive) used to fit the PCA basis and, in create mode, to find the
        initial classes.
    init_iterations
        Create mode: rounds of alignment and averaging on the training subset before streaming starts.
    mask, mask_sigma
        Weight images by a centred Gaussian of ``mask_sigma`` pixels when aligning; ``None`` or ``-1``
        (xmipp's convention) mean box / 3.
    ctf, wiener_snr
        CTF correction of each particle from its CTF coords: ``None``, ``"phase_flip"`` or ``"wiener"``
        (``CTF / (CTF^2 + 1 / wiener_snr)``).
    max_shift, shift_step
        Trial centres lie on a grid within ``max_shift`` Angstrom of the box centre (default 5% of the box),
        searched coarse (``2 * shift_step``) then fine (``shift_step``, default one pixel).
    subpixel
        Refine the best trial centre to a fraction of ``shift_step`` by a parabola through the distances of
        its neighbours on the fine grid (default on).
    mirror
        Also try each particle mirrored (``y -> -y`` about its centre) against every class (default on);
        ``rlnIsFlip`` tells which particles were mirrored.
    angular_step
        In-plane angles: a coarse scan of every reference, then steps of at most this many degrees around
        the best candidates, refined by interpolation.
    reference_weight
        Update mode: how many particles a given reference counts for in its running average when the
        references come without class sizes (default 10).
    seed
        Seeds the initial classes (and the loader's order in :func:`classify2d`).
    """

    classes: int = 50
    mode: Mode = "create"
    variance: float = 0.75
    denoise: bool = True
    resolution: float = 8.0
    training_size: int = 1000
    init_iterations: int = 5
    mask: bool = True
    mask_sigma: float | None = None
    ctf: CtfCorrection | None = None
    wiener_snr: float = 1.0
    max_shift: float | None = None
    shift_step: float | None = None
    subpixel: bool = True
    mirror: bool = True
    angular_step: float = 3.0
    reference_weight: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.classes >= 1, f"classes={self.classes}: give at least one class"),
            (self.mode in ("create", "update"), f"mode={self.mode!r}: use 'create' or 'update'"),
            (0.0 < self.variance <= 1.0, f"variance={self.variance}: give a share of variance in (0, 1]"),
            (self.resolution > 0, f"resolution={self.resolution}: give a positive resolution in Angstrom"),
            (self.training_size >= 2, f"training_size={self.training_size}: use at least 2 particles"),
            (self.init_iterations >= 0, f"init_iterations={self.init_iterations} must be >= 0"),
            (self.mask_sigma is None or self.mask_sigma > 0 or self.mask_sigma == -1,
             f"mask_sigma={self.mask_sigma}: give pixels > 0, or -1 for box / 3"),
            (self.ctf in (None, "phase_flip", "wiener"), f"ctf={self.ctf!r}: use None, 'phase_flip' or 'wiener'"),
            (self.wiener_snr > 0, f"wiener_snr={self.wiener_snr}: give a positive SNR"),
            (self.max_shift is None or self.max_shift >= 0, f"max_shift={self.max_shift}: give Angstrom >= 0"),
            (self.shift_step is None or self.shift_step > 0, f"shift_step={self.shift_step}: give Angstrom > 0"),
            (0 < self.angular_step <= 45, f"angular_step={self.angular_step}: give degrees in (0, 45]"),
            (self.reference_weight > 0, f"reference_weight={self.reference_weight} must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)

    def sigma_pixels(self, box: int) -> float | None:
        """The mask's sigma in pixels, or None without a mask."""
        if not self.mask:
            return None
        if self.mask_sigma is None or self.mask_sigma == -1:
            return box / 3.0
        return float(self.mask_sigma)

    def shifts_pixels(self, box: int, pixel_size: float) -> tuple[float, float]:
        """``(max_shift, step)`` in pixels."""
        step = 1.0 if self.shift_step is None else self.shift_step / pixel_size
        largest = 0.05 * box if self.max_shift is None else self.max_shift / pixel_size
        return largest, step

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Classify2DConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
