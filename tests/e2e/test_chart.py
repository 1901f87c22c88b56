"""The Helm chart (deploy/helm/osprey) and `osprey install --dry-run`: one stack, two renderers.

- The chart is rendered and linted by the real Helm engine (Helm's Go SDK, embedded in the PyPI
  package `helm-python-sdk`; no helm binary).
- For the default values and for a values file that turns every knob, the chart's objects (its
  templates plus crds/) equal `osprey install --dry-run --values` (kinds, names and content,
  key order aside). The one difference is the Namespace: `osprey install` creates it, Helm
  leaves it to `helm install --create-namespace`.
- Every object of both validates against the Kubernetes 1.30 schemas (`kubernetes-validate`,
  strict: unknown fields are errors); the custom resources (the default collector and
  Instrumentation, and the seed's manifests) validate against the CRD schemas of
  `osprey operator crds` with `jsonschema`.
- The default collector's configuration passes `osprey collector validate`, with Prometheus
  (spanmetrics connector, remote write to the install's Prometheus) and without it.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "osprey"
FIXTURES = Path(__file__).parent / "fixtures"
KUBE_VERSION = "1.30"
CUSTOM = ("OpenTelemetryCollector", "Instrumentation")

EVERY_KNOB = """
namespace: observability
image: {repository: registry.example/osprey, tag: "9.9", pullPolicy: Always}
operator:
  replicas: 2
  image: registry.example/operator:1
  resources: {requests: {cpu: 10m}}
  webhook:
    namespaceSelector:
      matchLabels: {instrument: "yes"}
      matchExpressions: [{key: team, operator: In, values: [shop]}]
    objectSelector:
      matchExpressions: [{key: tracing, operator: Exists}]
store:
  replicas: 0
  image: registry.example/store:2
  retention: 30d
  storage: {size: 50Gi, storageClassName: fast}
  resources: {limits: {memory: 8Gi}}
collector:
  replicas: 3
  image: registry.example/collector:3
  resources: {}
instrumentation:
  endpoint: http://my-collector:4318
  propagators: [tracecontext]
  sampler: {type: parentbased_traceidratio, argument: "0.25"}
grafana:
  replicas: 2
  image: grafana/grafana:10.4.0
prometheus:
  image: registry.example/prometheus:3
  retention: 2d
  storage: {size: 20Gi, storageClassName: slow}
  resources: {limits: {memory: 4Gi}}
