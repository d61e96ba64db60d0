"""kubernetes/: kustomize renders each overlay; the output validates offline; the pod is
wired as the issue asks (socket emptyDir, sidecar + initContainer, probes, security, drain);
the learning loop's log-ship sidecar and external trainer Deployment (issue 13) are wired too."""

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


def one(docs, kind, name_prefix="", name=None):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or name_prefix!r}, got {len(found)}"
    return found[0]


SERVER, TRAINER = "vwfcgi", "vwfcgi-trainer"


def pod(docs, name=SERVER):
    return one(docs, "Deployment", name=name)["spec"]["template"]


def containers(docs, name=SERVER):
    return {c["name"]: c for c in pod(docs, name)["spec"]["containers"]}


def mounts_of(container):
    return {m["mountPath"]: m for m in container["volumeMounts"]}


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
    assert kinds == sorted(["ConfigMap"] * 4 + ["Deployment"] * 2 + ["HorizontalPodAutoscaler"] + ["NetworkPolicy"] * 2
                           + ["PersistentVolumeClaim", "PodDisruptionBudget", "Service"] + ["ServiceAccount"] * 2)


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
    assert set(c) == {"nginx", "vwfcgi", "model-sync", "log-ship"}
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


@pytest.mark.parametrize("deployment", [SERVER, TRAINER])
def test_security_and_resources(overlay, deployment):
    _, _, docs = overlay
    spec = pod(docs, deployment)["spec"]
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
    # log-ship gets its TERM (and ships the newest segments) once vwfcgi is gone: after its preStop,
    # its drain and the entrypoint's 5 s margin before KILL; and has 10 s or more for the upload.
    assert sleep_of(c["log-ship"]) >= sleep_of(c["vwfcgi"]) + vwfcgi_grace + 5
    assert spec["terminationGracePeriodSeconds"] >= sleep_of(c["log-ship"]) + 10


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
    policy = one(docs, "NetworkPolicy", name=SERVER)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [8080]
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert not ("minAvailable" in pdb and "maxUnavailable" in pdb)
    replicas = one(docs, "Deployment", name=SERVER)["spec"]["replicas"]
    if name == "dev":
        assert replicas == 1 and hpa["spec"]["minReplicas"] == 1
    else:
        assert replicas == 3 and hpa["spec"]["minReplicas"] == 3 and pdb["minAvailable"] == 2


def test_api_keys_secret_is_mounted_and_passed_as_api_key_file(overlay):
    """SPEC §8.9: the Secret with the API keys is mounted read only into vwfcgi alone, and the
    entrypoint passes its file as --api-key-file; nginx never logs the key headers."""
    _, _, docs = overlay
    spec = pod(docs)["spec"]
    c = containers(docs)
    volume = {v["name"]: v for v in spec["volumes"]}["api-keys"]
    assert volume["secret"]["secretName"] == "vwfcgi-api-keys", volume
    assert volume["secret"].get("optional") is not True, "a pod without its keys must not start with open write routes"
    assert volume["secret"]["defaultMode"] & 0o007 == 0, "the key file must not be world-readable"
    key_file = env(c["vwfcgi"])["API_KEY_FILE"]
    mount = {m["name"]: m for m in c["vwfcgi"]["volumeMounts"]}["api-keys"]
    assert mount["readOnly"] is True and os.path.dirname(key_file) == mount["mountPath"], (mount, key_file)
    others = [n for n, container in c.items() if n != "vwfcgi"
              and "api-keys" in {m["name"] for m in container.get("volumeMounts", [])}]
    assert not others, f"only vwfcgi reads the keys, not {others}"
    entrypoint = (ROOT / "docker/entrypoint.sh").read_text()
    assert 'args+=(--api-key-file "$API_KEY_FILE")' in entrypoint
    log_format = re.search(r"log_format[^;]*;", one(docs, "ConfigMap", "vwfcgi-nginx")["data"]["nginx.conf"]).group(0)
    assert not re.search(r"authorization|ocp_apim|\$http_", log_format, re.I), log_format
    # The keys guard the write routes; the NetworkPolicy still limits who reaches the port.
    assert one(docs, "NetworkPolicy", name=SERVER)["spec"]["policyTypes"] == ["Ingress"]


