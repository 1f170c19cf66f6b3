"""``perc cluster start`` runs a scheduler and workers with memory limits until interrupted; ``perc cluster info``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perc_platform.cli.main import main

pytestmark = pytest.mark.cluster

PERC = Path(sys.executable).with_name("perc")


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 90) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; output so far: {lines}")


def test_cluster_start_prints_the_dashboard_and_info_describes_it(capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path) -> None:
    # stderr (distributed's logs) goes to a file, and faulthandler is on: if stopping ever hangs, the failure
    # shows every thread's stack (SIGABRT below) instead of a bare timeout
    errors = open(tmp_path / "stderr.txt", "w+")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen([str(PERC), "cluster", "start", "--workers", "1", "--memory-limit", "512MiB",
                             "--port", "0", "--dashboard-port", "0"], stdout=subprocess.PIPE,
                            stderr=errors, text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                            # started as a shell script's background job is: with SIGINT ignored, which the
                            # child inherits; Ctrl-C / kill -INT must stop it all the same
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        lines = _read_until(proc, "serving until interrupted")
        fields = dict(line.split(": ", 1) for line in lines if line.startswith(("scheduler:", "dashboard:")))
        address, dashboard = fields["scheduler"].strip(), fields["dashboard"].strip()
        assert address.startswith("tcp://127.0.0.1:")
        assert dashboard.startswith("http://127.0.0.1:") and dashboard.endswith("/status")
        assert sum("memory limit 0.50 GiB" in line for line in lines) == 1
        assert f"export PERC_SCHEDULER_ADDRESS={address}" in "\n".join(lines)

        assert main(["cluster", "info", "--address", address]) == 0
        out = capsys.readouterr().out
        assert f"scheduler: {address}" in out
        assert "workers:   1 (1 thread(s), 0.50 GiB memory limit in all)" in out
        assert "perc config on workers: yes" in out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler dumps the stacks to stderr
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            errors.seek(0)
            pytest.fail(f"perc cluster start did not stop within 60 s of SIGINT; its stderr:\n{errors.read()[-8000:]}")
        finally:
            errors.close()
    assert code == 0
    assert "stopping the cluster" in (proc.stdout.read() if proc.stdout else "")


def test_cluster_info_without_an_address_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PERC_SCHEDULER_ADDRESS", raising=False)
    assert main(["cluster", "info"]) == 2
    assert "PERC_SCHEDULER_ADDRESS" in capsys.readouterr().err
