"""Acceptance 5: the deploy/ files parse and carry what they must (image, PERC_* settings, memory limits)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dask.utils import parse_timedelta

from perc_platform import __version__
from perc_platform.cluster import slurm_cluster
from perc_platform.cluster._jobqueue import load_profile
from perc_platform.errors import ConfigError

pytestmark = pytest.mark.cluster

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
IMAGE = f"perc-platform:{__version__}"


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    if doc["kind"] == "DaskCluster":
        return [*spec["worker"]["spec"]["containers"], *spec["scheduler"]["spec"]["containers"]]
    if doc["kind"] == "Deployment":
        return list(spec["template"]["spec"]["containers"])
    return []


def test_every_deployment_has_a_readme_that_points_perc_scheduler_address_at_it() -> None:
    for folder in ("docker", "kubernetes", "slurm"):
        text = (DEPLOY / folder / "README.md").read_text()
        assert "PERC_SCHEDULER_ADDRESS" in text, folder
    assert "PERC_SCHEDULER_ADDRESS" in (DEPLOY / "README.md").read_text()


def test_compose_file_has_scheduler_workers_and_a_file_server() -> None:
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"scheduler", "worker", "files"}
    scheduler, worker, files = services["scheduler"], services["worker"], services["files"]
    assert scheduler["image"] == worker["image"] == IMAGE
    assert (DEPLOY / "docker" / scheduler["build"]["dockerfile"].replace("deploy/docker/", "")).is_file()
    assert scheduler["command"][:2] == ["dask", "scheduler"] and "8786:8786" in scheduler["ports"]
    assert worker["command"][:3] == ["dask", "worker", "tcp://scheduler:8786"]
    limit = worker["command"][worker["command"].index("--memory-limit") + 1]
    assert limit == "4GiB" and worker["deploy"]["replicas"] >= 2
    for service in (scheduler, worker):
        env = service["environment"]
        assert env["PERC_CACHE_DIR"] == "/cache"
        assert all(env[k].startswith("${PERC_MIRROR_URL:-http://files}/") for k in env if k.endswith("_URL"))
    assert "cache:/cache" in worker["volumes"]
    assert files["image"].startswith("nginx:") and "8080:80" in files["ports"]
    conf = (DEPLOY / "docker" / "nginx.conf").read_text()
    assert "autoindex on" in conf


def test_dockerfile_installs_the_platform_and_serves_dask() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M)
    assert "COPY perc_platform" in text and "COPY plugins" in text and 'pip install' in text
    assert "EXPOSE 8786 8787" in text and "PERC_CACHE_DIR=/cache" in text
    # a normal install: the catalogs are package data (tests/test_packaging.py runs such an install)
    assert "COPY catalogs" in text and "COPY pyproject.toml setup.py" in text
    install = re.search(r"^RUN pip install (.*?)&&", text, re.S | re.M)
    assert install and '".[slurm]"' in install.group(1) and " -e " not in install.group(1)
    assert "rm -rf /tmp/perc-platform-src" in text, "the copied sources must not shadow the installed package"
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:].count("!perc_platform/") == 1


def test_kubernetes_manifests_carry_the_image_and_the_platform_config() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "perc-cluster.yaml").read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"DaskCluster", "ConfigMap", "Deployment", "Service", "PersistentVolumeClaim"} <= kinds
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "perc-config")["data"]
    assert config["PERC_CACHE_DIR"] == "/cache"
    assert all(k.startswith("PERC_") for k in config)
    assert config["PERC_EMPIAR_FILES_URL"].startswith("http://perc-files/")
    cluster = next(d for d in docs if d["kind"] == "DaskCluster")
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    for container in _containers(cluster):
        assert container["image"] == IMAGE
        assert {"configMapRef": {"name": "perc-config"}} in container["envFrom"]
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    args = [str(a) for a in worker["args"]]
    assert args[:2] == ["dask", "worker"] and args[args.index("--memory-limit") + 1] == "14GiB"
    assert {"name": "cache", "mountPath": "/cache"} in worker["volumeMounts"]
    server = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "perc-files")
    assert _containers(server)[0]["image"].startswith("nginx:")
    assert any(d["kind"] == "Service" and d["metadata"]["name"] == "perc-files" for d in docs)


def test_slurm_profile_gives_a_job_script_with_the_worker_command_and_memory_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_EMDB_FILES_URL", "http://mirror.lab.example/emdb")
    profile = DEPLOY / "slurm" / "perc-slurm.yaml"
    assert load_profile(profile)["memory"] == "32GiB"
    cluster = slurm_cluster(profile, queue="cpu", account="cryoem",
                            scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p cpu" in script and "#SBATCH -A cryoem" in script
    assert "#SBATCH --mem=32G" in script and "#SBATCH --cpus-per-task=8" in script
    assert "#SBATCH -t 04:00:00" in script
    command = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    assert "--memory-limit 32.00GiB" in command and "--nthreads 8" in command
    # dask's own parser reads the lifetime (test_deploy_run.py starts this very command against a scheduler)
    lifetime = command.split("--lifetime ")[1].split()[0]
    assert parse_timedelta(lifetime) + parse_timedelta(command.split("--lifetime-stagger ")[1].split()[0]) < 4 * 3600
    lines = script.splitlines()
    mine = lines.index("export PERC_EMDB_FILES_URL=http://mirror.lab.example/emdb")
    profile_cache = next(i for i, line in enumerate(lines) if line.startswith("export PERC_CACHE_DIR=${PERC_SHARED"))
    assert mine < profile_cache < lines.index(command), "the profile's exports must come after the client's"


def test_a_profile_without_a_slurm_section_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobqueue:\n  pbs: {cores: 1}\n")
    with pytest.raises(ConfigError, match="jobqueue: slurm"):
        load_profile(bad)


def _interpolate(text: str) -> str:
    """Compose's variable interpolation with every variable unset: ``${NAME:-default}`` -> ``default``."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", text)


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    compose_spec = pytest.importorskip("compose_spec")
    text = _interpolate((DEPLOY / "docker" / "compose.yaml").read_text())
    compose = compose_spec.PyCompose.from_yaml(text)
    compose.validate()
    assert sorted(compose.service_names()) == ["files", "scheduler", "worker"]
    with pytest.raises(ValueError, match="replicas"):  # the validator does refuse a bad file
        compose_spec.PyCompose.from_yaml(text.replace("replicas: 2", "replicas: two")).validate()


