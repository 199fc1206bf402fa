"""The helm chart, checked by the real tools: ``helm lint`` and ``helm template`` with the
default values and two realistic values files, every rendered manifest validated offline
against the Kubernetes API schemas (kubernetes-validate), the PrometheusRule's rules by
promtool. helm and kubernetes-validate come from ``make deploy-tools`` (.tools/bin).

Without them the tests are skipped — unless ``CI`` or ``DRIFTLINE_REQUIRE_DEPLOY_TOOLS``
is set (``make integration`` sets the latter after building them): then they fail, so a
broken tool build cannot pass as a skip."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.cli import build_parser
from driftline.options import env_name

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm"
TOOLS = REPO / ".tools" / "bin"
HELM, VALIDATE = TOOLS / "helm", TOOLS / "kubernetes-validate"
KUBE = "1.31.0"
VALUES = {"default": [], "sasl-ssl": ["-f", str(CHART / "ci" / "sasl-ssl-existing-secrets.yaml")],
          "monitoring": ["-f", str(CHART / "ci" / "monitoring-hpa.yaml")]}
CORE = {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount",
        "PodDisruptionBudget", "HorizontalPodAutoscaler"}

MISSING = [str(p) for p in (HELM, VALIDATE) if not p.exists()]


def _required() -> bool:
    """The deployment tools must be there: CI, or ``make integration`` (which builds them)."""
    return any(os.environ.get(v, "").strip().lower() not in ("", "0", "false", "no")
               for v in ("CI", "DRIFTLINE_REQUIRE_DEPLOY_TOOLS"))


pytestmark = pytest.mark.skipif(bool(MISSING) and not _required(),
                                reason="run `make deploy-tools` (make test does)")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Every test runs helm first: it fails here when the tools are required but missing
    (otherwise the module is skipped)."""
    if MISSING:
        pytest.fail(f"deployment tools missing: {', '.join(MISSING)} — CI / "
                    "DRIFTLINE_REQUIRE_DEPLOY_TOOLS require them; build them with "
                    "`make deploy-tools` (log: .tools/deploytools.log)", pytrace=False)
    done = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120,
                          cwd=CHART)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def render(values: list[str], *extra: str) -> list[dict[str, Any]]:
    out = helm("template", "rel", ".", "--namespace", "ml", "--kube-version", KUBE,
               *values, *extra).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("name", sorted(VALUES))
def test_lint_template_and_kubernetes_schemas(name: str, tmp_path: Path) -> None:
    lint = helm("lint", ".", "--strict", "--kube-version", KUBE, *VALUES[name])
    assert "0 chart(s) failed" in lint.stdout
    docs = render(VALUES[name])
    core = [d for d in docs if d["kind"] in CORE]
    assert {d["kind"] for d in docs} - CORE <= {"ServiceMonitor", "PrometheusRule"}
    manifest = tmp_path / "core.yaml"
    manifest.write_text(yaml.safe_dump_all(core))
    check = subprocess.run([str(VALIDATE), "--strict", "-k", KUBE, str(manifest)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("passed") == len(core), check.stdout

    [dep] = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    [c] = pod["containers"]
    sc, psc = c["securityContext"], pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert pod["terminationGracePeriodSeconds"] >= 60
    assert by_kind(docs, "PodDisruptionBudget")
    _flags_exist(c)


def _flags_exist(container: dict[str, Any]) -> None:
    """Every argument and DRIFTLINE_* variable the pod passes is one `driftline worker` takes."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    worker = sub.choices["worker"]  # type: ignore[attr-defined]
    flags = {o for a in worker._actions for o in a.option_strings if o.startswith("--")}
    twins = {env_name(f) for f in flags}
    args = container["args"]
    assert args[0] == "worker"
    for a in args[1:]:
        assert a.split("=")[0] in flags, a
    for e in container["env"]:
        n = e["name"]
        assert (n in twins or n.startswith("DRIFTLINE_KAFKA_")
                or n == "DRIFTLINE_REDIS_PASSWORD"), n


def test_sasl_ssl_values_use_existing_secrets_and_mounted_certificates() -> None:
    docs = render(VALUES["sasl-ssl"])
    assert not by_kind(docs, "Secret")  # nothing secret in the release
    [cm] = by_kind(docs, "ConfigMap")
    props = dict(line.split("=", 1) for line in cm["data"]["kafka.properties"].splitlines()
                 if "=" in line and not line.startswith("#"))
    assert props["security.protocol"] == "SASL_SSL"
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["ssl.ca.location"] == "/etc/driftline/kafka-tls/ca.crt"
    assert props["ssl.certificate.location"] == "/etc/driftline/kafka-tls/tls.crt"
    assert not any("password" in k for k in props)
    [dep] = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    ref = env["DRIFTLINE_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "driftline-kafka-credentials", "key": "password"}
    assert env["DRIFTLINE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == \
        "driftline-redis-credentials"
    assert env["DRIFTLINE_REDIS_CA_FILE"]["value"] == "/etc/driftline/redis-tls/ca.crt"
    assert env["DRIFTLINE_REDIS_URL"]["value"].startswith("rediss://")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["kafka-tls"]["secret"]["secretName"] == "driftline-kafka-tls"
    assert volumes["redis-tls"]["secret"]["secretName"] == "driftline-redis-tls"
    assert "@sha256:" in pod["containers"][0]["image"]
    assert "models.toml" in cm["data"]


def test_inline_passwords_become_chart_secrets_never_plain_env() -> None:
    docs = render([], "--set", "kafka.sasl.username=svc", "--set", "kafka.sasl.password=pw-1",
                  "--set", "redis.password=pw-2")
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    assert base64.b64decode(secrets["rel-driftline-kafka"]["data"]["sasl-password"]) == b"pw-1"
    assert base64.b64decode(secrets["rel-driftline-redis"]["data"]["redis-password"]) == b"pw-2"
    others = [d for d in docs if d["kind"] != "Secret"]
    assert "pw-1" not in json.dumps(others) and "pw-2" not in json.dumps(others)


def test_monitoring_values_ship_the_rules_and_scale_on_lag(tmp_path: Path) -> None:
    docs = render(VALUES["monitoring"])
    [rule] = by_kind(docs, "PrometheusRule")
    shipped = yaml.safe_load((REPO / "driftline" / "stack" / "prometheus" / "rules.yml").read_text())
    assert rule["spec"] == shipped
    assert (CHART / "files" / "rules.yml").read_text() == \
        (REPO / "driftline" / "stack" / "prometheus" / "rules.yml").read_text()
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run(["promtool", "check", "rules", str(rules_file)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    [sm] = by_kind(docs, "ServiceMonitor")
    [svc] = by_kind(docs, "Service")
    assert sm["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    [hpa] = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "driftline_consumer_lag"
    [dep] = by_kind(docs, "Deployment")
    assert "replicas" not in dep["spec"]  # the HPA owns it


@pytest.mark.parametrize("bad", [["--set", "replicaCount=0"],
                                 ["--set", "redis.url=redis://u:pw@redis:6379/0"],
                                 ["--set-string", "kafka.config.sasl\\.password=x"],
                                 ["--set", "terminationGracePeriodSeconds=5"],
                                 ["--set", "nosuchvalue=1"]])
def test_values_schema_refuses_bad_values(bad: list[str]) -> None:
    done = helm("template", "rel", ".", "--kube-version", KUBE, *bad, check=False)
    assert done.returncode != 0 and "schema" in done.stderr, done.stderr
