"""The Kubernetes deployment (deploy/kubernetes), checked without a cluster: each kustomization
rendered with `kubectl kustomize`, every object validated against the Kubernetes API schema,
and what a deployment must do asserted on the rendered objects (docs/kubernetes.md).

Every render is of a copy of deploy/kubernetes in a temporary directory whose
settings/secrets.env holds test keys: the real one is the user's, and git ignores it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from soundalike.api.cli import build_parser
from soundalike.api.settings import Settings
from soundalike.ingest.autosize import CORES_KEPT_FREE
from soundalike.ingest.sources import is_subsonic_url
from soundalike.ingest.stages import Shard

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
DOC = ROOT / "docs" / "kubernetes.md"
SETTINGS = "settings/settings.yaml"
SECRETS = "settings/secrets.env"
SECRETS_EXAMPLE = "settings/secrets.env.example"
# What `kubectl apply -k` is given: the top level (the GPU variant) and the two overlays.
TARGETS = (".", "overlays/cpu", "overlays/gpu")
# The Kubernetes API versions every object is validated against (kubernetes-validate ships
# their schemas): kubectl's minor here, and a newer one.
KUBERNETES_VERSIONS = ("1.32", "1.35")
TEST_SECRETS = {
    "SOUNDALIKE_API_KEY": "test-api-key-0123456789abcdef",
    "QDRANT_API_KEY": "test-qdrant-key-0123456789abcdef",
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
NAMESPACE = "soundalike"
PINNED_QDRANT = re.compile(r"^qdrant/qdrant:v\d+\.\d+\.\d+$")
# Names of environment variables that hold a secret.
SECRET_NAME = re.compile(r"(KEY|PASSWORD|TOKEN)$")
MUSIC = "/music"


# --- rendering ----------------------------------------------------------------------------


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is missing: the Kubernetes manifests (deploy/kubernetes) are rendered "
            "with `kubectl kustomize`; install kubectl 1.27 or newer"
        )
    return found


def copy_deployment(target: Path, *, secrets: dict[str, str] | None = None) -> Path:
    """deploy/kubernetes copied to `target`, with `secrets` as settings/secrets.env (None: no
    secrets.env, as in a fresh checkout)."""
    shutil.copytree(KUBERNETES, target, ignore=shutil.ignore_patterns("secrets.env"))
    if secrets is not None:
        lines = [f"{name}={value}" for name, value in secrets.items()]
        (target / SECRETS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def read_settings(tree: Path) -> dict[str, str]:
    """settings/settings.yaml's values: what a user sets."""
    document = yaml.safe_load((tree / SETTINGS).read_text(encoding="utf-8"))
    return {name: str(value) for name, value in document["data"].items()}


def write_settings(tree: Path, **values: str) -> None:
    path = tree / SETTINGS
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["data"].update(values)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def add_overlay(tree: Path, name: str, kustomization: dict[str, Any]) -> Path:
    """A user's overlay beside ours: overlays/NAME."""
    folder = tree / "overlays" / name
    folder.mkdir()
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return folder


def kustomize(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )


@dataclass(frozen=True)
class Rendered:
    """The objects one kustomization renders to."""

    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]

    def generated(self, kind: str, name: str) -> dict[str, Any]:
        """A generated ConfigMap or Secret, by its name before kustomize's hash suffix."""
        found = [
            o
            for o in self.of_kind(kind)
            if o["metadata"]["name"] == name or o["metadata"]["name"].startswith(f"{name}-")
        ]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in WORKLOAD_KINDS]

    def ingest(self) -> dict[str, Any]:
        return self.get("Job", "soundalike-ingest")


def render(folder: Path) -> Rendered:
    result = kustomize(folder)
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return Rendered([o for o in yaml.safe_load_all(result.stdout) if o])


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod's containers, init containers included."""
    spec = pod_spec(workload)
    yield from spec["containers"]
    yield from spec.get("initContainers", [])


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in containers(workload) if c["name"] == name]
    assert len(found) == 1, f"{workload['metadata']['name']}: container {name}"
    return found[0]


