"""Checks of the Helm chart that need no running program.

    python3 tests/helm/check_chart.py render   # lint, render every value set, validate, inspect
    python3 tests/helm/check_chart.py reject   # bad values are refused, each for its own reason

Prints one line per finding and a summary; exits 1 on any finding.
"""

from __future__ import annotations

import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

import chart

# Settings the config crate does not read yet, named by the chart ahead of the file storage
# work (the config crate must adopt these names, or the chart follows it).
RESERVED_ENV = re.compile(r"^TENANTKIT_STORAGE__")


def documented_env() -> set[str]:
    """The TENANTKIT_* variables the README's configuration table documents."""
    readme = (chart.ROOT / "README.md").read_text()
    return set(re.findall(r"`(TENANTKIT_[A-Z0-9_]+)`", readme))


class Findings:
    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.items.append(message)
        return ok


def check_lint(f: Findings) -> None:
    for name, values in chart.value_sets().items():
        for version in chart.KUBE_VERSIONS:
            report = chart.helm_python.lint(
                str(chart.CHART), values, strict=True, kube_version=f"v{version}"
            )
            # Severity 2 is a warning, 3 an error; strict lint fails on either.
            for message in report["messages"]:
                f.check(
                    message["severity"] < 2,
                    f"lint {name} (Kubernetes {version}): {message['path']}: {message['error']}",
                )
            f.check(not report["errors"], f"lint {name}: {report['errors']}")
    # The bare defaults are refused, naming what an operator must set.
    report = chart.helm_python.lint(str(chart.CHART), strict=True, kube_version="v1.29.0")
    text = "\n".join(report["errors"])
    for needed in ("/config/publicUrl", "/secrets/databaseUrl", "/secrets/secretKey"):
        f.check(needed in text, f"lint of the bare defaults does not ask for {needed}: {text!r}")


def check_pod(f: Findings, where: str, workload: dict, pod: dict) -> None:
    for problem in chart.restricted_violations(pod):
        f.check(False, f"{where}: restricted Pod Security Standard: {problem}")
    f.check(pod.get("automountServiceAccountToken") is False, f"{where}: mounts a service account token")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for container in pod["containers"]:
        name = f"{where}/{container['name']}"
        sc = container.get("securityContext") or {}
        f.check(sc.get("readOnlyRootFilesystem") is True, f"{name}: root filesystem is writable")
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts") or []}
        tmp = mounts.get("/tmp")
        f.check(
            tmp is not None and "emptyDir" in volumes.get(tmp["name"], {}),
            f"{name}: no emptyDir at /tmp",
        )
        resources = container.get("resources") or {}
        f.check(
            "memory" in (resources.get("requests") or {}) and "memory" in (resources.get("limits") or {}),
            f"{name}: memory request and limit missing",
        )
        f.check(
            "@sha256:" in container["image"]
            or container["image"].split("/")[-1].partition(":")[2] not in ("", "latest"),
            f"{name}: image {container['image']} is not pinned",
        )


def config_env(docs: list[dict]) -> dict:
    return chart.find(docs, "ConfigMap", "tenantkit")["data"]


