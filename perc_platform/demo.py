"""The demo on the embedded default: make sample data, open it through ``catalogs/demo.yaml``, compute.

Runs offline on any machine: the data are generated here (a particle stack with a RELION 3.1 STAR file
and a density map of Gaussian blobs), the work runs on the embedded local Dask cluster.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from perc_platform.testing.factories import write_stack, write_star, write_volume

__all__ = ["make_demo_data", "run_demo"]


def _say(message: str) -> None:
    print(f"[perc demo] {message}", flush=True)


def make_demo_data(folder: Path, n_particles: int = 2000, box: int = 64, seed: int = 0) -> dict[str, Path]:
    """Write the demo stack, STAR file and map into ``folder`` (skips files already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    stack, star, volume = folder / "particles.mrcs", folder / "particles.star", folder / "map.mrc"
    if not stack.exists():
        write_stack(stack, n_particles, (box, box), seed=seed, pixel_size=1.5)
    if not star.exists():
        write_star(star, stack.name, n_particles, pixel_size=1.5, seed=seed)
    if not volume.exists():
        rng = np.random.default_rng(seed)
        grid = np.indices((48, 48, 48), dtype=np.float32)
        density = np.zeros((48, 48, 48), np.float32)
        for centre in rng.uniform(12, 36, size=(12, 3)):
            density += np.exp(-((grid - centre[:, None, None, None]) ** 2).sum(0) / (2 * 2.0**2))
        write_volume(volume, density, voxel_size=1.5, origin=(-36.0, -36.0, -36.0))
    return {"particles": stack, "star": star, "map": volume}


def run_demo(out_dir: Path) -> dict[str, float]:
    """Run the demo; write data under ``out_dir/data`` and return the statistics it printed."""
    import dask
    import intake

    from perc_platform.catalogs import catalog_path
    from perc_platform.cluster import get_client

    started = time.perf_counter()
    data_dir = Path(out_dir).resolve() / "data"
    _say(f"generating sample data in {data_dir}")
    make_demo_data(data_dir)
    client = get_client()
    _say(f"embedded Dask cluster up: {len(client.scheduler_info()['workers'])} workers, "
         f"dashboard {client.dashboard_link}")
    with warnings.catch_warnings():  # intake 2.0 warns about shell commands on every string default
        warnings.filterwarnings("ignore", message="Shell command not executed", category=UserWarning)
        cat = intake.open_catalog(str(catalog_path("demo.yaml")))
        particles = cat.particles(data_dir=str(data_dir)).to_dask()
        density = cat.map(data_dir=str(data_dir)).to_dask()["density"]
    _say(f"opened catalog {catalog_path('demo.yaml').name}: entries {list(cat)}")
    images = particles["image"]
    _say(f"particles: {dict(images.sizes)} {images.dtype}, pixel size {images.attrs['pixel_size']} A, "
         f"{len(images.chunks[0])} lazy chunks; coords {sorted(images.coords)[:6]}...")
    _say(f"map: {dict(density.sizes)}, voxel {density.attrs['voxel_size']} A, origin {density.attrs['origin']} A")
    mean, std, per_class = dask.compute(images.mean(), images.std(),
                                        images.mean(("y", "x")).groupby("class_number").mean())
    values = density.values
    peak = np.unravel_index(int(values.argmax()), values.shape)
    stats = {"particle_mean": float(mean), "particle_std": float(std), "map_max": float(values.max()),
             "map_peak_z": float(density.z[peak[0]]), "elapsed_s": time.perf_counter() - started}
    print()
    print(f"{'statistic':28s} value")
    print(f"{'particles':28s} {images.sizes['particle']}")
    print(f"{'particle mean / std':28s} {stats['particle_mean']:.4f} / {stats['particle_std']:.4f}")
    for cls, value in zip(per_class["class_number"].values, per_class.values, strict=True):
        print(f"{'  class ' + str(cls) + ' mean image value':28s} {float(value):.4f}")
    print(f"{'map max density':28s} {stats['map_max']:.4f} at z = {stats['map_peak_z']:.1f} A")
    print(f"{'elapsed':28s} {stats['elapsed_s']:.1f} s")
    return stats
