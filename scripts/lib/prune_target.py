#!/usr/bin/env python3
"""Keeps a shared cargo target folder from growing without bound.

Cargo never deletes an artifact: every change of profile, features or dependencies builds the
project's own crates under a new hash beside the old ones. The test binaries are large, so a
target folder reused across clones and commits filled the disk. For each of the project's own
crates (the packages of the given manifests' workspaces) this keeps only the builds of its newest
run in every `deps` and `incremental` folder; third-party crates are left alone (two versions of
one crate are both in use).

    prune_target.py TARGET_DIR MANIFEST_PATH...
"""

import json
import os
import re
import shutil
import subprocess
import sys

# Builds this close to a crate's newest build are taken to be from the same run.
SAME_RUN = 2 * 3600  # seconds

# deps/: lib<name>-<16 hex>.rlib, <name>-<16 hex>.d, ...; incremental/: <name>-<13 base-36>.
ARTIFACT = re.compile(r"^(?:lib)?(?P<name>[A-Za-z0-9_]+)-(?P<hash>[0-9a-f]{16}|[0-9a-z]{13})(?:\..*)?$")


def own_crate_names(manifests):
    names = set()
    for manifest in manifests:
        metadata = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--manifest-path", manifest],
            check=True, capture_output=True, text=True,
        )
        for package in json.loads(metadata.stdout)["packages"]:
            names.update(target["name"].replace("-", "_") for target in package["targets"])
    return names


def prune_folder(folder, names):
    """Deletes the builds of an own crate older than its newest build's run; returns bytes freed.

    One run builds several artifacts per crate under different hashes (library, unit tests,
    lint checks), all current: every build made within `SAME_RUN` of the newest is kept.
    """
    builds = {}
    for entry in os.scandir(folder):
        match = ARTIFACT.match(entry.name)
        if match and match["name"] in names:
            builds.setdefault((match["name"], match["hash"]), []).append(entry)
    built_at = {
        key: max(entry.stat(follow_symlinks=False).st_mtime for entry in entries)
        for key, entries in builds.items()
    }
    newest = {}
    for (name, _), mtime in built_at.items():
        newest[name] = max(newest.get(name, 0), mtime)
    freed = 0
    for (name, build_hash), entries in builds.items():
        if built_at[(name, build_hash)] >= newest[name] - SAME_RUN:
            continue
        for entry in entries:
            freed += size_of(entry)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
    return freed


def size_of(entry):
    if not entry.is_dir(follow_symlinks=False):
        return entry.stat(follow_symlinks=False).st_size
    total = 0
    for root, _, files in os.walk(entry.path):
        for file in files:
            try:
                total += os.lstat(os.path.join(root, file)).st_size
            except OSError:
                pass
    return total


def main():
    target, manifests = sys.argv[1], sys.argv[2:]
    if not os.path.isdir(target):
        return
    names = own_crate_names(manifests)
    freed = 0
    for root, dirs, _ in os.walk(target):
        for folder in [d for d in dirs if d in ("deps", "incremental")]:
            freed += prune_folder(os.path.join(root, folder), names)
            dirs.remove(folder)
    if freed >= 1 << 20:
        print(f"freed {freed / (1 << 30):.1f} GiB of superseded builds in {target}")


if __name__ == "__main__":
    main()
