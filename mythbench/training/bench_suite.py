"""`mythbench bench --suite`: issue 28's speed figures in one run, as ratios measured side by side.

  code       this checkout against the code of another commit (`--against`, checked out with `git worktree
             add` into a temporary folder): a training step and the evaluation's loop sweep of the run's
             looped models, each version in its own process (bench_worker), asked for one pass in turn
  openmythos the RDT against OpenMythos at OpenMythos's switches, train and inference tokens/s (run_bench)
  peak       the share of this CPU's fp32 matmul peak an RDT step reaches at d_model 256
  ceilings   what bounds the last two: the share of a step spent in matmul kernels (torch.profiler, self
             time) bounds any speedup that keeps the step's matmuls (Amdahl: 1 / share), and the matmuls
             of the step's own shapes, timed alone, bound the share of the peak a step can reach
  cli        wall time of light commands (`ls`, `describe TASK`), each a fresh process

Every timing is at one thread. Every ratio is the median of per-repeat ratios with its range, so a slow
spell on a shared machine hits both sides alike; shares of the matmul peak divide thread CPU times, which
leave out the time other processes hold the core.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mythbench.core.errors import ConfigError
from mythbench.models import accounting, registry
from mythbench.models.rdt_config import RDTConfig
from mythbench.training import bench_worker
from mythbench.training.bench import Variant, _Runner, run_bench

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_grouped_mm")


@dataclass(frozen=True)
class SuiteSize:
    """How much the suite times; the defaults take about three minutes on an idle 2-core machine."""

    batch: int = 32
    seq: int = 64
    repeats: int = 5
    warmup: int = 1
    cli_repeats: int = 3


def ratio_summary(before: list[float], after: list[float]) -> dict[str, float]:
    """Speedup of `after` over `before` (>1: after is faster) from the same repeats' seconds."""
    ratios = [b / a for b, a in zip(before, after, strict=True)]
    return {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios),
            "before_s": statistics.median(before), "after_s": statistics.median(after)}


@contextlib.contextmanager
def checkout(commit: str, repo: Path) -> Iterator[Path]:
    """A detached worktree of `commit` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="mythbench-against-") as tmp:
        path = Path(tmp) / "checkout"
        try:
            done = subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(path), commit],
                                  capture_output=True, text=True)
        except FileNotFoundError:
            raise ConfigError(f"--against {commit}: needs git, which is not installed") from None
        if done.returncode != 0:
            raise ConfigError(f"--against {commit}: git cannot check it out ({done.stderr.strip()})")
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)],
                           capture_output=True)


class Worker:
    """One bench_worker process: the mythbench of `root`, timing the given models on request."""

    def __init__(self, root: Path, models: dict[str, RDTConfig], size: SuiteSize):
        self.root = root
        self.process = subprocess.Popen([sys.executable, "-c", Path(bench_worker.__file__).read_text()],
                                        cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=_environment())
        setup = {"models": {n: c.to_dict() for n, c in models.items()}, "batch": size.batch,
                 "seq": size.seq, "threads": 1}
        self.info = self._ask(setup)

    def _ask(self, message: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise ConfigError(f"the bench worker in {self.root} exited with status {self.process.wait()}: that "
                              "checkout's code cannot build or time the models (its error is above)")
        return json.loads(line)

    def seconds(self, model: str, kind: str) -> float:
        return self._ask([model, kind])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def compare_code(models: dict[str, RDTConfig], commit: str, size: SuiteSize) -> dict[str, Any]:
    """Train step and loop sweep of each model, this checkout against `commit`, interleaved per repeat."""
    repo = Path(__file__).resolve().parents[2]
    times: dict[tuple[str, str, str], list[float]] = {}
    with (checkout(commit, repo) as old_root, contextlib.closing(Worker(old_root, models, size)) as before,
          contextlib.closing(Worker(repo, models, size)) as after):
        for rep in range(size.warmup + size.repeats):
            for name in models:
                for kind in ("train", "sweep"):
                    for side, worker in (("before", before), ("after", after)):
                        t = worker.seconds(name, kind)
                        if rep >= size.warmup:
                            times.setdefault((name, kind, side), []).append(t)
    commit_id = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", commit], capture_output=True,
                               text=True).stdout.strip()
    rows = [{"model": name, "kind": kind, "params": after.info["params"][name],
             **ratio_summary(times[name, kind, "before"], times[name, kind, "after"])}
            for name in models for kind in ("train", "sweep")]
    return {"against": commit_id, "rows": rows,
            "imported_from": {"before": before.info["folders"], "after": after.info["folders"]}}


def compare_openmythos(cfg: RDTConfig, size: SuiteSize) -> dict[str, Any]:
    """run_bench of rdt and openmythos at one thread; ratios are the RDT's speedup over OpenMythos."""
    result = run_bench(cfg, [Variant("openmythos"), Variant("rdt")], size.batch, size.seq, threads=1,
                       repeats=size.repeats, warmup=size.warmup, sweep=False)
    rdt = next(r for r in result["rows"] if r["family"] == "rdt")
    return {kind: {"ratio": rdt[kind]["ratio_to_first"], "range": rdt[kind]["ratio_range"],
                   "tok_s": {r["family"]: r[kind]["tok_s"] for r in result["rows"]}} for kind in ("train", "infer")}


