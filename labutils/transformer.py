"""The transformer of Vaswani et al. (2017), written out: attention, multi-head attention,
sinusoidal positional encoding, encoder and decoder layers, the encoder-decoder model,
masks, the warm-up learning rate and greedy decoding; plus a small translation task,
numbers written in digits to English words ("4071" -> "four thousand seventy one").

Shapes: B batch, T (Tq, Tk) sequence lengths, d model width, h heads, V vocabulary size.
Boolean masks follow torch: True means "may attend".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

# --------------------------------------------------------------------------- attention


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0):
    """softmax(q k^T / sqrt(d_k) + mask) v, with the attention weights.

    q: (..., Tq, d_k), k: (..., Tk, d_k), v: (..., Tk, d_v). ``mask`` broadcasts to
    (..., Tq, Tk): boolean (True: may attend) or float (added to the scores). A query that
    may attend to no key gets zero weights and a zero output, as in torch.
    Returns the output (..., Tq, d_v) and the weights (..., Tq, Tk) (before dropout).
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k need the same last size d_k, got {q.shape} and {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v need the same length Tk, got {k.shape} and {v.shape}")
    scores = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-2, -1))
    if mask is None:
        weights = torch.softmax(scores, dim=-1)
    elif mask.dtype == torch.bool:
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        if not mask.any(dim=-1).all():  # a query that may attend to no key: 0, not NaN
            weights = weights.masked_fill(~mask, 0.0)
    elif mask.is_floating_point():
        scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        blocked = torch.isneginf(scores).all(dim=-1, keepdim=True)
        if blocked.any():  # a row of -inf: 0, not the NaN of softmax over nothing
            weights = weights.masked_fill(blocked, 0.0)
    else:
        raise TypeError(f"mask must be bool (True: may attend) or float, got {mask.dtype}")
    dropped = nn.functional.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return torch.matmul(dropped, v), weights


class MultiHeadAttention(nn.Module):
    """h heads of attention on learned projections, concatenated and projected back.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O, head_i = Attention(Q W_Q^i, K W_K^i,
    V W_V^i). Inputs (B, T, d); the last weights (B, h, Tq, Tk) are kept in ``attn_weights``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
            nn.Linear(d_model, d_model) for _ in range(4)
        )
        self.attn_weights: torch.Tensor | None = None

    def _split(self, x):
        """(B, T, d) -> (B, h, T, d / h)."""
        b, t, d = x.shape
        return x.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        """query (B, Tq, d), key and value (B, Tk, d), mask broadcasting to (B, h, Tq, Tk).
        Returns the output (B, Tq, d) and the weights (B, h, Tq, Tk)."""
        q, k, v = self._split(self.q_proj(query)), self._split(self.k_proj(key)), \
            self._split(self.v_proj(value))
        out, weights = scaled_dot_product_attention(
            q, k, v, mask, self.dropout if self.training else 0.0
        )
        self.attn_weights = weights.detach()
        b, _, tq, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, tq, -1)), weights


# ------------------------------------------------------------------ positions and masks


def positional_encoding(length: int, d_model: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).

    Returns a (length, d_model) float32 tensor; d_model must be even.
    """
    if d_model % 2:
        raise ValueError(f"d_model={d_model} must be even for sine/cosine pairs")
    pos = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / 10000.0 ** (two_i / d_model)
    pe = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)  # (length, d/2, 2)
    return pe.reshape(length, d_model).float()


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal encoding to (B, T, d) embeddings, then dropout."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("pe", positional_encoding(max_len, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(
                f"sequence of length {x.shape[1]} is longer than max_len={self.pe.shape[0]}; "
                "build the model with a larger max_len"
            )
        return self.drop(x + self.pe[: x.shape[1]])


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, T) token ids -> (B, 1, 1, T) boolean mask, True where the key is not padding."""
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be (B, T), got shape {tuple(tokens.shape)}")
    return (tokens != pad_id)[:, None, None, :]


def causal_mask(length: int, device=None) -> torch.Tensor:
    """(T, T) boolean mask, True on and below the diagonal: position t sees positions <= t."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


# ------------------------------------------------------------------------------ layers


