"""The demo, step by step: cluster, mini archive, catalog, lazy loads over HTTP, a torch epoch, 2D classes,
a neural map with its density graph; pictures and files into ``out``, a summary table at the end."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from perc_platform._environ import environment
from perc_platform.config import override

__all__ = ["run_demo"]


def _say(message: str) -> None:
    print(f"[perc demo] {message}", flush=True)


@contextmanager
def _step(name: str, timings: dict[str, float]) -> Iterator[None]:
    _say(f"{name} ...")
    started = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - started
    _say(f"{name}: done in {timings[name]:.1f} s")


def _settings(variables: dict[str, str]) -> dict[str, str]:
    """``{"PERC_RCSB_FILES_URL": u}`` (what the loopback archive reports) as settings ``{"rcsb_files_url": u}``."""
    return {name[len("PERC_"):].lower(): value for name, value in variables.items()}


def _serve(archive: Any, stack: ExitStack, client: Any) -> Any:
    """Start the loopback archive (RCSB, EMDB and EMPIAR routes) and use it as the archives' endpoints, here
    and on the cluster's workers (passed as settings, not through the environment)."""
    from perc_platform.cluster import register_config_plugin
    from perc_platform.testing.archive import ArchiveServer
    from perc_platform.testing.empiar import add_empiar_routes

    server = ArchiveServer(*archive.indexed).start()
    stack.callback(server.stop)
    endpoints = {**server.env, **add_empiar_routes(server, archive.root / "empiar")}
    stack.enter_context(override(**_settings(endpoints)))
    register_config_plugin(client)  # the workers started before the archive did: give them its endpoints
    return server


def loopback_direct() -> dict[str, str]:
    """``no_proxy`` values that add the loopback addresses, so that the demo's own loopback archive is reached
    directly even where ``http_proxy`` is set (a proxy elsewhere cannot reach this machine's loopback)."""
    values = {}
    for name in ("no_proxy", "NO_PROXY"):
        have = [h for h in os.environ.get(name, "").split(",") if h.strip()]
        values[name] = ",".join([*have, *(h for h in ("127.0.0.1", "localhost") if h not in have)])
    return values


