"""Static checks of deploy/Dockerfile and deploy/compose.yaml (no Docker daemon here):

- the image builds, in release mode from the lock file, exactly the workspace's binaries (the
  ones the tests run from TENANTKIT_TEST_BIN_DIR) and installs them where the chart and the
  compose file call them;
- every base image is pinned (no `latest`, no bare name); the build uses the workspace's Rust;
- the image runs as a numeric non-root user and bakes in no secret;
- compose runs the full stack: PostgreSQL, Redis, a mail inbox, the migrations, then server and
  worker, from that image.

    python3 tests/helm/check_container.py
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import tomllib

import yaml

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

import dockerfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
COMPOSE = ROOT / "deploy" / "compose.yaml"
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|_KEY$|^KEY$|_URL$|CREDENTIAL)", re.I)


def workspace_binaries() -> dict[str, str]:
    """Each binary of apps/* and its package, but for tools that are not deployed
    (`[package.metadata.tenantkit] deploy = false`, e.g. the benchmarks' baseline)."""
    found = {}
    for manifest in sorted((ROOT / "apps").glob("*/Cargo.toml")):
        data = tomllib.loads(manifest.read_text())
        package = data["package"]["name"]
        if not data["package"].get("metadata", {}).get("tenantkit", {}).get("deploy", True):
            continue
        bins = [b["name"] for b in data.get("bin", [])]
        if not bins and (manifest.parent / "src" / "main.rs").exists():
            bins = [package]
        for name in bins:
            found[name] = package
    return found


def rust_version() -> tuple[int, ...]:
    data = tomllib.loads((ROOT / "Cargo.toml").read_text())
    return tuple(int(p) for p in data["workspace"]["package"]["rust-version"].split("."))


def chart_commands() -> set[str]:
    """Programs the chart's containers run (command[0] of each), in every value set."""
    import chart  # helm-python-sdk: only this check needs it

    return {
        container["command"][0]
        for values in chart.value_sets().values()
        for _, pod in chart.pod_templates(chart.render(values))
        for container in pod["containers"]
    }


class Findings(list):
    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.append(message)
        return ok


def check_dockerfile(f: Findings) -> dict:
    df = dockerfile.parse(DOCKERFILE)
    binaries = workspace_binaries()
    f.check(set(binaries) == {"tenantkit-server", "tenantkit-worker", "tenantkit-admin"},
            f"the workspace's binaries changed: {sorted(binaries)} (update the image and the chart)")
    stage_names = {s.name for s in df.stages if s.name}
    for stage in df.stages:
        repository, tag, digest = dockerfile.image_tag(stage.image)
        if stage.image in stage_names:
            continue
        f.check(tag is not None or digest is not None,
                f"line {stage.line}: FROM {stage.image} is not pinned to a tag or digest")
        f.check(tag != "latest", f"line {stage.line}: FROM {stage.image} uses latest")
        f.check("$" not in stage.image, f"line {stage.line}: FROM {stage.image} has an unresolved argument")
    f.check(len(df.stages) >= 2, "not a multi-stage build")
    build = df.stages[0]
    runtime = df.final
    f.check(runtime.image != build.image, "the runtime image is the build image (the toolchain ships)")

    # The build stage's Rust is the workspace's.
    repository, tag, _ = dockerfile.image_tag(build.image)
    version = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", tag or "")
    if f.check(repository.endswith("rust") and version is not None, f"build stage {build.image} is not a Rust image"):
        have = tuple(int(p) for p in version.groups() if p is not None)
        f.check(have[:2] >= rust_version()[:2], f"build stage Rust {tag} is older than rust-version {rust_version()}")
    f.check(build.env().get("SQLX_OFFLINE") == "true", "the build does not compile checked SQL offline")

    # cargo build --release --locked, exactly the workspace's binaries.
    cargo = [i for i in build.all("RUN") if "cargo build" in i.text]
    built: set[str] = set()
    if f.check(len(cargo) == 1, "expected one `cargo build` in the build stage"):
        words = cargo[0].text.split()
        f.check("--release" in words, "the image is not a release build")
        f.check("--locked" in words, "the build does not use the committed Cargo.lock")
        built = {words[i + 1] for i, w in enumerate(words) if w == "--bin"}
        f.check(built == set(binaries), f"the image builds {sorted(built)}, the workspace has {sorted(binaries)}")

    # The runtime stage installs them in /usr/local/bin (where the chart's commands find them).
    installed: set[str] = set()
    for copy in runtime.all("COPY"):
        words = copy.text.split()
        if "--from=build" in words or f"--from={build.name}" in words:
            sources = [w for w in words[:-1] if not w.startswith("--")]
            f.check(words[-1].rstrip("/") == "/usr/local/bin", f"binaries copied to {words[-1]}, not /usr/local/bin")
            installed |= {pathlib.PurePosixPath(s).name for s in sources}
    f.check(installed == set(binaries), f"the image installs {sorted(installed)}, not {sorted(binaries)}")
    for command in chart_commands():
        f.check(command in installed, f"the chart runs {command}, which the image does not install")

    # Non-root, by number, and for good.
    users = runtime.all("USER")
    if f.check(users, "the runtime stage has no USER (runs as root)"):
        user = users[-1].text.split(":")[0]
        f.check(user.isdigit() and int(user) != 0, f"USER {users[-1].text} is not a numeric non-root user")
        f.check(user == "10001", f"USER {user} differs from the chart's podSecurityContext.runAsUser 10001")
    cmd = dockerfile.exec_form(runtime.all("CMD")[-1].text) if runtime.all("CMD") else None
    f.check(cmd == ["tenantkit-server"], f"the default command is {cmd}, not the server")
    f.check(not runtime.all("ENTRYPOINT"), "an ENTRYPOINT would prefix the chart's commands")
    f.check(runtime.env().get("TENANTKIT_SERVER__BIND") == "0.0.0.0:8000",
            "the image does not listen on 0.0.0.0:8000 (the chart's containerPort)")
    # The chart's preStop hook runs `sleep`: the runtime base must have coreutils.
    f.check(dockerfile.image_tag(runtime.image)[0].endswith(("debian", "ubuntu")),
            f"runtime base {runtime.image} may lack `sleep` for the preStop hook")

    # No secret baked in.
    for stage in df.stages:
        for instruction in stage.all("ENV") + stage.all("ARG"):
            for name, value in dockerfile.parse_assignments(instruction.text).items():
                f.check(not SECRET_NAME.search(name), f"line {instruction.line}: {name} looks like a secret in the image")
        for instruction in stage.all("COPY") + stage.all("ADD"):
            f.check(not re.search(r"\.env\b|\.pem\b|\.key\b|tenantkit\.toml|id_rsa", instruction.text),
                    f"line {instruction.line}: copies a secret-looking file")
    for name in df.global_args:
        f.check(not SECRET_NAME.search(name), f"ARG {name} looks like a secret")
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for needed in ("target", ".git", ".dev", "**/node_modules"):
        f.check(needed in ignored, f"the build context includes {needed}")
    for kept in (".sqlx", "Cargo.lock", "libs", "apps", "tests"):
        f.check(kept not in ignored, f"the build context lacks {kept}")

    # The binaries the tests run are the ones named here.
    bin_dir = os.environ.get("TENANTKIT_TEST_BIN_DIR")
    if bin_dir:
        for name in binaries:
            f.check((pathlib.Path(bin_dir) / name).is_file(), f"{name} is not in TENANTKIT_TEST_BIN_DIR ({bin_dir})")
    return {"stages": len(df.stages), "binaries": sorted(installed), "base": [s.image for s in df.stages]}


