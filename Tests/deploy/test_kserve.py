"""kubernetes/kserve/: the ClusterServingRuntime and the InferenceService example (issue 14).

KServe's CRD schemas are not available offline (kubernetes-validate has none), so their structure
is checked against the fields of KServe's API types, github.com/kserve/kserve:
  pkg/apis/serving/v1alpha1/servingruntime_types.go  ServingRuntimeSpec, ServingRuntimePodSpec,
                                                     SupportedModelFormat
  pkg/apis/serving/v1beta1/{inference_service,predictor,component,predictor_model}.go
                                                     InferenceServiceSpec, PredictorSpec,
                                                     ComponentExtensionSpec, ModelSpec, ModelFormat
  pkg/constants/constants.go                         InferenceServiceProtocol values,
                                                     InferenceServiceContainerName
The Kubernetes-standard parts inside them (the runtime's containers and volumes, the predictor's
resources) are validated with kubernetes-validate --strict, wrapped in a Pod.
"""

import os
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run, tool

KSERVE = ROOT / "kubernetes/kserve"
RUNTIME_FILE = KSERVE / "clusterservingruntime.yaml"
ISVC_FILE = KSERVE / "inferenceservice.yaml"
DEFAULT_VERSIONS = "1.30.0 1.37.0"

# json tags of ServingRuntimeSpec, with ServingRuntimePodSpec inlined.
RUNTIME_SPEC_KEYS = {
    "supportedModelFormats", "multiModel", "disabled", "protocolVersions", "workerSpec",
    "containers", "volumes", "nodeSelector", "affinity", "tolerations", "labels", "annotations",
    "imagePullSecrets", "hostIPC", "schedulerName", "resourceClaims",
    "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint", "replicas", "storageHelper", "builtInAdapter",
}
SUPPORTED_MODEL_FORMAT_KEYS = {"name", "version", "autoSelect", "priority"}
# constants.InferenceServiceProtocol
PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
# constants.InferenceServiceContainerName: KServe finds the serving container by this name.
CONTAINER_NAME = "kserve-container"

# InferenceServiceSpec
ISVC_SPEC_KEYS = {"predictor", "explainer", "transformer"}
# PredictorSpec: its own fields, ComponentExtensionSpec inlined, and the v1beta1 PodSpec inlined
# (corev1.PodSpec's fields; only those one would set on a predictor are listed).
PREDICTOR_KEYS = {
    "name", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
    "lightgbm", "paddle", "model", "storageUris", "storageContainerName", "workerSpec",
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
    "annotations", "deploymentStrategy",
    "serviceAccountName", "nodeSelector", "affinity", "tolerations", "volumes", "containers",
    "imagePullSecrets", "priorityClassName", "securityContext", "topologySpreadConstraints",
    "terminationGracePeriodSeconds",
}
# ModelSpec = ModelFormat + runtime + PredictorExtensionSpec (storageUri, runtimeVersion,
# protocolVersion, storage, ... and corev1.Container inlined: resources, env, args, ...).
MODEL_KEYS = {
    "modelFormat", "runtime", "storageUri", "runtimeVersion", "protocolVersion", "storage",
    "confidential", "resources", "env", "args", "command", "image", "ports", "volumeMounts",
    "securityContext", "readinessProbe", "livenessProbe", "startupProbe", "name",
}
SCALE_METRICS = {"cpu", "memory", "concurrency", "rps"}  # +kubebuilder:validation:Enum
STORAGE_URI = re.compile(r"^(s3|gs|hdfs|webhdfs|pvc|hf|oci)://\S+$|^https?://\S+$")
# SPEC §4's model names; an InferenceService name is also a DNS-1035 label.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def load(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1, f"{path}: want one document, got {len(docs)}"
    return docs[0]


@pytest.fixture(scope="module")
def runtime():
    return load(RUNTIME_FILE)


@pytest.fixture(scope="module")
def isvc():
    return load(ISVC_FILE)


@pytest.fixture(scope="module")
def container(runtime):
    return runtime["spec"]["containers"][0]


def env(container) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_runtime_kind_and_known_fields(runtime):
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert runtime["kind"] == "ClusterServingRuntime"
    assert set(runtime) <= {"apiVersion", "kind", "metadata", "spec"}
    assert "namespace" not in runtime["metadata"], "a ClusterServingRuntime is cluster-scoped"
    assert DNS_LABEL.match(runtime["metadata"]["name"])
    spec = runtime["spec"]
    unknown = set(spec) - RUNTIME_SPEC_KEYS
    assert not unknown, f"fields ServingRuntimeSpec does not have: {unknown}"
    assert spec["containers"], "ServingRuntimePodSpec.containers is required"


def test_runtime_model_formats_and_protocols(runtime):
    spec = runtime["spec"]
    formats = spec["supportedModelFormats"]
    assert formats
    for entry in formats:
        assert set(entry) <= SUPPORTED_MODEL_FORMAT_KEYS, entry
        assert isinstance(entry["name"], str) and entry["name"]
        assert isinstance(entry.get("version", ""), str), "version is a string (quote it)"
        assert isinstance(entry.get("autoSelect", False), bool)
        assert isinstance(entry.get("priority", 1), int) and entry.get("priority", 1) >= 1
        # KServe: a priority only counts with autoSelect.
        assert "priority" not in entry or entry.get("autoSelect") is True
    assert "vowpal-wabbit" in {f["name"] for f in formats}
    assert spec["protocolVersions"], "say which protocols the runtime speaks"
    assert set(spec["protocolVersions"]) <= PROTOCOLS, spec["protocolVersions"]
    # vwfcgi speaks REST V1 and the Open Inference Protocol's REST binding; no gRPC.
    assert sorted(spec["protocolVersions"]) == ["v1", "v2"]
    assert spec.get("multiModel", False) is False


