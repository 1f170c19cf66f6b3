"""Neural maps on the real maps: voxel error, upsampling vs cubic/trilinear/Fourier, format size, fit time,
density graphs (the figures of issue 19).

Usage: python benchmarks/bench_neural.py [--maps ...] [--skip fit resample region graph format]
                                         [--max-steps N] [--device cpu|cuda]

Design measured here (defaults of ``fit_neural_map``): a cubic B-spline through the voxels is the base and
a small SIREN per region (2 x 64, omega_0 30) is fitted to the residual on a half-voxel grid, whose target
is the map's band-limited (Fourier) interpolation. All regions of a map are one batched model.

1. Voxel MAE on the map normalised to [0, 1], per map (acceptance: <= 0.005, no region above target
   without the warning).
2. Upsampling: each map cropped to even sizes and Fourier-downsampled by 2 (coarse voxel k = fine voxel 2k),
   fitted, and evaluated on the original voxels inside the coarse extent; against trilinear and cubic
   (``scipy.ndimage.map_coordinates`` order 1 / 3) and Fourier zero-padding on the same registered voxels.
   ``neural`` is the default neural map (cubic base + SIREN residual); ``neural_fourier_base`` is
   ``fit_neural_map(base="fourier")``, whose base is the mirrored map's Fourier refinement (no SIREN fit).
3. Format: ``NeuralMap.save(precision="uint8")`` bytes / the MRC file's bytes, with the MAE of the
   reloaded map (acceptance: reported at MAE <= 0.01; goal <= 0.25).
4. Fit time of one 64^3 region (a crop of emd_5168) on the CPU, and on a CUDA GPU when there is one
   (``fit_s_per_region_gpu`` in the default precision, mixed on CUDA; ``fit_s_per_region_gpu_float32``;
   both null without CUDA).
5. Density graphs with default settings: emd_2566 crop vs 3J6B chain 9 (EMD-2566 is a 3.2 A map, given
   once), emd_5168 segment vs 3MFP (6.6 A), and the demo's simulated 4-helix bundle (6 A; coverage per helix).

Sweep of the residual SIREN (emd_6824 Fourier-downsampled by 2, residual = Fourier - cubic interpolation on
the half-voxel grid; upsampling MAE of cubic + SIREN against the original voxels; cubic alone 0.00455,
Fourier 0.00377; 2 cores at load 6-11; see benchmarks/results/neural.md):

    SIREN    omega_0  lr     steps  upsampling MAE  residual error (start 0.00359)
    3 x 64   30       1e-3   400    0.00490         0.00404
    3 x 128  90       1e-3   300    0.00499         0.00412
    2 x 64   30       1e-4   300    0.00456         0.00363

No setting learnt the half-voxel correction, so a region keeps a zero residual (the spline) unless its fit
lowers the error on its targets; neural upsampling then equals cubic. A second sweep (first-layer omega up to
300, Fourier features; benchmarks/results/neural.md) learnt nothing either. What beats cubic is a band-limited
base: ``base="fourier"`` (cubic spline through the map's Fourier refinement after a 16-voxel mirror pad;
mean 0.00829 against cubic 0.00893), with no SIREN fit. The older design (SIREN alone,
4 x 256, 1500 steps) gave voxel MAE 0.0067-0.0078 and upsampling error 0.0156 against cubic 0.0089.

Last line: JSON with mae_per_map, resample_error {neural, cubic, trilinear, fourier} (mean over the maps),
format_bytes_ratio (worst map) with its MAE, fit_s_per_region_cpu, fit_s_per_region_gpu (null without
CUDA), graph {pair: coverage, precision, ...} and the machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from scipy import ndimage

import perc_platform.neural_maps as nm
from perc_platform import open_volume
from perc_platform.neural_maps._spline import fourier_upsample

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MAPS = ["emd_5168.map", "emd_6824.mrc", "emd_2566_3J6B_chain9_crop.mrc"]
#: pair -> (map, model, resolution in A), each resolution given here once. EMD-2566 (fitted model PDB 3J6B)
#: is the yeast mitochondrial large ribosomal subunit at 3.2 A (Amunts et al., Science 343:1485, 2014); the
#: DAQ crop's header and ../shared/data/MANIFEST.md do not state it. EMD-5168: 6.6 A, from the MANIFEST
#: (as used in the TEMPy example script).
PAIRS = {"3J6B_chain9": ("emd_2566_3J6B_chain9_crop.mrc", "3J6B_chain9.pdb", 3.2),
         "3MFP_tempy": ("emd_5168_monomer_segment.mrc", "3MFP_tempy.pdb", 6.6)}


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


def fit(density: xr.DataArray, args: argparse.Namespace, device: str | None = None,
        **extra: Any) -> nm.NeuralMap:
    options = {**({} if args.max_steps is None else {"max_steps": args.max_steps}), **extra}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nmap = nm.fit_neural_map(density, device=device or args.device, progress=None, **options)
    for w in caught:
        print(f"  warning: {w.message}", flush=True)
    return nmap


def folder_bytes(folder: Path) -> int:
    return sum(os.path.getsize(folder / f) for f in os.listdir(folder))


def demo_bundle() -> tuple[xr.DataArray, np.ndarray]:
    """The demo's map: its synthetic 4-helix bundle simulated at 6 A, 1.6 A voxels (as build_mini_archive)."""
    from perc_platform import open_structure, simulate
    from perc_platform.testing.structures import helix_bundle

    with tempfile.TemporaryDirectory() as tmp:
        pdb = helix_bundle(Path(tmp) / "9dem.pdb", seed=0)
        structure = open_structure(str(pdb))
        density = simulate.density_map(structure, voxel_size=1.6, resolution=6.0).compute()
        ca = nm.read_ca_positions(pdb)
    density.attrs["resolution"] = 6.0
    return density, ca


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=None, help="default: FitSettings().max_steps")
    parser.add_argument("--maps", nargs="*", default=MAPS)
    parser.add_argument("--skip", nargs="*", default=[], choices=["fit", "resample", "region", "graph", "format"])
    parser.add_argument("--device", default="cpu", help="where to fit: cpu or cuda")
    args = parser.parse_args()
    result: dict[str, Any] = {"config": {"siren": nm.RESIDUAL_SIREN.to_dict(), "fit": nm.FitSettings().to_dict(),
                                         "max_steps": args.max_steps, "device": args.device},
                              "load_before": os.getloadavg()[0]}
    fitted: dict[str, nm.NeuralMap] = {}

    if "fit" not in args.skip:
        print(f"{'map':34s} {'shape':>14s} {'regions':>7s} {'steps':>9s} {'fit s':>7s} {'voxel MAE':>10s} above")
        result["mae_per_map"], result["regions_above_target"] = {}, {}
        for name in args.maps:
            density = open_volume(DATA / "maps" / name).load()
            nmap = fitted[name] = fit(density, args)
            stats = nmap.attrs["region_stats"]
            mae = normalised_mae(nmap.sample().values, density.values)
            result["mae_per_map"][name] = mae
            result["regions_above_target"][name] = nmap.regions_above_target
            steps = [s["steps"] for s in stats]
            print(f"{name:34s} {density.shape!s:>14s} {len(stats):7d} {min(steps):4d}-{max(steps):<4d} "
                  f"{nmap.attrs['fit_seconds']:7.1f} {mae:10.2e} {nmap.regions_above_target}", flush=True)

    if "format" not in args.skip and fitted:
        print(f"\n{'saved (precision)':34s} {'bytes':>9s} {'MRC bytes':>9s} {'ratio':>6s} {'MAE':>9s}")
        result["format"] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, nmap in fitted.items():
                density = open_volume(DATA / "maps" / name).load()
                for precision in ("uint8", "uint16"):
                    folder = nmap.save(Path(tmp) / f"{name}.{precision}", precision=precision)
                    mae = normalised_mae(nm.NeuralMap.load(folder).sample().values, density.values)
                    size, mrc = folder_bytes(folder), os.path.getsize(DATA / "maps" / name)
                    result["format"][f"{name} {precision}"] = {"ratio": size / mrc, "mae": mae}
                    print(f"{name + ' (' + precision + ')':34s} {size:9d} {mrc:9d} {size / mrc:6.3f} {mae:9.2e}")
        at = [v for k, v in result["format"].items() if k.endswith("uint8") and v["mae"] <= 0.01]
        result["format_bytes_ratio"] = max(v["ratio"] for v in at) if at else None
        result["format_bytes_ratio_mae"] = max(v["mae"] for v in at) if at else None

    if "resample" not in args.skip:
        print(f"\n{'upsample x2 to original grid':34s} {'neural':>8s} {'cubic':>8s} {'trilin':>8s} {'fourier':>8s} "
              f"{'n.fourier':>9s}")
        errors: dict[str, dict[str, float]] = {"neural": {}, "cubic": {}, "trilinear": {}, "fourier": {},
                                               "neural_fourier_base": {}}
        for name in args.maps:
            even, small = coarse_map(open_volume(DATA / "maps" / name).load())
            inner = even.isel({d: slice(0, even.sizes[d] - 1) for d in ("z", "y", "x")})
            neural = fit(small, args).sample(like=inner).values
            index = np.meshgrid(*(np.arange(n) / 2.0 for n in inner.shape), indexing="ij")
            values = {"neural": neural,
                      "cubic": ndimage.map_coordinates(small.values, index, order=3, mode="mirror"),
                      "trilinear": ndimage.map_coordinates(small.values, index, order=1, mode="nearest"),
                      "fourier": fourier_upsample(small.values),
                      "neural_fourier_base": fit(small, args, base="fourier").sample(like=inner).values}
            for key, v in values.items():
                errors[key][name] = normalised_mae(v, inner.values)
            print(f"{name:34s} " + " ".join(f"{errors[k][name]:8.5f}" for k in errors), flush=True)
        result["resample_error"] = {k: float(np.mean(list(v.values()))) for k, v in errors.items()}
        result["resample_error_per_map"] = errors

    if "region" not in args.skip:
        density = open_volume(DATA / "maps" / "emd_5168.map").load()
        crop = density.isel(z=slice(18, 82), y=slice(18, 82), x=slice(18, 82))
        # On CUDA the default precision ("auto") is mixed; the float32 GPU figure shows what it buys.
        runs = (("fit_s_per_region_cpu", "cpu", "auto"), ("fit_s_per_region_gpu", "cuda", "auto"),
                ("fit_s_per_region_gpu_float32", "cuda", "float32"))
        for key, device, precision in runs:
            if device == "cuda" and not torch.cuda.is_available():
                result[key] = None
                continue
            if device == "cuda":
                fit(crop, args, device)  # warm-up: CUDA context and kernels, not part of the figure
            started = time.perf_counter()
            nmap = fit(crop, args, device, precision=precision)
            result[key] = time.perf_counter() - started
            stat = nmap.attrs["region_stats"][0]
            result[f"{key}_detail"] = {"precision": stat["precision"], "refit_float32": stat["refit_float32"],
                                       "steps": stat["steps"], "voxel_mae": stat["voxel_mae"]}
            print(f"\none 64^3 region on {device} ({stat['precision']}): {result[key]:.1f} s (targets, fit and "
                  f"scoring), {stat['steps']} steps, stopped by {stat['stopped']}, voxel MAE {stat['voxel_mae']:.1e}")

    if "graph" not in args.skip:
        print(f"\n{'density graph (defaults)':34s} {'nodes':>6s} {'edge A':>6s} {'coverage':>9s} {'precision':>9s} "
              f"{'rmsd':>6s} {'s':>6s}")
        result["graph"] = {}
        cases: dict[str, tuple[nm.NeuralMap, Any, float]] = {}
        for pair, (map_name, model, resolution) in PAIRS.items():
            nmap = fitted.get(map_name) or fit(open_volume(DATA / "maps" / map_name).load(), args)
            cases[pair] = (nmap, DATA / "structures" / model, resolution)
        bundle, bundle_ca = demo_bundle()
        cases["demo_4_helix_bundle"] = (fit(bundle, args), bundle_ca, 6.0)
        for pair, (nmap, model, resolution) in cases.items():
            started = time.perf_counter()
            graph = nm.density_graph(nmap, resolution=resolution)
            seconds = time.perf_counter() - started
            score = nm.evaluate_graph(graph, model)
            entry = {"coverage": score.coverage, "precision": score.precision, "rmsd": score.rmsd,
                     "nodes": score.n_nodes, "edge_length": graph.graph["edge_length"], "resolution": resolution}
            if pair == "demo_4_helix_bundle":
                entry["coverage_per_helix"] = [nm.evaluate_graph(graph, part).coverage
                                               for part in np.array_split(bundle_ca, 4)]
            result["graph"][pair] = entry
            print(f"{pair:34s} {score.n_nodes:6d} {graph.graph['edge_length']:6.1f} {score.coverage:9.3f} "
                  f"{score.precision:9.3f} {score.rmsd:6.2f} {seconds:6.1f}"
                  + (f"  per helix {[round(c, 2) for c in entry['coverage_per_helix']]}"
                     if "coverage_per_helix" in entry else ""), flush=True)
    result["load_after"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
