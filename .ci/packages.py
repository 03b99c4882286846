#!/usr/bin/env python3
"""The packaging check `.ci/run` runs: every publishable crate packages, and ships what crates.io
users need.

Runs `cargo package --no-verify --locked --allow-dirty -p <each crate not marked publish = false>`
(cargo packages them in dependency order, resolving workspace-internal dependencies against the
crates just packaged, so nothing has to be on crates.io first), then reads each `.crate` in
target/package/ and checks:

- the metadata crates.io and docs.rs show: description, license, repository, homepage,
  documentation, readme, rust-version, keywords, categories;
- LICENSE-MIT and LICENSE-APACHE in the package, byte for byte the workspace's texts;
- README.md in the package, linking to the workspace README (the repository);
- a library's README is a doctest: its src/lib.rs includes "../README.md".

`--allow-dirty` so it can run before a commit: what is checked is the package, not the VCS.
`--no-verify`: building every package again from its tarball would double CI's build time.
"""
import json
import pathlib
import subprocess
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIELDS = ["description", "license", "repository", "homepage", "documentation", "readme",
          "rust_version", "keywords", "categories"]


def main():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"], cwd=ROOT))
    members = set(meta["workspace_members"])
    publishable = [p for p in meta["packages"] if p["id"] in members and p["publish"] != []]
    repository = meta["packages"][0]["repository"]
    command = ["cargo", "package", "--no-verify", "--locked", "--allow-dirty"]
    for package in publishable:
        command += ["-p", package["name"]]
    print(" ".join(command), flush=True)
    subprocess.check_call(command, cwd=ROOT)

    target = pathlib.Path(meta["target_directory"]) / "package"
    licences = {name: (ROOT / name).read_bytes() for name in ["LICENSE-MIT", "LICENSE-APACHE"]}
    problems = []
    for package in publishable:
        name, version = package["name"], package["version"]
        missing = [f for f in FIELDS if not package.get(f)]
        if missing:
            problems.append(f"{name}: Cargo.toml lacks {', '.join(missing)}")
        prefix = f"{name}-{version}/"
        with tarfile.open(target / f"{name}-{version}.crate") as crate:
            files = {m.name[len(prefix):]: m for m in crate.getmembers()}
            read = lambda path: crate.extractfile(files[path]).read()
            for licence, text in licences.items():
                if licence not in files:
                    problems.append(f"{name}: {licence} is not packaged")
                elif read(licence) != text:
                    problems.append(f"{name}: the packaged {licence} is not the workspace's")
            if "README.md" not in files:
                problems.append(f"{name}: README.md is not packaged")
            elif repository not in read("README.md").decode():
                problems.append(f"{name}: README.md does not link to {repository}")
        manifest_dir = pathlib.Path(package["manifest_path"]).parent
        if any("lib" in t["kind"] for t in package["targets"]):
            lib = (manifest_dir / "src" / "lib.rs").read_text()
            if 'include_str!("../README.md")' not in lib:
                problems.append(f"{name}: src/lib.rs does not run README.md as a doctest")
    if problems:
        sys.exit("packaging:\n  " + "\n  ".join(problems))
    print(f"packaged and checked: {', '.join(p['name'] for p in publishable)}")


if __name__ == "__main__":
    main()
