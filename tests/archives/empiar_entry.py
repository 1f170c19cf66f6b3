"""A mini EMPIAR tree for the tests: generated stacks, micrographs and movies, plus real data served in place.

``10999`` (generated from the folder tree)::

    data/particles/Extract/job012/mics/stack_00{1,2,3}.mrcs   generated, 24x24 float32 (40, 25, 30 images)
    data/particles/run.star                                    RELION 3.1 rows for stack_001 (every other image)
    data/real/relion31.{mrcs,star}, ay19...mrcs, sta_testing_bin8.star   symlinks to ../shared/data/particles
    data/micrographs/mic_00{0,1,2}.mrc                          single images, 48x40 int16
    data/movies/movie_00{0,1}.mrc                               6 frames of 32x32 uint16
``10934`` (the real entry XML; the TIFF movies are tiny stand-ins named as on the archive).
"""

from __future__ import annotations

import bz2
import io
from pathlib import Path

import numpy as np
import tifffile

from perc_platform.testing import write_stack, write_star

NUMBER = "10999"
STACKS = {"stack_001.mrcs": 40, "stack_002.mrcs": 25, "stack_003.mrcs": 30}
BOX = 24
EXTRACT = "data/particles/Extract/job012/mics"
REAL = ["relion31.mrcs", "relion31.star", "ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs",
        "sta_testing_bin8.star"]
TIFF_DIR = "data/CL44-1_20201106_111915/Images-Disc1/GridSquare_6089277/Data"
TIFF_NAMES = ["FoilHole_6099220_Data_6093696_6093698_20201107_003042_fractions.tiff.bz2",
              "FoilHole_6099220_Data_6093696_6093698_20201107_003042_gain.tiff.bz2"]


def build_tree(root: Path, shared: Path) -> Path:
    """Write the mini tree under ``root`` (returned)."""
    entry = root / NUMBER
    for i, (name, n) in enumerate(STACKS.items()):
        write_stack(entry / EXTRACT / name, n, (BOX, BOX), seed=100 + i, pixel_size=1.0)
    write_star(entry / "data/particles/run.star", "Extract/job012/mics/stack_001.mrcs", 40, pixel_size=1.7,
               rows=range(0, 40, 2))
    (entry / "data/real").mkdir(parents=True)
    for name in REAL:
        (entry / "data/real" / name).symlink_to(shared / "particles" / name)
    for i in range(3):
        write_stack(entry / "data/micrographs" / f"mic_{i:03d}.mrc", 1, (40, 48), dtype="int16", seed=200 + i,
                    pixel_size=0.9)
    for i in range(2):
        write_stack(entry / "data/movies" / f"movie_{i:03d}.mrc", 6, (32, 32), dtype="uint16", seed=300 + i,
                    pixel_size=0.8)
    real = root / "10934"
    (real / TIFF_DIR).mkdir(parents=True)
    (real / "10934.xml").symlink_to(shared / "api" / "empiar_10934.xml")
    movie, gain = tiff_movie_and_gain()
    for name, data in zip(TIFF_NAMES, (movie, gain), strict=True):  # as the archive serves them: TIFF, bzip2
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, data, photometric="minisblack", compression="lzw", rowsperstrip=8)
        (real / TIFF_DIR / name).write_bytes(bz2.compress(buffer.getvalue(), compresslevel=1))
    return root


def tiff_movie_and_gain() -> tuple[np.ndarray, np.ndarray]:
    """The frames of the .tiff.bz2 movie (counting-mode uint8) and its float32 gain, as written into the tree."""
    rng = np.random.default_rng(10934)
    return rng.poisson(1.2, (5, 40, 36)).astype(np.uint8), rng.uniform(0.8, 1.2, (40, 36)).astype(np.float32)

