"""The Helm chart, rendered and linted by Helm itself (Helm 4's Go SDK, bundled by PyPI's
helm-python-sdk as the shared library libhelm_c: nothing is downloaded at run time).

Every rendered manifest of a core Kubernetes kind is validated by kubernetes-validate
against the API schemas of one pinned Kubernetes version, in strict mode (unknown fields
are errors). The Prometheus Operator's kinds (ServiceMonitor, PrometheusRule) have no
schema there: they are checked against a focused JSON Schema of the fields the chart
uses (transcribed from the operator's CRDs, monitoring.coreos.com/v1), cross-checked
with the Services they select, and the PrometheusRule's rules go through
`promtool check rules`.
"""

import copy
import json
import pathlib
import subprocess

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "berth"
KUBERNETES = "1.33.0"
RELEASE, NAMESPACE = "centre", "berth"
CORE_KINDS = {"StatefulSet", "DaemonSet", "Service", "Secret", "ConfigMap", "PodDisruptionBudget"}


def load_values(name):
    return yaml.safe_load((CHART / "ci" / name).read_text())


def render(values=None):
    """Every manifest of a render, as dicts."""
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__file"] = path
                docs.append(doc)
    return docs


def notes(values=None):
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return files[f"{CHART.name}/templates/NOTES.txt"]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {[d['metadata']['name'] for d in by_kind(docs, kind)]}"
    return found[0]


def container(workload, name):
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def validate_core(docs):
    for doc in docs:
        if doc["kind"] in CORE_KINDS:
            clean = {k: v for k, v in doc.items() if k != "__file"}
            kubernetes_validate.validate(clean, KUBERNETES, strict=True)


# Focused schemas of the Prometheus Operator kinds: the fields the chart sets, with
# their types and required fields as in the operator's CRDs (monitoring.coreos.com/v1).
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": LABELS},
}
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": LABELS, "matchExpressions": {"type": "array"}},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                        },
                    },
                },
            },
        },
    },
}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string"},
                                        "labels": LABELS,
                                        "annotations": LABELS,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


def test_helm_is_the_bundled_go_sdk():
    assert helm.helm_sdk_version().startswith("v4."), helm.helm_sdk_version()
    assert pathlib.Path(helm.library_path).name.startswith("libhelm_c")


@pytest.mark.parametrize("values_file", [None, "tls-servicemonitor-values.yaml", "ha-values.yaml"])
def test_the_chart_lints_clean_in_strict_mode(values_file):
    values = load_values(values_file) if values_file else None
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], json.dumps(report, indent=1)


def test_default_values_render_valid_manifests():
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["ConfigMap", "DaemonSet", "PodDisruptionBudget", "Secret", "StatefulSet"] + ["Service"] * 4
    ), kinds
    validate_core(docs)
    assert by_kind(docs, "ServiceMonitor") == [] and by_kind(docs, "PrometheusRule") == []


