"""A plain (non-editable) install works away from the source tree: catalogs are package data.

The wheel is built from this checkout (``pip wheel --no-build-isolation``) and installed with ``--no-deps``
into a fresh virtual environment; a ``.pth`` file there points at this environment's site-packages for the
dependencies only (the editable install's finder there is not loaded: ``.pth`` files in a directory added
by a ``.pth`` line are not processed). The commands then run from an empty folder.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], Path]]:
    base = tmp_path_factory.mktemp("plain-install")
    wheels, venv, work = base / "wheels", base / "venv", base / "elsewhere"
    work.mkdir()
    # Build from a copy of the checkout's files (as a fresh clone would hold them), not in place: an in-place
    # build/ folder could carry stale files into the wheel.
    source = base / "source"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(source)], check=True, cwd=base, timeout=300)
    wheel = next(wheels.glob("perc_platform-*.whl"))
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, cwd=base, timeout=300)
    (purelib / "zz_dependencies.pth").write_text("\n".join([*site.getsitepackages(),
                                                            sysconfig.get_path("purelib")]) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERC_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["PERC_CACHE_DIR"] = str(base / "cache")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    yield venv, env, work


def test_the_wheel_ships_every_catalog_and_the_installed_package_is_not_the_source_tree(
        fresh: tuple[Path, dict[str, str], Path]) -> None:
    venv, env, work = fresh
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import perc_platform, intake_perc; from perc_platform.catalogs import catalog_path;"
                          "print(perc_platform.__file__); print(intake_perc.__file__); print(catalog_path())"],
                         cwd=work, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(str(venv) in line for line in out), out
    shipped = Path(out[2]).parent
    assert sorted(p.name for p in shipped.glob("*.yaml")) == sorted(p.name for p in (ROOT / "catalogs").glob("*.yaml"))
    for path in shipped.glob("*.yaml"):  # the same files, not a stale copy
        assert path.read_bytes() == (ROOT / "catalogs" / path.name).read_bytes()


def test_perc_catalog_list_works_from_a_plain_install(fresh: tuple[Path, dict[str, str], Path]) -> None:
    venv, env, work = fresh
    result = subprocess.run([str(venv / "bin" / "perc"), "catalog", "list"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert names == list(yaml.safe_load((ROOT / "catalogs" / "perc.yaml").read_text())["sources"])
    result = subprocess.run([str(venv / "bin" / "perc"), "catalog", "describe", "pdb.structure"], cwd=work,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and '"driver"' in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
def test_perc_demo_runs_from_a_plain_install(fresh: tuple[Path, dict[str, str], Path]) -> None:
    venv, env, work = fresh
    # the smallest demo the command offers; the README's full demo is tested in tests/cli/test_readme_demo.py
    result = subprocess.run([str(venv / "bin" / "perc"), "demo", "--particles", "64", "--fit-steps", "10",
                             "--out", "out"], cwd=work,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "opened catalogs/demo.yaml with intake.open_catalog" in result.stdout
    assert (work / "out" / "map_slices.png").stat().st_size > 0
