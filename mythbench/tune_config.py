"""The `tune:` section of the run config: the space `mythbench tune` searches alike for every model."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class TuneConfig:
    """`mythbench tune`: one declared search space, searched alike for every model of the run (docs/tuning.md).

    A trial is a point of lr_grid x recipes trained at every tune seed for `steps` steps and scored on the
    validation split at the training difficulties; the test split is never read. `mythbench run --tuned FILE`
    sets `use` and `use_sha256`, and every model then trains with its chosen learning rate and recipe."""

    lr_grid: list[float] = field(default_factory=lambda: [1.0])  # multipliers of train.lr
    recipes: list[str] = field(default_factory=list)  # names in `recipes:`; empty = the run's own train recipe
    trials: int = 0  # 0 = every point of lr_grid x recipes; N = N distinct points drawn with search_seed
    search_seed: int = 0  # the seed that draws the `trials` points, the same draw for every model
    steps: int = 0  # training steps per trial; 0 = train.steps
    seeds: list[int] = field(default_factory=lambda: [0])  # a trial's score is the mean over these seeds
    use: str = ""  # a tune.json whose per-model choices the run trains with (`mythbench run --tuned`)
    use_sha256: str = ""  # its sha256, so a run never resumes with another file's choices

    def problems(self, recipes: dict[str, dict]) -> list[str]:
        p = []
        if not self.lr_grid or len(set(self.lr_grid)) < len(self.lr_grid) or not all(
                0 < m <= 10 for m in self.lr_grid):
            p.append(f"tune.lr_grid: need distinct learning-rate multipliers in (0, 10], got {self.lr_grid}")
        p += [f"tune.recipes: {name!r} is not a named recipe (known: {', '.join(sorted(recipes)) or 'none'})"
              for name in self.recipes if name not in recipes]
        if len(set(self.recipes)) < len(self.recipes):
            p.append(f"tune.recipes: {self.recipes} has duplicates")
        if not 0 <= self.trials <= len(self.lr_grid) * max(1, len(self.recipes)):
            p.append(f"tune.trials: {self.trials} must be in [0, {len(self.lr_grid) * max(1, len(self.recipes))}] "
                     "(0 = every point of tune.lr_grid x tune.recipes)")
        if self.steps < 0:
            p.append(f"tune.steps: {self.steps} must be >= 0 (0 = use train.steps)")
        if not self.seeds or len(set(self.seeds)) < len(self.seeds) or any(not 0 <= s < 2**31 for s in self.seeds):
            p.append(f"tune.seeds: need distinct seeds in [0, 2**31), got {self.seeds}")
        if bool(self.use) != bool(re.fullmatch(r"[0-9a-f]{64}", self.use_sha256)):
            p.append("tune.use and tune.use_sha256 go together (the file and its sha256): pass --tuned FILE")
        return p