def _k8s_validator(schema: str) -> Any:
    """A jsonschema validator for one Kubernetes schema (kubernetes-validate's strict 1.30 JSON schemas)."""
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    pytest.importorskip("kubernetes_validate")
    from importlib.resources import files

    folder = files("kubernetes_validate") / "kubernetes-json-schema" / "v1.30.0-local-strict"
    contents = json.loads((folder / schema).read_text())
    definitions = json.loads((folder / "_definitions.json").read_text())
    registry = referencing.Registry().with_resources([("_definitions.json",
                                                       referencing.Resource.from_contents(definitions))])
    return jsonschema.Draft202012Validator(contents, registry=registry)


def test_kubernetes_manifests_are_valid_against_the_kubernetes_schemas() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "perc-cluster.yaml").read_text()) if d]
    for doc in docs:
        if doc["kind"] == "DaskCluster":
            # The operator's CRD (dask-kubernetes, operator/customresources/templates.yaml) is a core PodSpec for
            # scheduler and worker and a core ServiceSpec for the scheduler's service; validate those parts.
            spec = doc["spec"]
            assert set(spec) <= {"idleTimeout", "scheduler", "worker"}
            assert set(spec["worker"]) <= {"replicas", "metadata", "spec"}
            assert isinstance(spec["worker"]["replicas"], int)
            assert set(spec["scheduler"]) <= {"metadata", "spec", "service"}
            _k8s_validator("podspec-v1.json").validate(spec["worker"]["spec"])
            _k8s_validator("podspec-v1.json").validate(spec["scheduler"]["spec"])
            _k8s_validator("servicespec-v1.json").validate(spec["scheduler"]["service"])
            continue
        group = doc["apiVersion"].split("/")[0].split(".")[0] + "-" if "/" in doc["apiVersion"] else ""
        version = doc["apiVersion"].split("/")[-1]
        _k8s_validator(f"{doc['kind'].lower()}-{group}{version}.json").validate(doc)
    bad = next(d for d in docs if d["kind"] == "Deployment")
    bad["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "eighty"}]
    with pytest.raises(Exception, match="eighty"):  # the schemas do refuse a bad manifest
        _k8s_validator("deployment-apps-v1.json").validate(bad)
