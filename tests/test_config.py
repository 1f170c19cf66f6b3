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


@pytest.mark.parametrize("value", ["a.example.org,b.example.org:8080", ' a.example.org , b.example.org:8080 ',
                                   '["a.example.org", "b.example.org:8080"]'])
def test_list_settings_are_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PERC_EXTRA_HOSTS", value)
    monkeypatch.setenv("PERC_ALLOWED_DRIVERS", value.replace(":8080", ""))
    config = get_config()
    assert config.extra_hosts == ["a.example.org", "b.example.org:8080"]
    assert config.allowed_drivers == ["a.example.org", "b.example.org"]
    assert {"a.example.org", "b.example.org:8080"} <= config.endpoint_hosts()


def test_allowed_drivers_are_read_through_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from perc_platform.catalogs import allowed_drivers
    from perc_platform.config import override

    monkeypatch.setenv("PERC_ALLOWED_DRIVERS", "lab_driver, other")
    assert {"lab_driver", "other"} <= allowed_drivers()
    with override(allowed_drivers=["from_value"]):
        assert "from_value" in allowed_drivers() and "lab_driver" not in allowed_drivers()


@pytest.mark.parametrize(("name", "value"), [("PERC_READ_TIMEOUT", "inf"), ("PERC_CONNECT_TIMEOUT", "1e300"),
                                             ("PERC_BACKOFF", "nan"), ("PERC_CACHE_DIR", ""),
                                             ("PERC_CACHE_DIR", "  "), ("PERC_EXTRA_HOSTS", "[not json")])
def test_values_that_break_later_are_refused_now(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        get_config()


def test_override_passes_settings_as_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os
    import threading

    from perc_platform.config import override

    monkeypatch.setenv("PERC_OFFLINE", "false")
    before = dict(os.environ)
    with override(offline=True, cache_dir=tmp_path / "c") as config:
        assert config.offline and get_config().cache_dir == tmp_path / "c"
        seen: list[bool] = []
        worker = threading.Thread(target=lambda: seen.append(get_config().offline))
        worker.start()
        worker.join()
        assert seen == [True]  # every thread of the process, as fetch_many's pool
        with override(offline=False):
            assert get_config().offline is False and get_config().cache_dir == tmp_path / "c"
        assert get_config().offline is True
        assert dict(os.environ) == before  # nothing written to the environment
    assert get_config().offline is False
    with pytest.raises(ConfigError, match="unknown setting"), override(ofline=True):
        pass
    with pytest.raises(ConfigError, match="PERC_READ_TIMEOUT"), override(read_timeout=float("inf")):
        pass


def test_workers_get_the_overridden_settings(tmp_path: Path) -> None:
    from perc_platform.cluster import config_environment
    from perc_platform.config import PercConfig, override

    with override(extra_hosts=["lab.example.org"], cache_dir=tmp_path, offline=True):
        shipped = config_environment()
    assert shipped["PERC_OFFLINE"] == "true" and shipped["PERC_CACHE_DIR"] == str(tmp_path)
    # what a worker rebuilds from the shipped variables is the same settings
    rebuilt = PercConfig(**{k[5:].lower(): v for k, v in shipped.items()})
    assert rebuilt.extra_hosts == ["lab.example.org"] and rebuilt.offline and rebuilt.cache_dir == tmp_path


def test_every_perc_setting_is_read_through_the_settings_model() -> None:
    """No module but config.py reads PERC_* from the environment, and the CLI and the demo do not set the
    environment through the test helper: settings travel as values (config.override)."""
    import re

    import perc_platform

    root = Path(perc_platform.__file__).parent
    reads = re.compile(r"""(?:environ(?:\.get)?|getenv)\s*[(\[]\s*["']PERC_""")
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel == "config.py" or rel.startswith("testing/"):
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{rel}: reads {m.group(0)}" for m in reads.finditer(text)]
        if rel.startswith(("cli/", "demo/")) and "testing._env" in text:
            offenders.append(f"{rel}: sets settings through perc_platform.testing._env")
    assert offenders == []
