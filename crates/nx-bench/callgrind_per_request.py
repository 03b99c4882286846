#!/usr/bin/env python3
"""Per-request figures of `nx-bench ... --only X` runs under callgrind, `--only none` subtracted.

    valgrind --tool=callgrind --collect-bus=yes --callgrind-out-file=none.cg \\
        target/profiling/nx-bench async --runs 1 --requests 4000 --concurrency 64 --only none
    (the same with --only sdk, hand, hand-timeout)
    python3 crates/nx-bench/callgrind_per_request.py 4000 none.cg sdk.cg hand-timeout.cg

For each run: instructions (Ir) and, when collected (`--collect-bus=yes`), locked instructions
(Ge: atomic read-modify-writes) per request, in all and outside glibc malloc. glibc malloc's
own counts move with the heap's state from one build or run to the next (by hundreds of
instructions and tens of locked ones per request for the same allocations), so the figures
outside it are the ones to compare between builds. Function totals are read with
`callgrind_annotate --auto=no --threshold=100`.
"""

import re
import subprocess
import sys

ROW = re.compile(r"^\s*([0-9,]+) \([ 0-9.]+%\)\s+(\S.*)$")


def totals(path, event):
    """(all, outside glibc malloc) of `event` over the functions of one callgrind file."""
    shown = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100", f"--show={event}", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    every = outside = 0
    for line in shown.splitlines():
        row = ROW.match(line)
        if not row or "TOTALS" in line:
            continue
        count = int(row.group(1).replace(",", ""))
        every += count
        if "malloc/malloc.c" not in row.group(2) and "malloc/arena.c" not in row.group(2):
            outside += count
    return every, outside


def events(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("events:"):
                return line.split()[1:]
    return ["Ir"]


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    requests = int(argv[0])
    none, runs = argv[1], argv[2:]
    for event in [e for e in ("Ir", "Ge") if e in events(none)]:
        base = totals(none, event)
        for run in runs:
            every, outside = (
                (a - b) / requests for a, b in zip(totals(run, event), base)
            )
            print(f"{run}: {event} per request {every:.1f}, outside glibc malloc {outside:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