class FeedForward(nn.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, applied at every position."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.linear2(self.drop(torch.relu(self.linear1(x))))


class EncoderLayer(nn.Module):
    """x = LayerNorm(x + SelfAttention(x)); x = LayerNorm(x + FFN(x)) (post-norm, as in
    the paper and in torch's TransformerEncoderLayer). (B, T, d) -> (B, T, d)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = self.norm1(x + self.drop(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(x + self.drop(self.ff(x)))


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder output ``memory``, FFN, each
    with a residual connection and post-norm. y (B, Ty, d), memory (B, Tx, d) -> (B, Ty, d)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop = nn.Dropout(dropout)

    def forward(self, y, memory, self_mask=None, memory_mask=None):
        y = self.norm1(y + self.drop(self.self_attn(y, y, y, self_mask)[0]))
        y = self.norm2(y + self.drop(self.cross_attn(y, memory, memory, memory_mask)[0]))
        return self.norm3(y + self.drop(self.ff(y)))


_TORCH_NAMES = {"multihead_attn.": "cross_attn.", "linear1.": "ff.linear1.",
                "linear2.": "ff.linear2."}


def load_torch_weights(ours: nn.Module, theirs: nn.Module) -> nn.Module:
    """Copy the weights of a torch ``MultiheadAttention`` (batch_first), ``TransformerEncoder
    Layer`` or ``TransformerDecoderLayer`` into our counterpart, so both compute the same."""
    state = {}
    for name, tensor in theirs.state_dict().items():
        for old, new in _TORCH_NAMES.items():
            name = new + name[len(old):] if name.startswith(old) else name
        prefix, _, leaf = name.rpartition("in_proj_")
        if leaf in {"weight", "bias"}:  # torch packs W_Q, W_K, W_V into one matrix
            for part, chunk in zip("qkv", tensor.chunk(3), strict=True):
                state[f"{prefix}{part}_proj.{leaf}"] = chunk
        else:
            state[name] = tensor
    ours.load_state_dict(state)
    return ours


# ------------------------------------------------------------------------------ model


class Transformer(nn.Module):
    """Encoder-decoder transformer for sequence-to-sequence tasks.

    ``forward(src (B, Tx), tgt (B, Ty)) -> logits (B, Ty, V_tgt)``, where ``tgt`` is the
    target shifted right (it starts with <bos>): teacher forcing.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 128, n_heads: int = 4,
                 n_layers: int = 3, d_ff: int = 512, dropout: float = 0.1,
                 max_len: int = 256, pad_id: int = 0):
        super().__init__()
        self.d_model, self.pad_id = d_model, pad_id
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        self.pos = PositionalEncoding(d_model, max_len, dropout)
        self.encoder = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.decoder = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.generator = nn.Linear(d_model, tgt_vocab)

    def encode(self, src):
        """src (B, Tx) -> memory (B, Tx, d) and its padding mask (B, 1, 1, Tx)."""
        src_mask = padding_mask(src, self.pad_id)
        x = self.pos(self.src_embed(src) * math.sqrt(self.d_model))
        for layer in self.encoder:
            x = layer(x, src_mask)
        return x, src_mask

    def decode(self, tgt, memory, src_mask):
        """tgt (B, Ty) so far -> logits (B, Ty, V); position t sees tgt[:, :t + 1] only."""
        self_mask = padding_mask(tgt, self.pad_id) & causal_mask(tgt.shape[1], tgt.device)
        y = self.pos(self.tgt_embed(tgt) * math.sqrt(self.d_model))
        for layer in self.decoder:
            y = layer(y, memory, self_mask, src_mask)
        return self.generator(y)

    def forward(self, src, tgt):
        return self.decode(tgt, *self.encode(src))

    def attention_maps(self) -> dict[str, list[torch.Tensor]]:
        """The weights (B, h, Tq, Tk) of the last forward pass, a list over layers for each
        of 'encoder self', 'decoder self' and 'decoder cross'."""
        return {
            "encoder self": [layer.self_attn.attn_weights for layer in self.encoder],
            "decoder self": [layer.self_attn.attn_weights for layer in self.decoder],
            "decoder cross": [layer.cross_attn.attn_weights for layer in self.decoder],
        }


