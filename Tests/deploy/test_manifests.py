"""kubernetes/: kustomize renders each overlay; the output validates offline; the pod is
wired as the issue asks (socket emptyDir, sidecar + initContainer, probes, security, drain)."""

import os
import re

import pytest
import yaml

from conftest import OVERLAYS, POD_NGINX_ENV, ROOT, render_nginx, run, tool

# kubernetes-validate ships schemas per minor version: the oldest still "current" one we
# support, and the newest it knows (override: KUBERNETES_VERSIONS="1.30.0 1.33.0").
DEFAULT_VERSIONS = "1.30.0 1.37.0"


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request):
    kubectl = tool("kubectl")
    result = run([kubectl, "kustomize", ROOT / "kubernetes/overlays" / request.param])
    assert result.returncode == 0, f"kubectl kustomize {request.param} failed:\n{result.stderr}"
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return request.param, result.stdout, docs


def one(docs, kind, name_prefix=""):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"expected one {kind} {name_prefix!r}, got {len(found)}"
    return found[0]


def pod(docs):
    return one(docs, "Deployment")["spec"]["template"]


def containers(docs):
    return {c["name"]: c for c in pod(docs)["spec"]["containers"]}


def env(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def sleep_of(container) -> int:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


def available_versions():
    import kubernetes_validate
    schemas = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
    return {name[1:].split("-")[0] for name in os.listdir(schemas) if name.endswith("-local-strict")}


@pytest.mark.parametrize("version", os.environ.get("KUBERNETES_VERSIONS", DEFAULT_VERSIONS).split())
def test_overlay_validates_offline_strict(overlay, version, tmp_path):
    name, text, docs = overlay
    assert version in available_versions(), f"kubernetes-validate has no schema for {version}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    result = run([tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", path])
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ConfigMap"] * 3 + ["Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
                                                "PodDisruptionBudget", "Service", "ServiceAccount"])


def test_generated_files_are_fresh():
    result = run([ROOT / "kubernetes/generate.sh", "--check"])
    assert result.returncode == 0, result.stderr


def test_nginx_configmap_equals_the_template_rendering(overlay):
    _, _, docs = overlay
    configmap = one(docs, "ConfigMap", "vwfcgi-nginx")
    assert configmap["data"]["nginx.conf"] == render_nginx(POD_NGINX_ENV)
    # ... and the values agree with the pod.
    c = containers(docs)
    assert c["nginx"]["ports"][0]["containerPort"] == int(POD_NGINX_ENV["PORT"])
    assert env(c["nginx"])["NGINX_PREFIX"] == POD_NGINX_ENV["PREFIX"]
    assert env(c["vwfcgi"])["SOCKET"] == POD_NGINX_ENV["SOCKET"]
    mounts = {m["name"]: m["mountPath"] for m in c["nginx"]["volumeMounts"]}
    assert os.path.dirname(env(c["nginx"])["NGINX_CONF"]) == mounts["nginx-conf"]
    assert POD_NGINX_ENV["PREFIX"].startswith(mounts["nginx-tmp"] + "/")


def test_model_sync_configmap_is_the_sync_script(overlay):
    _, _, docs = overlay
    script = one(docs, "ConfigMap", "model-sync-script")["data"]["model-sync.sh"]
    assert script == (ROOT / "scripts/model-sync.sh").read_text()


def test_pod_layout(overlay):
    _, _, docs = overlay
    spec = pod(docs)["spec"]
    c = containers(docs)
    assert set(c) == {"nginx", "vwfcgi", "model-sync"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {n: {m["name"]: m for m in c[n]["volumeMounts"]} for n in c}
    # nginx and vwfcgi share the FastCGI socket through an emptyDir.
    assert "emptyDir" in volumes["socket"]
    socket_dir = os.path.dirname(env(c["vwfcgi"])["SOCKET"])
    assert mounts["nginx"]["socket"]["mountPath"] == mounts["vwfcgi"]["socket"]["mountPath"] == socket_dir
    # The sidecar and the initContainer fill the shared models emptyDir that vwfcgi reads.
    assert "emptyDir" in volumes["models"]
    init = {i["name"]: i for i in spec["initContainers"]}
    assert set(init) == {"model-sync-init"}
    assert init["model-sync-init"]["command"][-1] == "--once"
    assert c["model-sync"]["command"][-1] == "--loop"
    for sync in (init["model-sync-init"], c["model-sync"]):
        sync_mounts = {m["name"]: m["mountPath"] for m in sync["volumeMounts"]}
        assert sync_mounts["models"] == env(c["vwfcgi"])["MODEL_DIR"] == env(sync)["MODEL_DIR"]
        assert sync["command"][1] == sync_mounts["model-sync-script"] + "/model-sync.sh"
    assert mounts["vwfcgi"]["models"].get("readOnly") is True
    assert c["nginx"]["args"] == ["nginx"] and c["vwfcgi"]["args"] == ["vwfcgi"]


def test_probes(overlay):
    _, _, docs = overlay
    c = containers(docs)
    assert c["nginx"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind in ("startupProbe", "livenessProbe"):
        command = c["vwfcgi"][kind]["exec"]["command"]
        assert command[-1] == "/healthz" and command[1].endswith("fcgi_probe.py"), command
    assert "tcpSocket" in c["nginx"]["livenessProbe"]


def test_security_and_resources(overlay):
    _, _, docs = overlay
    spec = pod(docs)["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"] + spec["initContainers"]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], container["name"]
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"], container["name"]
        assert resources["limits"]["memory"], container["name"]


def test_drain_fits_in_the_grace_period(overlay):
    """nginx stops first (preStop), vwfcgi after it, and vwfcgi's drain ends before the KILL."""
    _, _, docs = overlay
    spec = pod(docs)["spec"]
    c = containers(docs)
    vwfcgi_grace = float(env(c["vwfcgi"])["VWFCGI_GRACE"])
    timeout = float(re.search(r"--timeout (\S+)", env(c["vwfcgi"])["VWFCGI_ARGS"]).group(1))
    assert sleep_of(c["vwfcgi"]) >= sleep_of(c["nginx"]) + timeout
    assert spec["terminationGracePeriodSeconds"] >= sleep_of(c["vwfcgi"]) + vwfcgi_grace + 5


def test_service_hpa_pdb_networkpolicy_prometheus(overlay):
    name, _, docs = overlay
    template = pod(docs)
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080" and annotations["prometheus.io/path"] == "/metrics"
    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    labels = template["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [8080]
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert not ("minAvailable" in pdb and "maxUnavailable" in pdb)
    replicas = one(docs, "Deployment")["spec"]["replicas"]
    if name == "dev":
        assert replicas == 1 and hpa["spec"]["minReplicas"] == 1
    else:
        assert replicas == 3 and hpa["spec"]["minReplicas"] == 3 and pdb["minAvailable"] == 2
