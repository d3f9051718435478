"""The deployment files, checked without a cluster, Docker or network.

deploy/k8s: every YAML document against the Kubernetes JSON Schemas that
`kubernetes-validate` bundles (strict: a misspelt field fails), and KEDA's ScaledObjects
against deploy/k8s/schemas/keda-scaledobject.schema.json (written from KEDA's CRD). Then
what no schema can see: the cross-references between the objects and tierline itself
(real roles and CLI options, real settings behind every TIERLINE_* variable, the workers'
consumer groups and topics, the shutdown time the workers need, the image's user, the
metrics port every `tierline run` pod serves /metrics, /healthz and /readyz on and the
probes and scrape annotations that use it, checked against a real MetricsServer).
deploy/docker-compose.yml: its services, commands, variables, stop grace period, published
metrics ports and readiness healthchecks.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast

import click
import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.providers.keys import SECRETS_FILE_ENV
from tierline.schemas import Tier
from tierline.streams.cli import main as cli
from tierline.streams.config import ENV_PREFIX, Settings, env_overrides, load_settings
from tierline.streams.metrics import Metrics, MetricsServer
from tierline.streams.runtime import ROLES
from tierline.streams.tier_worker import TierWorker
from tierline.streams.topics import Topics

Body = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
KEDA_SCHEMA = K8S / "schemas" / "keda-scaledobject.schema.json"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

#: the oldest Kubernetes the manifests are for (KEDA 2.17 is tested on 1.30 to 1.32), and
#: the newest whose schemas kubernetes-validate bundles
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
KEDA_API = "keda.sh/v1alpha1"
#: TIERLINE_* variables that are read outside Settings: the config file (load_settings),
#: the secrets file (processors/providers/keys.py) and the CLI options' own variables
NON_SETTINGS_ENV = frozenset(
    {ENV_PREFIX + "CONFIG", SECRETS_FILE_ENV}
    | {
        name
        for command in cli.commands.values()
        for param in command.params
        for name in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
)
#: a Secret value in the template must be a placeholder like this, never a key
PLACEHOLDER = re.compile(r"^REPLACE_ME(-[a-z0-9-]+)?$")
#: Pipeline.stop (streams/runtime.py) waits call_timeout_s + 5 s for each role's task ...
STOP_WAIT_EXTRA_S = 5
#: ... then the role commits, leaves its group, flushes the producer and closes clients
SHUTDOWN_MARGIN_S = 15
#: the paths MetricsServer (streams/metrics.py) serves; test_the_paths_probed_are_served
#: checks that they answer as the probes expect
READY_PATH, LIVE_PATH, METRICS_PATH = "/readyz", "/healthz", "/metrics"
#: interfaces the kubelet and Prometheus can reach from outside the pod
WILDCARD_HOSTS = ("0.0.0.0", "", "::")
#: the least time a liveness probe must fail before a restart (a CPU-throttled pod or a long
#: pause is no reason to kill calls in flight)
MIN_LIVENESS_TOLERANCE_S = 30


# ---------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Doc:
    """One YAML document of deploy/k8s."""

    file: str
    index: int
    body: Body

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.body.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str | None:
        namespace = self.body.get("metadata", {}).get("namespace")
        return None if namespace is None else str(namespace)

    def __str__(self) -> str:
        return f"{self.file}#{self.index} {self.kind}/{self.name}"


def _yaml_documents(path: Path) -> list[Any]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def _yaml(path: Path) -> Body:
    documents = _yaml_documents(path)
    assert len(documents) == 1 and isinstance(documents[0], dict), f"{path}: one mapping"
    return cast(Body, documents[0])


def manifest_files() -> list[Path]:
    found = {*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")}
    return sorted(path for path in found if path != KUSTOMIZATION)


@functools.cache
def manifests() -> tuple[Doc, ...]:
    docs = []
    for path in manifest_files():
        for index, body in enumerate(_yaml_documents(path)):
            where = f"{path.relative_to(K8S)}#{index}"
            assert isinstance(body, dict), f"{where}: a document must be a mapping"
            for field in ("apiVersion", "kind", "metadata"):
                assert field in body, f"{where}: no {field}"
            docs.append(Doc(str(path.relative_to(K8S)), index, cast(Body, body)))
    return tuple(docs)


def of_kind(kind: str) -> list[Doc]:
    return [doc for doc in manifests() if doc.kind == kind]


def find(kind: str, name: str) -> Doc | None:
    return next((doc for doc in of_kind(kind) if doc.name == name), None)


def pod_spec(deployment: Doc) -> Body:
    return cast(Body, deployment.body["spec"]["template"]["spec"])


def containers(deployment: Doc) -> list[Body]:
    spec = pod_spec(deployment)
    return cast(list[Body], spec.get("initContainers", []) + spec["containers"])


def literal_env(container: Body) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def is_placeholder(deployment: Doc) -> bool:
    return "tierline/placeholder" in deployment.body["metadata"].get("annotations", {})


# ---------------------------------------------------------------------------- tierline's side


def invocation(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Parse a `tierline ...` command line with the real CLI: (subcommand, its options).

    Raises click.UsageError for an unknown subcommand, option or choice (a role)."""
    if len(argv) < 2 or argv[0] != "tierline":
        raise click.UsageError(f"not a tierline command: {list(argv)}")
    command = cli.commands.get(argv[1])
    if command is None:
        raise click.UsageError(f"tierline has no command {argv[1]!r}")
    context = command.make_context(f"tierline {argv[1]}", list(argv[2:]))
    return argv[1], dict(context.params)


