"""Untrusted catalogs are read once and parsed by the platform; intake gets the validated spec.

The hostile cases are in test_catalog_hostile.py; here: one fetch (a server that changes its answer),
bounded YAML, the shipped catalogs opening untrusted with the entries intake shows, rendering and its
merge rules, host checks of user values, local nesting, redirects and pickling.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import intake
import pytest

import perc_platform as pp
from perc_platform._catalog_load import MAX_NODES, load_yaml
from perc_platform.catalogs import UnsafeCatalogError, catalog_path, check_catalog
from perc_platform.testing import Response, write_stack

SHIPPED = sorted(p.name for p in catalog_path().parent.glob("*.yaml"))
CLEAN = """
sources:
  stack:
    description: a clean entry
    driver: mrc_stack
    args:
      urlpath: "{{ CATALOG_DIR }}/s.mrcs"
"""
HOSTILE = """
sources:
  stack:
    description: a clean entry
    driver: mrc_stack
    args:
      urlpath: "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}"
"""


def _bomb() -> str:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(levels) + "\nsources: {}\n"


def test_one_fetch_even_when_the_server_changes_its_answer(tmp_path: Path, server_factory: Any) -> None:
    marker = tmp_path / "pwned"
    write_stack(tmp_path / "s.mrcs", 4, (8, 8))
    hostile = HOSTILE.replace("MARKER", str(marker)).encode()
    clean = CLEAN.encode() + b"#" * (len(hostile) - len(CLEAN.encode()) - 1) + b"\n"  # same size: no hint
    answers = [clean, hostile]
    srv = server_factory(tmp_path)
    srv.add_route("/lab.yaml", lambda path, query: Response(answers.pop(0) if len(answers) > 1 else answers[0]))
    cat = pp.open_catalog(f"{srv.url}/lab.yaml")
    urlpath = cat.stack._captured_init_kwargs["urlpath"]  # rendering the entry would run the hostile template
    assert not marker.exists()
    assert srv.count("GET", "/lab.yaml") == 1 and srv.count("HEAD") == 0
    assert urlpath == f"{srv.url}/s.mrcs"
    assert cat.stack.to_dask()["image"].shape == (4, 8, 8)


def test_alias_bomb_fails_fast_with_a_clear_error() -> None:
    text = _bomb()
    assert len(text) < 600  # about the 541 bytes of the report; it expands to 9**9 strings
    with pytest.raises(UnsafeCatalogError, match=f"more than {MAX_NODES} YAML nodes"):
        load_yaml(text, "bomb.yaml")


@pytest.mark.parametrize("text", ["[" * 200_000 + "]" * 200_000, "{a: " * 5_000 + "1" + "}" * 5_000,
                                  "".join(" " * i + "a:\n" for i in range(3_000)) + " " * 3_000 + "b\n"])
def test_deep_nesting_is_refused_without_recursion_error(text: str) -> None:
    with pytest.raises(UnsafeCatalogError, match="nested more than"):
        load_yaml(text, "deep.yaml")


def test_yaml_merge_keys_and_shared_anchors_still_load() -> None:
    data = load_yaml("base: &b {driver: mrc_stack}\nsources:\n  x:\n    <<: *b\n    args: {urlpath: a}\n", "m")
    assert data["sources"]["x"] == {"driver": "mrc_stack", "args": {"urlpath": "a"}}


def _describe_tree(cat: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in cat:
        entry = cat._entries[name]
        out[name] = entry.describe()
        if entry.describe()["container"] == "catalog" and entry.describe()["driver"] == ["yaml_file_cat"]:
            out[name + "/"] = _describe_tree(cat[name], depth + 1)
    return out


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_catalog_opens_untrusted_with_the_entries_intake_shows(name: str) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Shell command not executed", category=UserWarning)
        theirs = intake.open_catalog(str(catalog_path(name)))
        expected = _describe_tree(theirs)
    ours = pp.open_catalog(catalog_path(name))
    assert _describe_tree(ours) == expected
    assert (ours.name, ours.description, ours.metadata) == (theirs.name, theirs.description, theirs.metadata)
    assert "sources" in check_catalog(catalog_path(name))


def test_shipped_sources_get_the_arguments_intake_gives(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Shell command not executed", category=UserWarning)
        theirs = intake.open_catalog(str(catalog_path()))
        ours = pp.open_catalog(catalog_path())
        pairs = [(theirs.structure(), ours.structure()),
                 (theirs.structure(prefer="alphafold", clean=True), ours.structure(prefer="alphafold", clean=True)),
                 (theirs.demo.local_particles(data_dir=str(tmp_path)),
                  ours.demo.local_particles(data_dir=str(tmp_path))),
                 (theirs.simulated.particles(n="12"), ours.simulated.particles(n="12")),
                 (theirs.emdb.map(emdb_id="EMD-5168"), ours.emdb.map(emdb_id="EMD-5168"))]
    for a, b in pairs:
        assert b._captured_init_kwargs == a._captured_init_kwargs
        assert type(b) is type(a)
    # Catalog parameters are text (intake's own bool coercion makes "false" True); the driver parses them.
    assert ours.structure(clean=True).params.clean is True
    assert ours.structure(clean="false").params.clean is False


def test_rendering_follows_intakes_merge_rules(tmp_path: Path, server_factory: Any) -> None:
    srv = server_factory(tmp_path)
    (tmp_path / "lab.yaml").write_text(textwrap.dedent("""
        sources:
          stack:
            driver: mrc_stack
            parameters:
              chunk_size: {description: particles per chunk, type: int, default: 7}
              tag: {description: tag, type: str, default: run}
            args:
              urlpath: "{{ CATALOG_DIR }}/{{ tag }}-{{ chunk_size }}.mrcs"
              chunk_size: "{{ chunk_size }}"
              star: "{{ CATALOG_DIR }}/p.star"
    """))
    cat = pp.open_catalog(f"{srv.url}/lab.yaml")
    args = cat.stack._captured_init_kwargs
    assert (args["urlpath"], args["chunk_size"]) == (f"{srv.url}/run-7.mrcs", 7)  # typed by the parameter
    args = cat.stack(chunk_size="9", tag="x", star=f"{srv.url}/q.star")._captured_init_kwargs
    assert (args["urlpath"], args["chunk_size"], args["star"]) == (f"{srv.url}/x-9.mrcs", 9, f"{srv.url}/q.star")
    assert args["metadata"]["catalog_dir"] == srv.url
    assert srv.count("GET", "/lab.yaml") == 1 and len(srv.requests) == 1


def test_user_values_pointing_elsewhere_are_checked_too(tmp_path: Path, server_factory: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    srv, other = server_factory(tmp_path), server_factory(tmp_path)
    cat = pp.open_catalog(catalog_path())
    with pytest.raises(UnsafeCatalogError, match="PERC_EXTRA_HOSTS"):
        cat.local_particles(urlpath=f"{other.url}/s.mrcs")
    monkeypatch.setenv("PERC_EXTRA_HOSTS", f'["{other.url.split("://")[1]}"]')
    assert cat.local_particles(urlpath=f"{other.url}/s.mrcs")._captured_init_kwargs["urlpath"].startswith(other.url)
    assert srv.requests == [] and other.requests == []


def test_redirect_within_the_catalog_host_is_followed(tmp_path: Path, server_factory: Any) -> None:
    srv = server_factory(tmp_path)
    (tmp_path / "real.yaml").write_text(CLEAN)
    srv.add_fault("/old.yaml", status=301, headers={"Location": "/real.yaml"}, times=None)
    cat = pp.open_catalog(f"{srv.url}/old.yaml")
    assert list(cat) == ["stack"] and srv.count("GET", "/real.yaml") == 1


def test_local_catalog_nests_files_below_its_folder_only(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "inner.yaml").write_text(CLEAN)
    (tmp_path / "outside.yaml").write_text(CLEAN)
    nest = 'sources:\n  inner:\n    driver: yaml_file_cat\n    args:\n      path: "{{ CATALOG_DIR }}/%s"\n'
    (tmp_path / "lab" / "ok.yaml").write_text(nest % "inner.yaml")
    (tmp_path / "lab" / "escape.yaml").write_text(nest % "../outside.yaml")
    cat = pp.open_catalog(tmp_path / "lab" / "ok.yaml")
    assert list(cat.inner) == ["stack"]
    assert cat.inner.stack._captured_init_kwargs["urlpath"] == f"{tmp_path}/lab//s.mrcs"  # as intake renders it
    with pytest.raises(UnsafeCatalogError, match="outside the folder"):
        pp.open_catalog(tmp_path / "lab" / "escape.yaml")


def test_untrusted_catalog_pickles_and_reconfigures_without_reading_again(tmp_path: Path,
                                                                          server_factory: Any) -> None:
    srv = server_factory(tmp_path)
    (tmp_path / "lab.yaml").write_text(CLEAN)
    cat = pp.open_catalog(f"{srv.url}/lab.yaml")
    again = pickle.loads(pickle.dumps(cat))
    assert list(again) == ["stack"] and list(cat(ttl=5)) == ["stack"]
    assert srv.count("GET", "/lab.yaml") == 1


def test_getshell_cannot_be_turned_on_untrusted() -> None:
    with pytest.raises(pp.errors.ParameterError, match="trusted=True"):
        pp.open_catalog(catalog_path(), getshell=True)


def test_error_names_catalog_entry_field_and_opt_in(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(HOSTILE)
    with pytest.raises(UnsafeCatalogError) as info:
        pp.open_catalog(tmp_path / "c.yaml")
    message = str(info.value)
    assert str(tmp_path / "c.yaml") in message and "'stack'" in message and "args.urlpath" in message
    assert "trusted=True" in message


def test_importing_perc_platform_does_not_import_intake() -> None:
    code = "import sys, perc_platform, perc_platform.catalogs; print('intake' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.strip() == "False"


def test_open_grants_the_catalog_host_only_once_it_is_validated(tmp_path: Path, server_factory: Any) -> None:
    from perc_platform.storage import policy

    srv = server_factory(tmp_path)
    host = srv.url.split("://", 1)[1]
    (tmp_path / "bad.yaml").write_text(HOSTILE)
    (tmp_path / "lab.yaml").write_text(CLEAN)
    with pytest.raises(UnsafeCatalogError):
        pp.open_catalog(f"{srv.url}/bad.yaml")
    check_catalog(f"{srv.url}/lab.yaml")
    assert host not in policy.granted_hosts()
    pp.open_catalog(f"{srv.url}/lab.yaml")
    assert host in policy.granted_hosts()
    assert policy.check_url(f"{srv.url}/s.mrcs")
