"""Settings come from PERC_* environment variables; bad values are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from perc_platform.config import ENDPOINTS, get_config
from perc_platform.errors import ConfigError


def test_defaults_are_the_public_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINTS:
        monkeypatch.delenv(f"PERC_{name.upper()}", raising=False)
    config = get_config()
    assert config.rcsb_files_url == "https://files.rcsb.org"
    assert config.empiar_files_url == "https://ftp.ebi.ac.uk/empiar/world_availability"
    assert "www.ebi.ac.uk" in config.endpoint_hosts()


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERC_RCSB_FILES_URL", "http://127.0.0.1:9999/rcsb/")
    monkeypatch.setenv("PERC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PERC_READ_TIMEOUT", "3.5")
    config = get_config()
    assert config.rcsb_files_url == "http://127.0.0.1:9999/rcsb"
    assert config.cache_dir == tmp_path and config.read_timeout == 3.5
    assert "127.0.0.1:9999" in config.endpoint_hosts()


def test_a_changed_variable_is_seen_at_once_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERC_OFFLINE", raising=False)
    monkeypatch.delenv("perc_offline", raising=False)
    assert get_config().offline is False  # now cached
    monkeypatch.setenv("perc_offline", "1")  # pydantic-settings reads names case-insensitively
    assert get_config().offline is True
    monkeypatch.delenv("perc_offline")
    monkeypatch.setenv("PERC_OFFLINE", "true")
    assert get_config().offline is True


@pytest.mark.parametrize(("name", "value"), [("PERC_PDBE_API_URL", "ftp://example"), ("PERC_RETRIES", "-1"),
                                             ("PERC_READ_TIMEOUT", "soon")])
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        get_config()