def _runner(family: str, cfg: RDTConfig, size: SuiteSize) -> _Runner:
    torch.manual_seed(0)
    model = registry.instantiate(family, registry.get_family(family).config_from_dict(cfg.to_dict()))
    tokens = torch.randint(0, cfg.vocab_size, (size.batch, size.seq), generator=torch.Generator().manual_seed(0))
    return _Runner(Variant(family), model, tokens, cfg.train_loops)


def cpu_seconds(fn: Any, *args: Any) -> float:
    """The calling thread's CPU time for fn(*args): at one intra-op thread every kernel runs on it, and time
    spent waiting for a core another process holds is not counted, so FLOP/s hold on a busy machine."""
    start = time.thread_time()
    fn(*args)
    return time.thread_time() - start


def cpu_matmul_peak(size: int = 1024, repeats: int = 5) -> float:
    """fp32 FLOP/s of the fastest of `repeats` square matmuls, in thread CPU time."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2.0 * size**3 / min(cpu_seconds(torch.matmul, a, b) for _ in range(repeats + 1))


def peak_share(cfg: RDTConfig, size: SuiteSize) -> dict[str, Any]:
    """The fraction of this CPU's fp32 matmul peak an RDT train step and inference pass reach, all in thread
    CPU time; each repeat measures the peak beside its own step and pass."""
    runner = _runner("rdt", cfg, size)
    count = accounting.count_config("rdt", cfg, loops=cfg.train_loops, context=size.seq)
    flops = {"train": count.flops_train * size.batch * size.seq, "infer": count.flops_forward * size.batch * size.seq}
    fractions: dict[str, list[float]] = {"train": [], "infer": []}
    peaks = []
    for rep in range(size.warmup + size.repeats):
        seconds = {kind: cpu_seconds(getattr(runner, kind)) for kind in fractions}
        peak = cpu_matmul_peak()
        if rep >= size.warmup:
            peaks.append(peak)
            for kind, fraction in fractions.items():
                fraction.append(flops[kind] / seconds[kind] / peak)
    return {"d_model": cfg.d_model, "peak_flop_s": statistics.median(peaks),
            **{kind: {"median": statistics.median(f), "low": min(f), "high": max(f)} for kind, f in fractions.items()}}


def matmul_profile(family: str, cfg: RDTConfig, size: SuiteSize, kind: str = "train") -> tuple[float, Counter]:
    """One profiled pass (`kind`: train or infer, after one unprofiled): the matmul kernels' share of its self
    CPU time, and how often each (op, input shapes) ran. Profiling overhead lands on the many small ops and
    attention's own matmuls count as attention, so the share errs low and 1 / share errs high."""
    runner = _runner(family, cfg, size)
    run = getattr(runner, kind)
    run()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        run()
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    shapes = Counter({(e.key, json.dumps(e.input_shapes)): e.count for e in events if e.key in MATMUL_OPS})
    return matmul / total, shapes


def bare_matmul_share(shapes: Counter, peak: float, repeats: int = 3) -> float:
    """The fraction of `peak` that the step's 2-d and batched matmuls (aten::mm, addmm, bmm) reach timed
    alone (thread CPU time), each shape as often as the step ran it: the ceiling of the share a step of these
    shapes reaches."""
    flops = seconds = 0.0
    for (op, shape_json), count in shapes.items():
        dims = [s for s in json.loads(shape_json) if len(s) >= 2]
        if op not in ("aten::mm", "aten::addmm", "aten::bmm") or len(dims) != 2:
            continue
        a, b = (torch.randn(*s) for s in dims)
        best = min(cpu_seconds(torch.matmul, a, b) for _ in range(repeats))
        flops += count * 2.0 * a.numel() * b.shape[-1]
        seconds += count * best
    return flops / seconds / peak if seconds else float("nan")


def ceilings(openmythos_cfg: RDTConfig, wide_cfg: RDTConfig, size: SuiteSize) -> dict[str, Any]:
    """Matmul shares of both families' passes at OpenMythos's switches; at d_model 256 the RDT step's matmul
    share and the share of the peak its matmul shapes reach alone."""
    shares = {kind: {family: matmul_profile(family, openmythos_cfg, size, kind)[0]
                     for family in ("openmythos", "rdt")} for kind in ("train", "infer")}
    wide_share, wide_shapes = matmul_profile("rdt", wide_cfg, size)
    peak = cpu_matmul_peak()
    return {"matmul_share": shares, "wide_matmul_share": wide_share, "peak_flop_s": peak,
            "wide_bare_matmul_peak_fraction": bare_matmul_share(wide_shapes, peak)}


