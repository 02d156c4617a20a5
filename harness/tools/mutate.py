"""``make mutate``: mutation testing of the firmware's C with universalmutator (regexp
mutants for C), over firmware/mm/ and the agent's parser.

For each file: ``mutate FILE --noCheck`` writes every mutant; a seeded sample of ``--sample``
of them per file is taken (the full count is in the thousands; the sample is uniform over the
mutant files, seed in the report). Each sampled mutant goes into a scratch copy of the tree
(``git archive HEAD``: commit first); one that does not build (``make host-lib firmware``)
is *invalid* and does not count. A valid mutant is killed as fast as possible: the host tests
of its file (``-x``, seconds), then the hardware tests that exercise it on virt-4k (``-x -n
2``), and only if it survives those, again on the file's extra profiles (16K/64K for
granule-dependent code, dma32 for DMA limits); every test has a 60 s timeout, a hang is a
kill. The first failing test is recorded; a survivor is listed with its diff line.
``--mutant NAME`` re-runs named mutants (a survivor, after a test was written for it).

Not in CI (minutes per mutant); the score per file goes in the README.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import PROJECT_ROOT

# file -> (host tests, hardware tests) that exercise it
SELECTION: dict[str, tuple[list[str], list[str]]] = {
    "firmware/mm/heap.c": (
        ["tests/host/test_heap.py", "tests/host/test_heap_oracle.py"],
        ["tests/hw/test_heap_verbs.py", "tests/hw/test_heap_regressions.py", "tests/hw/test_inject.py"],
    ),
    "firmware/mm/pages.c": (
        ["tests/host/test_pages.py", "tests/host/test_heap.py"],
        [
            "tests/hw/test_heap_verbs.py",
            "tests/hw/test_md_buffer.py",
            "tests/hw/test_inject.py",
            "tests/hw/test_dma_bounce.py",
        ],
    ),
    "firmware/mm/pte.c": (
        ["tests/host/test_pte.py", "tests/host/test_formats.py"],
        ["tests/hw/test_mmu.py", "tests/hw/test_md_map.py"],
    ),
    "firmware/mm/vm.c": (
        [],
        [
            "tests/hw/test_mmu.py",
            "tests/hw/test_vm_edges.py",
            "tests/hw/test_mm_edges.py",
            "tests/hw/test_selftest.py",  # vm_selftest.c: TLB and cache maintenance, VA range
            "tests/hw/test_md_map.py",
        ],
    ),
    "firmware/mm/object.c": (
        ["tests/host/test_object.py"],
        ["tests/hw/test_objects.py", "tests/hw/test_heap_verbs.py", "tests/hw/test_inject.py"],
    ),
    "firmware/agent/proto.c": (
        ["tests/host/test_agent_proto.py"],
        ["tests/hw/test_bad_input.py", "tests/hw/test_memory_verbs.py"],
    ),
}
GRANULE_DEPENDENT = {"firmware/mm/pte.c", "firmware/mm/vm.c", "firmware/mm/pages.c"}


@dataclass
class Mutant:
    file: str
    name: str
    line: int
    change: str
    status: str = "pending"  # invalid, killed, survived
    killed_by: str = ""
    seconds: float = 0.0


def generate(tree: Path, file: str, out: Path) -> list[Path]:
    """Every mutant of ``tree/file``: the scratch copy, so that the mutants are of the same
    commit as the rest of the tree they are built in (not of a work tree that moved on)."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "mutate"),
            str(tree / file),
            "--noCheck",
            "--mutantDir",
            str(out),
        ],
        capture_output=True,
        check=True,
        cwd=out,
    )
    stem = Path(file).stem
    return sorted(p for p in out.iterdir() if p.name.startswith(stem + ".mutant."))


def describe(original: str, mutant: str) -> tuple[int, str]:
    for group in difflib.SequenceMatcher(None, original.splitlines(), mutant.splitlines()).get_opcodes():
        tag, i1, i2, j1, j2 = group
        if tag != "equal":
            before = " ".join(original.splitlines()[i1:i2]).strip()
            after = " ".join(mutant.splitlines()[j1:j2]).strip()
            if not before:
                return i1, f"after line {i1}, insert  {after}"
            return i1 + 1, f"{before}  ->  {after}"
    return 0, "(no change)"


def scratch_tree() -> Path:
    root = Path(tempfile.mkdtemp(prefix="iomem-mutate-"))
    archive = subprocess.run(
        ["git", "archive", "HEAD"], capture_output=True, check=True, cwd=PROJECT_ROOT
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "build").mkdir(exist_ok=True)
    (root / "build" / ".deps-ok").touch()
    venv = root / ".venv"
    venv.symlink_to(PROJECT_ROOT / ".venv")
    return root


# Seconds per test (pytest-timeout): a hang is a kill, and costs at most this. The thread
# method, because a mutant's endless loop in the host library holds the interpreter in C,
# where the signal method's handler never runs (two heap.c mutants ran to the 600 s cap).
PER_TEST_TIMEOUT = 60
FIRST_PROFILE = "virt-4k"
# A survivor of the first pass is run again on these (granule-dependent code is only
# exercised on 16K/64K; DMA-limit and SMMU paths on their own profiles).
EXTRA_PROFILES: dict[str, list[str]] = {
    "firmware/mm/pte.c": ["virt-16k", "virt-64k"],
    "firmware/mm/vm.c": ["virt-16k", "virt-64k", "virt-4k-dma32"],
    "firmware/mm/pages.c": ["virt-16k", "virt-64k", "virt-4k-dma32"],
    "firmware/mm/heap.c": ["virt-64k"],
    "firmware/mm/object.c": ["virt-64k"],
    "firmware/agent/proto.c": ["virt-64k"],
}