def roles_of(argv: Sequence[str]) -> tuple[str, ...]:
    """The roles a command line starts (none unless it is `tierline run`)."""
    name, params = invocation(argv)
    if name != "run":
        return ()
    roles = cast(tuple[str, ...], params["roles"])
    return ROLES if "all" in roles else roles


def setting_path(name: str) -> str | None:
    """The Settings field a TIERLINE_* variable sets ("kafka.bootstrap"), None if none.

    Pydantic ignores unknown keys, so a misspelt variable is dropped without a word;
    this walks the models' declared fields instead."""
    overrides = env_overrides({name: "x"})
    if len(overrides) != 1:
        return None
    ((key, value),) = overrides.items()
    field = Settings.model_fields.get(key)
    if field is None or key == "source":
        return None
    if not isinstance(value, dict):
        return key
    section = field.annotation
    if not (isinstance(section, type) and issubclass(section, BaseModel)):
        return None
    ((sub, _),) = value.items()
    return f"{key}.{sub}" if sub in section.model_fields else None


def env_problems(where: str, env: Mapping[str, str | None]) -> list[str]:
    """What is wrong with these variables (value None: set from a Secret, unknown here)."""
    problems = []
    defaults = load_settings(env={}).model_dump()
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in NON_SETTINGS_ENV:
            continue
        if setting_path(name) is None:
            problems.append(f"{where}: {name} is no tierline setting (streams/config.py)")
            continue
        if value is None:
            continue
        try:
            loaded = load_settings(env={name: value})
        except ValueError as exc:
            problems.append(f"{where}: {name}={value!r} is refused: {exc}")
            continue
        if loaded.model_dump() == defaults:
            problems.append(f"{where}: {name}={value!r} changes no setting")
    return problems


def dockerfile_uid() -> int:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users, "deploy/Dockerfile sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {uid} is not numeric: runAsNonRoot cannot verify a name"
    created = re.search(r"useradd\b[^\n]*--uid\s+(\d+)", text)
    assert created and created.group(1) == uid, "USER is not the uid useradd creates"
    return int(uid)


def quantity(value: object) -> float:
    """A Kubernetes quantity ("250m", "1", "512Mi") as a number."""
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(value))
    assert match, f"not a quantity: {value!r}"
    scale = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    scale |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return float(match.group(1)) * scale.get(match.group(2) or "", 1)


def seconds(duration: object) -> float:
    """A compose duration ("60s", "1m30s", 90) in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    parts = re.findall(r"([0-9.]+)(h|ms|m|s|us)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), duration
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * unit[u] for n, u in parts)


# ---------------------------------------------------------------------------- the pods


@dataclass(frozen=True)
class Pod:
    """A Deployment's tierline container and the settings it runs with."""

    deployment: Doc
    container: Body
    roles: tuple[str, ...]
    settings: Settings

    @property
    def grace_s(self) -> int:
        return int(pod_spec(self.deployment).get("terminationGracePeriodSeconds", 30))

    @property
    def argv(self) -> list[str]:
        return cast(list[str], self.container.get("command", []) + self.container.get("args", []))

    @property
    def metrics_port(self) -> int | str:
        """The port the process serves /metrics, /healthz and /readyz on: metrics_port of
        its settings (the ConfigMap, then TIERLINE_METRICS_PORT), then --metrics-port."""
        _, params = invocation(self.argv)
        port = params.get("metrics_port")
        return self.settings.metrics_port if port is None else int(port)

    def __str__(self) -> str:
        return f"{self.deployment} container {self.container['name']}"


