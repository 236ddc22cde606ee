"""Building blocks: norms, rope, the three attentions (causality, GQA sharing, MLA latent cache), LoRA."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench import RDTConfig, RecurrentDepthTransformer
from mythbench.models.layers import (
    Attention,
    LoRA,
    MLAttention,
    RMSNorm,
    Rotary,
    ShortConv,
    TransformerBlock,
    sdpa_narrow_values,
)


def cfg(**kw) -> RDTConfig:
    base = dict(vocab_size=13, d_model=32, n_heads=4, n_kv_heads=2, kv_latent_dim=12, rope_head_dim=4,
                ffn_hidden=48, expert_hidden=8, n_experts=4)  # fmt: skip
    return RDTConfig(**{**base, **kw})


def test_rmsnorm_unit_rms_and_output_dtype_follows_weight():
    norm = RMSNorm(8, 1e-6)
    y = norm(torch.randn(3, 8) * 100)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3), atol=1e-4, rtol=1e-4)
    assert norm.to(torch.bfloat16)(torch.randn(2, 8)).dtype == torch.bfloat16  # fp32 state in, bf16 out


def test_rope_preserves_norm_and_scores_depend_on_relative_position_only():
    rope = Rotary(8, 10000.0)
    q, k = torch.randn(1, 8), torch.randn(1, 8)
    torch.testing.assert_close(rope(q, offset=5).norm(), q.norm())
    scores = [(rope(q, offset=m) * rope(k, offset=m - 3)).sum() for m in (3, 7, 40)]
    torch.testing.assert_close(scores[0], scores[1])
    torch.testing.assert_close(scores[0], scores[2])
    assert not torch.allclose((rope(q, offset=9) * rope(k, offset=3)).sum(), scores[0])


@pytest.mark.parametrize("attention", ["mha", "gqa", "mla"])
@pytest.mark.parametrize("positional", ["rope", "learned", "none"])
def test_causal_model_ignores_the_future_and_bidirectional_does_not(attention, positional):
    torch.manual_seed(0)
    x = torch.randint(0, 13, (2, 10))
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % 13
    causal = RecurrentDepthTransformer(cfg(attention=attention, positional=positional)).eval()
    torch.testing.assert_close(causal(x)[:, :6], causal(y)[:, :6])
    both = RecurrentDepthTransformer(cfg(attention=attention, positional=positional, causal=False)).eval()
    assert not torch.allclose(both(x)[:, :6], both(y)[:, :6])


def test_gqa_equals_mha_with_kv_heads_repeated_per_group():
    torch.manual_seed(0)
    gqa, mha = Attention(cfg(attention="gqa")), Attention(cfg(attention="mha"))
    assert gqa.k.weight.shape == (2 * 8, 32)  # 2 K/V heads of width 8 serve 4 query heads
    with torch.no_grad():
        mha.q.weight.copy_(gqa.q.weight)
        mha.o.weight.copy_(gqa.o.weight)
        for name in ("k", "v"):
            w = getattr(gqa, name).weight.view(2, 8, 32).repeat_interleave(2, dim=0).reshape(32, 32)
            getattr(mha, name).weight.copy_(w)
    x = torch.randn(3, 7, 32)
    torch.testing.assert_close(gqa(x), mha(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("attention", ["mha", "gqa"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("positional", ["rope", "none"])
def test_attention_equals_softmax_attention_written_out(attention, causal, positional):
    """Per head: softmax(q k^T / sqrt(head_dim)) v over the positions a query may see (with gqa, query head h
    reads K/V head h // 2), heads concatenated and projected by o; rope rotates q and k only."""
    torch.manual_seed(0)
    layer = Attention(cfg(attention=attention, causal=causal, positional=positional))
    x = torch.randn(2, 5, 32)
    heads = []
    with torch.no_grad():
        q, k, v = (m(x).view(2, 5, -1, 8).transpose(1, 2) for m in (layer.q, layer.k, layer.v))
        if positional == "rope":
            q, k = layer.rope(q), layer.rope(k)
        for h in range(4):
            kv = h // 2 if attention == "gqa" else h
            scores = q[:, h] @ k[:, kv].transpose(-1, -2) / 8**0.5
            if causal:
                scores = scores.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
            heads.append(scores.softmax(-1) @ v[:, kv])
        expected = layer.o(torch.cat(heads, dim=-1))
        torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("layer", [Attention, MLAttention])
def test_without_positions_bidirectional_attention_commutes_with_reordering_the_sequence(layer):
    """positional='none': nothing in the layer knows where a token is (no rotation anywhere, MLA's decoupled
    key included), so permuting the positions permutes the output."""
    torch.manual_seed(0)
    attention = layer(cfg(attention="mla" if layer is MLAttention else "mha", positional="none", causal=False))
    x, order = torch.randn(2, 6, 32), torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        torch.testing.assert_close(attention(x[:, order]), attention(x)[:, order], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("q_latent_dim", [0, 6])
@pytest.mark.parametrize("positional", ["rope", "none"])
def test_mla_decodes_from_a_latent_cache_equal_to_the_full_forward(q_latent_dim, positional):
    torch.manual_seed(0)
    mla = MLAttention(cfg(attention="mla", q_latent_dim=q_latent_dim, positional=positional)).eval()
    x = torch.randn(2, 9, 32)
    full = mla(x)
    cache_c, cache_k, steps = [], [], []
    for i in range(9):
        c_kv, k_rope = mla.latent_kv(x[:, i : i + 1], offset=i)
        assert c_kv.shape == (2, 1, 12) and k_rope.shape == (2, 1, 4)  # per position: latent + ONE rope key
        cache_c.append(c_kv)
        cache_k.append(k_rope)
        steps.append(mla.attend(x[:, i : i + 1], torch.cat(cache_c, 1), torch.cat(cache_k, 1), offset=i))
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    prefix = mla.attend(x[:, 5:], torch.cat(cache_c, 1), torch.cat(cache_k, 1), offset=5)  # chunked prefill
    torch.testing.assert_close(prefix, full[:, 5:], atol=1e-5, rtol=1e-5)


def _differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """More than 1% of b's scale apart somewhere (outputs at init are ~1e-3, so an absolute bound is no test)."""
    return bool((a - b).abs().max() > 0.01 * b.abs().max())


def test_mla_with_rope_scores_relative_positions_only():
    """Bidirectional: every position shifted by the same offset (queries and the cached rope keys alike) gives
    the same output; rotating only the queries would not."""
    torch.manual_seed(0)
    mla = MLAttention(cfg(attention="mla", positional="rope", causal=False)).eval()
    with torch.no_grad():  # scores of order 1, so that where a key sits matters (at init attention is ~uniform)
        mla.q.weight.normal_(0, 0.5)
        mla.kv_down.weight.normal_(0, 0.5)
    x = torch.randn(2, 10, 32)
    shifted = mla.attend(x, *mla.latent_kv(x, offset=3), offset=3)  # bidirectional: the offset masks no key
    torch.testing.assert_close(shifted, mla(x), atol=1e-5, rtol=1e-5)
    c_kv, k_rope = mla.latent_kv(x)
    assert _differs(mla.attend(x, c_kv, k_rope, offset=3), mla(x))


def test_mla_adapts_its_query_kv_and_output_projections_per_loop():
    torch.manual_seed(0)
    mla = MLAttention(cfg(attention="mla")).eval()
    x = torch.randn(2, 5, 32)
    plain = mla(x)
    for name in ("q", "kv_down", "o"):  # each adapter alone, at loop 1 only
        lora = LoRA(mla.lora_shapes(), rank=2, n_loops=3)
        with torch.no_grad():
            lora.B[name][1].normal_()
        torch.testing.assert_close(mla(x, 0, lora), plain)  # loop 0's adapter is still zero
        assert _differs(mla(x, 1, lora), plain), name
    lora = LoRA(mla.lora_shapes(), rank=2, n_loops=3)
    with torch.no_grad():
        for b in lora.B.values():
            b.normal_()
    latent = mla.latent_kv(x, 0, lora)  # a call without a loop count is loop 0's, at every entry point
    torch.testing.assert_close(mla(x, lora=lora), mla(x, 0, lora))
    torch.testing.assert_close(mla.latent_kv(x, lora=lora), latent)
    torch.testing.assert_close(mla.attend(x, *latent, lora=lora), mla.attend(x, *latent, 0, lora))
    assert _differs(mla(x, 1, lora), mla(x, 0, lora))


def test_mla_rope_key_is_shared_across_heads():
    mla = MLAttention(cfg(attention="mla"))
    assert mla.kv_down.out_features == 12 + 4  # latent + a single rope_head_dim key, not n_heads of them
    assert mla.q.out_features == 4 * (8 + 4)  # every head has its own nope + rope query


def test_lora_clamps_loops_beyond_the_last_adapter():
    lora = LoRA({"q": (6, 5)}, rank=2, n_loops=3)
    with torch.no_grad():
        lora.B["q"].normal_()
    x = torch.randn(4, 6)
    assert not torch.allclose(lora("q", x, 0), lora("q", x, 2))
    torch.testing.assert_close(lora("q", x, 2), lora("q", x, 50))


def test_block_is_reusable_outside_the_loop():
    """A standard transformer is a stack of the same blocks with loop=0 and no LoRA."""
    block = TransformerBlock(cfg(ffn="moe"), moe=True)
    x = torch.randn(2, 5, 32)
    assert block(x).shape == x.shape
    assert block.ffn.load is not None and torch.isclose(block.ffn.load.sum(), torch.tensor(1.0))


@settings(max_examples=25, deadline=None)
@given(heads=st.integers(1, 4), length=st.integers(1, 12), v_dim=st.integers(1, 8), extra=st.integers(0, 6),
       causal=st.booleans(), seed=st.integers(0, 2**16))
def test_padded_narrow_values_equal_explicit_softmax_attention(heads, length, v_dim, extra, causal, seed):
    """Zero-padding v for the fused kernel changes neither outputs nor any gradient."""
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(2, heads, length, v_dim + extra, generator=gen, requires_grad=True) for _ in range(2))
    v = torch.randn(2, heads, length, v_dim, generator=gen, requires_grad=True)
    scores = q @ k.transpose(-1, -2) / (v_dim + extra) ** 0.5
    if causal:
        scores = scores.masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), float("-inf"))
    reference = scores.softmax(-1) @ v
    padded = sdpa_narrow_values(q, k, v, is_causal=causal)
    torch.testing.assert_close(padded, reference, atol=1e-5, rtol=1e-4)
    weights = torch.randn(reference.shape, generator=gen)
    grads = torch.autograd.grad((padded * weights).sum(), (q, k, v))
    reference_grads = torch.autograd.grad((reference * weights).sum(), (q, k, v))
    for got, want in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kernel", [2, 3, 4, 5])
@pytest.mark.parametrize("causal", [True, False])
def test_a_short_convolution_keeps_the_length_and_reads_the_right_neighbours(kernel, causal):
    conv = ShortConv(cfg(d_model=256, conv_kernel=kernel, causal=causal))
    assert 0.4 < float(conv.weight.detach().std()) * kernel**0.5 < 1.6  # starts variance-preserving: taps of var 1/k
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.proj.weight.copy_(torch.eye(256))
    x = torch.zeros(1, 12, 256)
    x[0, 6] = 1.0  # one position: the output positions that read it are its reach
    reach = conv(x)[0].abs().sum(-1).nonzero().flatten().tolist()
    first = 6 if causal else 6 - kernel // 2
    assert conv(x).shape == x.shape and reach == list(range(first, first + kernel))
