"""The standard transformer (see `standard.py` for its layer plan): every block runs exactly once."""

from __future__ import annotations

from torch import Tensor, nn

from mythbench.models.ffn import update_balance_bias as _update_balance_bias
from mythbench.models.layers import Embedder, LMHead, MoE, TransformerBlock
from mythbench.models.model import RDTConfig, RDTOutput


class StandardTransformer(nn.Module):
    """Parameter prefixes as in the RDT (embed., prelude., recurrent., coda., head.), so accounting and
    checkpoints read the same; here every block runs exactly once."""

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = Embedder(cfg)
        self.prelude = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.prelude_layers))
        self.recurrent = nn.ModuleList(TransformerBlock(cfg, moe=cfg.ffn == "moe")
                                       for _ in range(cfg.recurrent_layers))
        self.coda = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.coda_layers))
        self.head = LMHead(cfg)
        if cfg.tie_embeddings:
            self.head.proj.weight = self.embed.tok.weight

    def forward(self, tokens: Tensor, loops: int | None = None, all_loops: bool = False) -> Tensor:
        return self.forward_detailed(tokens).logits

    def forward_detailed(self, tokens: Tensor, loops: int | None = None, all_loops: bool = False,
                         grad_loops: int | None = None) -> RDTOutput:
        """Same output record as the RDT, so one training loop serves both; loop arguments are ignored."""
        x = self.embed(tokens)
        auxes = []
        for block in [*self.prelude, *self.recurrent, *self.coda]:
            x = block(x)
            if isinstance(block.ffn, MoE) and block.ffn.aux_loss is not None:
                auxes.append(block.ffn.aux_loss)
        logits = self.head(x)
        zero = logits.new_zeros(())
        return RDTOutput(logits=logits, aux_loss=sum(auxes, zero) / max(1, len(auxes)), ponder_cost=zero,
                         halt_steps=None, state_change=zero[None], expert_load=None)

    def update_balance_bias(self) -> None:
        """DeepSeek-V3 aux-loss-free bias step for every MoE layer; call after optimizer.step()."""
        _update_balance_bias(self)
