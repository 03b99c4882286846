#!/usr/bin/env python3
"""The MSRV check `.ci/run` runs: the workspace's `rust-version` is at least every dependency's.

CI has one toolchain, so `cargo +1.88 check` cannot run. What is checked instead:

1. every workspace member declares the workspace's `rust-version` (`rust-version.workspace = true`);
2. no package in the resolved graph (`Cargo.lock`, every target platform, dev-dependencies
   included) declares a `rust-version` above it;
3. (in `.ci/run`'s clippy step) clippy's `incompatible_msrv` lint, denied in the root
   `Cargo.toml`, refuses any use in our code of a standard-library item stabilized after it.

What this does not prove: a dependency that declares no `rust-version` (listed below) or declares
one lower than it really needs; language syntax newer than the MSRV (clippy's lint knows library
items, not syntax); Cargo manifest features. Only a build with that toolchain proves those.
"""
import json
import subprocess
import sys


def version(text):
    """`1.88` / `1.88.0` as a comparable tuple."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.loads(
        subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--locked"])
    )
    members = set(meta["workspace_members"])
    ours = {p["name"]: p["rust_version"] for p in meta["packages"] if p["id"] in members}
    declared = set(ours.values())
    if None in declared or len(declared) != 1:
        sys.exit(f"every workspace member must set rust-version.workspace = true; found {ours}")
    msrv = declared.pop()

    too_new, undeclared = [], []
    for package in meta["packages"]:
        if package["id"] in members:
            continue
        name = f'{package["name"]} {package["version"]}'
        if package["rust_version"] is None:
            undeclared.append(name)
        elif version(package["rust_version"]) > version(msrv):
            too_new.append(f'{name} (rust-version {package["rust_version"]})')

    checked = len(meta["packages"]) - len(members)
    print(f"MSRV {msrv}: {checked} dependencies in Cargo.lock, "
          f"{checked - len(undeclared)} declare a rust-version, none above {msrv}"
          if not too_new else f"MSRV {msrv}: dependencies that need a newer Rust:")
    if too_new:
        for line in too_new:
            print(f"  {line}")
        sys.exit("raise rust-version in the root Cargo.toml (and say why), or pin older versions")
    print(f"  without a declared rust-version (not checked): {', '.join(sorted(undeclared))}")


if __name__ == "__main__":
    main()
