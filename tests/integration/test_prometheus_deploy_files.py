"""deploy/: every YAML parses, the manifests reference each other consistently, the shipped bot
config in the ConfigMap passes clusterdoc's own config loader, and the Prometheus/Alertmanager
examples pass promtool/amtool when those are installed (no docker engine is needed)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterdoc.config import config_from_mapping

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.y*ml"))
    assert len(files) >= 8
    for f in files:
        try:
            assert docs(f), f"{f} is empty"
        except yaml.YAMLError as exc:
            pytest.fail(f"{f.relative_to(REPO)}: {exc}")


def test_compose_has_the_services_and_declares_its_volumes() -> None:
    compose = docs(DEPLOY / "docker-compose.yml")[0]
    services = compose["services"]
    assert {"elasticsearch", "ollama", "bot"} <= set(services)
    bot = services["bot"]
    assert (DEPLOY / Path(bot["build"]["dockerfile"]).name).exists()
    assert bot["env_file"] == ".env"  # secrets from a file kept out of git, not inline
    assert not any(re.search(r"TOKEN|SECRET|PASSWORD", k) for k in bot.get("environment", {}))
    named = {v.split(":", 1)[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert named <= set(compose["volumes"]) and "clusterdoc-data" in named
    assert all(p.startswith("127.0.0.1:") for p in bot.get("ports", []))


def test_kubernetes_manifests_reference_each_other() -> None:
    objs = [d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in docs(f) if "metadata" in d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    assert {"Deployment", "ConfigMap", "Secret", "Service", "PersistentVolumeClaim", "Namespace"} <= set(by_kind)
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    dep = by_kind["Deployment"][0]
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    container = pod["containers"][0]
    for ref in container["envFrom"]:
        assert ("Secret", ref["secretRef"]["name"]) in names
    for vol in pod["volumes"]:
        if "configMap" in vol:
            assert ("ConfigMap", vol["configMap"]["name"]) in names
        if "secret" in vol:
            assert ("Secret", vol["secret"]["secretName"]) in names
        if "persistentVolumeClaim" in vol:
            assert ("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]) in names
    mounts = {m["name"] for m in container["volumeMounts"]}
    assert mounts == {v["name"] for v in pod["volumes"]}
    service = by_kind["Service"][0]
    port_names = {p["name"] for p in container["ports"]}
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    kustomization = docs(DEPLOY / "k8s" / "kustomization.yaml")[0]
    assert all((DEPLOY / "k8s" / r).exists() for r in kustomization["resources"])


def test_configmap_config_passes_the_config_loader() -> None:
    cm = next(d for d in docs(DEPLOY / "k8s" / "configmap.yaml") if d["kind"] == "ConfigMap")
    data = tomllib.loads(cm["data"]["config.toml"])
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "CLUSTERDOC_ALERTMANAGER_TOKEN": "t"}
    cfg = config_from_mapping(data, "configmap.yaml", env)
    assert cfg.bot.alertmanager.enabled and cfg.bot.alertmanager.token == "t"
    assert cfg.bot.alertmanager.port == 9095
    assert cfg.telemetry.enabled and cfg.telemetry.selector == 'job="nvidia-dcgm-exporter"'
    secret_keys = {k for d in docs(DEPLOY / "k8s" / "secret.example.yaml") for k in d.get("stringData", {})}
    assert {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "CLUSTERDOC_ALERTMANAGER_TOKEN"} <= secret_keys


def test_systemd_unit_and_dockerfile() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / "clusterdoc.service").read_text())
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    assert "clusterdoc bot --config" in unit["Service"]["ExecStart"]
    assert unit["Service"]["User"] != "root" and unit["Service"]["EnvironmentFile"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") == 2 and "ENTRYPOINT" in dockerfile and "USER clusterdoc" in dockerfile
    for src in re.findall(r"^COPY (?!--)(\S+) ", dockerfile, re.MULTILINE):
        assert (REPO / src).exists(), f"Dockerfile copies {src}, which is not in the repository"


def test_prometheus_and_alertmanager_examples_pass_their_checkers(tmp_path: Path) -> None:
    promtool, amtool = shutil.which("promtool"), shutil.which("amtool")
    if promtool is None and amtool is None:
        pytest.skip("promtool/amtool not installed (Debian packages prometheus, prometheus-alertmanager)")
    if promtool:
        config = docs(DEPLOY / "prometheus" / "prometheus.example.yml")[0]
        config["rule_files"] = [str(DEPLOY / "prometheus" / "clusterdoc-gpu.rules.yml")]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        done = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    if amtool:
        done = subprocess.run([amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.example.yml")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