def env_values(item: dict[str, Any]) -> dict[str, str]:
    """A container's literal `env` values (not the referenced ones)."""
    return {e["name"]: e["value"] for e in item.get("env", []) if "value" in e}


def env_entry(item: dict[str, Any], name: str) -> dict[str, Any]:
    found = [e for e in item.get("env", []) if e["name"] == name]
    assert len(found) == 1, f"{item['name']}: env {name}"
    return found[0]


def environment(rendered: Rendered, item: dict[str, Any]) -> dict[str, str]:
    """What a container's environment holds as text: its ConfigMaps' data, then its values."""
    values: dict[str, str] = {}
    for source in item.get("envFrom", []):
        if "configMapRef" in source:
            values.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
    return {**values, **env_values(item)}


def secret_reference(item: dict[str, Any], name: str) -> dict[str, Any]:
    return env_entry(item, name)["valueFrom"]["secretKeyRef"]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects `labels`."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def quantity(text: str | int) -> float:
    """A CPU or memory quantity as a number (cores, bytes)."""
    value = str(text)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for unit, factor in units.items():
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


def port_number(item: dict[str, Any], port: int | str) -> int:
    """A probe's or a Service's target port as a number (a name resolves in the container)."""
    if isinstance(port, int):
        return port
    found = [p["containerPort"] for p in item.get("ports", []) if p.get("name") == port]
    assert len(found) == 1, f"{item['name']}: no port named {port}"
    return int(found[0])


