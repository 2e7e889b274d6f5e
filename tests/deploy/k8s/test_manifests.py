"""Kubernetes manifests: structural checks (no API server offline) and `kubectl kustomize` where
kubectl exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

NAMESPACE = "parcelstream"
WORKLOADS = {"Deployment", "Job"}


@pytest.fixture(scope="module")
def k8s_dir(repo_root: Path) -> Path:
    return repo_root / "deploy" / "k8s"


@pytest.fixture(scope="module")
def manifests(k8s_dir: Path) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(k8s_dir.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return documents


def _of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests if doc["kind"] == kind]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def test_every_manifest_has_api_version_kind_and_metadata(manifests: list[dict[str, Any]]) -> None:
    for doc in manifests:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


def test_kustomization_lists_every_manifest(k8s_dir: Path) -> None:
    kustomization = yaml.safe_load((k8s_dir / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {path.name for path in k8s_dir.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_deployment_selectors_match_their_pod_labels(manifests: list[dict[str, Any]]) -> None:
    deployments = _of_kind(manifests, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {
        f"parcelstream-{stage}" for stage in ("worker", "projector", "notifier", "tracking", "gateway")
    }
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]


def test_services_select_pods_and_target_named_ports(manifests: list[dict[str, Any]]) -> None:
    deployments = _of_kind(manifests, "Deployment")
    for service in _of_kind(manifests, "Service"):
        selector = service["spec"]["selector"]
        targets = [d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert targets, f"service {service['metadata']['name']} selects no pod"
        port_names = {port["name"] for d in targets for c in _containers(d) for port in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]


def test_settings_come_from_the_parcelstream_configmap(manifests: list[dict[str, Any]]) -> None:
    (configmap,) = _of_kind(manifests, "ConfigMap")
    assert all(key.startswith("PARCELSTREAM_") for key in configmap["data"])
    assert {"PARCELSTREAM_BOOTSTRAP_SERVERS", "PARCELSTREAM_TOPIC_PREFIX", "PARCELSTREAM_REDIS_URL"} <= set(
        configmap["data"]
    )
    for workload in [doc for doc in manifests if doc["kind"] in WORKLOADS]:
        for container in _containers(workload):
            refs = {source["configMapRef"]["name"] for source in container["envFrom"] if "configMapRef" in source}
            assert refs == {configmap["metadata"]["name"]}, workload["metadata"]["name"]
            # Secrets (the postcode key) come from one Secret, never from the ConfigMap.
            secrets = {source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source}
            assert secrets <= {"parcelstream-secrets"}, workload["metadata"]["name"]
            assert all(env["name"].startswith("PARCELSTREAM_") for env in container.get("env", []))


def test_worker_replicas_do_not_exceed_partitions(manifests: list[dict[str, Any]]) -> None:
    (configmap,) = _of_kind(manifests, "ConfigMap")
    (worker,) = [d for d in _of_kind(manifests, "Deployment") if d["metadata"]["name"] == "parcelstream-worker"]
    assert 1 <= worker["spec"]["replicas"] <= int(configmap["data"]["PARCELSTREAM_PARTITIONS"])


def test_every_deployment_is_scraped(manifests: list[dict[str, Any]]) -> None:
    (monitor,) = _of_kind(manifests, "PodMonitor")
    monitored_ports = {endpoint["port"] for endpoint in monitor["spec"]["podMetricsEndpoints"]}
    for deployment in _of_kind(manifests, "Deployment"):
        template = deployment["spec"]["template"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        ports = {port["name"]: port["containerPort"] for c in _containers(deployment) for port in c["ports"]}
        assert monitored_ports & set(ports), deployment["metadata"]["name"]
        assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert int(template["metadata"]["annotations"]["prometheus.io/port"]) in ports.values()
        # The job label is the app name, which the alert rules select (parcelstream-<stage>).
        assert template["metadata"]["labels"][monitor["spec"]["jobLabel"]] == deployment["metadata"]["name"]


def test_kubectl_kustomize_renders(k8s_dir: Path, manifests: list[dict[str, Any]]) -> None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed here")
    result = subprocess.run(
        [kubectl, "kustomize", str(k8s_dir)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(manifests)
