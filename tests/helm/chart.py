"""The Helm chart as the tests see it: value sets, rendering with Helm's own engine
(helm-python-sdk), strict validation against offline Kubernetes schemas (kubernetes-validate),
and the restricted Pod Security Standard.

Imported by the check_*.py and plan.py scripts, which tests/tests/helm_chart.rs runs.
"""

from __future__ import annotations

import copy
import functools
import pathlib
import sys

import yaml

try:
    import helm_python
    import jsonschema
    import referencing
    from kubernetes_validate import utils as kv_utils
except ImportError as error:  # pragma: no cover - the message is the point
    sys.exit(
        f"{error}: the chart tests need helm-python-sdk and kubernetes-validate "
        "(scripts/test installs them: python3 -m pip install helm-python-sdk kubernetes-validate)"
    )

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tenantkit"
VALUE_SETS = pathlib.Path(__file__).resolve().parent / "values"
# The oldest Kubernetes the chart supports and a recent one; both ship with kubernetes-validate.
KUBE_VERSIONS = ("1.29.0", "1.33.0")
RELEASE = "tk"
NAMESPACE = "tenantkit"


def deep_merge(base: dict, override: dict) -> dict:
    """Helm's coalescing for value files: maps merge, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def value_sets() -> dict[str, dict]:
    """Every realistic value set: minimal.yaml (what an operator must give) under each file."""
    base = yaml.safe_load((VALUE_SETS / "minimal.yaml").read_text())
    sets = {"minimal": base}
    for path in sorted(VALUE_SETS.glob("*.yaml")):
        if path.stem != "minimal":
            sets[path.stem] = deep_merge(base, yaml.safe_load(path.read_text()) or {})
    return sets


@functools.lru_cache(maxsize=None)
def load_chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART))


def render(values: dict, *, upgrade: bool = False) -> list[dict]:
    """The chart's manifests for `values`, each with `_source` (template path) added."""
    rendered = load_chart().render(
        values,
        name=RELEASE,
        namespace=NAMESPACE,
        is_install=not upgrade,
        is_upgrade=upgrade,
    )
    docs = []
    for source, text in sorted(rendered.items()):
        if source.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["_source"] = source
                docs.append(doc)
    return docs


def notes(values: dict) -> str:
    rendered = load_chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for source, text in rendered.items() if source.endswith("NOTES.txt"))


def manifest(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "_source"}


def kn(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


@functools.lru_cache(maxsize=None)
def _validator(version: str, kind: str, api_version: str):
    """kubernetes_validate.validate, with each schema loaded once (the definitions are large)."""
    schema_version = [
        v
        for v in kv_utils.all_versions()
        if kv_utils.major_minor(v) <= kv_utils.major_minor(version)
    ][-1]
    group = api_version.split("/")[0].split(".")[0] + "-" if "/" in api_version else ""
    name = f"{kind.lower()}-{group}{api_version.split('/')[-1]}.json"
    folder = f"kubernetes-json-schema/v{schema_version}-local-strict"
    schema = kv_utils.schema_contents(f"{folder}/{name}", version)
    definitions = kv_utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = referencing.Resource.from_contents(definitions) @ (
        referencing.Resource.from_contents(schema) @ referencing.Registry()
    )
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate_strict(doc: dict, version: str) -> list[str]:
    """Problems with `doc` under Kubernetes `version`'s strict schema (unknown fields refused)."""
    body = manifest(doc)
    try:
        validator = _validator(version, body["kind"], body["apiVersion"])
    except FileNotFoundError:
        return [f"{kn(doc)}: Kubernetes {version} has no {body['apiVersion']} {body['kind']}"]
    return [
        f"{kn(doc)} ({doc['_source']}) at {'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
        for e in validator.iter_errors(body)
    ]


def pod_templates(docs: list[dict]) -> list[tuple[dict, dict]]:
    """(workload, pod spec) for every Deployment and Job."""
    return [
        (doc, doc["spec"]["template"]["spec"])
        for doc in docs
        if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    ]


def find(docs: list[dict], kind: str, name_suffix: str) -> dict | None:
    matches = [
        d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)
    ]
    return matches[0] if matches else None


# The restricted Pod Security Standard (policy version "latest", Kubernetes 1.29 to 1.33):
# https://kubernetes.io/docs/concepts/security/pod-security-standards/
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
BASELINE_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(pod: dict) -> list[str]:
    """Why `pod` (a PodSpec) would be refused in a namespace enforcing `restricted`."""
    problems = []
    psc = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"{field} is on")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} is of a forbidden type {sorted(kinds)}")
    for sysctl in psc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"unsafe sysctl {sysctl['name']}")

    def seccomp_ok(sc: dict) -> bool | None:
        profile = (sc.get("seccompProfile") or {}).get("type")
        return None if profile is None else profile in ("RuntimeDefault", "Localhost")

    def check_selinux(where: str, sc: dict) -> None:
        options = sc.get("seLinuxOptions") or {}
        if options.get("type", "") not in BASELINE_SELINUX_TYPES or options.get("user") or options.get("role"):
            problems.append(f"{where}: seLinuxOptions not allowed")

    def check_apparmor(where: str, sc: dict) -> None:
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{where}: AppArmor Unconfined")

    if psc.get("runAsUser") == 0:
        problems.append("pod runAsUser is 0")
    if seccomp_ok(psc) is False:
        problems.append("pod seccompProfile is not RuntimeDefault or Localhost")
    check_selinux("pod", psc)
    check_apparmor("pod", psc)

    containers = (
        (pod.get("initContainers") or [])
        + (pod.get("containers") or [])
        + (pod.get("ephemeralContainers") or [])
    )
    for container in containers:
        name = container["name"]
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        run_as_non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true (container or pod)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        container_seccomp = seccomp_ok(sc)
        if container_seccomp is False or (container_seccomp is None and seccomp_ok(psc) is not True):
            problems.append(f"{name}: seccompProfile is not RuntimeDefault or Localhost")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        extra = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            problems.append(f"{name}: capabilities add {sorted(extra)}")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount is not Default")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']}")
        check_selinux(name, sc)
        check_apparmor(name, sc)
    return problems


def selector_matches(selector: dict, labels: dict) -> bool:
    match_labels = selector.get("matchLabels") or {}
    if selector.get("matchExpressions"):
        raise ValueError("matchExpressions are not used by this chart")
    return all(labels.get(k) == v for k, v in match_labels.items())


def resolve_port(container: dict, port) -> int | None:
    """A probe's or policy's port (number or name) as the container's port number."""
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared["containerPort"]
    return None
