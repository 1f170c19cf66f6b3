"""URLs the caller passes directly to the public open functions are read on any host; the same URL from a
catalog, a STAR file, a redirect or a driver is policed as before (``storage/policy.py``, "URLs the caller
passes directly"). The server here is a loopback listener nobody granted: only the caller's own call may
reach it."""

from __future__ import annotations

import pickle
from pathlib import Path

import mrcfile
import numpy as np
import pytest

import perc_platform as pp
from perc_platform.datasets import select_particles
from perc_platform.errors import NetworkPolicyError
from perc_platform.io.formats import open_image_file
from perc_platform.storage import policy, read_bytes
from perc_platform.storage.policy import CallerURL, grant_host
from perc_platform.testing import LoopbackServer, Response, write_stack, write_star
from tests.storage.conftest import settled_count

N, BOX = 12, 16


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_stack(tmp_path / "x.mrcs", N, (BOX, BOX), seed=5)
    return tmp_path


@pytest.fixture
def ungranted(folder: Path, server_factory) -> LoopbackServer:
    """A loopback host that is no endpoint, not in PERC_EXTRA_HOSTS and never granted."""
    srv = server_factory(folder)
    assert srv.url.split("://")[1] not in policy.allowed_hosts()
    return srv


def _values(path: Path) -> np.ndarray:
    with mrcfile.open(path, permissive=True) as mrc:
        return np.array(mrc.data)


def test_a_direct_call_reads_a_loopback_url(ungranted: LoopbackServer, folder: Path) -> None:
    url = f"{ungranted.url}/x.mrcs"
    images = pp.open_particles(url)
    expected = _values(folder / "x.mrcs")
    np.testing.assert_array_equal(images.values, expected)
    np.testing.assert_array_equal(select_particles(images, [7, 2, 3]).values, expected[[7, 2, 3]])
    np.testing.assert_array_equal(pp.open_volume(url).values, expected)
    assert open_image_file(url).shape == (N, BOX, BOX)
    angles = np.linspace(-30, 30, N)
    (folder / "x.tlt").write_text("\n".join(f"{a:.2f}" for a in angles))  # found beside the caller's stack
    series = pp.open_tilt_series(url)
    np.testing.assert_allclose(series["tilt_angle"].values, angles, atol=0.005)
    np.testing.assert_array_equal(series.values, expected)
    assert ungranted.url.split("://")[1] not in policy.allowed_hosts()  # nothing was granted on the way


def test_the_trust_travels_with_the_opened_stack_into_pickles(ungranted: LoopbackServer, folder: Path) -> None:
    """Cluster workers unpickle the graph: the URL object they read is still the caller's."""
    images = pp.open_particles(f"{ungranted.url}/x.mrcs")
    again = pickle.loads(pickle.dumps(images))
    np.testing.assert_array_equal(again.values, _values(folder / "x.mrcs"))


def test_the_same_url_from_a_catalog_is_refused(ungranted: LoopbackServer, folder: Path,
                                                server_factory) -> None:
    url = f"{ungranted.url}/x.mrcs"
    # the caller's own call, earlier in the process, grants nothing later
    assert pp.open_particles(url).values.shape == (N, BOX, BOX)
    home = server_factory(folder)
    (folder / "cat.yaml").write_text(f"sources:\n  s:\n    driver: mrc_stack\n    args:\n      urlpath: {url}\n"
                                     f"  v:\n    driver: mrc_volume\n    args:\n      urlpath: {url}\n")
    before = ungranted.count()
    cat = pp.open_catalog(f"{home.url}/cat.yaml", trusted=True)  # even a trusted catalog's URLs are policed
    for entry in ("s", "v"):
        with pytest.raises(NetworkPolicyError, match="PERC_EXTRA_HOSTS"):
            cat[entry].to_dask()
    assert ungranted.count() == before


def test_the_same_url_named_by_a_star_file_is_refused(ungranted: LoopbackServer, folder: Path) -> None:
    url = f"{ungranted.url}/x.mrcs"
    pp.open_particles(url)
    write_star(folder / "p.star", url, N)
    before = ungranted.count()
    with pytest.raises(NetworkPolicyError, match=r"stack .* named in .*p\.star"):
        pp.open_particles(star=folder / "p.star")
    assert ungranted.count() == before
    # the caller who means it passes the stack: the STAR file's rows then pick from the caller's URL
    images = pp.open_particles(url, star=folder / "p.star")
    np.testing.assert_array_equal(images.values, _values(folder / "x.mrcs"))


def test_the_same_url_as_a_redirect_is_refused(ungranted: LoopbackServer, folder: Path,
                                               server_factory) -> None:
    target = f"{ungranted.url}/x.mrcs"
    pp.open_particles(target)
    home = server_factory(folder)
    grant_host(home.url)
    home.add_route("/moved.mrcs", lambda p, q: Response(b"", 302, {"Location": target}))
    before = ungranted.count()
    with pytest.raises(NetworkPolicyError, match="redirected from"):
        pp.open_particles(f"{home.url}/moved.mrcs")
    assert ungranted.count() == before
    assert settled_count(home, "/moved.mrcs") >= 1


def test_internal_callers_and_plain_reads_are_not_trusted(ungranted: LoopbackServer) -> None:
    url = f"{ungranted.url}/x.mrcs"
    with pytest.raises(NetworkPolicyError, match="PERC_EXTRA_HOSTS"):
        read_bytes(url, 0, 1024)  # storage's own functions police every plain string
    from intake_perc.mrc_volume import MrcVolumeSource

    with pytest.raises(NetworkPolicyError, match="PERC_EXTRA_HOSTS"):
        MrcVolumeSource(urlpath=url).to_dask()  # a driver calls open_volume: its URL is not the caller's
    assert ungranted.count() == 0


def test_trust_is_lost_by_string_operations_and_kept_only_on_the_same_host() -> None:
    mine = CallerURL("http://127.0.0.1:1/a/x.mrcs")
    assert policy.check_url(mine) is mine
    assert not isinstance(mine.replace("x", "y"), CallerURL)
    assert isinstance(policy.derived(mine, "http://127.0.0.1:1/a/y.mrcs"), CallerURL)
    assert not isinstance(policy.derived(mine, "http://169.254.169.254/latest/meta-data"), CallerURL)
    assert not isinstance(policy.derived("http://127.0.0.1:1/a/x.mrcs", "http://127.0.0.1:1/a/y.mrcs"), CallerURL)
    with pytest.raises(NetworkPolicyError):
        policy.check_redirect(mine, CallerURL("http://169.254.169.254/latest/meta-data"))
