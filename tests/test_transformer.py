"""labutils.transformer against torch's attention and transformer layers, closed forms and
hand-written cases."""

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from labutils import transformer as tr

SETTINGS = settings(max_examples=25, deadline=None)


def _close(a, b, tol=1e-5):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


# ---------------------------------------------------------------- scaled dot product


@SETTINGS
@given(batch=st.integers(1, 3), heads=st.integers(1, 3), tq=st.integers(1, 7),
       tk=st.integers(1, 7), d_k=st.integers(1, 9), d_v=st.integers(1, 9),
       mask_kind=st.sampled_from(["none", "bool", "float", "padding"]), seed=st.integers(0, 99))
def test_attention_matches_torch(batch, heads, tq, tk, d_k, d_v, mask_kind, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, tq, d_k, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(batch, heads, tk, d_k, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(batch, heads, tk, d_v, generator=g, dtype=torch.float64, requires_grad=True)
    mask = {
        "none": None,
        "bool": torch.rand(tq, tk, generator=g) < 0.7,  # some rows may be fully masked
        "float": torch.randn(batch, 1, tq, tk, generator=g, dtype=torch.float64),
        "padding": torch.rand(batch, 1, 1, tk, generator=g) < 0.8,
    }[mask_kind]
    out, weights = tr.scaled_dot_product_attention(q, k, v, mask)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    _close(out, ref)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        _close(a, b)
    assert weights.shape == (batch, heads, tq, tk)
    assert torch.isfinite(weights).all()


def test_attention_weights_by_hand():
    # one query, two keys: scores [0, 2 / sqrt(2)] -> softmax -> weights; output their mix
    q = torch.tensor([[1.0, 1.0]])
    k = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    v = torch.tensor([[10.0], [20.0]])
    out, w = tr.scaled_dot_product_attention(q, k, v)
    p = math.exp(math.sqrt(2)) / (1 + math.exp(math.sqrt(2)))
    _close(w, torch.tensor([[1 - p, p]]))
    _close(out, torch.tensor([[10 * (1 - p) + 20 * p]]))


def test_attention_masked_key_gets_no_weight():
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    mask = torch.ones(1, 1, 6, dtype=torch.bool)
    mask[..., 2] = False
    _, w = tr.scaled_dot_product_attention(q, k, v, mask)
    assert (w[..., 2] == 0).all()
    _close(w.sum(-1), torch.ones(2, 4))


def test_attention_rejects_bad_input():
    with pytest.raises(ValueError, match="same last size"):
        tr.scaled_dot_product_attention(torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="same length"):
        tr.scaled_dot_product_attention(torch.randn(2, 3), torch.randn(2, 3), torch.randn(5, 3))
    with pytest.raises(TypeError, match="bool"):
        tr.scaled_dot_product_attention(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3),
                                        torch.ones(2, 2, dtype=torch.long))


# --------------------------------------------------------------- multi-head attention


@SETTINGS
@given(batch=st.integers(1, 3), heads=st.sampled_from([1, 2, 4]), head_dim=st.integers(1, 6),
       tq=st.integers(1, 6), tk=st.integers(1, 6), seed=st.integers(0, 99),
       masks=st.sampled_from(["none", "padding", "attn", "both"]))
def test_multihead_attention_matches_torch(batch, heads, head_dim, tq, tk, seed, masks):
    torch.manual_seed(seed)
    d = heads * head_dim
    theirs = torch.nn.MultiheadAttention(d, heads, batch_first=True)
    ours = tr.load_torch_weights(tr.MultiHeadAttention(d, heads), theirs)
    query, memory = torch.randn(batch, tq, d), torch.randn(batch, tk, d)
    pad = torch.zeros(batch, tk, dtype=torch.bool)
    pad[0, tk // 2 + 1:] = True  # torch: True = ignore this key
    blocked = torch.rand(tq, tk) < 0.3
    blocked[:, 0] = False  # keep one key per row, where torch's fast paths disagree on NaN
    kw = {"key_padding_mask": pad if masks in ("padding", "both") else None,
          "attn_mask": blocked if masks in ("attn", "both") else None}
    ours_mask = torch.ones(batch, 1, tq, tk, dtype=torch.bool)
    if kw["key_padding_mask"] is not None:
        ours_mask &= ~pad[:, None, None, :]
    if kw["attn_mask"] is not None:
        ours_mask &= ~blocked
    out, w = ours(query, memory, memory, ours_mask)
    ref, ref_w = theirs(query, memory, memory, average_attn_weights=False, **kw)
    _close(out, ref)
    _close(w, ref_w)
    assert ours.attn_weights.shape == (batch, heads, tq, tk)


def test_multihead_attention_rejects_uneven_heads():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        tr.MultiHeadAttention(10, 4)


# ------------------------------------------------------------------ layers vs torch


@pytest.mark.parametrize("seed", [0, 1])
def test_encoder_layer_matches_torch(seed):
    torch.manual_seed(seed)
    theirs = torch.nn.TransformerEncoderLayer(16, 4, 40, batch_first=True).eval()
    ours = tr.load_torch_weights(tr.EncoderLayer(16, 4, 40), theirs).eval()
    x = torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 4:] = True
    _close(ours(x, ~pad[:, None, None, :]), theirs(x, src_key_padding_mask=pad))


@pytest.mark.parametrize("seed", [0, 1])
def test_decoder_layer_matches_torch(seed):
    torch.manual_seed(seed)
    theirs = torch.nn.TransformerDecoderLayer(16, 2, 24, batch_first=True).eval()
    ours = tr.load_torch_weights(tr.DecoderLayer(16, 2, 24), theirs).eval()
    y, memory = torch.randn(2, 5, 16), torch.randn(2, 8, 16)
    pad = torch.zeros(2, 8, dtype=torch.bool)
    pad[0, 6:] = True
    causal = tr.causal_mask(5)
    ref = theirs(y, memory, tgt_mask=~causal, memory_key_padding_mask=pad)
    _close(ours(y, memory, causal, ~pad[:, None, None, :]), ref)


# ------------------------------------------------------------ positions and masks


@pytest.mark.parametrize("length,d_model", [(1, 2), (50, 16), (7, 64)])
def test_positional_encoding_closed_form(length, d_model):
    pe = tr.positional_encoding(length, d_model)
    assert pe.shape == (length, d_model) and pe.dtype == torch.float32
    for pos in range(length):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_positional_encoding_checks():
    with pytest.raises(ValueError, match="even"):
        tr.positional_encoding(4, 5)
    layer = tr.PositionalEncoding(8, max_len=4)
    _close(layer(torch.zeros(2, 3, 8)), tr.positional_encoding(3, 8).expand(2, 3, 8))
    with pytest.raises(ValueError, match="max_len"):
        layer(torch.zeros(1, 5, 8))


def test_masks_shapes_and_values():
    tokens = torch.tensor([[5, 6, 0, 0], [7, 8, 9, 0]])
    pm = tr.padding_mask(tokens, pad_id=0)
    assert pm.shape == (2, 1, 1, 4) and pm.dtype == torch.bool
    assert pm[:, 0, 0].tolist() == [[True, True, False, False], [True, True, True, False]]
    cm = tr.causal_mask(3)
    assert cm.tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        tr.padding_mask(torch.zeros(4, dtype=torch.long), 0)


def _model(**kw):
    torch.manual_seed(0)
    return tr.Transformer(11, 13, d_model=16, n_heads=2, n_layers=2, d_ff=32, **kw).eval()


def test_later_target_token_never_changes_earlier_outputs():
    model = _model()
    src = torch.randint(3, 11, (2, 6))
    tgt = torch.randint(3, 13, (2, 7))
    logits = model(src, tgt)
    assert logits.shape == (2, 7, 13)
    for t in range(7):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] - 3 + 1) % 10 + 3  # a different, non-special token
        new = model(src, changed)
        _close(new[:, :t], logits[:, :t])
        assert not torch.allclose(new[:, t:], logits[:, t:])


