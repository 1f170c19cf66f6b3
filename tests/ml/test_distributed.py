"""Acceptance 2: a real two-process torch.distributed (gloo) run, two DataLoader workers per rank, sees every
sample exactly once per epoch; two runs with the same seed give the same order."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_dist_run.py")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(seed: int, out: Path) -> list[subprocess.Popen[bytes]]:
    port = str(free_port())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, str(SCRIPT), str(rank), "2", port, str(seed), str(out)], env=env,
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for rank in range(2)]


@pytest.mark.slow
def test_two_ranks_two_workers_see_every_sample_once(tmp_path: Path) -> None:
    runs = {name: (tmp_path / f"{name}.json", 21) for name in "ab"}
    procs = {name: launch(seed, out) for name, (out, seed) in runs.items()}
    for name, group in procs.items():
        for proc in group:
            output, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"run {name} failed:\n{output.decode()}"
    a, b = (json.loads(runs[n][0].read_text()) for n in "ab")
    for key, ranks in a.items():
        per_rank = [[i for batch in batches for i in batch] for batches in ranks]
        everything = per_rank[0] + per_rank[1]
        assert sorted(everything) == list(range(219)), key  # each sample exactly once across ranks and workers
        assert abs(len(per_rank[0]) - len(per_rank[1])) <= 2  # balanced shards
    assert a == b  # same seed, same order on every rank
    assert a["stream-0"] != a["stream-1"] and a["memory-0"] != a["memory-1"]  # epochs reshuffle
