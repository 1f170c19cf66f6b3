"""Neural maps on the real maps: fit error, resampling vs trilinear/cubic, fit time per region, density graphs.

Usage: python benchmarks/bench_neural.py [--layers 4] [--width 256] [--max-steps 1500] [--maps ...]
                                         [--graph-threshold 0.4] [--cluster]

1. Fit each map (emd_5168 100^3, emd_6824 70^3, emd_2566 crop); mean absolute error at the voxel centres
   on the map normalised to [0, 1] (acceptance: <= 0.01).
2. Resampling: crop each map to even sizes, downsample by 2 in Fourier space (keep the central half of
   the spectrum; coarse voxel k sits at fine voxel 2k), fit on the coarse map, resample to the original
   grid. Neural, trilinear and cubic-spline (scipy.ndimage.map_coordinates) are all evaluated at the same
   Angstrom positions: the original voxels inside the coarse map's extent (fine indices 0 .. N-2). For
   comparison, a misregistered trilinear baseline (scipy.ndimage.zoom, corners to corners) is shown too.
3. Fit time of one 64^3 region (a 64^3 crop of emd_5168) on this CPU.
4. Density graphs vs C-alpha atoms: emd_2566 crop vs 3J6B chain 9 (resolution unknown: 4 A edges),
   emd_5168 segment vs 3MFP (6.6 A: 13.2 A edges), at ``--graph-threshold`` and at the reference's
   ``max(0.1, mean + 3 sd)``.

Last line: JSON with mae_voxel (worst map), resample_error {neural, trilinear, cubic} (mean MAE over the
maps), fit_s_per_region (mean over the fitted regions; fit_s_per_64cube_region for one full 64^3
region), graph {pair: {coverage, precision, rmsd}} (graph_reference_threshold likewise) and the
configuration used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage

import perc_platform.neural_maps as nm
from perc_platform import open_volume

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MAPS = ["emd_5168.map", "emd_6824.mrc", "emd_2566_3J6B_chain9_crop.mrc"]
#: pair -> (map, model, resolution in A if known: MANIFEST gives 6.6 A for EMD-5168, none for the crop)
PAIRS = {"3J6B_chain9": ("emd_2566_3J6B_chain9_crop.mrc", "3J6B_chain9.pdb", None),
         "3MFP_tempy": ("emd_5168_monomer_segment.mrc", "3MFP_tempy.pdb", 6.6)}


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def normalised_mae(values: np.ndarray, reference: np.ndarray) -> float:
    low, high = float(reference.min()), float(reference.max())
    return float(np.abs(values - reference).mean() / (high - low))


def fourier_downsample(values: np.ndarray) -> np.ndarray:
    """Keep the central half of the (even-sized) spectrum along each axis; values keep their scale."""
    spectrum = np.fft.fftshift(np.fft.fftn(values))
    keep = tuple(slice(n // 2 - n // 4, n // 2 - n // 4 + n // 2) for n in values.shape)
    small = np.fft.ifftn(np.fft.ifftshift(spectrum[keep])).real
    return small * (small.size / values.size)


def coarse_map(density: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """The map cropped to even sizes, and its Fourier downsampling by 2 with correctly registered coords."""
    even = density.isel({d: slice(0, 2 * (density.sizes[d] // 2)) for d in ("z", "y", "x")})
    small = fourier_downsample(even.values.astype(np.float64))
    coords = {d: even[d].values[::2] for d in ("z", "y", "x")}  # coarse voxel k = fine voxel 2k
    voxel = [2 * v for v in even.attrs["voxel_size"]]
    attrs = {**even.attrs, "voxel_size": voxel, "source_id": f"{even.attrs.get('source_id')} (Fourier bin 2)"}
    return even, xr.DataArray(small, dims=("z", "y", "x"), coords=coords, name="density", attrs=attrs)


def fit(density: xr.DataArray, args: argparse.Namespace, client: Any) -> nm.NeuralMap:
    config = nm.SirenConfig(args.layers, args.width)
    return nm.fit_neural_map(density, config=config, max_steps=args.max_steps, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, target_mae=args.target_mae,
                             client=client, device=None if client is not None else args.device, progress=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--target-mae", type=float, default=0.008)
    parser.add_argument("--maps", nargs="*", default=MAPS)
    parser.add_argument("--graph-threshold", type=float, default=0.4,
                        help="seed threshold on the normalised map (reference: max(0.1, mean + 3 sd))")
    parser.add_argument("--skip", nargs="*", default=[], choices=["fit", "resample", "region", "graph"])
    parser.add_argument("--cluster", action="store_true", help="fit regions on a 2-worker LocalCluster")
    parser.add_argument("--device", default="cpu", help="where to fit without --cluster: cpu or cuda")
    args = parser.parse_args()
    client = None
    if args.cluster:
        from distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address="127.0.0.1:0"))
    result: dict[str, Any] = {"config": {"layers": args.layers, "width": args.width, "max_steps": args.max_steps,
                                         "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                                         "target_mae": args.target_mae, "cluster": args.cluster,
                                         "device": args.device}}
    fitted: dict[str, nm.NeuralMap] = {}
    region_seconds: list[float] = []

    if "fit" not in args.skip:
        print(f"{'map':34s} {'shape':>14s} {'regions':>7s} {'steps':>11s} {'fit s':>7s} {'MAE':>8s}")
        maes = {}
        for name in args.maps:
            density = open_volume(DATA / "maps" / name).load()
            nmap = fit(density, args, client)
            fitted[name] = nmap
            stats = nmap.attrs["region_stats"]
            region_seconds += [nmap.attrs["fit_seconds"] / len(stats)] * len(stats)
            maes[name] = normalised_mae(nmap.sample().values, density.values)
            steps = [s["steps"] for s in stats]
            print(f"{name:34s} {density.shape!s:>14s} {len(stats):7d} {min(steps):5d}-{max(steps):<5d} "
                  f"{nmap.attrs['fit_seconds']:7.1f} {maes[name]:8.4f}", flush=True)
        result["mae_voxel"] = max(maes.values())
        result["mae_per_map"] = maes

    if "resample" not in args.skip:
        print(f"\n{'resample to original grid':34s} {'neural':>8s} {'trilin':>8s} {'cubic':>8s} {'misreg':>8s}")
        errors: dict[str, dict[str, float]] = {"neural": {}, "trilinear": {}, "cubic": {}, "trilinear_zoom": {}}
        for name in args.maps:
            even, small = coarse_map(open_volume(DATA / "maps" / name).load())
            inner = even.isel({d: slice(0, even.sizes[d] - 1) for d in ("z", "y", "x")})
            nmap = fit(small, args, client)
            neural = nmap.sample(like=inner).values
            index = np.meshgrid(*(np.arange(n) / 2.0 for n in inner.shape), indexing="ij")
            trilinear = ndimage.map_coordinates(small.values, index, order=1, mode="nearest")
            cubic = ndimage.map_coordinates(small.values, index, order=3, mode="mirror")
            zoomed = ndimage.zoom(small.values, np.divide(even.shape, small.shape), order=1)
            zoomed = zoomed[tuple(slice(0, n) for n in inner.shape)]
            reference = inner.values
            for key, values in (("neural", neural), ("trilinear", trilinear), ("cubic", cubic),
                                ("trilinear_zoom", zoomed)):
                errors[key][name] = normalised_mae(values, reference)
            print(f"{name:34s} " + " ".join(f"{errors[k][name]:8.4f}" for k in errors), flush=True)
        result["resample_error"] = {k: float(np.mean(list(v.values()))) for k, v in errors.items()
                                    if k != "trilinear_zoom"}
        result["resample_error_misregistered_trilinear"] = float(np.mean(list(errors["trilinear_zoom"].values())))
        result["resample_error_per_map"] = errors

    if "region" not in args.skip:
        density = open_volume(DATA / "maps" / "emd_5168.map").load()
        crop = density.isel(z=slice(18, 82), y=slice(18, 82), x=slice(18, 82))
        nmap = fit(crop, args, client)
        stat = nmap.attrs["region_stats"][0]
        result["fit_s_per_64cube_region"] = nmap.attrs["fit_seconds"]
        print(f"\none 64^3 region (emd_5168 centre): {nmap.attrs['fit_seconds']:.1f} s, {stat['steps']} steps, "
              f"check MAE {stat['mae']:.4f}, stopped by {stat['stopped']}")
        region_seconds.append(nmap.attrs["fit_seconds"])
    result["fit_s_per_region"] = float(np.mean(region_seconds)) if region_seconds else None

    if "graph" not in args.skip:
        print(f"\n{'density graph (seed threshold)':34s} {'nodes':>6s} {'coverage':>9s} {'precision':>9s} "
              f"{'rmsd':>6s} {'s':>6s}")
        result["graph"], result["graph_reference_threshold"] = {}, {}
        for pair, (map_name, model, resolution) in PAIRS.items():
            nmap = fitted.get(map_name) or fit(open_volume(DATA / "maps" / map_name).load(), args, client)
            # the given threshold, then the reference's max(0.1, mean + 3 sd)
            for key, threshold in (("graph", args.graph_threshold), ("graph_reference_threshold", None)):
                started = time.perf_counter()
                graph = nm.density_graph(nmap, threshold=threshold, resolution=resolution)
                seconds = time.perf_counter() - started
                score = nm.evaluate_graph(graph, DATA / "structures" / model)
                result[key][pair] = {"coverage": score.coverage, "precision": score.precision, "rmsd": score.rmsd,
                                     "nodes": score.n_nodes, "threshold": graph.graph["threshold"],
                                     "edge_length": graph.graph["edge_length"]}
                label = f"{pair} ({graph.graph['threshold']:.3f})"
                print(f"{label:34s} {score.n_nodes:6d} {score.coverage:9.3f} {score.precision:9.3f} "
                      f"{score.rmsd:6.2f} {seconds:6.1f}", flush=True)
    if client is not None:
        client.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