def mounted_file(deployment: Doc, container: Body, path: str) -> tuple[Doc, str]:
    """The ConfigMap and key a file path inside the container comes from."""
    target = PurePosixPath(path)
    volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        base = PurePosixPath(mount["mountPath"])
        if base in target.parents:
            source = volumes[mount["name"]].get("configMap")
            assert source, f"{deployment}: {path} is not on a ConfigMap volume"
            config = find("ConfigMap", source["name"])
            assert config, f"{deployment}: no ConfigMap {source['name']} in deploy/k8s"
            key = str(target.relative_to(base))
            assert key in config.body.get("data", {}), f"{config} has no key {key}"
            return config, key
    raise AssertionError(f"{deployment}: nothing is mounted at {path}")


def load_pod(deployment: Doc, container: Body, folder: Path) -> Pod:
    """A container with the settings it would load: the mounted ConfigMap's tierline.toml
    (TIERLINE_CONFIG, copied into `folder`), then its literal TIERLINE_* variables."""
    env = literal_env(container)
    config_path = env.pop(ENV_PREFIX + "CONFIG", None)
    path = None
    if config_path:
        config, key = mounted_file(deployment, container, config_path)
        path = folder / f"{config.name}-{deployment.name}-{Path(key).name}"
        path.write_text(config.body["data"][key])
    try:
        roles = roles_of(container.get("command", []) + container.get("args", []))
    except click.UsageError:
        roles = ()  # a placeholder's future role; test_commands says whether allowed
    return Pod(deployment, container, roles, load_settings(path, env=env))


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> list[Pod]:
    """Every Deployment's container with the settings it would load (load_pod)."""
    folder = tmp_path_factory.mktemp("config")
    return [
        load_pod(deployment, container, folder)
        for deployment in of_kind("Deployment")
        for container in containers(deployment)
    ]


def role_pods(pods: list[Pod], role: str) -> list[Pod]:
    return [pod for pod in pods if role in pod.roles]


# ---------------------------------------------------------------------------- schemas


def test_kustomization_lists_every_manifest_and_one_namespace() -> None:
    kustomization = _yaml(KUSTOMIZATION)
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization.get("resources", [])
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    on_disk = {str(p.relative_to(K8S)) for p in manifest_files()}
    assert set(listed) == on_disk, (
        f"kustomization.yaml resources {sorted(listed)} != the YAML files {sorted(on_disk)}"
    )
    namespace = kustomization["namespace"]
    assert [doc.name for doc in of_kind("Namespace")] == [namespace]
    wrong = [str(d) for d in manifests() if d.kind != "Namespace" and d.namespace != namespace]
    assert not wrong, f"not in namespace {namespace}: {wrong}"
    images = {image["name"] for image in kustomization.get("images", [])}
    for deployment in of_kind("Deployment"):
        for container in containers(deployment):
            assert container["image"] in images, f"{deployment}: image not set in kustomization"


