"""The RDT's configuration: every switch of the model, validated once, below the layers and the model that
read it (and the baselines, which read it as a layer plan)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mythbench.core.errors import ConfigError, known_hint

_CHOICES = {
    "attention": ("mha", "gqa", "mla"),
    "positional": ("rope", "learned", "none"),
    "ffn": ("dense", "moe"),
    "router": ("softmax", "sigmoid"),
    "balancing": ("bias", "aux", "both", "none"),
    "injection": ("lti", "additive", "concat", "none"),
    "init_state": ("zeros", "embedding", "random"),
}
_MIN = {  # inclusive lower bounds
    "vocab_size": 2, "max_seq_len": 1, "d_model": 1, "n_heads": 1, "n_kv_heads": 1, "prelude_layers": 0,
    "recurrent_layers": 1, "coda_layers": 0, "kv_latent_dim": 1, "q_latent_dim": 0, "rope_head_dim": 0,
    "ffn_hidden": 1, "n_experts": 1, "n_shared_experts": 0, "expert_hidden": 1, "top_k": 1,
    "router_max_loops": 1, "lora_rank": 0, "conv_kernel": 0, "lora_max_loops": 1, "train_loops": 1,
    "bias_update_rate": 0.0, "aux_loss_weight": 0.0, "ponder_weight": 0.0,
}  # fmt: skip
UPPER_BOUNDS = {  # inclusive upper bounds: far above any model this benchmark trains, so a typo or a hostile card is
    # refused here rather than hanging or exhausting memory while the model is built
    "vocab_size": 2**20, "max_seq_len": 2**20, "d_model": 2**16, "n_heads": 2**10, "n_kv_heads": 2**10,
    "prelude_layers": 256, "recurrent_layers": 256, "coda_layers": 256, "kv_latent_dim": 2**16,
    "q_latent_dim": 2**16, "rope_head_dim": 2**12, "ffn_hidden": 2**18, "n_experts": 2**10,
    "n_shared_experts": 64, "expert_hidden": 2**16, "top_k": 2**10, "router_max_loops": 2**12, "lora_rank": 2**12,
    "conv_kernel": 2**10, "lora_max_loops": 2**12, "train_loops": 2**10,
}  # fmt: skip
_POSITIVE = ("rope_theta", "norm_eps", "init_std")
# The LTI injection (models.model.Injection), Ā = A_MAX·exp(-Δ·exp(A_log)): its bound, and exp(A_log) at
# init (where Δ = 1), here so the spectral radius at init is known without building a model
A_MAX = 1.0 - 1e-4  # bound on every Ā entry; well below 1 at fp32 resolution (6e-8 under 1)
LTI_INIT_DECAY = 0.5


@dataclass(frozen=True)
class RDTConfig:
    """Every switch of the RDT. Validated once, in __post_init__, which reports every problem together.
    The FFN choice applies to the recurrent block; prelude and coda are always dense SwiGLU."""

    vocab_size: int = 32  # tokens in the vocabulary; set from the task
    max_seq_len: int = 256  # only bounds learned positions
    d_model: int = 64  # width of the residual stream
    n_heads: int = 4  # attention heads
    n_kv_heads: int = 2  # attention='gqa' only
    prelude_layers: int = 1  # layers run once before the loop
    recurrent_layers: int = 2  # layers of the looped block
    coda_layers: int = 1  # layers run once after the loop
    attention: str = "mha"  # mha | gqa | mla
    kv_latent_dim: int = 32  # mla: width of the compressed K/V latent c_kv
    q_latent_dim: int = 0  # mla: query latent width, 0 = no query compression
    rope_head_dim: int = 8  # mla: decoupled rope key/query width, the key shared by all heads
    positional: str = "rope"  # rope | learned | none
    rope_theta: float = 10000.0  # rope base
    # width of a short convolution over positions in every block (0 = off): locality that is the same at
    # every position and every length, as DT-nets' convolutions (causal tasks: the k - 1 previous positions)
    conv_kernel: int = 0
    causal: bool = True  # causal attention; set from the task
    ffn: str = "dense"  # the recurrent block's FFN: dense | moe
    ffn_hidden: int = 176  # dense SwiGLU hidden width (~8/3 d_model)
    n_experts: int = 8  # moe: routed experts
    n_shared_experts: int = 1  # moe: experts every token passes through
    expert_hidden: int = 32  # moe: hidden width of each expert
    top_k: int = 2  # moe: routed experts per token
    router: str = "softmax"  # moe: the router's gate, softmax | sigmoid
    balancing: str = "bias"  # moe: bias (DeepSeek-V3 aux-loss-free) | aux (auxiliary loss) | both | none
    bias_update_rate: float = 1e-2  # per optimizer step; DeepSeek-V3 uses 1e-3 over far longer runs
    aux_loss_weight: float = 1e-2  # balancing aux or both: weight of the load-balancing loss
    router_max_loops: int = 16  # per-loop router embeddings/biases; later loops use the last
    injection: str = "lti"  # how the prelude output enters every loop: lti | additive | concat | none
    act: bool = False  # adaptive computation time: each position halts on its own
    act_threshold: float = 0.99  # act: a position halts once its summed halting probability reaches this
    ponder_weight: float = 1e-2  # used by the trainer; the model reports the unweighted ponder cost
    lora_rank: int = 0  # rank of the depth-wise LoRA adapters of the looped block (0 = off)
    lora_max_loops: int = 16  # adapters for loops 0..lora_max_loops-1; later loops reuse the last one
    init_state: str = "zeros"  # the loop's initial state: zeros | embedding | random
    train_loops: int = 4  # loops per training step (parcae, huginn: their mean; tied: unused); sets the loop sweep
    tie_embeddings: bool = True  # the output head reuses the input embedding
    norm_eps: float = 1e-6  # RMSNorm epsilon
    init_std: float = 0.02  # std of the normal weight init

    def __post_init__(self) -> None:
        problems, bad = [], set()
        for f in dataclasses.fields(self):
            value, want = getattr(self, f.name), type(f.default)
            if want is float and type(value) is int:
                object.__setattr__(self, f.name, value := float(value))
            if type(value) is not want:
                problems.append(f"{f.name}: expected {want.__name__}, got {type(value).__name__} {value!r}")
                bad.add(f.name)
            elif want is float and not math.isfinite(value):
                problems.append(f"{f.name}: must be finite, got {value!r}")
                bad.add(f.name)
        for name, choices in _CHOICES.items():
            if name not in bad and getattr(self, name) not in choices:
                problems.append(f"{name}: {getattr(self, name)!r} is not one of {', '.join(choices)}")
                bad.add(name)
        for name, low in _MIN.items():
            if name not in bad and getattr(self, name) < low:
                problems.append(f"{name}: must be >= {low}, got {getattr(self, name)!r}")
                bad.add(name)
        for name, high in UPPER_BOUNDS.items():
            if name not in bad and getattr(self, name) > high:
                problems.append(f"{name}: must be <= {high}, got {getattr(self, name)!r}")
                bad.add(name)
        for name in _POSITIVE:
            if name not in bad and getattr(self, name) <= 0:
                problems.append(f"{name}: must be > 0, got {getattr(self, name)!r}")
                bad.add(name)
        if "act_threshold" not in bad and not 0 < self.act_threshold <= 1:
            problems.append(f"act_threshold: must be in (0, 1], got {self.act_threshold!r}")

        def ok(*names: str) -> bool:
            return not bad.intersection(names)

        if ok("d_model", "n_heads") and self.d_model % self.n_heads:
            problems.append(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        elif (
            ok("d_model", "n_heads")
            and self.attention != "mla"
            and self.positional == "rope"
            and self.head_dim % 2
        ):
            problems.append(f"rope needs an even head dim, got d_model/n_heads = {self.head_dim}")
        if ok("n_heads", "n_kv_heads") and self.attention == "gqa" and self.n_heads % self.n_kv_heads:
            problems.append(
                f"gqa: n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads})"
            )
        mla_rope = self.attention == "mla" and self.positional == "rope"
        if ok("rope_head_dim") and mla_rope and (self.rope_head_dim == 0 or self.rope_head_dim % 2):
            problems.append(f"mla with rope needs an even rope_head_dim > 0, got {self.rope_head_dim}")
        if ok("top_k", "n_experts") and self.top_k > self.n_experts:
            problems.append(f"top_k ({self.top_k}) must be <= n_experts ({self.n_experts})")
        if self.injection == "none" and self.init_state != "embedding":
            problems.append("injection='none' never sees the prelude output unless init_state='embedding'")
        if problems:
            raise ConfigError(problems)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_layers(self) -> int:
        """Distinct layers (the GPT-2 residual init scale counts these, not loops)."""
        return self.prelude_layers + self.recurrent_layers + self.coda_layers

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RDTConfig:
        """Build from plain data (YAML); unknown keys are reported together with every other problem."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"model config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        problems = [f"unknown key {k!r}{known_hint(str(k), sorted(known))}" for k in d if k not in known]
        try:
            cfg = cls(**{k: v for k, v in d.items() if k in known})
        except ConfigError as err:
            problems += err.problems
        if problems:
            raise ConfigError(problems)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