def _run(cmd: list[str], cwd: Path, timeout: float) -> tuple[bool, str]:
    """(passed, the first failing test's id or what stopped the run)."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, f"no result in {timeout:.0f} s"  # a hang is a kill: the tests noticed
    if done.returncode == 0:
        return True, ""
    out = done.stdout.decode(errors="replace").splitlines()
    failed = [line.split(" - ")[0] for line in out if line.startswith(("FAILED ", "ERROR "))]
    return False, failed[0] if failed else f"exit {done.returncode}"


def _pytest(workers: int, *args: str) -> list[str]:
    py = str(PROJECT_ROOT / ".venv" / "bin" / "python")
    parallel = ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
    return [
        py, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", "--timeout", str(PER_TEST_TIMEOUT),
        "--timeout-method", "thread", *parallel, *args,
    ]  # fmt: skip


def try_mutant(tree: Path, mutant: Mutant, source: Path, *, workers: int, extra: bool) -> None:
    """Build the mutant, then stop at the first failure: host tests (seconds), then the hardware
    selection on virt-4k, then (survivors only) on the file's extra profiles."""
    start = time.monotonic()
    target = tree / mutant.file
    original = target.read_bytes()
    target.write_bytes(source.read_bytes())
    try:
        # The firmware first: make recompiles only the mutated file, so most invalid mutants
        # are rejected in seconds; the host library (one gcc call over every source) after.
        host, hw = SELECTION[mutant.file]
        for goal in ["firmware"] + (["host-lib"] if host else []):
            ok, _ = _run(["make", "-s", goal], tree, 300)
            if not ok:
                mutant.status = "invalid"
                return
        if host:
            ok, why = _run(_pytest(1, *host), tree, 600)
            if not ok:
                mutant.status, mutant.killed_by = "killed", f"host: {why}"
                return
        profiles = [FIRST_PROFILE] + (EXTRA_PROFILES.get(mutant.file, []) if extra else [])
        for profile in profiles if hw else []:
            ok, why = _run(_pytest(workers, "--profile", profile, *hw), tree, 1800)
            if not ok:
                mutant.status, mutant.killed_by = "killed", f"{profile}: {why}"
                return
        mutant.status = "survived"
    finally:
        target.write_bytes(original)
        mutant.seconds = time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mutate", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--file", action="append", help="only this file (repeatable)")
    parser.add_argument("--sample", type=int, default=20, help="valid mutants per file at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers for the hardware tests")
    parser.add_argument("--mutant", action="append", help="only these mutant files (pte.mutant.17.c: re-run)")
    parser.add_argument("--no-extra", action="store_true", help="no extra-profile pass")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "build" / "mutate"))
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    files = args.file or list(SELECTION)
    tree = scratch_tree()
    results: list[Mutant] = []
    log = (out / "results.jsonl").open("a")
    try:
        for file in files:
            candidates = generate(tree, file, out / "mutants" / Path(file).stem)
            original = (tree / file).read_text()
            rng = random.Random(f"{args.seed}:{file}")
            rng.shuffle(candidates)
            if args.mutant:
                candidates = [p for p in candidates if p.name in args.mutant]
            valid = 0
            print(f"{file}: {len(candidates)} mutants, sampling until {args.sample} build", flush=True)
            for path in candidates:
                if valid >= args.sample:
                    break
                line, change = describe(original, path.read_text(errors="replace"))
                mutant = Mutant(file, path.name, line, change)
                try_mutant(tree, mutant, path, workers=args.workers, extra=not args.no_extra)
                if mutant.status != "invalid":
                    valid += 1
                    results.append(mutant)
                    log.write(json.dumps({**asdict(mutant), "seed": args.seed}) + "\n")
                    log.flush()
                    print(
                        f"  {mutant.status:<8} {path.name} :{line} {change[:90]} ({mutant.seconds:.0f} s)"
                        f" {mutant.killed_by}",
                        flush=True,
                    )
    finally:
        log.close()
        shutil.rmtree(tree, ignore_errors=True)
    (out / "results.json").write_text(json.dumps([asdict(m) for m in results], indent=1))
    print(report(results))
    return 0


def report(results: list[Mutant]) -> str:
    lines = ["| file | valid mutants | killed | score |", "|---|---:|---:|---:|"]
    for file in dict.fromkeys(m.file for m in results):
        mine = [m for m in results if m.file == file]
        killed = sum(m.status == "killed" for m in mine)
        lines.append(f"| {file} | {len(mine)} | {killed} | {100 * killed / len(mine):.0f} % |")
    survivors = [m for m in results if m.status == "survived"]
    if survivors:
        lines.append("\nsurvivors:")
        lines += [f"- {m.file}:{m.line} `{m.change}`" for m in survivors]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