def run_demo(out_dir: Path, *, real_data: Path | None = None, n_particles: int = 1200, classes: int = 6,
             fit_steps: int | None = None) -> dict[str, Any]:
    """Run the demo; write pictures and files into ``out_dir`` and return the summary figures.

    Downloads go to ``out_dir/cache`` (the demo's ids are made up, so they stay out of the user's cache).
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # The demo's ids (9DEM, EMD-90001, ...) are made up: keep them out of the user's real cache.
    with override(cache_dir=out / "cache"), environment(loopback_direct()):
        return _run(out, real_data, n_particles, classes, fit_steps)


def _run(out: Path, real_data: Path | None, n_particles: int, classes: int,
         fit_steps: int | None) -> dict[str, Any]:
    import intake

    from perc_platform.catalogs import catalog_path
    from perc_platform.cluster import get_client
    from perc_platform.demo._data import build_mini_archive, real_data_archive

    timings: dict[str, float] = {}
    summary: dict[str, Any] = {}
    started = time.perf_counter()
    with ExitStack() as stack:
        with _step("starting the embedded Dask cluster", timings):
            client = get_client()
            _say(f"dashboard: {client.dashboard_link}  ({len(client.scheduler_info()['workers'])} workers)")
        with _step("making the mini archive", timings):
            archive = real_data_archive(real_data, out / "archive") if real_data else \
                build_mini_archive(out / "archive", n_particles=n_particles, say=_say)
            server = _serve(archive, stack, client)
            _say(f"loopback archive at {server.url} serving {archive.pdb_id}, {archive.emdb_id}, {archive.empiar_id}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Shell command not executed", category=UserWarning)
            cat = intake.open_catalog(str(catalog_path("demo.yaml")))
            _say(f"opened catalogs/demo.yaml with intake.open_catalog: {list(cat)}")
            with _step("fetching the structure", timings):
                structure = cat.structure(pdb_id=archive.pdb_id).to_dask()
                summary["structure atoms"] = structure.sizes["atom"]
            with _step("loading the map lazily (EMDB .map.gz, cached once)", timings):
                density = cat.map(emdb_id=archive.emdb_id).to_dask()["density"]
                summary["map shape"] = "x".join(str(s) for s in density.shape)
            with _step("opening the particles lazily over HTTP", timings):
                images = cat.particles(entry=archive.empiar_id, star=archive.star).to_dask()["image"]
                summary["particles"] = images.sizes["particle"]
                _say(f"particles {dict(images.sizes)}, pixel size {images.attrs.get('pixel_size')} A, "
                     f"{len(images.chunks[0])} lazy chunks over {len(images.attrs.get('stack_files', []))} stacks")
        with _step("streaming one epoch through the torch loader", timings):
            summary["loader images/s"] = _epoch(images)
        with _step("2D classification (streaming)", timings):
            summary.update(_classify(images, max(2, min(classes, images.sizes["particle"] // 30)), out))
        with _step("fitting a neural map on the cluster and its density graph", timings):
            summary.update(_neural(density.load(), structure, archive.resolution, fit_steps, client, out,
                                   None if real_data else 4))
    summary["elapsed s"] = round(time.perf_counter() - started, 1)
    _table(summary, timings, out)
    return summary


def _epoch(images: Any) -> float:
    from perc_platform.ml import ParticleLoader
    from perc_platform.ml.transforms import Standardize

    loader = ParticleLoader(images, batch_size=128, mode="stream", device="cpu", seed=0, transforms=[Standardize()])
    seen, started = 0, time.perf_counter()
    for i, batch in enumerate(loader):
        seen += int(batch["image"].shape[0])
        if i % 4 == 0:
            _say(f"  batch {i + 1}: {seen}/{images.sizes['particle']} images, mean {float(batch['image'].mean()):+.3f}")
    rate = seen / (time.perf_counter() - started)
    _say(f"  epoch: {seen} images at {rate:.0f} images/s")
    return round(rate, 1)


def _classify(images: Any, classes: int, out: Path) -> dict[str, Any]:
    from perc_platform.processing.classify2d import classify2d

    def progress(info: dict[str, Any]) -> None:
        _say(f"  batch {info['batches_done']}/{info['batches']}: {info['particles_done']} particles, "
             f"{info['particles_s']:.0f} particles/s, class sizes {info['class_sizes']}")

    result = classify2d(images, classes=classes, output=out / "classify2d", batch_size=200, resume=False,
                        progress=progress)
    paths = result.write(out / "classes")
    _say(f"  class sizes: {result.sizes.tolist()}; montage {paths['montage']}")
    return {"classes": classes, "class sizes": " ".join(str(int(s)) for s in result.sizes)}


def _neural(density: Any, structure: Any, resolution: float | None, steps: int | None, client: Any, out: Path,
            helices: int | None) -> dict[str, Any]:
    """Fit the map with the default settings, draw it, and build, save and score its density graph.

    The resolution comes from the map's EMDB entry record (``density.attrs``), else from the archive.
    """
    from perc_platform.demo._pictures import graph_picture, map_slices
    from perc_platform.neural_maps import (
        density_graph,
        evaluate_graph,
        fit_neural_map,
        read_ca_positions,
        write_graph,
        write_graph_mmcif,
    )

    options: dict[str, Any] = {} if steps is None else {"max_steps": steps}
    neural = fit_neural_map(density, client=client, progress=True, **options)
    sampled = neural.sample(like=density)
    norm = lambda v: (v - float(density.min())) / (float(density.max()) - float(density.min()))  # noqa: E731
    mae = float(np.abs(norm(sampled.values) - norm(density.values)).mean())
    map_slices(density, sampled, out / "map_slices.png")
    resampled = neural.to_mrc(out / "neural_map_1A.mrc", voxel_size=1.0, overwrite=True)
    summary: dict[str, Any] = {"neural map MAE [0,1]": float(f"{mae:.2g}"),
                               "regions above target": len(neural.regions_above_target)}
    resolution = density.attrs.get("resolution") or resolution
    if resolution is None:
        _say("  the map's resolution is unknown (no EMDB entry record states it): density graph skipped")
        return summary
    _say(f"  resolution {resolution} A ({'EMDB entry' if density.attrs.get('resolution') else 'archive'})")
    graph = density_graph(neural, resolution=float(resolution))
    write_graph_mmcif(graph, out / "density_graph.cif")
    write_graph(graph, out / "density_graph.json")
    ca = read_ca_positions(structure)
    graph_picture(graph, ca, out / "density_graph.png")
    score = evaluate_graph(graph, ca)
    _say(f"  neural map MAE {mae:.2g} (map normalised to [0, 1]); resampled to 1 A: {resampled.name}; "
         f"graph {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges, edges <= "
         f"{graph.graph['edge_length']:.1f} A")
    summary.update({"graph nodes": graph.number_of_nodes(), "graph CA coverage": round(score.coverage, 3),
                    "graph precision": round(score.precision, 3), "graph RMSD A": round(score.rmsd, 2)})
    if helices:
        per = [evaluate_graph(graph, part).coverage for part in np.array_split(ca, helices)]
        summary["graph coverage per helix"] = " ".join(f"{c:.2f}" for c in per)
    return summary


def _table(summary: dict[str, Any], timings: dict[str, float], out: Path) -> None:
    print()
    print(f"{'perc demo summary':34s} value")
    print("-" * 60)
    for key, value in summary.items():
        print(f"{key:34s} {value}")
    print("-" * 60)
    for key, seconds in timings.items():
        print(f"{'time: ' + key[:28]:34s} {seconds:.1f} s")
    print(f"{'outputs':34s} {out}")
    for name in ("classes/classes.png", "map_slices.png", "density_graph.png", "neural_map_1A.mrc",
                 "density_graph.cif", "density_graph.json"):
        print(f"{'':34s} {name}")

