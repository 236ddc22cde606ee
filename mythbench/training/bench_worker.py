"""The timing process of `mythbench bench --suite`: times models with the mythbench of one checkout.

The suite runs this file's source with `python -c` in a checkout of any commit of this repository (the
working directory), so each version of the code runs in its own process and the suite can ask the two
versions for one pass each in turn (interleaved repeats). It uses only what every version since the
bench's first has: `registry.build_model` and the bench's `_Runner` (train step, inference pass, loop
sweep), so the step's definition is the same and only the model and evaluation code differ.

Protocol, one JSON value a line. stdin: first {"models": {name: rdt config dict}, "batch", "seq",
"threads"}; then [name, pass] per timing ("train", "infer" or "sweep"). stdout: first {"folders": where
mythbench, mythbench.tasks and mythbench.baselines were imported from, "params": {name: count}}, then
each pass's seconds.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import torch


def use_checkout(root: Path) -> None:
    """Import mythbench from `root`: its tasks/ and baselines/ folders become mythbench.tasks and
    mythbench.baselines, as the install maps them (the calling checkout's editable install would map them
    to its own folders, so that finder is dropped)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
    sys.path.insert(0, str(root))
    package = importlib.import_module("mythbench")
    for name, folder in (("mythbench.tasks", "tasks"), ("mythbench.baselines", "baselines")):
        spec = importlib.util.spec_from_file_location(name, root / folder / "__init__.py",
                                                      submodule_search_locations=[str(root / folder)])
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        setattr(package, name.rpartition(".")[2], module)


def serve() -> None:
    use_checkout(Path.cwd())  # before any project import: these are the checkout's modules
    from mythbench.models import registry
    from mythbench.training.bench import Variant, _Runner

    setup = json.loads(sys.stdin.readline())
    torch.set_num_threads(setup["threads"])
    runners = {}
    for name, config in setup["models"].items():
        torch.manual_seed(0)
        model, cfg = registry.build_model("rdt", config)
        tokens = torch.randint(0, cfg.vocab_size, (setup["batch"], setup["seq"]),
                               generator=torch.Generator().manual_seed(0))
        runners[name] = _Runner(Variant("rdt"), model, tokens, cfg.train_loops)
    params = {name: sum(p.numel() for p in r.model.parameters()) for name, r in runners.items()}
    folders = {name: str(Path(sys.modules[name].__file__).parent)
               for name in ("mythbench", "mythbench.tasks", "mythbench.baselines")}
    print(json.dumps({"folders": folders, "params": params}), flush=True)
    for line in sys.stdin:
        name, kind = json.loads(line)
        run = getattr(runners[name], kind)
        start = time.perf_counter()
        run()
        print(json.dumps(time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    serve()