def interpolate(text: str) -> str:
    """Compose's ${VAR:-default}, taking the defaults (what a plain `up` uses)."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: os.environ.get(m.group(1)) or m.group(2) or "", text)


def check_compose(f: Findings) -> dict:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    for needed in ("postgres", "redis", "migrate", "server", "worker"):
        f.check(needed in services, f"compose has no {needed} service")
    inbox = [n for n, s in services.items() if "mailpit" in str(s.get("image", "")) or "maildev" in str(s.get("image", ""))]
    f.check(inbox, "compose has no mail inbox")
    binaries = set(workspace_binaries())
    for name, service in services.items():
        image = service.get("image", "")
        if "build" in service:
            build = service["build"]
            context = (COMPOSE.parent / build["context"]).resolve()
            f.check((context / build["dockerfile"]).resolve() == DOCKERFILE,
                    f"{name} is not built from deploy/Dockerfile")
            command = service.get("command") or []
            f.check(bool(command) and command[0] in binaries, f"{name} runs {command}, not one of the image's programs")
            f.check(service.get("read_only") is True, f"{name}: root filesystem is writable")
            f.check("ALL" in (service.get("cap_drop") or []), f"{name}: capabilities not dropped")
            f.check("no-new-privileges:true" in (service.get("security_opt") or []), f"{name}: no-new-privileges")
            env = {k: interpolate(str(v)) for k, v in (service.get("environment") or {}).items()}
            f.check(env.get("DATABASE_URL", "").startswith("postgres://tenantkit_app:"),
                    f"{name}: the application does not connect as tenantkit_app")
        else:
            repository, tag, digest = dockerfile.image_tag(image)
            f.check((tag or digest) and tag != "latest", f"{name}: image {image!r} is not pinned")
        for port in service.get("ports") or []:
            f.check(str(port).startswith("127.0.0.1:"), f"{name}: port {port} is published on every address")

    def depends(name: str) -> dict:
        return services.get(name, {}).get("depends_on") or {}

    def after(name: str, target: str, condition: str, seen=()) -> bool:
        for dependency, spec in depends(name).items():
            if dependency == target and spec.get("condition") == condition:
                return True
            if dependency not in seen and after(dependency, target, condition, seen + (name,)):
                return True
        return False

    for name in ("server", "worker"):
        f.check(after(name, "migrate", "service_completed_successfully"),
                f"{name} may start before the migrations complete")
    f.check(services["migrate"]["command"] == ["tenantkit-admin", "migrate"], "migrate does not run `tenantkit-admin migrate`")
    migrate_env = {k: interpolate(str(v)) for k, v in services["migrate"]["environment"].items()}
    f.check("tenantkit_owner" in migrate_env.get("TENANTKIT_DATABASE__MIGRATION_URL", ""),
            "the migrations do not run as the schema owner")
    grace = services["server"].get("stop_grace_period", "10s")
    f.check(int(grace.rstrip("s")) > 30, f"server stop_grace_period {grace} is shorter than its 30 s drain")
    return {"services": sorted(services)}


def main() -> int:
    f = Findings()
    image = check_dockerfile(f)
    stack = check_compose(f)
    for item in f:
        print(f"FAIL {item}")
    print(f"Dockerfile: {image['stages']} stages from {', '.join(image['base'])}, installs {', '.join(image['binaries'])}; "
          f"compose: {', '.join(stack['services'])}; {len(f)} problems")
    return 1 if f else 0


if __name__ == "__main__":
    sys.exit(main())