def test_source_padding_is_ignored():
    model = _model()
    src = torch.randint(3, 11, (1, 5))
    tgt = torch.randint(3, 13, (1, 4))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    _close(model(padded, tgt), model(src, tgt))


def test_attention_maps_shapes():
    model = _model()
    model(torch.randint(3, 11, (2, 6)), torch.randint(3, 13, (2, 4)))
    maps = model.attention_maps()
    assert [m.shape for m in maps["encoder self"]] == [(2, 2, 6, 6)] * 2
    assert [m.shape for m in maps["decoder self"]] == [(2, 2, 4, 4)] * 2
    assert [m.shape for m in maps["decoder cross"]] == [(2, 2, 4, 6)] * 2


# ---------------------------------------------------------------- decoding, schedule


class _Copier(tr.Transformer):
    """A model whose next token is fixed by hand: src[t] at step t, then <eos>."""

    def __init__(self):
        super().__init__(10, 10, d_model=4, n_heads=1, n_layers=1, d_ff=4)

    def encode(self, src):
        return src, None

    def decode(self, tgt, memory, src_mask):
        t = tgt.shape[1] - 1
        nxt = memory[:, t] if t < memory.shape[1] else torch.full_like(memory[:, 0], 2)
        return torch.nn.functional.one_hot(nxt, 10).float()[:, None].expand(-1, tgt.shape[1], -1)


