"""The mythbench task suite: per family a vectorised generator, a reference solver and YAML specs.

    from mythbench.tasks import get_task
    task = get_task("parity")
    batch = task.generate("train", 8, n=32, seed=0)   # Batch(tokens, targets, mask), int64/bool [n, L]
"""

from mythbench.tasks.base import PAD, Batch, Family, Solution
from mythbench.tasks.display import describe_tasks, format_instances, sample_instances
from mythbench.tasks.registry import FAMILIES, get_task, list_tasks, load_task_file
from mythbench.tasks.task import TEST_SEED, Task, TaskSpec

# importing a family's module registers it (tasks/registry.py)
from mythbench.tasks import parity, state, khop, chain, graph, zipf  # noqa: E402, F401, I001  isort: skip

__all__ = [
    "FAMILIES",
    "PAD",
    "TEST_SEED",
    "Batch",
    "Family",
    "Solution",
    "Task",
    "TaskSpec",
    "describe_tasks",
    "format_instances",
    "get_task",
    "list_tasks",
    "load_task_file",
    "sample_instances",
]
