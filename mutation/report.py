"""Summarise mutmut's results per core module, with the equivalent mutants of `equivalent.yaml` set apart.

mutmut keeps each file's verdicts in `mutants/<path>.meta` (JSON); `mutmut results` lists only survivors,
one line each. This prints one Markdown table (mutants, killed, survived, equivalent, timeout, not run,
score) so a run's outcome can be committed as `mutation/report.md`.

Score = (killed + timeout) / (mutants run - equivalent): a mutant that hangs the tests is caught by the
timeout, and an equivalent mutant behaves like the original, so no test can kill it.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from mythbench.core.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[1]
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {24, -24, 36, 152, 255}


def load_equivalent(path: Path) -> dict[str, str]:
    """Mutant name -> why it cannot be told apart from the original."""
    return load_yaml(path, "equivalent mutants") or {} if path.exists() else {}


def module_counts(meta: dict, equivalent: dict[str, str]) -> Counter:
    """One file's verdicts by kind; an equivalent mutant counts as equivalent whatever its exit code."""
    counts = Counter()
    for name, code in meta["exit_code_by_key"].items():
        counts["mutants"] += 1
        if code is None:
            counts["not run"] += 1
        elif name in equivalent:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    parser.add_argument("--equivalent", type=Path, default=ROOT / "mutation" / "equivalent.yaml")
    args = parser.parse_args()
    equivalent = load_equivalent(args.equivalent)
    columns = ["mutants", "killed", "survived", "equivalent", "timeout", "not run"]
    print("| module | " + " | ".join(columns) + " | score |")
    print("|---" * (len(columns) + 2) + "|")
    for meta_path in sorted(args.mutants.rglob("*.py.meta")):
        counts = module_counts(json.loads(meta_path.read_text()), equivalent)
        if counts["mutants"]:
            module = meta_path.relative_to(args.mutants).as_posix().removesuffix(".meta")
            cells = " | ".join(str(counts[c]) for c in columns)
            print(f"| {module} | {cells} | {score(counts)} |")


if __name__ == "__main__":
    main()