def test_builtin_kinds_validate_against_the_kubernetes_schemas() -> None:
    problems = []
    for doc in manifests():
        if doc.body["apiVersion"] == KEDA_API:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc.body, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                problems.append(f"{doc} (Kubernetes {version}): {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{doc}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_the_kubernetes_schemas_catch_a_misspelt_field() -> None:
    deployment = copy.deepcopy(of_kind("Deployment")[0].body)
    spec = deployment["spec"]["template"]["spec"]
    spec["terminationGracePeriodSecond"] = spec.pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def keda_validator() -> Any:
    schema = json.loads(KEDA_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_scaled_objects_validate_against_the_keda_schema() -> None:
    validator = keda_validator()
    scaled = of_kind("ScaledObject")
    assert scaled, "no ScaledObject in deploy/k8s"
    problems = [
        f"{doc}: {'.'.join(str(p) for p in error.path)}: {error.message}"
        for doc in scaled
        for error in validator.iter_errors(doc.body)
    ]
    assert not problems, "\n".join(problems)
    foreign = {d.body["apiVersion"] for d in manifests() if "keda.sh" in d.body["apiVersion"]}
    assert foreign == {KEDA_API}, f"KEDA objects other than {KEDA_API}: {foreign}"


@pytest.mark.parametrize(
    "breakage",
    ["lag threshold as a number", "misspelt spec field", "kafka trigger without topic"],
)
def test_the_keda_schema_catches(breakage: str) -> None:
    scaled = copy.deepcopy(of_kind("ScaledObject")[0].body)
    metadata = scaled["spec"]["triggers"][0]["metadata"]
    if breakage == "lag threshold as a number":
        metadata["lagThreshold"] = int(metadata["lagThreshold"])
    elif breakage == "misspelt spec field":
        scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    else:
        del metadata["topic"]
    assert not keda_validator().is_valid(scaled)


# ---------------------------------------------------------------------------- cross-references


def test_selectors_match_their_pod_labels() -> None:
    for deployment in of_kind("Deployment"):
        selector = deployment.body["spec"]["selector"]["matchLabels"]
        labels = deployment.body["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{deployment}: selector {selector}"
    seen: dict[str, str] = {}
    for deployment in of_kind("Deployment"):
        key = json.dumps(deployment.body["spec"]["selector"]["matchLabels"], sort_keys=True)
        assert key not in seen, f"{deployment} selects the pods of {seen[key]}"
        seen[key] = str(deployment)


def test_commands_are_real_tierline_roles(pods: list[Pod]) -> None:
    for pod in pods:
        argv = pod.container.get("command", []) + pod.container.get("args", [])
        try:
            invocation(argv)
        except click.UsageError as exc:
            assert is_placeholder(pod.deployment), f"{pod}: {argv}: {exc.format_message()}"
            replicas = pod.deployment.body["spec"].get("replicas", 1)
            assert replicas == 0, f"{pod}: a placeholder whose role does not exist yet runs"
            continue
        assert pod.roles, f"{pod}: {argv} starts no tierline role"
    deployed = {role for pod in pods for role in pod.roles}
    assert deployed == set(ROLES), f"roles deployed {sorted(deployed)} != ROLES {ROLES}"


def test_the_gateway_serves_its_http_port_behind_a_service(pods: list[Pod]) -> None:
    gateway = find("Deployment", "tierline-gateway")
    assert gateway is not None and not is_placeholder(gateway)
    (pod,) = [pod for pod in pods if pod.deployment == gateway]
    assert pod.roles == ("gateway",)
    http = [p for p in pod.container.get("ports", []) if p.get("name") == "http"]
    assert [p["containerPort"] for p in http] == [pod.settings.gateway.http_port]
    service = find("Service", "tierline-gateway")
    assert service is not None, "no Service in front of the gateway"
    selector = service.body["spec"]["selector"]
    assert selector.items() <= gateway.body["spec"]["template"]["metadata"]["labels"].items()
    assert [p["targetPort"] for p in service.body["spec"]["ports"]] == ["http"]


def test_worker_deployments_serve_each_tier_once(pods: list[Pod]) -> None:
    served: dict[Tier, str] = {}
    for pod in role_pods(pods, "workers"):
        tiers = pod.settings.worker.tiers
        assert len(tiers) == 1, f"{pod} serves {tiers}: one tier per Deployment"
        assert tiers[0] not in served, f"{pod} and {served[tiers[0]]} both serve {tiers[0]}"
        served[tiers[0]] = str(pod)
    assert set(served) == set(Tier), f"tiers without workers: {set(Tier) - set(served)}"


def test_each_scaled_object_scales_its_tier_on_that_tiers_lag(pods: list[Pod]) -> None:
    workers = {pod.deployment.name: pod for pod in role_pods(pods, "workers")}
    targets = []
    for scaled in of_kind("ScaledObject"):
        spec = scaled.body["spec"]
        ref = spec["scaleTargetRef"]
        assert ref.get("apiVersion", "apps/v1") == "apps/v1", scaled
        assert ref.get("kind", "Deployment") == "Deployment", scaled
        assert find("Deployment", ref["name"]), f"{scaled}: no Deployment {ref['name']}"
        assert ref["name"] in workers, f"{scaled} scales {ref['name']}, which runs no workers"
        pod = workers[ref["name"]]
        targets.append(ref["name"])
        kafka = pod.settings.kafka
        (tier,) = pod.settings.worker.tiers
        # the group id and topic exactly as a worker builds them (no Kafka is touched)
        none = cast(Any, None)
        worker = TierWorker(
            [tier], pod.settings, Topics(kafka.topic_prefix), kafka.bootstrap, none, none
        )
        (trigger,) = spec["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] == "kafka", scaled
        assert metadata["consumerGroup"] == worker.group_id, f"{scaled} vs {pod}"
        assert metadata["topic"] == worker.topics.tier(tier), f"{scaled} vs {pod}"
        assert metadata["bootstrapServers"] == kafka.bootstrap, f"{scaled} vs {pod}"
        # the workers' consumers start a group at the earliest offset (tier_worker.py)
        assert metadata.get("offsetResetPolicy") == "earliest", scaled
        assert metadata.get("allowIdleConsumers", "false") == "false", scaled
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        assert 1 <= low <= high, f"{scaled}: min {low}, max {high}"
        assert high <= kafka.partitions, (
            f"{scaled}: maxReplicaCount {high} > {kafka.partitions} partitions: replicas idle"
        )
        deployment = pod.deployment.body["spec"]
        assert "replicas" not in deployment, (
            f"{pod.deployment} sets replicas, which every apply would force over KEDA's count"
        )
    assert len(targets) == len(set(targets)), f"a Deployment has two ScaledObjects: {targets}"
    assert set(targets) == set(workers), f"unscaled workers: {set(workers) - set(targets)}"


def test_tierline_variables_are_real_settings(pods: list[Pod]) -> None:
    problems = []
    for pod in pods:
        env: dict[str, str | None] = {}
        for entry in pod.container.get("env", []):
            name = entry["name"]
            assert name not in env, f"{pod}: {name} set twice"
            env[name] = str(entry["value"]) if "value" in entry else None
        problems += env_problems(str(pod), env)
    assert not problems, "\n".join(problems)


def test_the_checker_knows_a_real_setting_from_a_typo() -> None:
    assert env_problems("x", {"TIERLINE_KAFKA_BOOTSTRAP": "k:9092"}) == []
    assert env_problems("x", {"TIERLINE_WORKER_TIERS": "premium"}) == []
    assert env_problems("x", {"TIERLINE_STATE_DIR": "/s"}) == []
    assert env_problems("x", {"TIERLINE_CONFIG": "/c.toml"}) == []
    assert env_problems("x", {"TIERLINE_KAFKA_BOOTSTRAPS": "k:9092"})
    assert env_problems("x", {"TIERLINE_WORKERS_TIERS": "premium"})
    assert env_problems("x", {"TIERLINE_WORKER_TIERS": "cheap"})
    assert env_problems("x", {"TIERLINE_WORKER_MAX_IN_FLIGHT": "512"})  # the default


def test_configuration_points_at_real_services(pods: list[Pod]) -> None:
    for pod in pods:
        settings = pod.settings
        assert settings.source != "defaults", f"{pod} reads no config file"
        assert settings.kafka.bootstrap, f"{pod}: no bootstrap starts a broker in each pod"
        assert not settings.kafka.embedded, pod
        assert not settings.simulator_url, f"{pod}: every provider call would be simulated"
        if "sink" in pod.roles:
            url = settings.clickhouse.url
            assert url.startswith(("http://", "https://")), (
                f"{pod}: clickhouse.url {url!r}: the bill would go to chDB in an emptyDir"
            )


def test_state_dir_is_a_writable_empty_dir_on_a_read_only_root(pods: list[Pod]) -> None:
    for pod in pods:
        state = PurePosixPath(str(pod.settings.state_dir))
        assert state.is_absolute(), f"{pod}: state_dir {state} is relative"
        volumes = {v["name"]: v for v in pod_spec(pod.deployment).get("volumes", [])}
        writable = {
            PurePosixPath(m["mountPath"])
            for m in pod.container.get("volumeMounts", [])
            if "emptyDir" in volumes[m["name"]] and not m.get("readOnly", False)
        }
        assert writable & {state, *state.parents}, f"{pod}: {state} is on no emptyDir"
        assert PurePosixPath("/tmp") in writable, f"{pod}: /tmp is read-only"


def probe_port(container: Body, port: int | str) -> int | None:
    """The number a probe's port (a number or a container port's name) stands for."""
    if isinstance(port, int):
        return port
    named = (p for p in container.get("ports", []) if p.get("name") == port)
    return next((int(p["containerPort"]) for p in named), None)


def http_probe(container: Body, kind: str) -> Body:
    """A probe's httpGet (empty if the probe is missing or not HTTP)."""
    return cast(Body, (container.get(kind) or {}).get("httpGet") or {})


def metrics_problems(pod: Pod) -> list[str]:
    """What is wrong with how a role pod's metrics port is declared, probed and scraped."""
    port = pod.metrics_port
    if not (isinstance(port, int) and port > 0):
        return [f"{pod}: metrics_port {port!r}: probes and Prometheus need a fixed port"]
    problems = []
    if invocation(pod.argv)[1]["processes"] != 1:
        problems.append(f"{pod}: --processes N serves N ports (port + i)")
    if pod.settings.metrics_host not in WILDCARD_HOSTS:
        problems.append(f"{pod}: metrics_host {pod.settings.metrics_host!r} is out of reach")
    declared = [p for p in pod.container.get("ports", []) if p.get("name") == "metrics"]
    numbers = [(p["containerPort"], p.get("protocol", "TCP")) for p in declared]
    if numbers != [(port, "TCP")]:
        problems.append(f"{pod}: containerPort metrics {numbers}, the process serves {port}")
    for kind, path in (("readinessProbe", READY_PATH), ("livenessProbe", LIVE_PATH)):
        probe = pod.container.get(kind) or {}
        get = http_probe(pod.container, kind)
        if not get or set(probe) & {"exec", "tcpSocket", "grpc"}:
            problems.append(f"{pod}: {kind} is no httpGet probe")
            continue
        if get.get("path") != path or get.get("scheme", "HTTP") != "HTTP":
            problems.append(f"{pod}: {kind} gets {get.get('path')!r}, not HTTP {path}")
        if probe_port(pod.container, get.get("port", "")) != port:
            problems.append(f"{pod}: {kind} port {get.get('port')!r} is not {port}")
    liveness = pod.container.get("livenessProbe") or {}
    tolerance = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
    if tolerance < MIN_LIVENESS_TOLERANCE_S:
        problems.append(f"{pod}: liveness restarts after {tolerance}s of failed probes")
    template = pod.deployment.body["spec"]["template"]["metadata"]
    annotations = template.get("annotations", {})
    wanted = {"scrape": "true", "port": str(port), "path": METRICS_PATH}
    scrape = {key: annotations.get(f"prometheus.io/{key}") for key in wanted}
    if scrape != wanted:
        problems.append(f"{pod}: prometheus.io annotations {scrape} != {wanted}")
    return problems


def test_every_role_pod_serves_metrics_and_probes_on_its_metrics_port(pods: list[Pod]) -> None:
    served = [pod for pod in pods if pod.roles]
    assert served, "no Deployment runs a tierline role"
    problems = [problem for pod in served for problem in metrics_problems(pod)]
    assert not problems, "\n".join(problems)


def test_the_metrics_check_follows_the_port_setting(pods: list[Pod], tmp_path: Path) -> None:
    pod = next(pod for pod in pods if pod.roles)
    assert pod.metrics_port == 9464 and metrics_problems(pod) == []

    def moved(env: dict[str, str], argv: Sequence[str] = (), declared: int = 9464) -> Pod:
        """The pod with more variables and options, declaring port `declared`."""
        body = copy.deepcopy(pod.deployment.body)
        body["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = str(declared)
        (container,) = body["spec"]["template"]["spec"]["containers"]
        container["env"] += [{"name": k, "value": v} for k, v in env.items()]
        container["command"] += argv
        port = next(p for p in container["ports"] if p["name"] == "metrics")
        port["containerPort"] = declared
        return load_pod(Doc(pod.deployment.file, pod.deployment.index, body), container, tmp_path)

    by_env = moved({"TIERLINE_METRICS_PORT": "9500"})
    assert by_env.metrics_port == 9500 and metrics_problems(by_env)
    by_flag = moved({}, ["--metrics-port", "9600"])
    assert by_flag.metrics_port == 9600 and metrics_problems(by_flag)
    off = moved({"TIERLINE_METRICS_PORT": "off"})
    assert off.metrics_port == "off" and metrics_problems(off)
    assert metrics_problems(moved({}, declared=9500))
    # the port, the annotation and (by name) the probes moved together
    along = moved({"TIERLINE_METRICS_PORT": "9500"}, declared=9500)
    assert metrics_problems(along) == []
    assert probe_port(along.container, "metrics") == 9500
    assert probe_port(along.container, 9464) == 9464
    assert probe_port(along.container, "nope") is None


def test_a_placeholder_probes_no_endpoint(pods: list[Pod]) -> None:
    for pod in pods:
        if pod.roles:
            continue
        assert not pod.container.get("ports"), f"{pod}: a role that does not exist listens"
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = pod.container.get(kind) or {}
            assert set(probe) & {"httpGet", "tcpSocket", "grpc"} == set(), (
                f"{pod}: {kind} probes an endpoint no role serves yet"
            )


async def test_the_paths_probed_are_served(pods: list[Pod]) -> None:
    """What the probes and scrapes ask for, asked of a real MetricsServer."""
    served = [pod for pod in pods if pod.roles]
    ready = {http_probe(pod.container, "readinessProbe")["path"] for pod in served}
    live = {http_probe(pod.container, "livenessProbe")["path"] for pod in served}
    scraped = {
        pod.deployment.body["spec"]["template"]["metadata"]
        .get("annotations", {})
        .get("prometheus.io/path", METRICS_PATH)
        for pod in served
    }
    metrics = Metrics()
    async with (
        MetricsServer(metrics, host="127.0.0.1", port=0) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for path in live:
            got = await http.get(path)
            assert got.status_code == 200, f"liveness GET {path}: {got.status_code}"
        # as at start (runtime._start_metrics): every role registered, none started yet
        for role in ROLES:
            metrics.set_ready(role, False)
        for path in ready:
            got = await http.get(path)
            assert got.status_code == 503, f"readiness GET {path} before start: {got}"
        for role in ROLES:
            metrics.set_ready(role, True)
        for path in ready | live:
            got = await http.get(path)
            assert got.status_code == 200, f"GET {path} once started: {got.status_code}"
        for path in scraped:
            got = await http.get(path)
            assert got.status_code == 200, f"scrape GET {path}: {got.status_code}"
            assert got.headers["content-type"].startswith("text/plain"), path
            assert "# TYPE tierline_requests_total counter" in got.text, path


def test_pods_run_locked_down_as_the_images_user() -> None:
    uid = dockerfile_uid()
    for deployment in of_kind("Deployment"):
        spec = pod_spec(deployment)
        assert spec.get("automountServiceAccountToken") is False, deployment
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, deployment
        assert pod_security.get("runAsUser") == uid, f"{deployment}: the image's user is {uid}"
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        for container in containers(deployment):
            security = container.get("securityContext", {})
            assert security.get("readOnlyRootFilesystem") is True, deployment
            assert security.get("allowPrivilegeEscalation") is False, deployment
            assert security.get("capabilities", {}).get("drop") == ["ALL"], deployment


def test_every_container_has_requests_within_limits() -> None:
    for deployment in of_kind("Deployment"):
        for container in containers(deployment):
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                assert request and limit, f"{deployment}: {resource} request and limit"
                assert quantity(request) <= quantity(limit), f"{deployment}: {resource}"


def test_grace_period_lets_calls_in_flight_finish(pods: list[Pod]) -> None:
    for pod in pods:
        if not pod.roles:
            continue
        needed = pod.settings.worker.call_timeout_s + STOP_WAIT_EXTRA_S + SHUTDOWN_MARGIN_S
        assert pod.grace_s >= needed, (
            f"{pod}: terminationGracePeriodSeconds {pod.grace_s} < {needed:g} "
            f"(worker.call_timeout_s {pod.settings.worker.call_timeout_s:g} + stop + margin)"
        )


def test_references_resolve_or_are_optional() -> None:
    for deployment in of_kind("Deployment"):
        spec = pod_spec(deployment)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        refs: list[tuple[str, str, bool]] = []
        for volume in volumes.values():
            if "configMap" in volume:
                refs.append(("ConfigMap", volume["configMap"]["name"], False))
            if "secret" in volume:
                refs.append(("Secret", volume["secret"]["secretName"], False))
        for container in containers(deployment):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{deployment}: no volume {mount['name']}"
            for source in container.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in source:
                        ref = source[key]
                        refs.append((kind, ref["name"], ref.get("optional", False)))
            for entry in container.get("env", []):
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    ref = entry.get("valueFrom", {}).get(key)
                    if ref:
                        refs.append((kind, ref["name"], ref.get("optional", False)))
        for kind, name, optional in refs:
            assert optional or find(kind, name), f"{deployment}: needs {kind} {name}"


def test_provider_keys_secret_is_a_template_of_real_key_names(pods: list[Pod]) -> None:
    secrets = of_kind("Secret")
    assert secrets, "no provider key Secret template"
    for secret in secrets:
        assert "data" not in secret.body, f"{secret}: base64 `data` may hide a real key"
        for key, value in secret.body.get("stringData", {}).items():
            assert PLACEHOLDER.match(str(value)), f"{secret}: {key} is not a REPLACE_ME value"
    for pod in role_pods(pods, "workers"):
        catalog = load_catalog(Path(pod.settings.catalog) if pod.settings.catalog else None)
        key_names = {m.key_env for m in catalog.models.values() if m.key_env}
        names = [
            s["secretRef"]["name"] for s in pod.container.get("envFrom", []) if "secretRef" in s
        ]
        keys = [doc for doc in map(functools.partial(find, "Secret"), names) if doc is not None]
        assert keys, f"{pod} takes its provider keys from no Secret in deploy/k8s"
        for secret in keys:
            unknown = set(secret.body.get("stringData", {})) - key_names
            assert not unknown, f"{secret}: no catalog model reads {sorted(unknown)}"


# ---------------------------------------------------------------------------- compose


def compose_services() -> dict[str, Body]:
    services = _yaml(COMPOSE).get("services")
    assert isinstance(services, dict) and services, "docker-compose.yml has no services"
    return cast(dict[str, Body], services)


def compose_env(service: Body) -> dict[str, str | None]:
    env = service.get("environment", {})
    if isinstance(env, list):
        pairs = (str(item).partition("=") for item in env)
        return {name: value if sep else None for name, sep, value in pairs}
    return {str(k): None if v is None else str(v) for k, v in cast(Body, env).items()}


def compose_command(service: Body) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def tierline_services() -> Iterator[tuple[str, Body]]:
    for name, service in compose_services().items():
        if compose_command(service)[:1] == ["tierline"]:
            yield name, service


def test_compose_runs_every_role_with_real_commands() -> None:
    services = compose_services()
    assert {"kafka", "clickhouse", "simulator"} <= set(services)
    deployed: set[str] = set()
    for name, service in tierline_services():
        argv = compose_command(service)
        try:
            deployed |= set(roles_of(argv))
        except click.UsageError as exc:
            pytest.fail(f"compose service {name}: {argv}: {exc.format_message()}")
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"compose service {name} waits for {dependency}"
    assert deployed == set(ROLES), f"compose runs {sorted(deployed)}, ROLES are {ROLES}"
    for name, service in tierline_services():
        build = service.get("build")
        if build:
            context = (COMPOSE.parent / build["context"]).resolve()
            dockerfile = (context / build["dockerfile"]).resolve()
            assert dockerfile == DOCKERFILE.resolve(), f"compose service {name}: {dockerfile}"


def test_compose_variables_are_real_settings() -> None:
    problems = []
    for name, service in tierline_services():
        problems += env_problems(f"compose service {name}", compose_env(service))
    assert not problems, "\n".join(problems)


def test_compose_lets_roles_finish_in_flight_work() -> None:
    for name, service in tierline_services():
        if not roles_of(compose_command(service)):
            continue
        env = {k: v for k, v in compose_env(service).items() if v is not None}
        settings = load_settings(env=env)
        needed = settings.worker.call_timeout_s + STOP_WAIT_EXTRA_S + SHUTDOWN_MARGIN_S
        grace = seconds(service.get("stop_grace_period", "10s"))
        assert grace >= needed, f"compose service {name}: stop_grace_period {grace:g}s < {needed}"


def compose_published(service: Body) -> dict[int, int | None]:
    """Container port -> host port ("9465:9464", "127.0.0.1:9465:9464", "9464", long form)."""
    out: dict[int, int | None] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            out[int(entry["target"])] = None if published is None else int(published)
            continue
        *host, target = str(entry).split("/")[0].split(":")
        out[int(target)] = int(host[-1]) if host and host[-1] else None
    return out


def compose_healthcheck_url(service: Body) -> tuple[int, str]:
    """The port and path on 127.0.0.1 a service's healthcheck fetches."""
    test = service.get("healthcheck", {}).get("test")
    assert isinstance(test, list) and test[:1] == ["CMD"], f"not a CMD healthcheck: {test}"
    found = re.findall(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"\s?]*)", " ".join(test))
    assert len(found) == 1, f"healthcheck fetches no one local URL: {test}"
    return int(found[0][0]), found[0][1]


def compose_role_services() -> Iterator[tuple[str, Body, int | str]]:
    """Services running tierline roles, with the metrics port their process serves on."""
    for name, service in tierline_services():
        argv = compose_command(service)
        if not roles_of(argv):
            continue
        env = {k: v for k, v in compose_env(service).items() if v is not None}
        flag = invocation(argv)[1].get("metrics_port")
        yield name, service, load_settings(env=env).metrics_port if flag is None else flag


def test_compose_roles_publish_their_metrics_port_and_check_readiness() -> None:
    hosts: dict[int, str] = {}
    for name, service, port in compose_role_services():
        assert isinstance(port, int) and port > 0, f"compose service {name}: port {port!r}"
        published = compose_published(service)
        assert port in published, f"compose service {name} does not publish metrics port {port}"
        host = published[port]
        if host is not None:
            assert host not in hosts, f"compose services {name} and {hosts[host]} share {host}"
            hosts[host] = name
        assert compose_healthcheck_url(service) == (port, READY_PATH), (
            f"compose service {name}: the healthcheck should fetch {READY_PATH} on {port}"
        )
    assert hosts, "no compose service publishes a metrics port"


async def test_the_compose_healthcheck_fails_until_the_roles_started() -> None:
    """Each distinct healthcheck command, run here against a real MetricsServer."""
    commands = {
        json.dumps(service["healthcheck"]["test"]): port
        for _, service, port in compose_role_services()
    }
    assert commands, "no compose healthcheck"
    metrics = Metrics()
    async with MetricsServer(metrics, host="127.0.0.1", port=0) as server:

        async def check(test: list[str], port: int | str) -> int:
            argv = [a.replace(f":{port}/", f":{server.port}/") for a in test[1:]]
            assert argv[0] in ("python", "python3"), f"the image runs {argv[0]}? {test}"
            process = await asyncio.create_subprocess_exec(sys.executable, *argv[1:])
            return await process.wait()

        for command, port in commands.items():
            test = json.loads(command)
            metrics.set_ready("router", False)
            assert await check(test, port) != 0, f"healthy before the roles started: {test}"
            metrics.set_ready("router", True)
            assert await check(test, port) == 0, f"unhealthy once started: {test}"
