"""Catalog tour: open the shipped catalog, open data lazily, look at coords, read a few particles.

Run: python examples/catalog_tour.py   (makes its own small data in a temporary folder)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import perc_platform as pp
from perc_platform.datasets import select_particles
from perc_platform.testing import write_stack, write_star


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="perc-tour-"))
    write_stack(folder / "particles.mrcs", 500, (64, 64), pixel_size=1.4)
    write_star(folder / "particles.star", "particles.mrcs", 500, pixel_size=1.4)

    cat = pp.open_catalog(pp.catalogs.catalog_path())          # the shipped root catalog, checked first
    print("entries:", ", ".join(cat))
    source = cat.local_particles(urlpath=str(folder / "particles.mrcs"), star=str(folder / "particles.star"))
    print("discover (headers only):", source.discover()["shape"])
    images = source.to_dask()["image"]                          # lazy (particle, y, x), STAR columns as coords
    print(images)
    print("pixel size:", images.attrs["pixel_size"], "A; defocus of particle 0:", float(images.defocus_u[0]), "A")
    picked = select_particles(images, [3, 141, 59])             # reads only these three images
    print("three particles, mean per image:", picked.mean(("y", "x")).values.round(3))
    per_class = images.mean(("y", "x")).groupby("class_number").mean().compute()
    print("mean image value per class:", dict(zip(per_class.class_number.values.tolist(),
                                                  per_class.values.round(4).tolist(), strict=True)))


if __name__ == "__main__":
    main()
