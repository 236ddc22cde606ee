"""Summarise mutmut's results per core module, with the equivalent mutants of `equivalent.yaml` set apart.

mutmut keeps each file's verdicts in `mutants/<path>.meta` (JSON), a folder git ignores and a fresh checkout
lacks. `--record` merges those verdicts into `verdicts.json`, which is committed: per module and function,
the hash mutmut gave the function's source and one exit code per mutant (null: not run). A verdict is kept
while its function's hash is unchanged, so runs made in different sessions add up, and editing a function
drops only that function's verdicts. The table printed (mutants, killed, survived, equivalent, timeout, not
run, score) is read from the record alone, so `mutation/report.md` can be rebuilt from a clean checkout.

Score = (killed + timeout) / (mutants run - equivalent): a mutant that hangs the tests is caught by the
timeout, and an equivalent mutant behaves like the original, so no test can kill it.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from mythbench.core.fileio import atomic_write_text
from mythbench.core.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[1]
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {24, -24, 36, 152, 255}
COLUMNS = ["mutants", "killed", "survived", "equivalent", "timeout", "not run"]
_MUTANT = re.compile(r"(?P<function>.+)__mutmut_(?P<number>\d+)")

# module path -> function -> {"hash": mutmut's hash of its source, "codes": exit code of mutant 1, 2, ...}
Record = dict[str, dict[str, dict]]


def load_equivalent(path: Path) -> dict[str, str]:
    """Mutant name -> why it cannot be told apart from the original."""
    return load_yaml(path, "equivalent mutants") or {} if path.exists() else {}


def module_prefix(module: str) -> str:
    """What mutmut's mutant names start with for a module path: `mythbench/a/b.py` -> `mythbench.a.b.`."""
    return module.removesuffix(".py").replace("/", ".") + "."


def meta_functions(meta: dict, module: str) -> dict[str, dict]:
    """One `.meta` file as the record's entry for its module: every function's hash and its mutants' codes."""
    prefix = module_prefix(module)
    codes: dict[str, dict[int, int | None]] = {}
    for name, code in meta["exit_code_by_key"].items():
        parts = _MUTANT.fullmatch(name.removeprefix(prefix))
        codes.setdefault(parts["function"], {})[int(parts["number"])] = code
    functions = {}
    for function, by_number in codes.items():
        if sorted(by_number) != list(range(1, len(by_number) + 1)):
            raise ValueError(f"{module}: {function}'s mutants are not numbered 1..{len(by_number)}")
        functions[function] = {"hash": meta["hash_by_function_name"][function],
                               "codes": [by_number[n] for n in sorted(by_number)]}
    return functions


def merge(recorded: dict[str, dict], current: dict[str, dict]) -> dict[str, dict]:
    """The current functions, each mutant's code from this run or, where it was not run, from the record
    when the function's source is unchanged (same hash and mutant count)."""
    merged = {}
    for function, now in current.items():
        before = recorded.get(function)
        codes = now["codes"]
        if before is not None and before["hash"] == now["hash"] and len(before["codes"]) == len(codes):
            codes = [old if new is None else new for new, old in zip(codes, before["codes"], strict=True)]
        merged[function] = {"hash": now["hash"], "codes": codes}
    return merged


def record_run(record: Record, mutants_dir: Path) -> Record:
    """The record with every module's verdicts from mutmut's `.meta` files merged in."""
    updated = dict(record)
    for meta_path in sorted(mutants_dir.rglob("*.py.meta")):
        module = meta_path.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        functions = meta_functions(json.loads(meta_path.read_text()), module)
        if functions:
            updated[module] = merge(record.get(module, {}), functions)
    return dict(sorted(updated.items()))


def record_text(record: Record) -> str:
    """The record as JSON with one function per line, so a run's diff shows which functions it changed."""
    modules = []
    for module, functions in record.items():
        lines = [f"  {json.dumps(name, ensure_ascii=False)}: {json.dumps(entry, separators=(',', ':'))}"
                 for name, entry in functions.items()]
        modules.append(f"{json.dumps(module)}: {{\n" + ",\n".join(lines) + "\n}")
    return "{\n" + ",\n".join(modules) + "\n}\n"