def check_web(f: Findings, set_name: str, docs: list[dict], values: dict) -> None:
    web = chart.find(docs, "Deployment", "-web")
    if not f.check(web is not None, f"{set_name}: no web Deployment"):
        return
    pod = web["spec"]["template"]["spec"]
    container = pod["containers"][0]
    where = f"{set_name}: {chart.kn(web)}"
    f.check(container["command"] == ["tenantkit-server"], f"{where}: runs {container['command']}")
    expected = {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    for probe, path in expected.items():
        spec = container.get(probe)
        if not f.check(spec is not None, f"{where}: no {probe}"):
            continue
        get = spec.get("httpGet") or {}
        f.check(get.get("path") == path, f"{where}: {probe} asks {get.get('path')}, not {path}")
        port = chart.resolve_port(container, get.get("port"))
        bind = config_env(docs)["TENANTKIT_SERVER__BIND"]
        f.check(
            port is not None and bind.endswith(f":{port}"),
            f"{where}: {probe} port {get.get('port')} is not the bound {bind}",
        )
        # The readiness check gives up on PostgreSQL/Redis after 0.8 s; the probe must wait longer.
        f.check(spec.get("timeoutSeconds", 1) >= 1, f"{where}: {probe} timeout below 1 s")
    f.check(
        container["readinessProbe"]["httpGet"]["path"] != container["livenessProbe"]["httpGet"]["path"],
        f"{where}: liveness follows the dependencies (a database outage would restart every pod)",
    )
    # preStop sleep + drain timeout fit in the grace period.
    pre_stop = (container.get("lifecycle") or {}).get("preStop", {}).get("exec", {}).get("command")
    if f.check(pre_stop is not None and pre_stop[0] == "sleep", f"{where}: no preStop sleep"):
        sleep = int(pre_stop[1])
        drain = int(config_env(docs)["TENANTKIT_SERVER__SHUTDOWN_TIMEOUT_SECS"])
        grace = pod["terminationGracePeriodSeconds"]
        f.check(sleep >= 1, f"{where}: preStop sleeps {sleep}s")
        f.check(
            grace >= sleep + drain + 1,
            f"{where}: grace {grace}s < preStop {sleep}s + drain {drain}s",
        )
        f.check(sleep == values["web"].get("preStopSleepSeconds", 10), f"{where}: preStop ignores the value")
    service = chart.find(docs, "Service", "-web")
    if f.check(service is not None, f"{set_name}: no web Service"):
        labels = web["spec"]["template"]["metadata"]["labels"]
        f.check(chart.selector_matches({"matchLabels": service["spec"]["selector"]}, labels),
                f"{set_name}: the Service selects no web pod")
        f.check(service["spec"]["ports"][0]["targetPort"] == "http", f"{set_name}: Service target port")


def check_worker(f: Findings, set_name: str, docs: list[dict]) -> None:
    worker = chart.find(docs, "Deployment", "-worker")
    if not f.check(worker is not None, f"{set_name}: no worker Deployment"):
        return
    pod = worker["spec"]["template"]["spec"]
    container = pod["containers"][0]
    f.check(container["command"] == ["tenantkit-worker"], f"{set_name}: worker runs {container['command']}")
    drain = int(config_env(docs)["TENANTKIT_WORKER__SHUTDOWN_TIMEOUT_SECS"])
    f.check(
        pod["terminationGracePeriodSeconds"] >= drain + 5,
        f"{set_name}: worker grace {pod['terminationGracePeriodSeconds']}s leaves no time after its {drain}s drain",
    )


def check_migrations(f: Findings, set_name: str, docs: list[dict]) -> None:
    job = chart.find(docs, "Job", "-migrations")
    if not f.check(job is not None, f"{set_name}: no migration Job"):
        return
    annotations = job["metadata"].get("annotations") or {}
    f.check(
        set(annotations.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"},
        f"{set_name}: the migration Job is not a pre-install/pre-upgrade hook",
    )
    pod = job["spec"]["template"]["spec"]
    f.check(pod["restartPolicy"] == "Never", f"{set_name}: Job restartPolicy")
    f.check(pod["containers"][0]["command"] == ["tenantkit-admin", "migrate"], f"{set_name}: Job command")
    # A hook runs before the release's other objects exist: it may use only hooks of lower
    # weight or objects that exist beforehand.
    hook_objects = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if "helm.sh/hook" in (d["metadata"].get("annotations") or {})
        and int(d["metadata"]["annotations"].get("helm.sh/hook-weight", "0")) < int(annotations.get("helm.sh/hook-weight", "0"))
    }
    release_objects = {(d["kind"], d["metadata"]["name"]) for d in docs} - hook_objects
    for volume in pod.get("volumes") or []:
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            f.check(("Secret", name) not in release_objects,
                    f"{set_name}: the hook Job mounts Secret {name}, created only after the hooks")
    sa = pod.get("serviceAccountName")
    f.check(("ServiceAccount", sa) not in release_objects,
            f"{set_name}: the hook Job runs as {sa}, created only after the hooks")
    for source in pod["containers"][0].get("envFrom") or []:
        f.check(False, f"{set_name}: the hook Job reads {source} (not there yet at install)")


def check_references(f: Findings, set_name: str, docs: list[dict], values: dict) -> None:
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    existing = values["secrets"].get("existingSecret", "")
    for workload, pod in chart.pod_templates(docs):
        for volume in pod.get("volumes") or []:
            if "secret" not in volume:
                continue
            name = volume["secret"]["secretName"]
            if existing and name == existing:
                continue
            secret = secrets.get(name)
            if not f.check(secret is not None, f"{set_name}: {chart.kn(workload)} mounts missing Secret {name}"):
                continue
            for item in volume["secret"].get("items") or []:
                f.check(item["key"] in secret["data"], f"{set_name}: Secret {name} lacks {item['key']}")
        for container in pod["containers"]:
            env_files = {e["value"] for e in container.get("env") or [] if e["name"].endswith("_FILE")}
            mounted = {
                f"{m['mountPath']}/{item['path']}"
                for m in container.get("volumeMounts") or []
                for v in pod.get("volumes") or []
                if v["name"] == m["name"] and "secret" in v
                for item in v["secret"].get("items") or []
            }
            f.check(env_files <= mounted, f"{set_name}: {chart.kn(workload)} names unmounted files {env_files - mounted}")
            f.check(not any(e.get("valueFrom") for e in container.get("env") or []),
                    f"{set_name}: {chart.kn(workload)} puts a secret in the environment")
    # Only the migration Job gets the schema owner's URL.
    for workload, pod in chart.pod_templates(docs):
        if workload["kind"] == "Deployment":
            for volume in pod.get("volumes") or []:
                keys = {i["key"] for i in (volume.get("secret") or {}).get("items") or []}
                f.check("migration-database-url" not in keys,
                        f"{set_name}: {chart.kn(workload)} can read the schema owner's URL")
    if not existing:
        main = secrets.get(f"{chart.RELEASE}-tenantkit")
        f.check(main is not None and "migration-database-url" not in main["data"],
                f"{set_name}: the long-lived Secret holds the schema owner's URL")
    documented = documented_env()
    for key in config_env(docs):
        f.check(key in documented or RESERVED_ENV.match(key),
                f"{set_name}: ConfigMap sets {key}, which the README's configuration table does not know")


def check_scaling(f: Findings, set_name: str, docs: list[dict], values: dict) -> None:
    for component in ("web", "worker"):
        deployment = chart.find(docs, "Deployment", f"-{component}")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        hpa = chart.find(docs, "HorizontalPodAutoscaler", f"-{component}")
        if values[component]["autoscaling"]["enabled"]:
            f.check(hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"],
                    f"{set_name}: no HPA for the {component} Deployment")
            f.check("replicas" not in deployment["spec"],
                    f"{set_name}: {component} sets replicas while autoscaled (each upgrade would reset them)")
        else:
            f.check(hpa is None, f"{set_name}: an HPA for {component} while autoscaling is off")
            f.check(deployment["spec"].get("replicas") == values[component]["replicas"],
                    f"{set_name}: {component} replicas")
        pdb = chart.find(docs, "PodDisruptionBudget", f"-{component}")
        if values[component]["podDisruptionBudget"]["enabled"]:
            f.check(pdb is not None and chart.selector_matches(pdb["spec"]["selector"], labels),
                    f"{set_name}: no PodDisruptionBudget covering the {component} pods")
        else:
            f.check(pdb is None, f"{set_name}: a PDB for {component} while disabled")
        rollout = deployment["spec"]["strategy"]["rollingUpdate"]
        f.check(rollout["maxUnavailable"] == 0, f"{set_name}: {component} rollouts drop capacity")


def check_network_policy(f: Findings, set_name: str, docs: list[dict], values: dict) -> None:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if not values["networkPolicy"]["enabled"]:
        f.check(not policies, f"{set_name}: NetworkPolicies while disabled")
        return
    pods = [(w, w["spec"]["template"]["metadata"]["labels"]) for w, _ in chart.pod_templates(docs)]
    deny = [
        p for p in policies
        if set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]
    if f.check(deny, f"{set_name}: no deny-by-default NetworkPolicy"):
        for workload, labels in pods:
            f.check(chart.selector_matches(deny[0]["spec"]["podSelector"], labels),
                    f"{set_name}: {chart.kn(workload)} is outside the default deny")
    web = chart.find(docs, "Deployment", "-web")
    web_labels = web["spec"]["template"]["metadata"]["labels"]
    web_container = web["spec"]["template"]["spec"]["containers"][0]
    ingress_rules = [
        rule for p in policies if "Ingress" in (p["spec"].get("policyTypes") or [])
        and chart.selector_matches(p["spec"]["podSelector"], web_labels)
        for rule in p["spec"].get("ingress") or []
    ]
    web_ports = {chart.resolve_port(web_container, port["port"]) for r in ingress_rules for port in r.get("ports") or []}
    f.check(web_ports == {8000}, f"{set_name}: web ingress allows ports {web_ports}, not 8000 alone")
    for workload, labels in pods:
        if workload is not web:
            allowed = [
                rule for p in policies if chart.selector_matches(p["spec"]["podSelector"], labels)
                for rule in p["spec"].get("ingress") or []
            ]
            f.check(not allowed, f"{set_name}: {chart.kn(workload)} accepts connections")
    egress_ports = {
        (port.get("protocol", "TCP"), port["port"])
        for p in policies if chart.selector_matches(p["spec"]["podSelector"], web_labels)
        for rule in p["spec"].get("egress") or [] for port in rule.get("ports") or []
    }
    for needed, what in [(("UDP", 53), "DNS"), (("TCP", 5432), "PostgreSQL"), (("TCP", 6379), "Redis"),
                         (("TCP", 587), "SMTP"), (("TCP", 443), "Stripe/S3 over HTTPS")]:
        f.check(needed in egress_ports, f"{set_name}: egress to {what} ({needed}) is not allowed")


def check_ingress(f: Findings, set_name: str, docs: list[dict], values: dict) -> None:
    ingress = chart.find(docs, "Ingress", "-web")
    if not values["ingress"]["enabled"]:
        f.check(ingress is None, f"{set_name}: an Ingress while disabled")
        return
    if not f.check(ingress is not None, f"{set_name}: no Ingress"):
        return
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = chart.find(docs, "Service", "-web")
    f.check(backend["name"] == service["metadata"]["name"], f"{set_name}: Ingress points at {backend['name']}")
    f.check(backend["port"].get("name") in {p["name"] for p in service["spec"]["ports"]},
            f"{set_name}: Ingress uses a port the Service lacks")
    host = ingress["spec"]["rules"][0]["host"]
    f.check(host == (values["ingress"].get("host") or "app.example.com"), f"{set_name}: Ingress host {host}")
    tls = ingress["spec"].get("tls")
    f.check(bool(tls) == values["ingress"]["tls"]["enabled"], f"{set_name}: Ingress TLS")
    f.check(config_env(docs)["TENANTKIT_SERVER__TRUSTED_PROXY_HOPS"] == "1",
            f"{set_name}: behind the Ingress the server must trust one proxy hop")


def command_render() -> int:
    started = time.monotonic()
    f = Findings()
    check_lint(f)
    validated = 0
    sets = chart.value_sets()
    defaults = chart.load_chart().values
    for name, overrides in sets.items():
        values = chart.deep_merge(defaults, overrides)
        for upgrade in (False, True):
            docs = chart.render(overrides, upgrade=upgrade)
            for version in chart.KUBE_VERSIONS:
                for doc in docs:
                    for problem in chart.validate_strict(doc, version):
                        f.check(False, f"{name}: Kubernetes {version}: {problem}")
                    validated += 1
        for workload, pod in chart.pod_templates(docs):
            check_pod(f, f"{name}: {chart.kn(workload)}", workload, pod)
        check_web(f, name, docs, values)
        check_worker(f, name, docs)
        check_migrations(f, name, docs)
        check_references(f, name, docs, values)
        check_scaling(f, name, docs, values)
        check_network_policy(f, name, docs, values)
        check_ingress(f, name, docs, values)
        f.check("tenantkit-admin create-admin" in chart.notes(overrides), f"{name}: NOTES.txt")
    # config.extraEnv reaches the pods.
    extra = chart.deep_merge(sets["minimal"], {"config": {"extraEnv": {"TENANTKIT_FEATURE__FLAG": "on"}}})
    f.check(config_env(chart.render(extra)).get("TENANTKIT_FEATURE__FLAG") == "on", "config.extraEnv is not rendered")
    # The queue's tuning reaches the pods.
    tuned = chart.deep_merge(sets["minimal"], {"config": {
        "smtp": {"poolSize": 8},
        "worker": {"fetchBatch": 20, "heartbeatSecs": 5, "orphanAfterSecs": 15},
    }})
    env = config_env(chart.render(tuned))
    for name, value in [("SMTP__POOL_SIZE", "8"), ("WORKER__FETCH_BATCH", "20"),
                        ("WORKER__HEARTBEAT_SECS", "5"), ("WORKER__ORPHAN_AFTER_SECS", "15")]:
        f.check(env.get(f"TENANTKIT_{name}") == value, f"config: TENANTKIT_{name} is {env.get(f'TENANTKIT_{name}')!r}, not {value}")
    for item in f.items:
        print(f"FAIL {item}")
    print(
        f"helm chart: {len(sets)} value sets ({', '.join(sets)}), install and upgrade renders, "
        f"{validated} manifests validated strictly against Kubernetes {' and '.join(chart.KUBE_VERSIONS)}, "
        f"{len(f.items)} problems, {time.monotonic() - started:.1f}s"
    )
    return 1 if f.items else 0


# Each bad value set, what it breaks, and a fragment the refusal must contain.
REJECTED = [
    ("negative web replicas", {"web": {"replicas": -1}}, "/web/replicas"),
    ("negative worker replicas", {"worker": {"replicas": -3}}, "/worker/replicas"),
    ("no database URL and no existing Secret", {"secrets": {"databaseUrl": ""}}, "/secrets/databaseUrl"),
    ("no secrets at all", {"secrets": {"secretKey": "", "databaseUrl": "", "migrationDatabaseUrl": "", "redisUrl": "", "smtpUrl": ""}}, "/secrets/secretKey"),
    ("a short secret key", {"secrets": {"secretKey": "too-short"}}, "/secrets/secretKey"),
    ("an existing Secret and inline values", {"secrets": {"existingSecret": "mine"}}, "/secrets/databaseUrl"),
    ("billing without Stripe keys", {"billing": {"stripe": {"enabled": True}}}, "/secrets/stripeSecretKey"),
    ("S3 keys from a Secret that lacks them", {"storage": {"s3": {"bucket": "files", "credentials": "secret"}}}, "/secrets/s3AccessKeyId"),
    ("a database URL that is not PostgreSQL", {"secrets": {"databaseUrl": "mysql://a@b/c"}}, "/secrets/databaseUrl"),
    ("an unknown top-level key", {"replicaCount": 3}, "replicaCount"),
    ("a misspelt nested key", {"web": {"replica": 2}}, "replica"),
    ("an unknown probe setting", {"web": {"livenessProbe": {"path": "/"}}}, "livenessProbe"),
    ("the latest tag", {"image": {"tag": "latest"}}, "/image/tag"),
    ("a public URL without a scheme", {"config": {"publicUrl": "app.example.com"}}, "/config/publicUrl"),
    ("a negative preStop sleep", {"web": {"preStopSleepSeconds": -1}}, "/web/preStopSleepSeconds"),
    ("a port out of range", {"networkPolicy": {"egress": {"postgres": {"ports": [70000]}}}}, "/networkPolicy/egress/postgres/ports"),
    ("a memory limit that is not a quantity", {"web": {"resources": {"limits": {"memory": "lots"}}}}, "/web/resources/limits/memory"),
    ("an unknown environment", {"config": {"environment": "staging"}}, "/config/environment"),
    ("root", {"podSecurityContext": {"runAsUser": 0}}, "/podSecurityContext/runAsUser"),
    ("a hostPath volume", {"extraVolumes": [{"name": "host", "hostPath": {"path": "/"}}]}, "/extraVolumes/0"),
    ("autoscaling without CPU requests", {"web": {"autoscaling": {"enabled": True}, "resources": {"requests": None}}}, "requests"),
    ("a secret in extraEnv's place of a named setting", {"config": {"extraEnv": {"TENANTKIT_SERVER__BIND": "0.0.0.0:9000"}}}, "extraEnv"),
    ("extraEnv outside TENANTKIT_", {"config": {"extraEnv": {"AWS_SECRET_ACCESS_KEY": "x"}}}, "TENANTKIT_"),
    ("an orphan timeout under twice the heartbeat", {"config": {"worker": {"heartbeatSecs": 20, "orphanAfterSecs": 30}}}, "orphanAfterSecs"),
    ("a zero fetch batch", {"config": {"worker": {"fetchBatch": 0}}}, "/config/worker/fetchBatch"),
    ("a zero SMTP pool", {"config": {"smtp": {"poolSize": 0}}}, "/config/smtp/poolSize"),
    ("minReplicas above maxReplicas", {"worker": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}}, "minReplicas"),
]


def command_reject() -> int:
    started = time.monotonic()
    f = Findings()
    base = chart.value_sets()["minimal"]
    for what, bad, fragment in REJECTED:
        values = chart.deep_merge(base, bad)
        try:
            chart.render(values)
        except chart.helm_python.HelmError as error:
            f.check(fragment in str(error), f"{what}: refused, but the message does not name {fragment!r}: {error}")
        else:
            f.check(False, f"{what}: rendered without complaint")
    for item in f.items:
        print(f"FAIL {item}")
    print(f"helm chart: {len(REJECTED)} bad value sets, {len(REJECTED) - len(f.items)} refused as expected, "
          f"{time.monotonic() - started:.1f}s")
    return 1 if f.items else 0


if __name__ == "__main__":
    commands = {"render": command_render, "reject": command_reject}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(commands)}")
    sys.exit(commands[sys.argv[1]]())