def schema_errors(rendered: Rendered, version: str) -> list[str]:
    """Each object's first error against the (strict) schema of Kubernetes `version`."""
    errors = []
    for item in rendered.objects:
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            errors.append(f"{item['kind']}/{item['metadata']['name']}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{item['kind']}/{item['metadata']['name']}: no schema ({version})")
    return errors


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/kubernetes as a user who filled in secrets.env has it."""
    return copy_deployment(tmp_path_factory.mktemp("k8s") / "kubernetes", secrets=TEST_SECRETS)


@pytest.fixture(scope="module")
def renders(deployment: Path) -> dict[str, Rendered]:
    return {target: render(deployment / target) for target in TARGETS}


@pytest.fixture(params=TARGETS)
def rendered(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    return renders[request.param]


# --- the render and the schema ------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_follows_the_kubernetes_schema(
    rendered: Rendered, version: str
) -> None:
    assert len(rendered.objects) > 10
    assert schema_errors(rendered, version) == []


def test_the_schema_check_rejects_broken_objects(renders: dict[str, Rendered]) -> None:
    api = json.loads(json.dumps(renders["overlays/gpu"].get("Deployment", "soundalike-api")))
    probe = container(api, "soundalike").pop("readinessProbe")
    container(api, "soundalike")["readynessProbe"] = probe  # a typo kubectl would refuse
    job = json.loads(json.dumps(renders["overlays/gpu"].ingest()))
    job["spec"]["completions"] = "four"
    broken = Rendered([api, job])
    errors = schema_errors(broken, KUBERNETES_VERSIONS[0])
    assert len(errors) == 2, errors
    assert "readynessProbe" in errors[0] and "completions" in errors[1]


def test_the_top_level_kustomization_is_the_gpu_overlay(renders: dict[str, Rendered]) -> None:
    assert renders["."].objects == renders["overlays/gpu"].objects


def test_rendering_stops_without_secrets_env_and_its_example_holds_no_key(tmp_path: Path) -> None:
    tree = copy_deployment(tmp_path / "kubernetes")
    result = kustomize(tree / "overlays/gpu")
    assert result.returncode != 0 and "secrets.env" in result.stderr

    # The example names every key the manifests read, and none of them is filled in.
    example = (tree / SECRETS_EXAMPLE).read_text(encoding="utf-8")
    keys = dict(
        line.lstrip("# ").split("=", 1)
        for line in example.splitlines()
        if re.match(r"^#? ?[A-Z_]+=", line)
    )
    assert set(TEST_SECRETS) <= set(keys) and not any(keys.values())
    shutil.copy(tree / SECRETS_EXAMPLE, tree / SECRETS)
    rendered = render(tree / "overlays/gpu")
    referenced = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for workload in rendered.workloads()
        for item in containers(workload)
        for e in item.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert referenced <= set(keys)


def test_every_object_is_in_the_soundalike_namespace(rendered: Rendered) -> None:
    assert [n["metadata"]["name"] for n in rendered.of_kind("Namespace")] == [NAMESPACE]
    for item in rendered.objects:
        if item["kind"] != "Namespace":
            assert item["metadata"].get("namespace") == NAMESPACE, item["metadata"]["name"]
    for binding in rendered.of_kind("RoleBinding"):
        assert all(s["namespace"] == NAMESPACE for s in binding["subjects"])


# --- Qdrant -------------------------------------------------------------------------------


def test_qdrant_is_a_three_node_cluster_with_a_disk_each(
    rendered: Rendered, deployment: Path
) -> None:
    qdrant = rendered.get("StatefulSet", "qdrant")
    assert qdrant["spec"]["replicas"] == int(read_settings(deployment)["qdrantNodes"]) == 3
    # Started one by one, a restarted cluster deadlocks (a node is ready once it sees others).
    assert qdrant["spec"]["podManagementPolicy"] == "Parallel"

    headless = rendered.get("Service", qdrant["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert 6335 in [p["port"] for p in headless["spec"]["ports"]]
    assert matches({"matchLabels": headless["spec"]["selector"]}, pod_labels(qdrant))

    node = container(qdrant, "qdrant")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert PINNED_QDRANT.match(node["image"])
    assert node["image"] == compose["services"]["qdrant"]["image"]
    env = env_values(node)
    assert env["QDRANT__CLUSTER__ENABLED"] == "true"
    assert env["QDRANT__CLUSTER__P2P__PORT"] == "6335"
    assert secret_reference(node, "QDRANT__SERVICE__API_KEY")["key"] == "QDRANT_API_KEY"

    readiness = node["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz" and port_number(node, readiness["port"]) == 6333

    (claim,) = qdrant["spec"]["volumeClaimTemplates"]
    storage = claim["spec"]["resources"]["requests"]["storage"]
    assert storage == read_settings(deployment)["qdrantStorage"]
    assert claim["metadata"]["name"] in [m["name"] for m in node["volumeMounts"]]
    assert "/qdrant/storage" in [m["mountPath"] for m in node["volumeMounts"]]

    budget = rendered.get("PodDisruptionBudget", "qdrant")
    assert budget["spec"]["maxUnavailable"] == 1
    assert matches(budget["spec"]["selector"], pod_labels(qdrant))


def start_qdrant(script: str, folder: Path, hostname: str, key: str) -> tuple[int, str, str]:
    """Runs the node's start script with a stand-in `./qdrant` that prints its arguments."""
    stand_in = folder / "qdrant"
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    stand_in.chmod(0o755)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOSTNAME": hostname,
        "POD_NAMESPACE": NAMESPACE,
        "QDRANT__SERVICE__API_KEY": key,
    }
    result = subprocess.run(
        ["bash", "-c", script], cwd=folder, env=environment, capture_output=True, text=True
    )
    return result.returncode, result.stdout, result.stderr


