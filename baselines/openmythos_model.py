"""OpenMythos' `OpenMythos` model with the interface the harness trains and evaluates.

Imported only when an OpenMythos model is built: it needs the optional `open-mythos` package, installed
with `pip install --no-deps open-mythos` (the package pins an older torch; --no-deps keeps yours).

`forward` is the package's own forward pass. `forward_detailed` (what training and the loop sweep call)
runs the same modules in the same order as `open_mythos.main.RecurrentBlock.forward`, and additionally
keeps the readout after every loop and supports truncated backprop; a test checks the two agree.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from mythbench.models.model import RDTConfig, RDTOutput, _relative_change


def _open_mythos_main() -> ModuleType:
    """open_mythos/main.py loaded on its own: the package's __init__ also imports its tokenizer, which needs
    transformers (left out by --no-deps); the model needs only torch."""
    spec = importlib.util.find_spec("open_mythos")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("No module named 'open_mythos'")
    path = Path(next(iter(spec.submodule_search_locations))) / "main.py"
    main_spec = importlib.util.spec_from_file_location("open_mythos_main", path)
    if main_spec is None or main_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(main_spec)
    main_spec.loader.exec_module(module)
    return module


_om = _open_mythos_main()
MythosConfig, OpenMythos, loop_index_embedding = _om.MythosConfig, _om.OpenMythos, _om.loop_index_embedding

def mythos_config(cfg: RDTConfig) -> MythosConfig:
    """The OpenMythos config at an RDT config's sizes (checked by `openmythos.problems` before a model is
    built). act=False means OpenMythos' ACT never exits early (threshold inf: every loop runs; its readout
    stays its p-weighted sum of states)."""
    return MythosConfig(
        vocab_size=cfg.vocab_size, dim=cfg.d_model, n_heads=cfg.n_heads, n_kv_heads=cfg.n_kv_heads,
        max_seq_len=cfg.max_seq_len, max_loop_iters=cfg.lora_max_loops, prelude_layers=cfg.prelude_layers,
        coda_layers=cfg.coda_layers, attn_type=cfg.attention, kv_lora_rank=cfg.kv_latent_dim,
        q_lora_rank=cfg.q_latent_dim, qk_rope_head_dim=cfg.rope_head_dim, qk_nope_head_dim=cfg.head_dim,
        v_head_dim=cfg.head_dim, n_experts=cfg.n_experts, n_shared_experts=cfg.n_shared_experts,
        n_experts_per_tok=cfg.top_k, expert_dim=cfg.expert_hidden,
        act_threshold=cfg.act_threshold if cfg.act else float("inf"), rope_theta=cfg.rope_theta,
        lora_rank=max(cfg.lora_rank, 1), dropout=0.0)


class OpenMythosRDT(OpenMythos):
    """`cfg` stays OpenMythos' own config (its forward reads it); the RDT config is `rdt_cfg`."""

    def __init__(self, cfg: RDTConfig):
        super().__init__(mythos_config(cfg))
        self.rdt_cfg = cfg

    def forward(self, tokens: Tensor, loops: int | None = None, all_loops: bool = False) -> Tensor:
        if all_loops:
            return self.forward_detailed(tokens, loops, all_loops=True).logits
        return super().forward(tokens, n_loops=loops or self.rdt_cfg.train_loops)

    def forward_detailed(self, tokens: Tensor, loops: int | None = None, all_loops: bool = False,
                         grad_loops: int | None = None) -> RDTOutput:
        T = loops or self.rdt_cfg.train_loops
        no_grad_loops = 0 if grad_loops is None else max(T - grad_loops, 0)
        S = tokens.shape[1]
        freqs = (self.freqs_cis_mla if self.cfg.attn_type == "mla" else self.freqs_cis)[:S]
        mask = self._causal_mask(S, tokens.device) if S > 1 and self.rdt_cfg.causal else None
        x = self.embed(tokens)
        for i, layer in enumerate(self.prelude):
            x = layer(x, freqs, mask, None, cache_key=f"prelude_{i}")
        e = h = x
        rec = self.recurrent
        halted = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
        cumulative_p = torch.zeros(tokens.shape, device=tokens.device)
        h_out = torch.zeros_like(h)
        readouts, changes = [], []
        for t in range(T):
            with torch.set_grad_enabled(torch.is_grad_enabled() and t >= no_grad_loops):
                combined = rec.norm(loop_index_embedding(h, t, rec.loop_dim) + e)
                out = rec.block(combined, freqs, mask, None, f"recurrent_loop_{t}")
                h_new = rec.injection(h, e, out + rec.lora(out, t))
                p = rec.act(h_new)
                running = (~halted).float()
                remainder = (1.0 - cumulative_p).clamp(min=0)
                weight = torch.where(cumulative_p + p >= rec.cfg.act_threshold, remainder, p)
                h_out = h_out + (weight * running).unsqueeze(-1) * h_new
                cumulative_p = cumulative_p + p * running
                halted = halted | (cumulative_p >= rec.cfg.act_threshold)
                changes.append(_relative_change(h, h_new))
                h = h_new
                if all_loops or t == T - 1:
                    readouts.append(h_out)
        x = torch.stack(readouts).flatten(0, 1)
        for i, layer in enumerate(self.coda):
            x = layer(x, freqs, mask, None, cache_key=f"coda_{i}")
        logits = self.head(self.norm(x)).unflatten(0, (len(readouts), tokens.shape[0]))
        zero = torch.zeros((), device=tokens.device)
        return RDTOutput(logits=logits if all_loops else logits[0], aux_loss=zero, ponder_cost=zero,
                         halt_steps=None, state_change=torch.stack(changes).mean(1),
                         seq_state_change=torch.stack(changes), expert_load=None)

    def spectral_radius(self) -> float:
        return float(self.recurrent.injection.get_A().detach().max())
