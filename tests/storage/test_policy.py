"""The network policy: which hosts may be read, how redirects are judged, and what a refusal says."""

from __future__ import annotations

import pytest

from perc_platform.archives import _http
from perc_platform.errors import InputError, NetworkPolicyError
from perc_platform.storage import policy
from perc_platform.testing import LoopbackServer, Response
from tests.storage.conftest import settled_count


def _netloc(server: LoopbackServer) -> str:
    return server.url.split("://", 1)[1]


def test_local_paths_and_file_urls_are_allowed() -> None:
    for url in ["/data/x.mrcs", "relative/x.mrcs", "file:///data/x.mrcs", "memory://x", "local:///x"]:
        assert policy.check_url(url) == url


def test_configured_endpoints_are_allowed_and_other_hosts_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_RCSB_FILES_URL", "http://127.0.0.1:8123/rcsb")
    assert policy.check_url("http://127.0.0.1:8123/x.cif")
    assert policy.check_url("https://ftp.ebi.ac.uk/empiar/x.mrcs")  # a default endpoint
    for other in ["http://localhost:8123/x", "http://127.0.0.1:8124/x", "http://evil.example.org/x",
                  "http://127.0.0.1:8123@evil.example.org/x"]:
        with pytest.raises(NetworkPolicyError) as info:
            policy.check_url(other, what="a test")
        message = str(info.value)
        assert other in message and "PERC_EXTRA_HOSTS" in message and "a test" in message
        assert isinstance(info.value, InputError)


def test_extra_hosts_and_granted_hosts_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NetworkPolicyError, match="'lab.example.org:8443'"):
        policy.check_url("https://lab.example.org:8443/x")
    monkeypatch.setenv("PERC_EXTRA_HOSTS", '["LAB.example.org:8443"]')
    assert policy.check_url("https://lab.example.org:8443/x")
    with pytest.raises(NetworkPolicyError):
        policy.check_url("https://lab.example.org/x")  # another port: another host
    policy.grant_host("mirror.example.org")
    assert policy.check_url("https://mirror.example.org:443/x")  # the default port is the same host
    assert "mirror.example.org" in policy.granted_hosts()
    policy.grant_host("http://10.0.0.1:9000/catalogs/lab.yaml")  # a URL grants its host
    assert policy.check_url("http://10.0.0.1:9000/other")


def test_every_network_layer_of_a_chained_url_is_checked() -> None:
    assert policy.check_url("simplecache::file:///data/x.mrcs")
    with pytest.raises(NetworkPolicyError, match="evil.example.org"):
        policy.check_url("simplecache::http://evil.example.org/x.mrcs")
    with pytest.raises(NetworkPolicyError, match="evil.example.org"):
        policy.check_url("zip://inner.mrcs::https://evil.example.org/a.zip")
    with pytest.raises(NetworkPolicyError, match="s3"):
        policy.check_url("s3://bucket/x.mrcs")


def test_redirects_stay_inside_the_policy_and_never_downgrade(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_EXTRA_HOSTS", '["lab.example.org"]')
    assert policy.check_redirect("http://lab.example.org/a", "https://lab.example.org/b")
    with pytest.raises(NetworkPolicyError, match="downgrades https to plain http"):
        policy.check_redirect("https://lab.example.org/a", "http://lab.example.org/b")
    with pytest.raises(NetworkPolicyError, match="evil.example.org"):
        policy.check_redirect("https://lab.example.org/a", "https://evil.example.org/b")
    assert policy.redirect_target("https://lab.example.org/a/b", "../c") == "https://lab.example.org/c"


def test_archive_client_refuses_a_redirect_to_a_foreign_host(server_factory, foreign: LoopbackServer) -> None:
    home = server_factory()
    home.add_route("/r", lambda path, query: Response(b"", 302, {"Location": f"{foreign.url}/x"}))
    policy.grant_host(_netloc(home))
    with pytest.raises(NetworkPolicyError, match=_netloc(foreign)) as info:
        _http.get_bytes(f"{home.url}/r", what="a redirect test")
    assert "PERC_EXTRA_HOSTS" in str(info.value)
    assert settled_count(home, "/r") == 1


def test_archive_client_follows_a_redirect_inside_the_policy(server_factory) -> None:
    home, other = server_factory(), server_factory()
    other.add_route("/x", lambda path, query: Response(b"payload"))
    home.add_route("/r", lambda path, query: Response(b"", 302, {"Location": f"{other.url}/x"}))
    policy.grant_host(_netloc(home))
    policy.grant_host(_netloc(other))
    assert _http.get_bytes(f"{home.url}/r", what="a redirect test") == b"payload"


def test_the_fsspec_redirect_hook_refuses_a_downgrade_and_a_foreign_host(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    from types import SimpleNamespace

    from perc_platform.storage import _remote

    monkeypatch.setenv("PERC_EXTRA_HOSTS", '["lab.example.org"]')

    def hop(source: str, location: str) -> None:  # what aiohttp hands the hook before following a redirect
        params = SimpleNamespace(url=source, response=SimpleNamespace(headers={"Location": location}))
        asyncio.run(_remote._on_redirect(None, None, params))

    hop("http://lab.example.org/a", "https://lab.example.org/b")  # an upgrade on an allowed host is followed
    with pytest.raises(NetworkPolicyError, match="downgrades"):
        hop("https://lab.example.org/a", "http://lab.example.org/b")
    with pytest.raises(NetworkPolicyError, match="evil.example.org"):
        hop("https://lab.example.org/a", "//evil.example.org/b")
