"""The deployment files are right without a container engine: `docker-compose config` accepts
the compose file and every role in it is deployable as the README says; the Kustomize base
renders (`kubectl kustomize`) and every manifest validates against the Kubernetes schemas; the
Dockerfile and the lock file hold what the image needs. `.ci/run` installs docker-compose; kubectl
(with its built-in kustomize) is on the machine. Without them these tests skip locally and fail
in CI, so a missing tool cannot pass for a valid file."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement

from billing_sync.workers.actors import COMMANDS_QUEUE, RECONCILE_QUEUE, STRIPE_EVENTS_QUEUE, queue_name
from billing_sync.workers.worker import SHUTDOWN_BACKSTOP_MARGIN_S, SHUTDOWN_TIMEOUT_MS

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("ingress", "worker", "bridge", "relay", "scheduler")
KUBERNETES_VERSION = "1.32.0"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: .ci/run installs it")
        pytest.skip(f"{name} is not installed")
    return path


def compose_config(**env: str) -> dict:
    result = subprocess.run([tool("docker-compose"), "config"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **env}, check=False)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def named_volumes(service: dict) -> dict[str, str]:
    """{target: volume name} of the service's named volumes, in compose v1's short syntax
    (`name:/target:rw`) or v2's long one."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/")):
                mounts[target] = source
        elif volume["type"] == "volume":
            mounts[volume["target"]] = volume["source"]
    return mounts


def host_ip(port: str | dict) -> str:
    """The address a published port is bound to (v1: `127.0.0.1:8080:8080/tcp`, v2: a mapping)."""
    if isinstance(port, dict):
        return port.get("host_ip", "0.0.0.0")
    parts = port.split(":")
    return parts[0] if len(parts) == 3 else "0.0.0.0"


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert match and duration, duration
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


# --- docker-compose.yml


def test_every_role_waits_for_the_catalog_job_and_has_a_readiness_check():
    services = compose_config()["services"]
    for role in ROLES:
        service = services[role]
        assert service["depends_on"]["catalog"]["condition"] == "service_completed_successfully", role
        assert "/readyz" in " ".join(service["healthcheck"]["test"]), role
    assert services["catalog"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_worker_is_given_longer_to_stop_than_its_shutdown_timeout():
    worker = compose_config()["services"]["worker"]
    assert seconds(worker["stop_grace_period"]) > SHUTDOWN_TIMEOUT_MS / 1000 + SHUTDOWN_BACKSTOP_MARGIN_S


def test_queues_and_rabbitmq_state_survive_a_restart():
    config = compose_config()
    redis, rabbitmq = config["services"]["redis"], config["services"]["rabbitmq"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert named_volumes(redis)["/data"] == "redisdata"
    assert rabbitmq["hostname"] == "rabbitmq"
    assert named_volumes(rabbitmq)["/var/lib/rabbitmq"] == "rabbitdata"
    assert {"pgdata", "redisdata", "rabbitdata"} <= set(config["volumes"])


def test_secrets_reach_the_roles_as_files_and_the_ingress_listens_on_loopback_unless_asked():
    config = compose_config()
    ingress = config["services"]["ingress"]
    assert host_ip(ingress["ports"][0]) == "127.0.0.1"
    for name in ("STRIPE_API_KEY", "WEBHOOK_SECRETS", "API_TOKENS"):
        assert f"BILLING_{name}" not in ingress["environment"]
        assert ingress["environment"][f"BILLING_{name}_FILE"].startswith("/run/secrets/")
    assert {s["source"] for s in ingress["secrets"]} == set(config["secrets"])
    for secret in config["secrets"].values():
        assert Path(secret["file"]).is_file(), secret
    opened = compose_config(BILLING_INGRESS_BIND="0.0.0.0")["services"]["ingress"]
    assert host_ip(opened["ports"][0]) == "0.0.0.0"


def test_rabbitmq_and_real_stripe_are_switched_on_by_variables_alone():
    config = compose_config(BILLING_BROKER_URL="amqp://guest:guest@rabbitmq:5672/%2F", BILLING_STRIPE_API_BASE="")
    environment = config["services"]["worker"]["environment"]
    assert environment["BILLING_BROKER_URL"].startswith("amqp://")
    assert environment["BILLING_STRIPE_API_BASE"] in ("", None)  # cleared: real Stripe (config/settings.py)
    assert config["services"]["rabbitmq"]["profiles"] == ["rabbitmq"]


# --- Dockerfile, .dockerignore, the lock file


def test_the_image_runs_as_non_root_under_an_init_with_a_healthcheck():
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and not user[-1].startswith(("root", "0")), user
    assert re.search(r"^HEALTHCHECK .*\n?.*readyz|^ENV BILLING_HEALTHCHECK_URL=.*/readyz", dockerfile, re.M)
    assert re.search(r"^ENTRYPOINT \[\"/usr/bin/tini\"", dockerfile, re.M)
    # The dependencies come from the lock file, in a layer of their own before the source.
    assert dockerfile.index("requirements.lock") < dockerfile.index("COPY . ")
    assert "--require-hashes" in dockerfile


def test_the_build_context_leaves_out_secrets_tests_and_benchmarks():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".env.*", "tests", "bench", ".git", ".venv"} <= ignored


def test_the_lock_file_pins_every_dependency_within_its_range():
    locked = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M))
    locked = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in locked.items()}
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in dependencies:
        requirement = Requirement(line)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in locked, f"{name} is not in requirements.lock: run `python3 run.py lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), f"{name}: run `python3 run.py lock`"


