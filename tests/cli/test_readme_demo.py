"""The README's first command, run exactly as written on a fresh clone with no ../shared beside it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Quickstart section must hold exactly one fenced block"
    commands = [line for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, "the Quickstart block must hold exactly two commands"
    return commands


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert quickstart_commands()[1] in ci.splitlines()


@pytest.mark.slow
def test_readme_demo_command_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "fresh" / "perc-platform"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERC_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["PERC_CACHE_DIR"] = str(tmp_path / "cache")
    result = subprocess.run(quickstart_commands()[0], shell=True, cwd=clone, env=env, capture_output=True,
                            text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = clone / "perc-output"
    for name in ("classes/classes.png", "map_slices.png", "density_graph.png", "neural_map_1A.mrc",
                 "density_graph.cif", "classes/classes.mrcs", "classes/classes.star"):
        assert (out / name).stat().st_size > 0, name
    assert "dashboard: http://127.0.0.1:" in result.stdout
    assert "perc demo summary" in result.stdout and "neural map MAE" in result.stdout
