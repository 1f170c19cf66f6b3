"""Every ``perc`` subcommand answers --help, and bad arguments give one line and a non-zero exit code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from perc_platform.cli.main import COMMANDS


def perc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perc_platform.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def test_top_level_help_lists_every_command() -> None:
    result = perc("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command: str) -> None:
    result = perc(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: perc " + command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_argument_is_one_line(command: str) -> None:
    result = perc(command, "--no-such-option")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_library_errors_are_one_line_and_debug_shows_the_traceback(tmp_path) -> None:
    result = perc("catalog", "list", "--catalog", str(tmp_path / "missing.yaml"))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.yaml" in lines[0]
    debug = perc("--debug", "catalog", "list", "--catalog", str(tmp_path / "missing.yaml"))
    assert "Traceback" in debug.stderr


def test_catalog_list_and_describe() -> None:
    listing = perc("catalog", "list")
    assert listing.returncode == 0 and "local_particles" in listing.stdout
    described = perc("catalog", "describe", "local_map")
    assert described.returncode == 0 and '"mrc_volume"' in described.stdout