# --- Kubernetes (deploy/kubernetes, a Kustomize base)


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    result = subprocess.run([tool("kubectl"), "kustomize", str(ROOT / "deploy" / "kubernetes")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(manifests: list[dict], kind: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def test_every_manifest_validates_against_the_kubernetes_schemas(manifests):
    for manifest in manifests:
        if manifest["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked by the ScaledObject test below
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_every_role_is_a_deployment_with_probes_resources_a_budget_and_the_schema_wait(manifests):
    deployments, budgets = by_kind(manifests, "Deployment"), by_kind(manifests, "PodDisruptionBudget")
    assert set(deployments) == {f"billing-sync-{role}" for role in ROLES}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["initContainers"][0]["args"][:3] == ["billing-sync", "db", "wait"], name
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/run/secrets/billing-sync" in mounts, name
        assert budgets[name]["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    worker = deployments["billing-sync-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > SHUTDOWN_TIMEOUT_MS / 1000 + SHUTDOWN_BACKSTOP_MARGIN_S


def test_migrations_and_the_catalog_run_as_a_job_and_settings_come_from_a_configmap_and_a_secret(manifests):
    job = by_kind(manifests, "Job")["billing-sync-migrate"]
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "billing-sync db upgrade" in command and "billing-sync catalog sync" in command
    (settings,) = by_kind(manifests, "ConfigMap").values()
    assert not any(key.endswith(("_API_KEY", "_SECRETS", "_TOKENS")) for key in settings["data"]), \
        "secrets belong in the Secret, mounted as files"
    for deployment in by_kind(manifests, "Deployment").values():
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == "billing-sync"


def test_the_worker_scales_on_the_depth_of_its_own_queues(manifests):
    (scaled,) = by_kind(manifests, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind(manifests, "Deployment")
    assert scaled["spec"]["minReplicaCount"] >= 1 <= scaled["spec"]["maxReplicaCount"]
    lists = {t["metadata"]["listName"] for t in scaled["spec"]["triggers"] if t["type"] == "redis"}
    # Dramatiq's Redis broker keeps each queue as the list "dramatiq:<queue name>".
    queues = {queue_name("billing-sync", q) for q in (STRIPE_EVENTS_QUEUE, COMMANDS_QUEUE, RECONCILE_QUEUE)}
    assert lists == {f"dramatiq:{q}" for q in queues}