def cli_seconds(commands: list[list[str]], repeats: int) -> dict[str, float]:
    """Median wall time of each `mythbench ...` command in a fresh process."""
    out = {}
    for args in commands:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mythbench.cli", *args], capture_output=True, check=True,
                           env=_environment())
            times.append(time.perf_counter() - start)
        out[" ".join(args)] = statistics.median(times)
    return out


def run_suite(models: dict[str, RDTConfig], openmythos_cfg: RDTConfig, wide_cfg: RDTConfig, task: str,
              against: str, size: SuiteSize) -> dict[str, Any]:
    """Every section in turn; plain data (what `--json` writes)."""
    too_long = [n for n, c in [*models.items(), ("openmythos", openmythos_cfg)] if size.seq > c.max_seq_len]
    if too_long:
        raise ConfigError(f"--seq {size.seq} > max_seq_len of {', '.join(too_long)} (set model.max_seq_len)")
    start = time.perf_counter()
    torch.set_num_threads(1)
    result = {"size": size.__dict__, "torch": torch.__version__, "load_average": os.getloadavg(),
              "code": compare_code(models, against, size), "openmythos": compare_openmythos(openmythos_cfg, size),
              "peak": peak_share(wide_cfg, size), "ceilings": ceilings(openmythos_cfg, wide_cfg, size),
              "cli_s": cli_seconds([["ls"], ["describe", task]], size.cli_repeats)}
    result["seconds"] = time.perf_counter() - start
    return result


def format_suite(result: dict[str, Any]) -> str:
    size, code, om, peak, ceil = (result[k] for k in ("size", "code", "openmythos", "peak", "ceilings"))
    load = ", ".join(f"{x:.1f}" for x in result["load_average"])
    lines = [f"batch {size['batch']}x{size['seq']}, one thread, median of {size['repeats']} interleaved repeats "
             f"[range]; load average at start {load}; {result['seconds']:.0f} s",
             "", f"this code against {code['against']} (speedup)",
             f"  {'model':<10} {'params':>8} {'pass':<6} {'before s':>9} {'after s':>9} {'speedup':>20}"]
    for row in code["rows"]:
        spread = f"{row['median']:.2f}x [{row['low']:.2f}-{row['high']:.2f}]"
        lines.append(f"  {row['model']:<10} {row['params']:>8,} {row['kind']:<6} {row['before_s']:>9.3f} "
                     f"{row['after_s']:>9.3f} {spread:>20}")
    lines += ["", "rdt against openmythos at OpenMythos's switches (target >= 3x)"]
    for kind in ("train", "infer"):
        k = om[kind]
        lines.append(f"  {kind:<6} {k['ratio']:.2f}x [{k['range'][0]:.2f}-{k['range'][1]:.2f}]  tok/s rdt "
                     f"{k['tok_s']['rdt']:,.0f}, openmythos {k['tok_s']['openmythos']:,.0f}")
    lines += ["", f"share of the fp32 matmul peak (a 1024^2 matmul, median {peak['peak_flop_s'] / 1e9:.0f} GFLOP/s) "
                  f"at d_model {peak['d_model']}, thread CPU time, target >= 50%",
              *(f"  {kind:<6} {peak[kind]['median']:.0%} [{peak[kind]['low']:.0%}-{peak[kind]['high']:.0%}]"
                for kind in ("train", "infer")),
              "", "ceilings: matmul kernels' share of a pass (profiled) and the speedup over openmythos it allows "
                  "with matmuls at their speed",
              f"  {'pass':<6} {'openmythos':>10} {'rdt':>5} {'any code with its matmuls':>26} "
              f"{'rdt with its own':>17}"]
    for kind in ("train", "infer"):
        share = ceil["matmul_share"][kind]
        lines.append(f"  {kind:<6} {share['openmythos']:>10.0%} {share['rdt']:>5.0%} "
                     f"{1 / share['openmythos']:>25.1f}x {om[kind]['ratio'] / share['rdt']:>16.1f}x")
    lines += [f"  d_model {peak['d_model']}: matmuls {ceil['wide_matmul_share']:.0%} of the train step; its "
              f"mm/addmm/bmm shapes alone reach {ceil['wide_bare_matmul_peak_fraction']:.0%} of the peak",
              "", "light commands (fresh process, median wall s; target <= 1 s)"]
    lines += [f"  mythbench {cmd:<18} {s:.2f}" for cmd, s in result["cli_s"].items()]
    return "\n".join(lines)
