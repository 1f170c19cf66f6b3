"""Catalog parameters reach the drivers as text and are parsed once, by the drivers' models (not by intake)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import intake
import pytest
import yaml

from perc_platform.catalogs import catalog_path
from perc_platform.errors import ParameterError

CATALOGS = sorted((Path(__file__).resolve().parents[1] / "catalogs").glob("*.yaml"))


def _open(name: str = "perc.yaml") -> intake.catalog.Catalog:
    return intake.open_catalog(str(catalog_path(name)))


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.name)
def test_every_catalog_parameter_is_text_without_intake_side_checks(path: Path) -> None:
    # intake coerces bool parameters with bool("false") == True and "" with a SyntaxError, and refuses
    # `allowed`/`min`/`max` with a bare ValueError: our drivers' pydantic models parse and check instead.
    for name, entry in (yaml.safe_load(path.read_text()).get("sources") or {}).items():
        for param, spec in (entry.get("parameters") or {}).items():
            assert spec.get("type") == "str", f"{path.name}: {name}.{param} is {spec.get('type')!r}"
            assert not set(spec) & {"allowed", "min", "max"}, f"{path.name}: {name}.{param}"
            assert isinstance(spec.get("default", ""), str), f"{path.name}: {name}.{param} default"


@pytest.mark.parametrize(("text", "expected"), [("false", False), ("", False), ("true", True), ("False", False),
                                                ("0", False), ("yes", True), (False, False), (True, True)])
def test_a_bool_parameter_reads_as_written(text: object, expected: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for source in (_open().structure(pdb_id="1aki", clean=text),
                       _open("pdb.yaml").structure(pdb_id="1aki", clean=text),
                       _open("alphafold.yaml").structure(uniprot_id="P00698", clean=text)):
            assert source.params.clean is expected


@pytest.mark.parametrize("kwargs", [{"uniprot": "P00698"}, {"pdb_id": "1aki", "clean": "maybe"},
                                    {"pdb_id": "1aki", "format": "mmcif"}, {"pdb_id": "1aki", "prefer": "emdb"}])
def test_a_wrong_keyword_or_value_through_the_catalog_is_a_parameter_error(kwargs: dict[str, str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ParameterError, match=next(iter(kwargs))):
            _open().structure(**kwargs)
        with pytest.raises(ParameterError):
            _open().emdb_map(emdb_id="EMD-5168", **{"uniprot": "x"})


@pytest.mark.parametrize("command", [["catalog", "list"], ["catalog", "describe", "pdb.structure"],
                                     ["catalog", "describe", "structure"]])
def test_perc_catalog_prints_no_intake_shell_warnings(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-W", "always", "-m", "perc_platform.cli.main", *command],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Shell command not executed" not in result.stderr
    assert result.stdout.strip()
