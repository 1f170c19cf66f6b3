"""``perc neural fit|graph``: fit a neural map to a density map; build its density graph."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("neural", help="fit SIREN neural maps and build density graphs")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = actions.add_parser("fit", help="fit a neural map to a density map (MRC path or URL)")
    f.add_argument("map", help="density map (.mrc/.map, .gz, or URL)")
    f.add_argument("--out", type=Path, required=True, help="folder for the neural map (weights + JSON metadata)")
    f.add_argument("--layers", type=int, default=None, help="hidden layers (default 2 over the spline base, else 4)")
    f.add_argument("--width", type=int, default=None, help="hidden width (default 64 over the spline base, else 256)")
    f.add_argument("--steps", type=int, default=None, help="step cap per region (default: FitSettings, 300)")
    f.add_argument("--base", choices=["cubic", "none"], default="cubic",
                   help="cubic: spline of the voxels + SIREN residual (default); none: SIREN alone")
    f.add_argument("--precision", choices=["uint8", "uint16", "float16", "float32"], default="uint16",
                   help="how the saved spline base is stored (default uint16)")
    f.add_argument("--device", default=None, help="cpu, cuda, ... (default: a GPU if present, else the cluster)")
    f.add_argument("--resample", type=float, default=None, metavar="VOXEL",
                   help="also write the neural map resampled to this voxel size (A) as OUT/resampled.mrc")
    f.set_defaults(func=run)
    g = actions.add_parser("graph", help="density graph of a saved neural map, written as mmCIF pseudo-atoms")
    g.add_argument("neural_map", type=Path, help="folder written by `perc neural fit`")
    g.add_argument("--out", type=Path, required=True, help="output mmCIF file")
    g.add_argument("--resolution", type=float, default=None,
                   help="map resolution (A; default: the map's metadata, required without it); edges up to 1.6x")
    g.add_argument("--edge-length", type=float, default=None, help="longest edge (A)")
    g.add_argument("--threshold", type=float, default=None, help="seed threshold on the [0, 1] map")
    g.add_argument("--model", default=None, help="a fitted model (PDB/mmCIF) to report C-alpha coverage against")
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perc_platform.neural_maps import (
        RESIDUAL_SIREN,
        FitSettings,
        NeuralMap,
        SirenConfig,
        density_graph,
        evaluate_graph,
        fit_neural_map,
        write_graph,
        write_graph_mmcif,
    )

    if args.action == "fit":
        from perc_platform.datasets.volumes import open_volume

        density = open_volume(args.map).load()
        config = None
        if args.layers is not None or args.width is not None:
            default = RESIDUAL_SIREN if args.base == "cubic" else SirenConfig()
            config = SirenConfig(hidden_layers=args.layers or default.hidden_layers,
                                 hidden_width=args.width or default.hidden_width, omega_0=default.omega_0)
        settings = FitSettings() if args.steps is None else FitSettings(max_steps=args.steps)
        neural = fit_neural_map(density, config=config, settings=settings, device=args.device, progress=True,
                                base=args.base)
        folder = neural.save(args.out, precision=args.precision)
        print(f"neural map saved to {folder}")
        if args.resample:
            print(f"resampled map: {neural.to_mrc(folder / 'resampled.mrc', voxel_size=args.resample, overwrite=True)}")
        return 0
    neural = NeuralMap.load(args.neural_map)
    graph = density_graph(neural, resolution=args.resolution, edge_length=args.edge_length, threshold=args.threshold)
    path = write_graph_mmcif(graph, args.out)
    sidecar = write_graph(graph, Path(args.out).with_suffix(".json"))
    print(f"density graph: {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges -> {path} "
          f"(with its edges: {sidecar})")
    if args.model:
        score = evaluate_graph(graph, args.model)
        print(f"against {args.model}: coverage {score.coverage:.3f}, precision {score.precision:.3f}, "
              f"RMSD {score.rmsd:.2f} A")
    return 0