def test_tls_and_servicemonitor_values_render_valid_manifests():
    docs = render(load_values("tls-servicemonitor-values.yaml"))
    validate_core(docs)
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    monitors = by_kind(docs, "ServiceMonitor")
    assert sorted(m["metadata"]["name"] for m in monitors) == [
        f"{RELEASE}-berth-agent",
        f"{RELEASE}-berth-scheduler",
    ]
    for monitor in monitors:
        clean = {k: v for k, v in monitor.items() if k != "__file"}
        jsonschema.validate(clean, SERVICE_MONITOR)
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        # It selects exactly the metrics Service of its component, by a named port.
        wanted = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services.values() if wanted.items() <= s["metadata"]["labels"].items()]
        assert [s["metadata"]["name"] for s in selected] == [monitor["metadata"]["name"] + "-metrics"]
        ports = {p["name"] for p in selected[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
        assert monitor["spec"]["jobLabel"] in selected[0]["metadata"]["labels"]
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]


def test_the_prometheus_rule_carries_the_rules_file_and_promtool_accepts_it(tmp_path):
    values = load_values("tls-servicemonitor-values.yaml")
    rule = one(render(values), "PrometheusRule", f"{RELEASE}-berth")
    clean = {k: v for k, v in rule.items() if k != "__file"}
    jsonschema.validate(clean, PROMETHEUS_RULE)
    shipped = yaml.safe_load((CHART / "rules" / "berth-alerts.yaml").read_text())
    base = values["metrics"]["prometheusRule"]["runbookBaseUrl"]
    expected = copy.deepcopy(shipped["groups"])
    for group in expected:
        for r in group["rules"]:
            url = r["annotations"]["runbook_url"]
            r["annotations"]["runbook_url"] = url.replace(
                "https://example.invalid/berth/docs/operations.md", base
            )
            assert r["annotations"]["runbook_url"].startswith(base + "#")
    assert rule["spec"]["groups"] == expected
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    out = subprocess.run(
        ["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_scheduler_is_hardened_and_wired_to_its_secrets():
    docs = render(load_values("tls-servicemonitor-values.yaml"))
    deployment = one(docs, "StatefulSet", f"{RELEASE}-berth-scheduler")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    c = container(deployment, "scheduler")
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    env = {e["name"]: e for e in c["env"]}
    assert env["BERTH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "centre-postgres", "key": "url"}
    assert env["BERTH_TLS_CERT"]["value"] == "/etc/berth/tls/tls.crt"
    assert env["BERTH_TLS_KEY"]["value"] == "/etc/berth/tls/tls.key"
    assert "--insecure-plaintext" not in c["args"]
    assert "--signing-key-file=/etc/berth/signing/signing.key" in c["args"]
    assert "--agent-ca=/etc/berth/agent-ca/ca.crt" in c["args"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "centre-tls"
    assert volumes["signing-key"]["secret"]["secretName"] == "centre-signing-key"
    assert volumes["agent-ca"]["secret"]["secretName"] == "centre-agent-ca"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/etc/berth/tls"]["readOnly"] is True
    # Ready on any scheduler whose database answers (a standby relays to the leader), so
    # a rolling update goes on; a leader-only /readyz would stall it for ever.
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz?role=any")]:
        assert c[probe]["httpGet"] == {"path": path, "port": "http-metrics"}
    # An existing signing key: the chart makes none.
    assert by_kind(docs, "Secret") == []


def test_the_portal_is_served_on_the_scheduler_service_over_its_tls():
    values = {"scheduler": {"portal": {"url": "https://berth.example.kr"}}}
    docs = render(values)
    validate_core(docs)
    sts = one(docs, "StatefulSet", f"{RELEASE}-berth-scheduler")
    c = container(sts, "scheduler")
    assert "--web-addr=0.0.0.0:7072" in c["args"]
    assert "--web-url=https://berth.example.kr" in c["args"]
    assert "--insecure-plaintext" not in c["args"]
    assert {"name": "web", "containerPort": 7072, "protocol": "TCP"} in c["ports"]
    svc = one(docs, "Service", f"{RELEASE}-berth-scheduler")
    web = [p for p in svc["spec"]["ports"] if p["name"] == "web"]
    assert web == [
        {"name": "web", "port": 7072, "targetPort": "web", "protocol": "TCP", "appProtocol": "https"}
    ]
    assert "port 7072" in notes(values) and "https://localhost:7072/" in notes(values)
    # Off: no flag, no port.
    docs = render({"scheduler": {"portal": {"enabled": False}}})
    c = container(one(docs, "StatefulSet", f"{RELEASE}-berth-scheduler"), "scheduler")
    assert not any(a.startswith("--web-") for a in c["args"])
    svc = one(docs, "Service", f"{RELEASE}-berth-scheduler")
    assert [p["name"] for p in svc["spec"]["ports"]] == ["grpc"]


def test_without_tls_the_scheduler_says_so_and_agents_dial_http():
    values = {"scheduler": {"tls": {"enabled": False}}}
    docs = render(values)
    validate_core(docs)
    c = container(one(docs, "StatefulSet", f"{RELEASE}-berth-scheduler"), "scheduler")
    assert "--insecure-plaintext" in c["args"]
    assert not any(e["name"].startswith("BERTH_TLS") for e in c["env"])
    # Schedulers reach each other in plaintext too; a CA for http:// peers would be refused.
    env = {e["name"]: e for e in c["env"]}
    assert env["BERTH_ADVERTISE_URL"]["value"] == (
        f"http://$(POD_NAME).{RELEASE}-berth-scheduler-peers.{NAMESPACE}.svc:7070"
    )
    assert not any(a.startswith("--peer-ca") for a in c["args"])
    agent = container(one(docs, "DaemonSet", f"{RELEASE}-berth-agent"), "agent")
    assert f"--server=http://{RELEASE}-berth-scheduler.{NAMESPACE}.svc:7070" in agent["args"]
    assert "WARNING" in notes(values) and "plaintext" in notes(values)


def test_the_agent_daemonset_reaches_docker_devices_and_its_state():
    docs = render(load_values("tls-servicemonitor-values.yaml"))
    ds = one(docs, "DaemonSet", f"{RELEASE}-berth-agent")
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"berth.io/accelerator": "true"}
    assert pod["runtimeClassName"] == "nvidia"
    assert pod.get("hostNetwork") is False and pod.get("hostPID") is False
    c = container(ds, "agent")
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and "privileged" not in sc
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["docker-socket"]["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    assert volumes["state"]["hostPath"]["path"] == "/var/lib/berth-agent"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    # The host's Docker bind-mounts job scratch directories by their host path.
    assert mounts["state"] == "/var/lib/berth-agent"
    env = {e["name"]: e for e in c["env"]}
    assert env["BERTH_NODE"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    token = env["BERTH_JOIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token["optional"] is True and token["name"] == f"{RELEASE}-berth-join-token"
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert env["BERTH_CA_CERT"]["value"] == "/etc/berth/ca/ca.crt"
    assert volumes["ca"]["secret"]["secretName"] == "centre-tls"
    args = c["args"]
    assert f"--server=https://{RELEASE}-berth-scheduler.{NAMESPACE}.svc:7070" in args
    assert "--site=busan-ifc" in args and "--devices=nvml" in args and "--class=h100-80gb" in args
    assert "--dataset=imagenet=/srv/datasets/imagenet" in args
    assert "--dataset=scratch=/srv/scratch:rw" in args
    assert "--tls-client-cert=/etc/berth/client/tls.crt" in args


def test_npu_nodes_get_their_device_nodes_and_tools():
    docs = render({"agent": {"npu": {"enabled": True, "toolDir": "/opt/rbln/bin"}, "devices": "rbln"}})
    validate_core(docs)
    ds = one(docs, "DaemonSet", f"{RELEASE}-berth-agent")
    c = container(ds, "agent")
    assert c["securityContext"]["privileged"] is True
    volumes = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dev"]["hostPath"]["path"] == "/dev"
    assert volumes["npu-tools"]["hostPath"]["path"] == "/opt/rbln/bin"
    assert "--npu-tool-dir=/opt/npu-tools" in c["args"]


def test_the_dashboards_configmap_is_labelled_for_grafanas_sidecar():
    docs = render()
    cm = one(docs, "ConfigMap", f"{RELEASE}-berth-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Berth"
    shipped = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    assert len(shipped) >= 3
    assert cm["data"] == shipped
    for text in cm["data"].values():
        json.loads(text)
    assert len(json.dumps(cm)) < 1_000_000, "a ConfigMap holds at most 1 MiB"


def test_a_generated_signing_key_is_random_long_and_kept():
    secret = one(render(), "Secret", f"{RELEASE}-berth-signing-key")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    import base64

    key = base64.b64decode(secret["data"]["signing.key"])
    assert len(key) >= 32
    other = one(render(), "Secret", f"{RELEASE}-berth-signing-key")
    assert other["data"] != secret["data"], "a new random key each fresh install"


@pytest.mark.parametrize(
    "values, field",
    [
        ({"scheduler": {"replicas": 8}}, "replicas"),
        ({"scheduler": {"replicas": 0}}, "replicas"),
        ({"scheduler": {"updateStrategy": {"type": "Recreate"}}}, "updateStrategy"),
        ({"scheduler": {"haLease": "0s"}}, "haLease"),
        ({"scheduler": {"tls": {"enable": True}}}, "enable"),
        ({"agent": {"devices": "gpu"}}, "devices"),
        ({"agent": {"stateDir": "relative/dir"}}, "stateDir"),
        ({"agent": {"datasets": [{"name": "x"}]}}, "path"),
        ({"metrics": {"serviceMonitor": {"enabled": True, "interval": "soon"}}}, "interval"),
        ({"schedulr": {}}, "schedulr"),
        ({"scheduler": {"portal": {"url": "berth.example.kr"}}}, "url"),
        ({"scheduler": {"service": {"webPort": 0}}}, "webPort"),
    ],
)
def test_the_values_schema_rejects_bad_values_by_name(values, field):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values({}))
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(chart.merge_values(values))
    assert field in str(err.value), str(err.value)


def test_notes_tell_how_to_start():
    text = notes()
    for needle in [
        f"kubectl -n {NAMESPACE} create secret generic {RELEASE}-berth-database",
        f"{RELEASE}-berth-tls",
        f"*.{RELEASE}-berth-scheduler-peers.{NAMESPACE}.svc",
        f"rollout status statefulset/{RELEASE}-berth-scheduler",
        "this scheduler leads",
        "admin.token",
        "berth login --server https://localhost:7070",
        "kubectl label node NODE berth.io/accelerator=true",
        "docs/operations.md",
    ]:
        assert needle in text, text


def scheduler_pod_dns(statefulset, peers, pod_name):
    """The DNS name Kubernetes gives a pod of `statefulset`, as the cluster DNS derives
    it: a pod has a name of its own only with a hostname and a subdomain naming a headless
    Service of its namespace that selects it (the StatefulSet controller sets both:
    hostname = the pod's name, subdomain = serviceName). None when it gets no name."""
    spec = statefulset["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    headless = peers["spec"].get("clusterIP") == "None"
    selects = peers["spec"]["selector"].items() <= pod_labels.items()
    same_namespace = peers["metadata"]["namespace"] == statefulset["metadata"]["namespace"]
    if statefulset["kind"] != "StatefulSet" or spec.get("serviceName") != peers["metadata"]["name"]:
        return None
    if not (headless and selects and same_namespace):
        return None
    return f"{pod_name}.{peers['metadata']['name']}.{peers['metadata']['namespace']}.svc"


def test_three_schedulers_render_valid_manifests_with_a_dns_name_each():
    values = load_values("ha-values.yaml")
    docs = render(values)
    validate_core(docs)
    sts = one(docs, "StatefulSet", f"{RELEASE}-berth-scheduler")
    spec = sts["spec"]
    assert spec["replicas"] == 3
    # Interchangeable pods: they start together, and an update replaces one at a time,
    # each waiting for the new pod to be ready.
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}
    peers = one(docs, "Service", f"{RELEASE}-berth-scheduler-peers")
    assert peers["spec"]["clusterIP"] == "None"
    assert peers["spec"]["publishNotReadyAddresses"] is True
    assert peers["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert [p["targetPort"] for p in peers["spec"]["ports"]] == ["grpc"]
    c = container(sts, "scheduler")
    assert {"name": "grpc", "containerPort": 7070, "protocol": "TCP"} in c["ports"]
    assert "--ha-lease=6s" in c["args"]
    # Each pod advertises its own DNS name, built from its name by the downward API.
    env = [e["name"] for e in c["env"]]
    assert env.index("POD_NAME") < env.index("BERTH_ADVERTISE_URL"), "$(POD_NAME) must come first"
    byname = {e["name"]: e for e in c["env"]}
    assert byname["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    advertised = byname["BERTH_ADVERTISE_URL"]["value"]
    for ordinal in range(3):
        pod = f"{RELEASE}-berth-scheduler-{ordinal}"
        dns = scheduler_pod_dns(sts, peers, pod)
        assert dns == f"{pod}.{RELEASE}-berth-scheduler-peers.{NAMESPACE}.svc"
        assert advertised.replace("$(POD_NAME)", pod) == f"https://{dns}:7070"
    # TLS on: the other schedulers' certificates are verified with the TLS Secret's CA.
    assert "--peer-ca=/etc/berth/tls/ca.crt" in c["args"]
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "centre-tls"
    # Drains take one scheduler at a time; an unready one never blocks them.
    pdb = one(docs, "PodDisruptionBudget", f"{RELEASE}-berth-scheduler")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["spec"]["selector"] == spec["selector"]
    # They prefer different nodes.
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    text = notes(values)
    assert "3 scheduler pods" in text and "takes over within 6s" in text, text


def test_the_dns_check_fails_without_a_headless_service_of_the_statefulsets_name():
    """scheduler_pod_dns can fail: a Deployment, a Service with a cluster IP, or another
    serviceName give the pods no name of their own."""
    docs = render()
    sts = one(docs, "StatefulSet", f"{RELEASE}-berth-scheduler")
    peers = one(docs, "Service", f"{RELEASE}-berth-scheduler-peers")
    assert scheduler_pod_dns(sts, peers, "x-0") == f"x-0.{RELEASE}-berth-scheduler-peers.{NAMESPACE}.svc"
    assert scheduler_pod_dns(dict(sts, kind="Deployment"), peers, "x-0") is None
    clustered = copy.deepcopy(peers)
    clustered["spec"].pop("clusterIP")
    assert scheduler_pod_dns(sts, clustered, "x-0") is None
    api = one(docs, "Service", f"{RELEASE}-berth-scheduler")
    assert scheduler_pod_dns(sts, api, "x-0") is None


def test_one_scheduler_gets_no_disruption_budget_and_no_spreading():
    values = {"scheduler": {"replicas": 1}}
    docs = render(values)
    validate_core(docs)
    assert by_kind(docs, "PodDisruptionBudget") == []
    sts = one(docs, "StatefulSet", f"{RELEASE}-berth-scheduler")
    assert sts["spec"]["replicas"] == 1
    assert "affinity" not in sts["spec"]["template"]["spec"]
    # Still a DNS name of its own, and a standby can join later by scaling up.
    assert one(docs, "Service", f"{RELEASE}-berth-scheduler-peers")
    assert "nothing answers while it restarts" in notes(values)


def test_given_affinity_and_peer_ca_settings_are_kept():
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "role", "operator": "In", "values": ["control"]}]}
                ]
            }
        }
    }
    docs = render({"scheduler": {"affinity": affinity, "tls": {"enabled": True, "peerCa": False}}})
    validate_core(docs)
    sts = one(docs, "StatefulSet", f"{RELEASE}-berth-scheduler")
    assert sts["spec"]["template"]["spec"]["affinity"] == affinity
    # A publicly trusted certificate: the system's CAs verify the other schedulers.
    assert not any(a.startswith("--peer-ca") for a in container(sts, "scheduler")["args"])


def test_a_name_too_long_for_a_statefulset_is_refused_by_name():
    with pytest.raises(helm.HelmRenderError) as err:
        render({"fullnameOverride": "a" * 43})
    message = str(err.value)
    assert "at most 52" in message and "fullnameOverride" in message, message
    render({"fullnameOverride": "a" * 42})  # 42 + "-scheduler" = 52: fine
