"""Streaming 2-D classification: PCA-based alignment and classification that updates as particles arrive.

xmipp alignPCA-2D streaming parity: a steerable-PCA basis learned from the first particles (components
covering ``variance`` of the variance, low-passed to ``resolution``), in-plane alignment of every particle to
every reference in PCA space (all angles by one FFT, trial centres coarse then fine), assignment to the
nearest class, running class averages updated after each batch; ``create`` and ``update`` modes, an optional
Gaussian mask and CTF correction (phase flip or Wiener); the state is saved after each batch and a stopped
run resumes, also on a set that has grown since (the new particles form a new segment of the run).
:func:`watch_classify2d` follows a folder that an upstream job is still writing and classifies in rounds
as particles arrive (``perc classify2d --watch``).

``classify2d(images, classes=20, output="run/")`` runs it over a particle DataArray (through
``perc_platform.ml.ParticleLoader``); :class:`StreamingClassifier2D` is the core for any iterator of batches
(dicts of tensors: ``image``, ``index`` and the CTF columns).
"""

from perc_platform.processing.classify2d._classifier import CTF_COLUMNS as CTF_COLUMNS
from perc_platform.processing.classify2d._classifier import StreamingClassifier2D as StreamingClassifier2D
from perc_platform.processing.classify2d._config import Classify2DConfig as Classify2DConfig
from perc_platform.processing.classify2d._driver import Classification2D as Classification2D
from perc_platform.processing.classify2d._driver import classify2d as classify2d
from perc_platform.processing.classify2d._driver import load_classification as load_classification
from perc_platform.processing.classify2d._outputs import class_averages as class_averages
from perc_platform.processing.classify2d._outputs import particle_assignments as particle_assignments
from perc_platform.processing.classify2d._outputs import write_classes as write_classes
from perc_platform.processing.classify2d._outputs import write_montage as write_montage
from perc_platform.processing.classify2d._outputs import write_particle_star as write_particle_star
from perc_platform.processing.classify2d._watch import ParticleFolder as ParticleFolder
from perc_platform.processing.classify2d._watch import watch_classify2d as watch_classify2d

__all__ = [
    "CTF_COLUMNS",
    "Classification2D",
    "Classify2DConfig",
    "ParticleFolder",
    "StreamingClassifier2D",
    "class_averages",
    "classify2d",
    "load_classification",
    "particle_assignments",
    "watch_classify2d",
    "write_classes",
    "write_montage",
    "write_particle_star",
]
