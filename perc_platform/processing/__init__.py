"""Processing: preprocessing for training (window, Fourier crop, normalise), CTF correction, Noise2Noise."""

from perc_platform.processing._export import write_particles as write_particles
from perc_platform.processing._images import fourier_crop as fourier_crop
from perc_platform.processing._images import window_mask as window_mask
from perc_platform.processing._preprocess import open_preprocessed as open_preprocessed
from perc_platform.processing._preprocess import preprocess as preprocess
from perc_platform.processing._preprocess import store_progress as store_progress
from perc_platform.processing.ctf import ctf as ctf
from perc_platform.processing.ctf import particle_ctf as particle_ctf
from perc_platform.processing.ctf import phase_flip as phase_flip
from perc_platform.processing.ctf import wiener_filter as wiener_filter
from perc_platform.processing.noise2noise import extract_patches as extract_patches
from perc_platform.processing.noise2noise import noise2noise_pairs as noise2noise_pairs
from perc_platform.processing.noise2noise import normalise_percentile as normalise_percentile

__all__ = [
    "ctf",
    "extract_patches",
    "fourier_crop",
    "noise2noise_pairs",
    "normalise_percentile",
    "open_preprocessed",
    "particle_ctf",
    "phase_flip",
    "preprocess",
    "store_progress",
    "wiener_filter",
    "window_mask",
    "write_particles",
]
