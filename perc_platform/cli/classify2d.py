"""``perc classify2d``: streaming 2-D classification of a catalog entry or of particle stacks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("classify2d", help="streaming PCA-based 2-D classification with progress")
    parser.add_argument("stacks", nargs="*", help="particle stacks (.mrcs paths, globs or URLs) instead of --entry; "
                        "with --watch, the folder (or glob) an upstream job writes stacks or STAR files to")
    parser.add_argument("--entry", help="catalog entry with particles (nested with dots, e.g. demo.particles)")
    parser.add_argument("--catalog", default=None, help="catalog path or URL (default: the shipped perc.yaml)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="user parameter of the catalog entry (repeatable)")
    parser.add_argument("--star", default=None, help="STAR file with the particles' metadata (with stacks)")
    parser.add_argument("--classes", type=int, default=50, help="classes to create (default 50)")
    parser.add_argument("--mode", choices=("create", "update"), default="create")
    parser.add_argument("--references", default=None, help="update mode: output folder of a previous run")
    parser.add_argument("--output", type=Path, default=Path("perc-output/classify2d"),
                        help="folder for state, classes.mrcs/.star/.png and particles.star")
    parser.add_argument("--restart", action="store_true", help="ignore a saved state in --output")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-batches", type=int, default=None, help="stop after this many batches (resumable)")
    parser.add_argument("--training-size", type=int, default=1000)
    parser.add_argument("--variance", type=float, default=0.75, help="share of variance the PCA covers")
    parser.add_argument("--no-denoise", action="store_true",
                        help="keep PCA components within the noise (variance = share of the total variance)")
    parser.add_argument("--resolution", type=float, default=8.0, help="low-pass resolution in Angstrom")
    parser.add_argument("--no-mask", action="store_true", help="no Gaussian mask")
    parser.add_argument("--ctf", choices=("phase_flip", "wiener"), default=None, help="CTF correction")
    parser.add_argument("--mask-sigma", type=float, default=None,
                        help="Gaussian mask sigma in pixels (default and -1: box / 3, as xmipp)")
    parser.add_argument("--wiener-snr", type=float, default=1.0, help="SNR of the Wiener CTF filter (default 1)")
    parser.add_argument("--max-shift", type=float, default=None, help="largest shift searched, Angstrom")
    parser.add_argument("--shift-step", type=float, default=None, help="fine shift step, Angstrom (default 1 px)")
    parser.add_argument("--angular-step", type=float, default=3.0, help="in-plane angle step, degrees (default 3)")
    parser.add_argument("--init-iterations", type=int, default=5, help="create mode: rounds on the training set")
    parser.add_argument("--reference-weight", type=float, default=10.0,
                        help="update mode: particles a given reference counts for without class sizes")
    parser.add_argument("--no-mirror", action="store_true", help="do not try mirrored particles")
    parser.add_argument("--no-subpixel", action="store_true", help="shifts on the trial grid only")
    live = parser.add_argument_group("live streaming (--watch)")
    live.add_argument("--watch", action="store_true",
                      help="follow the folder/glob given as STACKS as an upstream job writes it, classifying in rounds")
    live.add_argument("--pattern", default=None,
                      help="files to follow in the folder (default *.mrcs; or *.star, *.cs)")
    live.add_argument("--threshold", type=int, default=1000, help="new particles that start a round (default 1000)")
    live.add_argument("--poll", type=float, default=5.0, help="seconds between looks at the folder (default 5)")
    live.add_argument("--once", action="store_true", help="the input is complete: classify it and stop")
    live.add_argument("--marker", default="DONE", help="file in the folder that closes the input (default DONE)")
    live.add_argument("--timeout", type=float, default=None, help="stop after this many seconds without a round")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def _open(args: argparse.Namespace) -> Any:
    from perc_platform.errors import ParameterError

    if bool(args.entry) == bool(args.stacks or args.star):
        raise ParameterError("give either --entry ENTRY or particle stack paths (or --star), not both or neither")
    if args.stacks or args.star:
        from perc_platform.datasets import open_particles

        stacks = (args.stacks if len(args.stacks) > 1 else args.stacks[0]) if args.stacks else None
        return open_particles(stacks, star=args.star)
    import intake

    from perc_platform.catalogs import catalog_path
    from perc_platform.cli.catalog import entry

    params = dict(p.split("=", 1) for p in args.param if "=" in p)
    node = entry(intake.open_catalog(args.catalog or str(catalog_path())), args.entry)
    data = node(**params).to_dask() if params else node.to_dask()
    return data["image"] if hasattr(data, "data_vars") else data


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return dict(seed=args.seed, device=args.device, mode=args.mode, references=args.references,
                training_size=args.training_size, variance=args.variance, denoise=not args.no_denoise,
                resolution=args.resolution,
                mask=not args.no_mask, mask_sigma=args.mask_sigma, ctf=args.ctf, wiener_snr=args.wiener_snr,
                max_shift=args.max_shift, shift_step=args.shift_step, angular_step=args.angular_step,
                init_iterations=args.init_iterations, reference_weight=args.reference_weight,
                mirror=not args.no_mirror, subpixel=not args.no_subpixel)


def _watch(args: argparse.Namespace) -> int:
    from perc_platform.errors import ParameterError
    from perc_platform.processing.classify2d import watch_classify2d

    if not args.stacks or args.entry:
        raise ParameterError("--watch follows a folder or glob: give it as STACKS (and no --entry)")

    def report(info: dict[str, Any]) -> None:
        sizes = " ".join(str(s) for s in info["class_sizes"])
        print(f"round {info['round']}: {info['particles']} particles (+{info['new']}) in {info['seconds']:.1f} s  "
              f"class sizes: {sizes}", flush=True)

    print(f"classify2d --watch {' '.join(args.stacks)}: a round every {args.threshold} new particles -> "
          f"{args.output} (close the input with {args.marker} in the folder{', or --once' if not args.once else ''})",
          flush=True)
    result = watch_classify2d(args.stacks, args.output, args.classes, pattern=args.pattern, threshold=args.threshold,
                              poll=args.poll, once=args.once, marker=args.marker, restart=args.restart,
                              timeout=args.timeout, on_round=report, batch_size=args.batch_size,
                              **_settings(args))
    total = 0 if result is None else int(result.sizes.sum())
    print(f"done: {total} particles classified; wrote {args.output}/classes.mrcs, classes.star, classes.png, "
          "particles.star", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    from perc_platform.processing.classify2d import classify2d

    if args.watch:
        return _watch(args)
    images = _open(args)

    def progress(info: dict[str, Any]) -> None:
        sizes = " ".join(str(s) for s in info["class_sizes"])
        print(f"batch {info['batches_done']}/{info['batches']}  {info['particles_done']} particles  "
              f"{info['particles_s']:.1f} particles/s  data wait {100 * info['data_wait_share']:.1f}%  "
              f"class sizes: {sizes}", flush=True)

    print(f"classify2d: {images.shape[0]} particles of {images.shape[1]} x {images.shape[2]} px at "
          f"{images.attrs.get('pixel_size')} A -> {args.output}", flush=True)
    result = classify2d(images, args.classes, output=args.output, resume=not args.restart,
                        batch_size=args.batch_size, max_batches=args.max_batches, progress=progress,
                        **_settings(args))
    stats = result.stats
    print(f"done: {int(result.sizes.sum())} particles classified in {stats['seconds']:.1f} s "
          f"({stats['particles_s']:.1f} particles/s, data wait {100 * stats['data_wait_share']:.1f}%); "
          f"wrote {args.output}/classes.mrcs, classes.star, classes.png, particles.star", flush=True)
    return 0