"""


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def dry_run(binary: Path, values: Path | None = None) -> list[dict]:
    args = [str(binary), "install", "--dry-run"]
    if values is not None:
        args += ["--values", str(values)]
    return docs(subprocess.run(args, check=True, capture_output=True, text=True,
                               timeout=60).stdout)


def render_chart(values: dict | None = None) -> list[dict]:
    chart = helm.Chart.load(str(CHART))
    out = []
    for crd in chart.crds:
        out += docs(crd["data"])
    rendered = chart.render(values, name="osprey", namespace="osprey-system", is_install=True)
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            out += docs(text)
    return out


def key(obj: dict) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def by_key(objs: list[dict]) -> dict:
    out = {}
    for o in objs:
        assert key(o) not in out, f"duplicate {key(o)}"
        out[key(o)] = o
    return out


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, indent=1)


def assert_same_objects(installed: list[dict], charted: list[dict]):
    installed = [o for o in installed if o["kind"] != "Namespace"]
    a, b = by_key(installed), by_key(charted)
    assert sorted(a) == sorted(b)
    for k in a:
        assert canonical(a[k]) == canonical(b[k]), f"{k} differs"


@pytest.fixture(scope="module")
def crd_schemas(binary) -> dict[str, dict]:
    out = subprocess.run([str(binary), "operator", "crds"], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    schemas = {}
    for crd in docs(out):
        kind = crd["spec"]["names"]["kind"]
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
        schemas[kind] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate(obj: dict, crd_schemas: dict[str, dict]):
    what = "/".join(key(obj))
    if obj["kind"] in CUSTOM:
        schema = crd_schemas[obj["kind"]]
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=str)
        assert not errors, f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}"
        return
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise AssertionError(f"{what}: {str(e).splitlines()[0]} at "
                             f"{list(e.absolute_path)}") from None


def test_chart_lints_clean():
    report = helm.lint(str(CHART), strict=True, namespace="osprey-system",
                       kube_version="v1.30.0")
    assert report["errors"] == [], report
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], report["messages"]


def test_chart_metadata_matches_the_binary(binary):
    chart = helm.Chart.load(str(CHART))
    version = subprocess.run([str(binary), "--version"], check=True, capture_output=True,
                             text=True).stdout.split()[-1]
    assert chart.metadata["apiVersion"] == "v2"
    assert chart.metadata["appVersion"] == version
    crds = subprocess.run([str(binary), "operator", "crds"], check=True, capture_output=True,
                          text=True).stdout
    assert [d["data"] for d in chart.crds] != []
    assert sum((docs(c["data"]) for c in chart.crds), []) == docs(crds), \
        "deploy/helm/osprey/crds/crds.yaml is stale: regenerate it with `osprey operator crds`"


def test_default_render_equals_install_dry_run(binary):
    installed = dry_run(binary)
    assert_same_objects(installed, render_chart())
    # The chart's values.yaml, given to `osprey install`, is the default.
    assert dry_run(binary, CHART / "values.yaml") == installed


def test_every_knob_renders_the_same(binary, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(EVERY_KNOB)
    installed = dry_run(binary, values)
    assert installed[0]["metadata"]["name"] == "observability"
    charted = render_chart(yaml.safe_load(EVERY_KNOB))
    assert_same_objects(installed, charted)
    # The knobs did turn: a few spot checks.
    objs = by_key(installed)
    sts = objs[("StatefulSet", "observability", "osprey")]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"
    hook = objs[("MutatingWebhookConfiguration", "", "osprey-operator-mutation")]["webhooks"][0]
    assert hook["objectSelector"] == {"matchExpressions": [{"key": "tracing",
                                                             "operator": "Exists"}]}
    assert objs[("Deployment", "observability", "osprey-grafana")]["spec"]["replicas"] == 2
    prom = objs[("Deployment", "observability", "osprey-prometheus")]
    assert prom["spec"]["template"]["spec"]["containers"][0]["args"][2] == \
        "--storage.tsdb.retention.time=2d"
    data = next(v for v in prom["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "osprey-prometheus"}}
    pvc = objs[("PersistentVolumeClaim", "observability", "osprey-prometheus")]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["spec"]["storageClassName"] == "slow"


@pytest.mark.parametrize("text,gone", [
    ("operator: {enabled: false}\ngrafana: {enabled: false}\n", ("grafana", "operator")),
    ("prometheus: {enabled: false}\n", ("prometheus",)),
], ids=["operator-grafana", "prometheus"])
def test_parts_disabled_render_the_same(binary, tmp_path, text, gone):
    values = tmp_path / "values.yaml"
    values.write_text(text)
    installed = dry_run(binary, values)
    assert not [o for o in installed if any(g in o["metadata"]["name"] for g in gone)]
    assert_same_objects(installed, render_chart(yaml.safe_load(text)))


def test_objects_validate_against_kubernetes_and_crd_schemas(binary, crd_schemas, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(EVERY_KNOB)
    for objs in (dry_run(binary), render_chart(), dry_run(binary, values)):
        kinds = {o["kind"] for o in objs}
        assert {"CustomResourceDefinition", "Deployment", "StatefulSet", *CUSTOM} <= kinds
        for obj in objs:
            validate(obj, crd_schemas)


def test_validation_catches_bad_objects(crd_schemas):
    """The validators used above do reject what a cluster would reject."""
    bad_service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                   "spec": {"portz": [1]}}
    with pytest.raises(AssertionError, match="portz"):
        validate(bad_service, crd_schemas)
    bad_inst = {"apiVersion": "opentelemetry.io/v1alpha1", "kind": "Instrumentation",
                "metadata": {"name": "x"}, "spec": {"propagators": "b3"}}
    with pytest.raises(AssertionError, match="Instrumentation"):
        validate(bad_inst, crd_schemas)


@pytest.mark.parametrize("fixture", ["collector-fixed.yaml", "instrumentation-seed.yaml"])
def test_seed_manifests_validate_against_the_crds(fixture, crd_schemas):
    objs = docs((FIXTURES / fixture).read_text())
    assert objs and all(o["kind"] in CUSTOM for o in objs)
    for obj in objs:
        validate(obj, crd_schemas)


@pytest.mark.parametrize("prometheus", [True, False], ids=["prometheus", "no-prometheus"])
def test_default_collector_config_is_valid(binary, tmp_path, prometheus):
    values = tmp_path / "values.yaml"
    values.write_text(f"prometheus: {{enabled: {str(prometheus).lower()}}}\n")
    collector = next(o for o in dry_run(binary, values) if o["kind"] == "OpenTelemetryCollector")
    config = tmp_path / "collector.yaml"
    config.write_text(collector["spec"]["config"])
    parsed = yaml.safe_load(collector["spec"]["config"])
    pipelines = parsed["service"]["pipelines"]
    assert pipelines["traces"] == {
        "receivers": ["otlp", "jaeger", "zipkin"], "processors": ["memory_limiter", "batch"],
        "exporters": ["otlp", "spanmetrics"] if prometheus else ["otlp"]}
    assert parsed["exporters"]["otlp"]["endpoint"] == "osprey.osprey-system.svc:4317"
    if prometheus:
        assert pipelines["metrics"] == {"receivers": ["spanmetrics"],
                                        "exporters": ["prometheusremotewrite"]}
        assert parsed["exporters"]["prometheusremotewrite"]["endpoint"] == \
            "http://osprey-prometheus.osprey-system.svc:9090/api/v1/write"
        assert list(parsed["connectors"]) == ["spanmetrics"]
    else:
        assert set(pipelines) == {"traces"} and set(parsed["exporters"]) == {"otlp"}
        assert "connectors" not in parsed
    res = subprocess.run([str(binary), "collector", "validate", "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