def test_loop_scripts_configmap_is_the_scripts(overlay):
    _, _, docs = overlay
    data = one(docs, "ConfigMap", "loop-scripts")["data"]
    assert set(data) == {"log-ship.sh", "trainer-sync.sh"}
    for name, text in data.items():
        assert text == (ROOT / "scripts" / name).read_text(), name


def bucket_configmap(docs) -> dict:
    """The ConfigMap "model-sync" (kustomize adds a hash suffix), not "model-sync-script"."""
    found = [d for d in docs if d["kind"] == "ConfigMap" and "MODEL_SOURCE" in d.get("data", {})]
    assert len(found) == 1 and found[0]["metadata"]["name"].startswith("model-sync-"), found
    return found[0]


def bucket(docs) -> dict:
    return bucket_configmap(docs)["data"]


def test_log_ship_sidecar(overlay):
    """Ships the segments of the volume vwfcgi logs to, to LOG_DEST, and marks them shipped (issue 24)."""
    _, _, docs = overlay
    spec = pod(docs)["spec"]
    c = containers(docs)
    ship = c["log-ship"]
    assert ship["command"][-1] == "--loop"
    scripts = {m["name"]: m["mountPath"] for m in ship["volumeMounts"]}["loop-scripts"]
    assert ship["command"][:2] == ["/bin/sh", scripts + "/log-ship.sh"]
    vwfcgi_state = {m["name"]: m for m in c["vwfcgi"]["volumeMounts"]}["state"]
    ship_state = {m["name"]: m for m in ship["volumeMounts"]}["state"]
    # Writable: the sidecar marks a verified closed segment shipped, so vwfcgi may delete it.
    assert ship_state.get("readOnly") is not True and vwfcgi_state.get("readOnly") is not True
    assert env(ship).get("SHIP_MARK", "1") == "1"
    # The image's default STATE_DIR (docker/entrypoint.sh) is where vwfcgi logs, and where log-ship reads.
    assert vwfcgi_state["mountPath"] == ship_state["mountPath"] == env(ship)["STATE_DIR"] == "/state"
    assert "emptyDir" in {v["name"]: v for v in spec["volumes"]}["state"]
    # Its record of what was shipped is outside the state volume, in its own /tmp.
    assert env(ship)["SHIP_RECORD"].startswith(mounts_of(ship)["/tmp"]["mountPath"] + "/")
    assert mounts_of(ship)["/tmp"]["name"] not in ("state", "models")
    # The bucket: LOG_DEST beside MODEL_SOURCE, from the ConfigMap the pod already reads.
    assert {"configMapRef": {"name": bucket_configmap(docs)["metadata"]["name"]}} in ship["envFrom"]
    assert bucket(docs)["LOG_DEST"] and bucket(docs)["LOG_DEST"] != bucket(docs)["MODEL_SOURCE"]
    # Each replica names its segments after its pod.
    instance = [e for e in c["vwfcgi"]["env"] if e["name"] == "INSTANCE_ID"]
    assert instance and instance[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The state budget sits below the emptyDir's sizeLimit (whose excess evicts the pod) by more than
    # one 64 MiB segment.
    limit = quantity({v["name"]: v for v in spec["volumes"]}["state"]["emptyDir"]["sizeLimit"])
    assert quantity(env(c["vwfcgi"])["STATE_MAX_BYTES"]) + 64 * 2**20 < limit


def test_trainer_deployment(overlay):
    _, _, docs = overlay
    deployment = one(docs, "Deployment", name=TRAINER)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    # Not behind the serving Service, its PodDisruptionBudget or NetworkPolicy.
    assert one(docs, "Service")["spec"]["selector"]["app.kubernetes.io/name"] != labels["app.kubernetes.io/name"]
    c = containers(docs, TRAINER)
    assert set(c) == {"trainer", "trainer-sync"}
    trainer = c["trainer"]
    # docker/entrypoint.sh train runs `vwfcgi train --state $STATE_DIR --models $MODEL_DIR`.
    assert trainer["args"] == ["train"] and trainer["image"] == containers(docs)["vwfcgi"]["image"]
    entrypoint = (ROOT / "docker/entrypoint.sh").read_text()
    assert 'args=(train --state "$STATE_DIR" --models "$MODEL_DIR" --log-format "$LOG_FORMAT")' in entrypoint
    assert env(trainer)["STATE_DIR"] == "/state" and env(trainer)["MODEL_DIR"] == "/models-out"
    # Its state on the PersistentVolumeClaim, at /state; the published models beside it.
    volumes = {v["name"]: v for v in spec["volumes"]}
    claim = one(docs, "PersistentVolumeClaim", name=TRAINER)
    state = mounts_of(trainer)["/state"]
    assert volumes[state["name"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    out = mounts_of(trainer)["/models-out"]
    assert out["name"] == state["name"] and out["subPath"] != state["subPath"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["spec"]["resources"]["requests"]["storage"]

    # trainer-sync: first pull as an initContainer, then a loop; same volumes as the trainer.
    init = {i["name"]: i for i in spec["initContainers"]}
    assert set(init) == {"trainer-sync-init"}
    for sync, mode in ((init["trainer-sync-init"], "--once"), (c["trainer-sync"], "--loop")):
        scripts = {m["name"]: m["mountPath"] for m in sync["volumeMounts"]}["loop-scripts"]
        assert sync["command"] == ["/bin/sh", scripts + "/trainer-sync.sh", mode]
        sync_mounts = mounts_of(sync)
        for path in ("/state", "/models-out"):
            assert {k: sync_mounts[path].get(k) for k in ("name", "subPath")} == \
                {k: mounts_of(trainer)[path].get(k) for k in ("name", "subPath")}, path
            assert sync_mounts[path].get("readOnly") is not True
        assert env(sync)["STATE_DIR"] == "/state" and env(sync)["MODEL_DIR"] == "/models-out"
        # What the bucket and /models-out agreed on survives restarts: on the claim too.
        record = env(sync)["SYNC_RECORD"]
        record_mount = [m for p, m in sync_mounts.items() if record.startswith(p + "/")]
        assert record_mount and volumes[record_mount[0]["name"]].get("persistentVolumeClaim"), record
        # The logs come from where the serving pods ship them; models go where they load them from.
        source = [e for e in sync["env"] if e["name"] == "LOG_SOURCE"][0]["valueFrom"]["configMapKeyRef"]
        configmap = bucket_configmap(docs)["metadata"]["name"]
        assert source == {"name": configmap, "key": "LOG_DEST"}
        assert {"configMapRef": {"name": configmap}} in sync["envFrom"]
    # The sidecar pushes after the trainer stopped.
    assert sleep_of(c["trainer-sync"]) + 10 <= spec["terminationGracePeriodSeconds"]

    account = one(docs, "ServiceAccount", name=TRAINER)
    assert spec["serviceAccountName"] == TRAINER and account["automountServiceAccountToken"] is False
    policy = one(docs, "NetworkPolicy", name=TRAINER)["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    # Only the scrape of its /metrics (issue 20 item 9) may connect to the trainer: the port vwfcgi train listens on
    # (METRICS_LISTEN, passed as --metrics-listen by the entrypoint), the one the scrape annotation names.
    assert policy["policyTypes"] == ["Ingress"]
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [9102]
    assert env(trainer)["METRICS_LISTEN"] == "0.0.0.0:9102"
    assert [p["containerPort"] for p in trainer["ports"]] == [9102]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9102"
    assert '[ -z "${METRICS_LISTEN:-}" ] || args+=(--metrics-listen "$METRICS_LISTEN")' in entrypoint
    # Its state budget sits below its claim, with room for /models-out and /sync.
    assert quantity(env(trainer)["STATE_MAX_BYTES"]) < quantity(claim["spec"]["resources"]["requests"]["storage"])


def quantity(text: str) -> int:
    """Bytes of a Kubernetes quantity (2Gi, 512Mi) or a vwfcgi byte count (1536M: binary, as vwfcgi reads it)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * units[suffix])
    return int(text)