def test_the_first_qdrant_node_founds_the_cluster_and_the_others_join_it(
    renders: dict[str, Rendered], tmp_path: Path
) -> None:
    node = container(renders["overlays/gpu"].get("StatefulSet", "qdrant"), "qdrant")
    assert node["command"] == ["/bin/bash", "-c"]
    (script,) = node["args"]
    key = TEST_SECRETS["QDRANT_API_KEY"]
    peers = f"qdrant-headless.{NAMESPACE}.svc"

    code, out, err = start_qdrant(script, tmp_path, "qdrant-0", key)
    assert (code, out.split()) == (0, ["--uri", f"http://qdrant-0.{peers}:6335"]), err
    for hostname in ("qdrant-1", "qdrant-2"):
        code, out, err = start_qdrant(script, tmp_path, hostname, key)
        expected = ["--bootstrap", f"http://qdrant-0.{peers}:6335"]
        expected += ["--uri", f"http://{hostname}.{peers}:6335"]
        assert (code, out.split()) == (0, expected), err

    # An unfilled secrets.env: the node stops with the reason instead of serving without a key.
    for short in ("", "short"):
        code, out, err = start_qdrant(script, tmp_path, "qdrant-0", short)
        assert code == 1 and out == "" and "QDRANT_API_KEY" in err and "16" in err


def test_collections_keep_every_shard_on_two_nodes(rendered: Rendered) -> None:
    qdrant = rendered.get("StatefulSet", "qdrant")
    nodes = qdrant["spec"]["replicas"]
    service = rendered.get("Service", "qdrant")
    for workload in rendered.workloads():
        if workload["metadata"]["name"] == "qdrant":
            continue
        for item in pod_spec(workload)["containers"]:
            env = environment(rendered, item)
            if "SOUNDALIKE_QDRANT_URL" not in env:
                continue
            settings = Settings(
                **{
                    name.removeprefix("SOUNDALIKE_").lower(): value
                    for name, value in env.items()
                    if name.startswith("SOUNDALIKE_")
                }
            )
            assert settings.replication_factor == 2  # one node can go
            assert settings.shard_number >= nodes
            # Every node holds as many shard copies as the next.
            assert settings.shard_number * settings.replication_factor % nodes == 0
            url = urlsplit(settings.qdrant_url or "")
            assert url.hostname == service["metadata"]["name"]
            assert url.port in [p["port"] for p in service["spec"]["ports"]]
            assert secret_reference(item, "SOUNDALIKE_QDRANT_API_KEY") == secret_reference(
                container(qdrant, "qdrant"), "QDRANT__SERVICE__API_KEY"
            )


# --- the API ------------------------------------------------------------------------------


