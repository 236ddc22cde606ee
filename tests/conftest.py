"""Tests compare results across processes (serial runs, sweep workers, Ray workers, DDP ranks), and torch's
float results depend on the intra-op thread count: every process the tests start runs on one thread, as
under .ci/run, unless the caller chose otherwise."""
import json
import os
from pathlib import Path

from hypothesis import Phase, settings

os.environ.setdefault("OMP_NUM_THREADS", "1")

# For mutation runs (mutation/README.md): a mutant's tests stop at the first failure, so hypothesis need not
# shrink the failing example, and no deadline, so that a test slowed by a loaded machine is not a kill.
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate], deadline=None)
settings.load_profile(os.environ.get("MYTHBENCH_HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config, items) -> None:
    """A mutant's tests run fastest first (durations from mutmut's stats run, in its working directory): they
    stop at the first failure, so a mutant a fast test kills costs that test alone."""
    stats = Path("mutmut-stats.json")
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "") and stats.is_file():
        duration = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: duration.get(item.nodeid, 0.0))
