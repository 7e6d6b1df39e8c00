"""What the kubelet would run for the chart, so a test can run the same thing on this machine.

Renders the chart with the minimal value set, the secrets pointing at the test's loopback
PostgreSQL (database --database), Redis and SMTP, then for the migration Job and the web and
worker Deployments resolves each container as a kubelet does: the image's ENV (deploy/Dockerfile),
then envFrom, then env (values, Secret and ConfigMap keys, $(VAR) references), and the Secret and
ConfigMap volumes written as files under --root with the variables naming them pointed there.
Prints the plan as JSON:

    {"web": {"argv": [...], "env": {...}, "containerPort": 8000, "probes": {...},
             "preStop": [...], "terminationGracePeriodSeconds": 45}, "worker": {...},
     "migrations": {...}}

    python3 tests/helm/plan.py --database NAME --root DIR [--billing]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import re
import secrets
import sys
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

import chart
import dockerfile


def test_values(database: str, billing: bool) -> dict:
    pg = urllib.parse.urlsplit(os.environ["TENANTKIT_TEST_PG"])  # postgres://postgres@127.0.0.1:port
    app_password = urllib.parse.quote(os.environ["TENANTKIT_TEST_APP_PASSWORD"], safe="")
    overrides = {
        "config": {"redis": {"keyPrefix": f"helm-{database}"}},
        "secrets": {
            "secretKey": secrets.token_hex(32),
            "databaseUrl": f"postgres://tenantkit_app:{app_password}@{pg.hostname}:{pg.port}/{database}",
            "migrationDatabaseUrl": f"{os.environ['TENANTKIT_TEST_PG']}/{database}",
            "redisUrl": os.environ["TENANTKIT_TEST_REDIS"],
            "smtpUrl": os.environ["TENANTKIT_TEST_SMTP"],
        },
    }
    if billing:
        overrides["billing"] = {"stripe": {"enabled": True}}
        overrides["secrets"]["stripeSecretKey"] = "sk_test_" + secrets.token_hex(12)
        overrides["secrets"]["stripeWebhookSecrets"] = "whsec_" + secrets.token_hex(16)
    return chart.deep_merge(chart.value_sets()["minimal"], overrides)


def decoded(secret: dict) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


class Kubelet:
    def __init__(self, docs: list[dict], root: pathlib.Path) -> None:
        self.secrets = {d["metadata"]["name"]: decoded(d) for d in docs if d["kind"] == "Secret"}
        self.config_maps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
        self.root = root
        image = dockerfile.parse(chart.ROOT / "deploy" / "Dockerfile").final
        self.image_env = image.env()

    def source(self, kind: str, name: str) -> dict[str, str]:
        store = self.secrets if kind == "secret" else self.config_maps
        if name not in store:
            raise SystemExit(f"the pod needs {kind} {name}, which the chart does not render")
        return store[name]

    def container(self, workload: dict, pod: dict, container: dict) -> dict:
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        env: dict[str, str] = dict(self.image_env)
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                env.update(self.source("configMap", source["configMapRef"]["name"]))
            elif "secretRef" in source:
                env.update(self.source("secret", source["secretRef"]["name"]))
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = expand(item["value"], env)
                continue
            ref = item["valueFrom"]
            kind, key_ref = next((k, v) for k, v in ref.items())
            if kind not in ("secretKeyRef", "configMapKeyRef"):
                raise SystemExit(f"{where}: env {item['name']} uses {kind}, which this plan cannot resolve")
            data = self.source("secret" if kind == "secretKeyRef" else "configMap", key_ref["name"])
            if key_ref["key"] in data:
                env[item["name"]] = data[key_ref["key"]]
            elif not key_ref.get("optional"):
                raise SystemExit(f"{where}: {key_ref['name']} has no key {key_ref['key']}")
        # Volumes: Secret and ConfigMap files under the root; emptyDir folders.
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        mounts = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            local = self.root / workload["metadata"]["name"] / mount["mountPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            if "secret" in volume or "configMap" in volume:
                spec = volume.get("secret") or volume.get("configMap")
                kind = "secret" if "secret" in volume else "configMap"
                data = self.source(kind, spec.get("secretName") or spec.get("name"))
                items = spec.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] not in data:
                        raise SystemExit(f"{where}: volume {mount['name']} needs key {item['key']}")
                    path = local / item["path"]
                    path.write_text(data[item["key"]])
                    path.chmod(item.get("mode", spec.get("defaultMode", 0o644)) & 0o777)
            elif "emptyDir" not in volume:
                raise SystemExit(f"{where}: volume {mount['name']} is of a kind this plan cannot provide")
            mounts[mount["mountPath"]] = str(local)
        # /tmp stays the machine's own: the container's emptyDir only stands in for it.
        mounts.pop("/tmp", None)
        for name, value in env.items():
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                    env[name] = local + value[len(mount_path):]
        argv = [expand(a, env) for a in (container.get("command") or []) + (container.get("args") or [])]
        plan = {"argv": argv, "env": env}
        ports = container.get("ports") or []
        if ports:
            plan["containerPort"] = ports[0]["containerPort"]
        probes = {}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if probe is None:
                continue
            get = probe.get("httpGet")
            if get is None:
                raise SystemExit(f"{where}: {kind} is not an HTTP probe")
            probes[kind.removesuffix("Probe")] = {
                "scheme": get.get("scheme", "HTTP"),
                "path": get.get("path", "/"),
                "port": chart.resolve_port(container, get["port"]),
                # Kubernetes' defaults where the chart leaves a field out.
                "initialDelaySeconds": probe.get("initialDelaySeconds", 0),
                "periodSeconds": probe.get("periodSeconds", 10),
                "timeoutSeconds": probe.get("timeoutSeconds", 1),
                "failureThreshold": probe.get("failureThreshold", 3),
                "successThreshold": probe.get("successThreshold", 1),
            }
        plan["probes"] = probes
        pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {})
        if "exec" in pre_stop:
            plan["preStop"] = pre_stop["exec"]["command"]
        elif "sleep" in pre_stop:
            plan["preStop"] = ["sleep", str(pre_stop["sleep"]["seconds"])]
        plan["terminationGracePeriodSeconds"] = pod.get("terminationGracePeriodSeconds", 30)
        return plan


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) references ($$ escapes)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--root", required=True, type=pathlib.Path)
    parser.add_argument("--billing", action="store_true", help="with Stripe's secrets mounted")
    args = parser.parse_args()
    docs = chart.render(test_values(args.database, args.billing))
    kubelet = Kubelet(docs, args.root)
    plan = {}
    for component, kind, suffix in [("migrations", "Job", "-migrations"),
                                     ("web", "Deployment", "-web"),
                                     ("worker", "Deployment", "-worker")]:
        workload = chart.find(docs, kind, suffix)
        if workload is None:
            raise SystemExit(f"the chart renders no {kind} *{suffix}")
        pod = workload["spec"]["template"]["spec"]
        if len(pod["containers"]) != 1:
            raise SystemExit(f"{kind} {suffix}: expected one container")
        plan[component] = kubelet.container(workload, pod, pod["containers"][0])
    json.dump(plan, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
