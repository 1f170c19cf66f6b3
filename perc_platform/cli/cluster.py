"""``perc cluster start`` (a scheduler and workers on this machine) and ``perc cluster info``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("cluster", help="start a Dask cluster for the platform, or describe the one in use")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    start = actions.add_parser("start", help="run a scheduler and N workers with memory limits until Ctrl-C")
    start.add_argument("-n", "--workers", type=int, default=2, help="worker processes (default 2)")
    start.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    start.add_argument("--memory-limit", default="4GiB", help="memory limit per worker (default 4GiB)")
    start.add_argument("--host", default="127.0.0.1",
                       help="interface to serve on (default 127.0.0.1; 0.0.0.0 for other machines)")
    start.add_argument("--port", type=int, default=8786, help="scheduler port (default 8786; 0 picks a free one)")
    start.add_argument("--dashboard-port", type=int, default=8787,
                       help="dashboard port (default 8787; 0 picks a free one)")
    start.set_defaults(func=run_start)

    info = actions.add_parser("info", help="describe the cluster at --address or PERC_SCHEDULER_ADDRESS")
    info.add_argument("--address", help="scheduler address (default PERC_SCHEDULER_ADDRESS)")
    info.set_defaults(func=run_info)


def run_start(args: argparse.Namespace) -> int:
    from perc_platform.cluster import run_cluster

    run_cluster(lambda line: print(line, flush=True), n_workers=args.workers, threads_per_worker=args.threads,
                memory_limit=args.memory_limit, host=args.host, port=args.port, dashboard_port=args.dashboard_port)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from perc_platform.cluster import cluster_info

    info = cluster_info(address=args.address)
    print(f"scheduler: {info['scheduler']}")
    print(f"dashboard: {info['dashboard']}")
    print(f"workers:   {len(info['workers'])} ({info['threads']} thread(s), "
          f"{info['memory_limit'] / 2**30:.2f} GiB memory limit in all)")
    for worker in info["workers"]:
        print(f"  {worker['address']}  {worker['name']}  {worker['nthreads']} thread(s)  "
              f"{worker['memory'] / 2**20:.0f} MiB used of {worker['memory_limit'] / 2**30:.2f} GiB")
    print(f"datasets:  {', '.join(info['datasets']) or 'none published'}")
    print(f"perc config on workers: {'yes' if info['config_plugin'] else 'no'}")
    return 0