def test_runtime_container(runtime, container):
    assert len(runtime["spec"]["containers"]) == 1
    assert container["name"] == CONTAINER_NAME
    assert container["image"] == "vwfcgi", "the image name the kustomizations rewrite (images:)"
    # docker/entrypoint.sh's `all` mode: nginx + vwfcgi in one container.
    assert container.get("args") == ["all"] and "command" not in container
    assert re.search(r"^\s*all \| vwfcgi \| nginx( \| train)?\)", (ROOT / "docker/entrypoint.sh").read_text(), re.M)
    e = env(container)
    # KServe's storage initializer downloads storageUri into /mnt/models.
    assert e["MODEL_DIR"] == "/mnt/models"
    ports = container["ports"]
    assert len(ports) == 1, "Knative routes to exactly one container port"
    assert ports[0]["containerPort"] == int(e.get("PORT", "8080")) == 8080
    # Every setting is one the entrypoint reads.
    entrypoint = (ROOT / "docker/entrypoint.sh").read_text()
    for name in e:
        assert re.search(rf"\b{name}\b", entrypoint), f"docker/entrypoint.sh does not read {name}"


def test_runtime_probes_use_documented_routes(container):
    openapi = yaml.safe_load((ROOT / "docs/openapi.yaml").read_text())
    template = (ROOT / "nginx/nginx.conf.template").read_text()
    port = container["ports"][0]["containerPort"]
    for kind in ("readinessProbe", "livenessProbe"):
        probe = container[kind]["httpGet"]
        assert probe["port"] == port
        path = probe["path"]
        assert "get" in openapi["paths"][path], f"{kind} {path} is not a documented GET route"
        assert f"location = {path} " in template, f"nginx does not route {path}"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_runtime_security_and_writable_paths(runtime, container):
    sc = container["securityContext"]
    uid = re.search(r"ARG APP_UID=(\d+)", (ROOT / "docker/Dockerfile").read_text()).group(1)
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == int(uid)
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in runtime["spec"].get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts.values()) <= set(volumes), "a volumeMount without its volume"
    e = env(container)
    # With a read-only root, everything vwfcgi and nginx write must be on a volume.
    for path in (os.path.dirname(e["SOCKET"]), e["NGINX_PREFIX"], e["STATE_DIR"], "/tmp"):
        assert any(path == m or path.startswith(m + "/") for m in mounts), f"{path} is not writable"
    assert "/mnt/models" not in mounts, "KServe mounts the storage initializer's volume there"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]


def test_isvc_fields_and_runtime_match(isvc, runtime):
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    name = isvc["metadata"]["name"]
    assert DNS_LABEL.match(name) and MODEL_NAME.match(name)
    assert set(isvc["spec"]) <= ISVC_SPEC_KEYS and "predictor" in isvc["spec"]
    predictor = isvc["spec"]["predictor"]
    unknown = set(predictor) - PREDICTOR_KEYS
    assert not unknown, f"fields PredictorSpec does not have: {unknown}"
    assert predictor.get("scaleMetric", "cpu") in SCALE_METRICS
    assert predictor.get("minReplicas", 1) <= predictor.get("maxReplicas", 10**6)
    model = predictor["model"]
    unknown = set(model) - MODEL_KEYS
    assert not unknown, f"fields ModelSpec does not have: {unknown}"
    fmt = model["modelFormat"]
    assert set(fmt) <= {"name", "version"} and fmt["name"] == "vowpal-wabbit"
    supported = runtime["spec"]["supportedModelFormats"]
    assert any(f["name"] == fmt["name"] and f.get("version") == fmt.get("version", f.get("version"))
               for f in supported), f"{fmt} is not a format of {runtime['metadata']['name']}"
    assert model.get("runtime", runtime["metadata"]["name"]) == runtime["metadata"]["name"]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert STORAGE_URI.match(model["storageUri"]), model["storageUri"]


def test_kustomization_renders_the_runtime():
    result = run([tool("kubectl"), "kustomize", KSERVE])
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [d["kind"] for d in docs] == ["ClusterServingRuntime"]
    image = docs[0]["spec"]["containers"][0]["image"]
    assert image != "vwfcgi" and image.endswith("/vwfcgi:" + image.rsplit(":", 1)[-1]), image


def _validate(resource: dict, version: str):
    import kubernetes_validate
    return kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("version", os.environ.get("KUBERNETES_VERSIONS", DEFAULT_VERSIONS).split())
def test_kubernetes_parts_validate_strict(runtime, isvc, version):
    """The CRDs themselves have no schema offline; their corev1 parts do (as a Pod)."""
    import kubernetes_validate
    try:
        _validate(runtime, version)
    except kubernetes_validate.SchemaNotFoundError:
        pass  # expected: KServe's CRDs are not in kubernetes-validate
    else:
        pytest.fail("kubernetes-validate now knows ClusterServingRuntime: validate the whole document")
    spec = runtime["spec"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kserve-runtime"},
           "spec": {"containers": spec["containers"], "volumes": spec.get("volumes", [])}}
    _validate(pod, version)
    model = isvc["spec"]["predictor"]["model"]
    container = {"name": CONTAINER_NAME, "image": "vwfcgi", "resources": model["resources"]}
    _validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "isvc"},
               "spec": {"containers": [container]}}, version)
