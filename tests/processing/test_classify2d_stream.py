"""Live streaming 2-D classification (issue 20): a growing particle set, a watched folder, kills and restarts.

Particles are simulated views (``perc_platform.testing.views``) written as real ``.mrcs`` files with mrcfile;
the outputs are read back with ``starfile`` and ``mrcfile`` (not with the code under test), and "every
particle exactly once" is counted on the ``rlnImageName`` column against the names of the images written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from perc_platform.datasets import open_particles
from perc_platform.errors import FormatError, ParameterError
from perc_platform.processing.classify2d import ParticleFolder, classify2d, watch_classify2d
from perc_platform.testing.views import make_views

PIXEL = 2.0
BURSTS = ((0, 150), (150, 270), (270, 400))
SETTINGS = ["--classes", "3", "--threshold", "100", "--training-size", "120", "--init-iterations", "2",
            "--batch-size", "64", "--poll", "0.1", "--seed", "3", "--device", "cpu"]


def write_stack(path: Path, images: np.ndarray) -> None:
    """Write a stack under a hidden name, then rename it into place (as a careful upstream job does)."""
    tmp = path.with_name("." + path.name + ".part")
    with mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(images, dtype=np.float32))
        mrc.voxel_size = PIXEL
    os.replace(tmp, path)


def names(stop: int) -> list[str]:
    out = []
    for k, (a, b) in enumerate(BURSTS):
        out += [f"{i + 1:06d}@burst{k}.mrcs" for i in range(min(b, stop) - a)] if a < stop else []
    return out


@pytest.fixture(scope="module")
def particles() -> np.ndarray:
    return make_views(BURSTS[-1][1], box=32, views=3, snr=0.3, seed=11).images


def test_grown_set_resumes_with_the_new_particles_only(particles: np.ndarray, tmp_path: Path) -> None:
    """A run resumed on a set that grew classifies the new particles once, as a new segment."""
    for k, (a, b) in enumerate(BURSTS[:2]):
        write_stack(tmp_path / f"burst{k}.mrcs", particles[a:b])
    settings = dict(batch_size=64, seed=3, training_size=120, init_iterations=2, shuffle=False)
    first = classify2d(open_particles(tmp_path / "burst0.mrcs"), 3, output=tmp_path / "out", **settings)
    assert int(first.sizes.sum()) == 150
    grown = open_particles([tmp_path / "burst0.mrcs", tmp_path / "burst1.mrcs"])
    again = classify2d(grown, 3, output=tmp_path / "out", **settings)
    assert int(again.sizes.sum()) == 270
    assert again.stats["segments"] == [[0, 150], [150, 270]]
    np.testing.assert_array_equal(again.assignments["class"].values[:150], first.assignments["class"].values)
    table = starfile.read(tmp_path / "out" / "particles.star")
    assert sorted(table["rlnImageName"]) == sorted(names(270))
    with pytest.raises(ParameterError, match="only 150 are given now"):
        classify2d(open_particles(tmp_path / "burst0.mrcs"), 3, output=tmp_path / "out", **settings)


def test_watch_once_classifies_what_is_there(particles: np.ndarray, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for k, (a, b) in enumerate(BURSTS):
        write_stack(tmp_path / "in" / f"burst{k}.mrcs", particles[a:b])
    rounds: list[dict] = []  # type: ignore[type-arg]
    result = watch_classify2d(tmp_path / "in", tmp_path / "out", 3, threshold=100, poll=0.05, once=True,
                              on_round=rounds.append, batch_size=64, seed=3, training_size=120, init_iterations=2)
    assert result is not None and int(result.sizes.sum()) == 400
    assert [r["particles"] for r in rounds] == [400]
    table = starfile.read(tmp_path / "out" / "particles.star")
    assert sorted(table["rlnImageName"]) == sorted(names(400))


def test_watch_follows_star_files(particles: np.ndarray, tmp_path: Path) -> None:
    """STAR files written after their stacks: a file joins when complete; the STAR rows become the particles."""
    import pandas as pd

    (tmp_path / "in").mkdir()
    for k, (a, b) in enumerate(BURSTS[:2]):
        write_stack(tmp_path / "in" / f"stack{k}.mrcs", particles[a:b])
        rows = pd.DataFrame({"rlnImageName": [f"{i + 1:06d}@stack{k}.mrcs" for i in range(b - a)],
                             "rlnImagePixelSize": [PIXEL] * (b - a)})
        starfile.write({"particles": rows}, tmp_path / "in" / f"part{k}.star")
    (tmp_path / "in" / "part9.star").write_text("data_particles\nloop_\n_rlnImageName #1\n000001@missing.mrcs\n")
    watched = ParticleFolder(tmp_path / "in", "*.star")
    assert watched.poll() == 0  # seen once: not yet known to be complete
    assert watched.poll() == 270  # unchanged since: the two readable ones join; the broken one waits
    assert "missing.mrcs" in str(watched.last_error)
    images = watched.particles()
    assert list(images.coords["image_name"].values[[0, 150]]) == ["000001@stack0.mrcs", "000001@stack1.mrcs"]
    np.testing.assert_array_equal(images[148:152].values, particles[148:152])
    with pytest.raises(FormatError, match="part9.star"):
        watched.poll(settled=True)  # the input is closed: a file that cannot be read is an error


def _start(folder: Path, out: Path) -> subprocess.Popen[str]:
    code = "import sys; from perc_platform.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "classify2d", "--watch", str(folder), "--output", str(out),
                             *SETTINGS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen[str], out: Path, count: int, limit: float = 300.0) -> None:
    """Until ``particles.star`` lists ``count`` particles (the process must stay alive meanwhile)."""
    end = time.monotonic() + limit
    star = out / "particles.star"
    while time.monotonic() < end:
        if star.is_file() and len(starfile.read(star)) == count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the watcher exited with {proc.returncode}: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"particles.star never listed {count} particles: {proc.communicate()}")


def _run(particles: np.ndarray, root: Path, kill_after: int | None) -> tuple[Path, list[str]]:
    folder, out = root / "extract", root / "class2d"
    folder.mkdir(parents=True)
    proc = _start(folder, out)
    logs: list[str] = []
    for k, (a, b) in enumerate(BURSTS):
        write_stack(folder / f"burst{k}.mrcs", particles[a:b])
        _wait_for(proc, out, b)
        table = starfile.read(out / "particles.star")
        assert len(set(table["rlnImageName"])) == len(table) == b  # each particle written so far, once
        assert sorted(table["rlnImageName"]) == sorted(names(b))
        assert json.loads((out / "watch.json").read_text())["rounds"] == [s for _, s in BURSTS[: k + 1]]
        if kill_after == k:
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(60) == -signal.SIGKILL
            logs.append(proc.communicate()[0])
            proc = _start(folder, out)
    (folder / "DONE").touch()
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    logs.append(stdout)
    return out, logs


@pytest.mark.slow
def test_watched_folder_in_bursts_killed_and_restarted(particles: np.ndarray, tmp_path: Path) -> None:
    """Acceptance 1: three bursts into a watched folder; rounds at the threshold; SIGKILL between bursts and
    a restart end with the same classes as the run that was never stopped."""
    whole, logs = _run(particles, tmp_path / "whole", None)
    assert [line.split(":")[0] for line in logs[0].splitlines() if line.startswith("round")] == \
        ["round 1", "round 2", "round 3"]
    killed, _ = _run(particles, tmp_path / "killed", 1)
    a, b = starfile.read(whole / "particles.star"), starfile.read(killed / "particles.star")
    assert list(a["rlnImageName"]) == list(b["rlnImageName"])
    np.testing.assert_array_equal(a["rlnClassNumber"], b["rlnClassNumber"])
    np.testing.assert_allclose(a["rlnAnglePsi"], b["rlnAnglePsi"], atol=1e-3)
    with mrcfile.open(whole / "classes.mrcs") as x, mrcfile.open(killed / "classes.mrcs") as y:
        np.testing.assert_allclose(x.data, y.data, atol=1e-5)
    truth = make_views(BURSTS[-1][1], box=32, views=3, snr=0.3, seed=11).view
    order = [int(n.split("@")[0]) - 1 + BURSTS[int(n.split("burst")[1][0])][0] for n in a["rlnImageName"]]
    classes = np.asarray(a["rlnClassNumber"])
    majority = sum(np.bincount(truth[order][classes == c]).max() for c in np.unique(classes))
    assert majority / len(classes) >= 0.9