@torch.no_grad()
def greedy_decode(model: Transformer, src, bos_id: int, eos_id: int, max_len: int):
    """Translate ``src`` (B, Tx) one token at a time, each time taking the most likely next
    token. Returns (B, <= max_len) ids without <bos>; after <eos> every id is padding."""
    model.eval()
    memory, src_mask = model.encode(src)
    ys = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        next_id = model.decode(ys, memory, src_mask)[:, -1].argmax(-1)
        next_id = next_id.masked_fill(done, model.pad_id)
        ys = torch.cat([ys, next_id[:, None]], dim=1)
        done |= next_id == eos_id
        if done.all():
            break
    return ys[:, 1:]


def noam_rate(step: int, d_model: int, warmup: int, factor: float = 1.0) -> float:
    """The paper's learning rate: factor * d^-0.5 * min(step^-0.5, step * warmup^-1.5), a
    linear warm-up for ``warmup`` steps, then a decay as 1/sqrt(step). Steps count from 1."""
    step = max(int(step), 1)
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


# --------------------------------------------------------------- the translation task

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
NUMBER_WORDS = (*_ONES, *_TENS[2:], "hundred", *(name for _, name in _SCALES))
"""Every word that :func:`number_to_words` uses: the target vocabulary of the task."""


def _below_thousand(n: int) -> list[str]:
    words = [_ONES[n // 100], "hundred"] if n >= 100 else []
    n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 10^12, without "and" or hyphens: 4071 -> "four thousand
    seventy one", 110 -> "one hundred ten"."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n < 10**12:
        raise ValueError(f"number_to_words needs an integer in [0, 10^12), got {n!r}")
    n, words = int(n), []
    for value, name in _SCALES:
        if n >= value:
            words += [*_below_thousand(n // value), name]
            n %= value
    if n or not words:
        words += _below_thousand(n)
    return " ".join(words)


class Vocab:
    """Tokens <-> ids, with <pad> = 0, <bos> = 1, <eos> = 2 first."""

    SPECIALS = ("<pad>", "<bos>", "<eos>")
    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, tokens: Iterable[str]):
        self.itos = [*self.SPECIALS, *sorted(set(tokens) - set(self.SPECIALS))]
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str], bos: bool = False, eos: bool = True) -> list[int]:
        """Ids of ``tokens``, with <bos> in front and <eos> at the end if asked."""
        unknown = [t for t in tokens if t not in self.stoi]
        if unknown:
            raise KeyError(f"tokens {unknown} are not in the vocabulary; build it from all data")
        return [self.bos_id] * bos + [self.stoi[t] for t in tokens] + [self.eos_id] * eos

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` up to the first <eos>, without <pad> and <bos>."""
        out = []
        for i in (int(i) for i in ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return out


def sample_numbers(count: int, max_digits: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct integers with 1 to ``max_digits`` digits, the number of digits
    uniform (so that short numbers are not swamped by long ones), in random order."""
    available = 10**max_digits
    if count > available // 2:
        raise ValueError(f"{count} distinct numbers of at most {max_digits} digits are too "
                         "many for a fair sample; lower the count or raise max_digits")
    rng = np.random.default_rng(seed)
    chosen: dict[int, None] = {}
    while len(chosen) < count:
        digits = rng.integers(1, max_digits + 1, size=count)
        low = np.where(digits == 1, 0, 10 ** (digits - 1))
        for n in rng.integers(low, 10**digits):
            chosen.setdefault(int(n), None)
    return np.array(list(chosen)[:count])


def number_pairs(numbers: Iterable[int]) -> list[tuple[list[str], list[str]]]:
    """(source, target) token lists: digits as characters, the words split on spaces."""
    return [(list(str(int(n))), number_to_words(int(n)).split()) for n in numbers]


def collate(pairs, src_vocab: Vocab, tgt_vocab: Vocab):
    """A batch of (source, target) token lists -> padded id tensors (src, tgt_in, tgt_out):
    src (B, Tx) ends with <eos>; tgt_in (B, Ty) = <bos> + target; tgt_out = target + <eos>."""
    src = [torch.tensor(src_vocab.encode(s)) for s, _ in pairs]
    tgt = [torch.tensor(tgt_vocab.encode(t, bos=True)) for _, t in pairs]
    src = pad_sequence(src, batch_first=True, padding_value=src_vocab.pad_id)
    tgt = pad_sequence(tgt, batch_first=True, padding_value=tgt_vocab.pad_id)
    return src, tgt[:, :-1], tgt[:, 1:]