def test_the_api_serves_behind_probes_an_autoscaler_and_a_disruption_budget(
    rendered: Rendered,
) -> None:
    api = rendered.get("Deployment", "soundalike-api")
    serve = container(api, "soundalike")
    args = serve["args"]
    assert args[0] == "serve" and args[args.index("--host") + 1] == "0.0.0.0"
    port = int(args[args.index("--port") + 1])
    # One process per pod: each keeps its own /metrics counters (pods scale, not processes).
    assert args[args.index("--http-workers") + 1] == "1"
    assert build_parser().parse_args(args).http_workers == 1

    probes = {kind: serve[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {port_number(serve, p["port"]) for p in probes.values()} == {port}

    service = rendered.get("Service", "soundalike-api")
    assert matches({"matchLabels": service["spec"]["selector"]}, pod_labels(api))
    assert [port_number(serve, p["targetPort"]) for p in service["spec"]["ports"]] == [port]

    scaler = rendered.get("HorizontalPodAutoscaler", "soundalike-api")
    target = scaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "soundalike-api")
    assert scaler["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in scaler["spec"]["metrics"]] == ["cpu"]
    assert "replicas" not in api["spec"]  # the autoscaler owns it; a re-apply keeps its count

    budget = rendered.get("PodDisruptionBudget", "soundalike-api")
    assert matches(budget["spec"]["selector"], pod_labels(api))
    assert 1 <= budget["spec"]["minAvailable"] < scaler["spec"]["minReplicas"]

    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == port
    assert secret_reference(serve, "SOUNDALIKE_API_KEY")["key"] == "SOUNDALIKE_API_KEY"


# --- the ingest ---------------------------------------------------------------------------


def ingest_arguments(job: dict[str, Any], index: int) -> list[str]:
    """Pod `index`'s command line, as Kubernetes expands $(JOB_COMPLETION_INDEX) in it."""
    item = container(job, "soundalike")
    source = env_entry(item, "JOB_COMPLETION_INDEX")["valueFrom"]["fieldRef"]["fieldPath"]
    assert source == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    return [arg.replace("$(JOB_COMPLETION_INDEX)", str(index)) for arg in item["args"]]


def test_the_ingest_is_an_indexed_job_of_n_shards(rendered: Rendered, deployment: Path) -> None:
    settings = read_settings(deployment)
    shards = int(settings["shards"])
    job = rendered.ingest()
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == shards
    assert spec["backoffLimitPerIndex"] >= 1  # a failed shard restarts (and resumes)
    assert pod_spec(job)["restartPolicy"] == "Never"
    usage_errors = [
        rule
        for rule in spec["podFailurePolicy"]["rules"]
        if rule.get("onExitCodes", {}).get("values") == [2]
    ]
    assert [rule["action"] for rule in usage_errors] == ["FailIndex"]

    # Every pod runs `soundalike ingest SOURCE --shard i/N`, as soundalike's CLI reads it.
    owners = []
    for index in range(shards):
        args = build_parser().parse_args(ingest_arguments(job, index))
        assert (args.command, args.source) == ("ingest", settings["source"])
        owners.append(Shard.parse(args.shard))
    assert owners == [Shard(i, shards) for i in range(shards)]


def test_each_value_set_in_settings_yaml_reaches_every_place_it_belongs(tmp_path: Path) -> None:
    tree = copy_deployment(tmp_path / "kubernetes", secrets=TEST_SECRETS)
    write_settings(
        tree,
        shards="7",
        source=f"{MUSIC}/catalogue.csv",
        musicClaim="label-archive",
        qdrantNodes="4",
        qdrantStorage="250Gi",
    )
    for target in ("overlays/cpu", "overlays/gpu"):
        rendered = render(tree / target)
        job = rendered.ingest()
        assert job["spec"]["completions"] == job["spec"]["parallelism"] == 7
        assert ingest_arguments(job, 6)[1:4] == [f"{MUSIC}/catalogue.csv", "--shard", "6/7"]
        (music,) = [v for v in pod_spec(job)["volumes"] if v["name"] == "music"]
        assert music["persistentVolumeClaim"]["claimName"] == "label-archive"
        qdrant = rendered.get("StatefulSet", "qdrant")
        claim = qdrant["spec"]["volumeClaimTemplates"][0]
        assert claim["spec"]["resources"]["requests"]["storage"] == "250Gi"
        # The ingest waits for every node before it creates the collections.
        assert qdrant["spec"]["replicas"] == 4
        (wait,) = pod_spec(job)["initContainers"]
        assert env_values(wait)["QDRANT_PEERS"] == "4"
        # The local settings object itself is never sent to the cluster.
        assert "soundalike-deployment" not in [c["metadata"]["name"] for c in rendered.objects]


def test_the_music_is_read_only_and_the_source_lies_on_it(
    rendered: Rendered, deployment: Path
) -> None:
    job = rendered.ingest()
    (volume,) = [v for v in pod_spec(job)["volumes"] if v["name"] == "music"]
    assert volume["persistentVolumeClaim"]["readOnly"] is True
    (mount,) = [m for m in container(job, "soundalike")["volumeMounts"] if m["name"] == "music"]
    assert mount["readOnly"] is True and mount["mountPath"] == MUSIC
    assert Path(read_settings(deployment)["source"]).is_relative_to(MUSIC)


def test_ingest_waits_for_every_qdrant_node_before_creating_collections(
    rendered: Rendered,
) -> None:
    job = rendered.ingest()
    (wait,) = pod_spec(job)["initContainers"]
    assert wait["command"][-1] == "qdrant-peers"
    nodes = rendered.get("StatefulSet", "qdrant")["spec"]["replicas"]
    assert env_values(wait)["QDRANT_PEERS"] == str(nodes)
    assert "SOUNDALIKE_QDRANT_URL" in environment(rendered, wait)
    assert_runs_the_shipped_script(rendered, job, wait)


def assert_runs_the_shipped_script(
    rendered: Rendered, workload: dict[str, Any], item: dict[str, Any]
) -> None:
    """`item` runs base/wait_for.py from the generated ConfigMap, as shipped."""
    script = Path(item["command"][1])
    assert item["command"][0] == "python" and script.name == "wait_for.py"
    (mount,) = [m for m in item["volumeMounts"] if Path(m["mountPath"]) == script.parent]
    (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"]]
    shipped = rendered.get("ConfigMap", volume["configMap"]["name"])["data"][script.name]
    assert shipped == (KUBERNETES / "base" / "wait_for.py").read_text(encoding="utf-8")


def test_the_neighbour_lists_are_rebuilt_once_every_shard_is_done(rendered: Rendered) -> None:
    rebuild = rendered.get("Job", "soundalike-neighbours")
    assert rebuild["spec"]["suspend"] is True  # until the ingest completes
    assert container(rebuild, "soundalike")["args"][:2] == ["neighbours", "--rebuild"]
    assert build_parser().parse_args(container(rebuild, "soundalike")["args"]).rebuild

    trigger = rendered.get("Job", "soundalike-neighbours-trigger")
    (waiter,) = pod_spec(trigger)["containers"]
    assert waiter["command"][2:] == ["resume-after", "soundalike-ingest", "soundalike-neighbours"]
    assert_runs_the_shipped_script(rendered, trigger, waiter)

    # The trigger's account may read the ingest Job and resume the rebuild, nothing else.
    account = pod_spec(trigger)["serviceAccountName"]
    (binding,) = [
        b
        for b in rendered.of_kind("RoleBinding")
        if {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE} in b["subjects"]
    ]
    role = rendered.get("Role", binding["roleRef"]["name"])
    granted = {
        (name, verb)
        for rule in role["rules"]
        if rule["resources"] == ["jobs"] and rule["apiGroups"] == ["batch"]
        for name in rule["resourceNames"]
        for verb in rule["verbs"]
    }
    assert ("soundalike-ingest", "get") in granted
    assert ("soundalike-neighbours", "patch") in granted
    assert {name for name, _ in granted} == {"soundalike-ingest", "soundalike-neighbours"}
    for workload in rendered.workloads():
        if workload is not trigger:
            assert pod_spec(workload)["automountServiceAccountToken"] is False


def test_the_gpu_overlay_gives_each_ingest_pod_and_the_rebuild_one_gpu(
    renders: dict[str, Rendered],
) -> None:
    for target, device in (("overlays/gpu", "cuda"), ("overlays/cpu", "cpu")):
        rendered = renders[target]
        for name in ("soundalike-ingest", "soundalike-neighbours"):
            item = container(rendered.get("Job", name), "soundalike")
            assert env_values(item)["SOUNDALIKE_DEVICE"] == device
            gpus = item["resources"]["limits"].get("nvidia.com/gpu")
            assert gpus == (1 if device == "cuda" else None), (target, name)
        everything = json.dumps(rendered.objects)
        assert ("nvidia.com/gpu" in everything) == (device == "cuda")


@pytest.mark.parametrize("target", ["overlays/cpu", "overlays/gpu"])
def test_decoders_and_model_threads_fit_the_ingest_pods_cpu_request(
    renders: dict[str, Rendered], target: str
) -> None:
    # Auto sizing would count the node's cores, not the pod's: both are set to its request.
    item = container(renders[target].ingest(), "soundalike")
    cores = quantity(item["resources"]["requests"]["cpu"])
    env = env_values(item)
    workers, threads = int(env["SOUNDALIKE_WORKERS"]), int(env["OMP_NUM_THREADS"])
    assert workers + threads <= cores
    if env["SOUNDALIKE_DEVICE"] == "cuda":  # as auto sizing does with a GPU, on the pod's cores
        assert workers == cores - CORES_KEPT_FREE


# --- every pod ----------------------------------------------------------------------------


def test_soundalike_environment_names_are_settings(rendered: Rendered) -> None:
    fields = {f"SOUNDALIKE_{name.upper()}" for name in Settings.model_fields}
    for workload in rendered.workloads():
        for item in containers(workload):
            names = set(environment(rendered, item)) | {e["name"] for e in item.get("env", [])}
            unknown = {n for n in names if n.startswith("SOUNDALIKE_")} - fields
            assert not unknown, f"{workload['metadata']['name']}: {unknown} are not settings"


def test_secrets_are_referenced_never_inlined(rendered: Rendered) -> None:
    secrets = {s["metadata"]["name"]: s for s in rendered.of_kind("Secret")}
    checked = 0
    for workload in rendered.workloads():
        for item in containers(workload):
            for entry in item.get("env", []):
                if not SECRET_NAME.search(entry["name"]):
                    continue
                assert "value" not in entry, f"{entry['name']} is inlined"
                reference = entry["valueFrom"]["secretKeyRef"]
                if not reference.get("optional"):
                    assert reference["key"] in secrets[reference["name"]]["data"]
                checked += 1
    assert checked >= 5
    for config in rendered.of_kind("ConfigMap"):
        assert not [name for name in config.get("data", {}) if SECRET_NAME.search(name)]


def test_every_container_has_resources(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        for item in containers(workload):
            resources = item["resources"]
            where = f"{workload['metadata']['name']}/{item['name']}"
            assert quantity(resources["requests"]["cpu"]) > 0, where
            assert quantity(resources["requests"]["memory"]) > 0, where
            limit = quantity(resources["limits"]["memory"])
            assert limit >= quantity(resources["requests"]["memory"]), where


def test_pods_run_as_non_root_on_a_read_only_root_file_system(rendered: Rendered) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    image_user = int(re.findall(r"^USER (\d+)", dockerfile, flags=re.MULTILINE)[-1])
    (hf_home,) = re.findall(r"HF_HOME=(\S+)", dockerfile)
    for workload in rendered.workloads():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for item in containers(workload):
            where = f"{workload['metadata']['name']}/{item['name']}"
            context = item["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
        soundalike = [c for c in spec["containers"] if c["name"] == "soundalike"]
        if not soundalike:
            continue
        # The image's user, and room for what soundalike writes: temporary files, and the
        # model downloaded into HF_HOME by the pods that load it (the API, the ingest).
        assert spec["securityContext"]["runAsUser"] == image_user
        writable = {m["mountPath"] for m in soundalike[0]["volumeMounts"] if not m.get("readOnly")}
        component = pod_labels(workload)["app.kubernetes.io/component"]
        needed = {"/tmp", hf_home} if component in ("api", "ingest") else {"/tmp"}
        assert needed <= writable, workload["metadata"]["name"]


def test_images_are_pinned(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        for item in containers(workload):
            name, _, tag = item["image"].rpartition(":")
            assert name and tag and tag != "latest", item["image"]


def test_only_the_api_the_ingest_and_the_rebuild_reach_qdrant(rendered: Rendered) -> None:
    qdrant = rendered.get("StatefulSet", "qdrant")
    (policy,) = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if matches(p["spec"]["podSelector"], pod_labels(qdrant))
    ]
    assert "Ingress" in policy["spec"]["policyTypes"]
    for workload in rendered.workloads():
        if workload is not qdrant:
            assert not matches(policy["spec"]["podSelector"], pod_labels(workload))

    def reaches(workload: dict[str, Any], port: int) -> bool:
        """Whether a rule admits the workload's pods (peers of this namespace) on `port`."""
        return any(
            port in [p["port"] for p in rule["ports"]]
            and any(
                peer.keys() == {"podSelector"}
                and matches(peer["podSelector"], pod_labels(workload))
                for peer in rule["from"]
            )
            for rule in policy["spec"]["ingress"]
        )

    names = {w["metadata"]["name"]: w for w in rendered.workloads()}
    assert {name for name, w in names.items() if reaches(w, 6333)} == {
        "soundalike-api",
        "soundalike-ingest",
        "soundalike-neighbours",
        "qdrant",
    }
    assert {name for name, w in names.items() if reaches(w, 6335)} == {"qdrant"}


# --- the optional components --------------------------------------------------------------


def test_a_subsonic_source_needs_no_music_volume(tmp_path: Path) -> None:
    tree = copy_deployment(
        tmp_path / "kubernetes",
        secrets={**TEST_SECRETS, "SOUNDALIKE_SUBSONIC_PASSWORD": "music-server-password"},
    )
    server = "subsonic+https://soundalike@music.example.org:4533"
    write_settings(tree, source=server)
    overlay = add_overlay(
        tree,
        "subsonic",
        {"resources": ["../gpu"], "components": ["../../components/subsonic"]},
    )
    rendered = render(overlay)
    assert schema_errors(rendered, KUBERNETES_VERSIONS[0]) == []
    job = rendered.ingest()
    assert "music" not in [v["name"] for v in pod_spec(job)["volumes"]]
    assert "music" not in [m["name"] for m in container(job, "soundalike")["volumeMounts"]]
    assert "persistentVolumeClaim" not in json.dumps(job)
    arguments = ingest_arguments(job, 0)
    assert arguments[1] == server and is_subsonic_url(arguments[1])
    item = container(job, "soundalike")
    for name in ("SOUNDALIKE_SUBSONIC_PASSWORD", "SOUNDALIKE_SUBSONIC_API_KEY"):
        reference = secret_reference(item, name)
        assert reference["key"] == name and reference["optional"] is True
    secret = rendered.generated("Secret", "soundalike-secrets")
    assert "SOUNDALIKE_SUBSONIC_PASSWORD" in secret["data"]


def test_the_servicemonitor_scrapes_the_api_with_its_key(tmp_path: Path) -> None:
    tree = copy_deployment(tmp_path / "kubernetes", secrets=TEST_SECRETS)
    overlay = add_overlay(
        tree,
        "monitored",
        {"resources": ["../gpu"], "components": ["../../components/servicemonitor"]},
    )
    rendered = render(overlay)
    monitor = rendered.get("ServiceMonitor", "soundalike-api")
    # A custom resource: the schemas are Kubernetes' own, everything else still validates.
    errors = schema_errors(rendered, KUBERNETES_VERSIONS[0])
    assert errors == [f"ServiceMonitor/soundalike-api: no schema ({KUBERNETES_VERSIONS[0]})"]

    service = rendered.get("Service", "soundalike-api")
    assert matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    api_key = secret_reference(
        container(rendered.get("Deployment", "soundalike-api"), "soundalike"),
        "SOUNDALIKE_API_KEY",
    )
    credentials = endpoint["authorization"]["credentials"]
    assert {k: credentials[k] for k in ("name", "key")} == {k: api_key[k] for k in ("name", "key")}
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]


# --- the guide ----------------------------------------------------------------------------


def test_the_guide_names_every_value_to_set() -> None:
    guide = DOC.read_text(encoding="utf-8")
    settings = read_settings(KUBERNETES)
    example = (KUBERNETES / SECRETS_EXAMPLE).read_text(encoding="utf-8")
    secrets = re.findall(r"^#? ?([A-Z_]+)=", example, flags=re.MULTILINE)
    for name in [*settings, *secrets, SETTINGS, SECRETS, "kustomize edit set image"]:
        assert f"`{name}" in guide, f"docs/kubernetes.md does not name `{name}`"
    for target in ("overlays/gpu", "overlays/cpu"):
        assert f"kubectl apply -k deploy/kubernetes/{target}" in guide