def test_greedy_decode_stops_and_pads_after_eos():
    src = torch.tensor([[5, 6, 2, 0], [7, 8, 9, 2]])
    out = tr.greedy_decode(_Copier(), src, bos_id=1, eos_id=2, max_len=10)
    assert out.tolist() == [[5, 6, 2, 0], [7, 8, 9, 2]]
    assert tr.greedy_decode(_Copier(), src, 1, 2, max_len=2).tolist() == [[5, 6], [7, 8]]


def test_noam_rate():
    d, warmup = 64, 100
    peak = tr.noam_rate(warmup, d, warmup)
    assert peak == pytest.approx(d**-0.5 * warmup**-0.5)
    assert tr.noam_rate(10, d, warmup) == pytest.approx(peak * 10 / warmup)
    assert tr.noam_rate(400, d, warmup) == pytest.approx(peak / 2)
    assert tr.noam_rate(0, d, warmup) == tr.noam_rate(1, d, warmup)


# -------------------------------------------------------------------- the task


@pytest.mark.parametrize("n,words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (45, "forty five"),
    (100, "one hundred"), (110, "one hundred ten"), (4071, "four thousand seventy one"),
    (10000, "ten thousand"), (999999, "nine hundred ninety nine thousand nine hundred ninety nine"),
    (1001001, "one million one thousand one"), (2000000000, "two billion"),
])
def test_number_to_words(n, words):
    assert tr.number_to_words(n) == words


def test_number_words_cover_the_task():
    used = {w for n in [*range(1000), 10**3, 10**6, 10**9] for w in tr.number_to_words(n).split()}
    assert used == set(tr.NUMBER_WORDS)


@pytest.mark.parametrize("bad", [-1, 10**12, 3.0, True])
def test_number_to_words_rejects(bad):
    with pytest.raises(ValueError, match="integer"):
        tr.number_to_words(bad)


def test_sample_numbers_distinct_and_in_range():
    nums = tr.sample_numbers(3000, 5, seed=1)
    assert len(set(nums.tolist())) == 3000 and nums.min() >= 0 and nums.max() < 10**5
    digits = [len(str(n)) for n in nums]
    assert {1, 2, 3, 4, 5} <= set(digits)
    assert (tr.sample_numbers(3000, 5, seed=1) == nums).all()
    with pytest.raises(ValueError, match="too many"):
        tr.sample_numbers(80, 2)


def test_vocab_and_collate():
    pairs = tr.number_pairs([4071, 12])
    assert pairs[0] == (list("4071"), ["four", "thousand", "seventy", "one"])
    src_vocab = tr.Vocab(t for s, _ in pairs for t in s)
    tgt_vocab = tr.Vocab(t for _, w in pairs for t in w)
    assert src_vocab.itos[:3] == ["<pad>", "<bos>", "<eos>"] and len(src_vocab) == 3 + 5
    src, tgt_in, tgt_out = tr.collate(pairs, src_vocab, tgt_vocab)
    assert src.shape == (2, 5) and tgt_in.shape == tgt_out.shape == (2, 5)
    assert src[1].tolist()[2:] == [2, 0, 0]  # "12" <eos> <pad> <pad>
    assert tgt_in[:, 0].tolist() == [1, 1]
    assert (tgt_in[:, 1:] == tgt_out[:, :-1]).all()  # shifted by one: teacher forcing
    assert tgt_vocab.decode(tgt_out[0]) == pairs[0][1]
    assert tgt_vocab.decode(tgt_out[1]) == ["twelve"]
    with pytest.raises(KeyError, match="not in the vocabulary"):
        src_vocab.encode(["x"])


def test_a_float_mask_row_of_minus_infinity_gives_zeros_as_torch_does():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, 5, generator=g) for _ in range(3))  # (B, h, T, d)
    mask = torch.zeros(4, 4)
    mask[1] = float("-inf")  # query 1 may attend to no key
    mask[2, :2] = float("-inf")
    out, weights = tr.scaled_dot_product_attention(q, k, v, mask)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert not out.isnan().any() and not weights.isnan().any()
    assert torch.equal(weights[..., 1, :], torch.zeros(2, 3, 4))
    torch.testing.assert_close(out, ref)