def restore_run(record: Record, mutants_dir: Path, equivalent: dict[str, str]) -> int:
    """Write the record's kills, timeouts and listed equivalents into mutmut's `.meta` files, for every mutant
    mutmut has not run whose function is unchanged, so that `mutmut run` runs only the rest; the number
    restored. Other survivors are left to run again: a test written since may kill them."""
    restored = 0
    for meta_path in sorted(mutants_dir.rglob("*.py.meta")):
        module = meta_path.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        meta = json.loads(meta_path.read_text())
        merged = merge(record.get(module, {}), meta_functions(meta, module))
        prefix = module_prefix(module)
        for function, entry in merged.items():
            for number, code in enumerate(entry["codes"], start=1):
                name = f"{prefix}{function}__mutmut_{number}"
                if meta["exit_code_by_key"][name] is None and code is not None and (
                        code in KILLED_CODES | TIMEOUT_CODES or name in equivalent):
                    meta["exit_code_by_key"][name] = code
                    restored += 1
        atomic_write_text(meta_path, json.dumps(meta))
    return restored


def retry_survivors(mutants_dir: Path, equivalent: dict[str, str]) -> int:
    """Clear the verdict of every survivor not listed as equivalent in mutmut's `.meta` files (a test written
    since may kill it), so that the next `mutmut run` tries it again; the number cleared."""
    cleared = 0
    for meta_path in sorted(mutants_dir.rglob("*.py.meta")):
        meta = json.loads(meta_path.read_text())
        survivors = [name for name, code in meta["exit_code_by_key"].items()
                     if code is not None and code not in KILLED_CODES | TIMEOUT_CODES and name not in equivalent]
        for name in survivors:
            meta["exit_code_by_key"][name] = None
        if survivors:
            atomic_write_text(meta_path, json.dumps(meta))
            cleared += len(survivors)
    return cleared


def module_counts(module: str, functions: dict[str, dict], equivalent: dict[str, str]) -> Counter:
    """One module's verdicts by kind; an equivalent mutant counts as equivalent whatever its exit code."""
    prefix = module_prefix(module)
    counts = Counter()
    for function, entry in functions.items():
        for number, code in enumerate(entry["codes"], start=1):
            counts["mutants"] += 1
            if code is None:
                counts["not run"] += 1
            elif f"{prefix}{function}__mutmut_{number}" in equivalent:
                counts["equivalent"] += 1
            elif code in KILLED_CODES:
                counts["killed"] += 1
            elif code in TIMEOUT_CODES:
                counts["timeout"] += 1
            else:  # 0 (tests pass) and 5/33 (no test calls the function) are both survivors
                counts["survived"] += 1
    return counts


def score(counts: Counter) -> str:
    scored = counts["mutants"] - counts["not run"] - counts["equivalent"]
    return f"{100 * (counts['killed'] + counts['timeout']) / scored:.1f}%" if scored else "-"


def table(record: Record, equivalent: dict[str, str]) -> str:
    """The per-module Markdown table, with a total row."""
    lines = ["| module | " + " | ".join(COLUMNS) + " | score |", "|---" * (len(COLUMNS) + 2) + "|"]
    total = Counter()
    for module, functions in record.items():
        counts = module_counts(module, functions, equivalent)
        total += counts
        lines.append(f"| {module} | " + " | ".join(str(counts[c]) for c in COLUMNS) + f" | {score(counts)} |")
    lines.append("| **all** | " + " | ".join(str(total[c]) for c in COLUMNS) + f" | {score(total)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="merge mutants/*.meta into the record first")
    parser.add_argument("--retry-survivors", action="store_true",
                        help="after --record: clear the survivors in mutants/*.meta so `mutmut run` tries them again")
    parser.add_argument("--restore", action="store_true",
                        help="write the record's verdicts into mutants/*.meta (then `mutmut run` skips them)")
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    parser.add_argument("--verdicts", type=Path, default=ROOT / "mutation" / "verdicts.json")
    parser.add_argument("--equivalent", type=Path, default=ROOT / "mutation" / "equivalent.yaml")
    args = parser.parse_args()
    record: Record = json.loads(args.verdicts.read_text()) if args.verdicts.exists() else {}
    equivalent = load_equivalent(args.equivalent)
    if args.record:
        record = record_run(record, args.mutants)
        atomic_write_text(args.verdicts, record_text(record))
    if args.retry_survivors:
        print(f"cleared {retry_survivors(args.mutants, equivalent)} survivors in {args.mutants}", file=sys.stderr)
    if args.restore:
        print(f"restored {restore_run(record, args.mutants, equivalent)} verdicts into {args.mutants}", file=sys.stderr)
    print(table(record, equivalent))


if __name__ == "__main__":
    main()
