"""wav2vec (Schneider et al., 2019) and wav2vec 2.0 (Baevski et al., 2020), written out:
the k-step binary contrastive loss with its step-specific transforms h_k; span masking,
product quantization with Gumbel-softmax, distractor sampling, the contrastive loss over
cosine similarity and the diversity loss; and a small wav2vec 2.0 built from a strided
convolutional feature encoder and the encoder layers of :mod:`labutils.transformer`.

Shapes: B batch, N samples, T frames, d widths, K distractors, G codebooks of V entries.
Masks are boolean, True where a frame is masked.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from labutils.transformer import EncoderLayer

# ------------------------------------------------------------------------ wav2vec (2019)


class StepTransforms(nn.Module):
    """The step-specific affine maps h_k(c) = W_k c + b_k, k = 1..K, one per prediction
    step: (B, T, d_c) -> (K, B, T, d_z)."""

    def __init__(self, d_context: int, d_feature: int, steps: int):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.steps = steps
        self.maps = nn.ModuleList(nn.Linear(d_context, d_feature) for _ in range(steps))

    def forward(self, c):
        return torch.stack([h(c) for h in self.maps])


def uniform_distractors(batch: int, length: int, k: int, n: int, generator=None):
    """Time indices of ``n`` distractors for each prediction of step ``k``: for every
    i = 0 .. T-k-1, indices drawn uniformly from the same sequence's T frames except the
    positive i + k. Returns (B, T - k, n) long."""
    if not 1 <= k < length:
        raise ValueError(f"step k={k} must lie in 1 .. T-1 = {length - 1}")
    draw = torch.randint(0, length - 1, (batch, length - k, n), generator=generator)
    positive = torch.arange(k, length)[None, :, None]
    return draw + (draw >= positive).long()  # skip over the positive


def wav2vec_step_loss(z, hc, k: int, distractors, lam: float | None = None):
    """The seed's L_k = -sum_{i=1}^{T-k} [log s(z_{i+k}^T h_k(c_i))
    + lam E_zhat log s(-zhat^T h_k(c_i))], s the logistic sigmoid, the expectation the mean
    over the drawn distractors; summed over i, averaged over the batch.

    z (B, T, d) features, hc (B, T, d) = h_k(c), distractors (B, T - k, n) time indices
    (see :func:`uniform_distractors`). ``lam`` defaults to n, as in the paper (the mean
    times n: the sum over the distractors). Returns a scalar.
    """
    b, t, _ = z.shape
    if distractors.shape[:2] != (b, t - k):
        raise ValueError(f"distractors must be (B, T-k, n) = ({b}, {t - k}, n), "
                         f"got {tuple(distractors.shape)}")
    lam = distractors.shape[2] if lam is None else lam
    pred = hc[:, : t - k]                                          # h_k(c_i), i < T-k
    positive = (z[:, k:] * pred).sum(-1)                           # (B, T-k)
    zhat = z[torch.arange(b)[:, None, None], distractors]          # (B, T-k, n, d)
    negative = (zhat * pred[:, :, None]).sum(-1)                   # (B, T-k, n)
    per_step = F.logsigmoid(positive) + lam * F.logsigmoid(-negative).mean(-1)
    return -per_step.sum(1).mean()


def wav2vec_loss(z, c, transforms: StepTransforms, n_distractors: int = 10,
                 lam: float | None = None, generator=None):
    """L = sum_{k=1}^{K} L_k, each step with its own uniformly drawn distractors.
    z (B, T, d_z), c (B, T, d_c); K = ``transforms.steps`` must be below T."""
    if z.shape[:2] != c.shape[:2]:
        raise ValueError(f"z {tuple(z.shape)} and c {tuple(c.shape)} need the same (B, T)")
    b, t, _ = z.shape
    hc = transforms(c)
    return sum(
        wav2vec_step_loss(z, hc[k - 1], k, uniform_distractors(b, t, k, n_distractors,
                                                               generator), lam)
        for k in range(1, transforms.steps + 1)
    )


# ------------------------------------------------------------------ wav2vec 2.0: masking


def span_mask(lengths, max_len: int, p: float = 0.065, span: int = 10, min_spans: int = 0,
              generator=None) -> torch.Tensor:
    """Span masking of wav2vec 2.0: in a sequence of L valid frames, n = floor(p L + u)
    (u uniform in [0, 1), so E[n] = p L) span starts are drawn without replacement among
    the L - span + 1 positions where a whole span fits, and the ``span`` frames from each
    start are masked; spans may overlap. ``p`` is the paper's start probability (fairseq
    and transformers call p * span the "mask_prob").

    lengths: (B,) valid frames per sequence (padding follows); a sequence shorter than
    ``span`` is not masked. The draws depend on the lengths only, so padding a batch
    further does not move any span. Returns a (B, max_len) bool mask.
    """
    lengths = torch.as_tensor(lengths, dtype=torch.long).reshape(-1)
    if not 0 <= p <= 1:
        raise ValueError(f"the start probability p must lie in [0, 1], got {p}")
    if span < 1:
        raise ValueError(f"span must be at least 1 frame, got {span}")
    if lengths.numel() and (lengths.min() < 0 or lengths.max() > max_len):
        raise ValueError(f"lengths must lie in [0, max_len={max_len}], got {lengths.tolist()}")
    mask = torch.zeros(lengths.numel(), max_len, dtype=torch.bool)
    for row, length in enumerate(lengths.tolist()):
        u = torch.rand((), generator=generator).item()
        places = length - span + 1
        if places < 1:
            continue
        n = min(max(int(p * length + u), min_spans), places)
        starts = torch.randperm(places, generator=generator)[:n]
        covered = (starts[:, None] + torch.arange(span)).reshape(-1)
        mask[row, covered] = True
    return mask


def expected_mask_fraction(length: int, p: float = 0.065, span: int = 10) -> float:
    """The exact expected fraction of masked frames of :func:`span_mask` for a sequence of
    ``length`` frames: frame t is masked unless none of the m_t starts that cover it is
    drawn, P = C(S - m_t, n) / C(S, n) for n of S = L - span + 1 starts, averaged over t
    and over the two values of n = floor(p L + u). For long sequences it tends to
    1 - (1 - p)^span (independent starts)."""
    places = length - span + 1
    if places < 1:
        return 0.0
    low = int(p * length)
    frac = p * length - low
    total = 0.0
    for n, weight in ((low, 1.0 - frac), (low + 1, frac)):
        n = min(n, places)
        if weight == 0:
            continue
        for t in range(length):
            covering = min(t, places - 1) - max(0, t - span + 1) + 1
            unmasked = math.comb(places - covering, n) / math.comb(places, n)
            total += weight * (1.0 - unmasked)
    return total / length


# ----------------------------------------------------- wav2vec 2.0: product quantization


class Quantized(NamedTuple):
    """Output of :class:`GumbelQuantizer`: ``q`` (B, T, d) the quantized vectors, ``codes``
    (B, T, G) the chosen entries, ``probs`` (B, T, G, V) the softmax of the logits
    (without Gumbel noise), ``logits`` (B, T, G, V)."""

    q: torch.Tensor
    codes: torch.Tensor
    probs: torch.Tensor
    logits: torch.Tensor


class GumbelQuantizer(nn.Module):
    """Product quantization with G codebooks of V entries of size d_out / G.

    Logits l = W x + b, (G, V) per frame. Training picks entry argmax_v (l_gv + g_v) with
    Gumbel noise g and passes gradients straight through the softmax at temperature
    ``tau`` (``F.gumbel_softmax(hard=True)``); evaluation picks argmax_v l_gv. The chosen
    entries of the G codebooks are concatenated: (B, T, d_in) -> :class:`Quantized`.
    """

    def __init__(self, d_in: int, d_out: int, groups: int = 2, entries: int = 320,
                 tau: float = 2.0):
        super().__init__()
        if d_out % groups:
            raise ValueError(f"d_out={d_out} must be a multiple of groups={groups}")
        self.groups, self.entries, self.tau = groups, entries, tau
        self.proj = nn.Linear(d_in, groups * entries)
        # as fairseq and transformers: logits large enough that the choice is not all noise
        nn.init.normal_(self.proj.weight, std=1.0)
        nn.init.zeros_(self.proj.bias)
        # normal entries (fairseq draws them uniform in [0, 1)): distinct codes give nearly
        # orthogonal targets from the start, which a short pre-training needs
        self.codebooks = nn.Parameter(torch.randn(groups, entries, d_out // groups))

    def forward(self, x) -> Quantized:
        b, t, _ = x.shape
        logits = self.proj(x).view(b, t, self.groups, self.entries)
        if self.training:
            onehot = F.gumbel_softmax(logits.float(), tau=self.tau, hard=True).type_as(logits)
        else:
            onehot = F.one_hot(logits.argmax(-1), self.entries).type_as(logits)
        q = torch.einsum("btgv,gvd->btgd", onehot, self.codebooks).reshape(b, t, -1)
        return Quantized(q, onehot.argmax(-1), logits.float().softmax(-1), logits)


def codebook_perplexity(probs, mask=None):
    """sum_g exp(H(pbar_g)), pbar_g the distribution over group g's V entries averaged over
    the frames (those where ``mask`` (B, T) is True, if given). probs (B, T, G, V) -> scalar
    between G (one entry per group in use) and G V (all used equally)."""
    if mask is not None:
        probs = probs[mask]
    flat = probs.reshape(-1, *probs.shape[-2:])
    if flat.shape[0] == 0:
        raise ValueError("no frame to average over: the mask selects none")
    mean = flat.mean(0)                                        # (G, V)
    entropy = -torch.xlogy(mean, mean).sum(-1)
    return entropy.exp().sum()


def diversity_loss(perplexity, groups: int, entries: int):
    """L_d = (G V - sum_g exp(H(pbar_g))) / (G V): 0 when every entry is used equally."""
    return (groups * entries - perplexity) / (groups * entries)


def gumbel_temperature(update: int, start: float = 2.0, end: float = 0.5,
                       decay: float = 0.999995) -> float:
    """The annealed temperature max(start decay^update, end) after ``update`` updates."""
    return max(start * decay**update, end)


# ---------------------------------------------------------- wav2vec 2.0: contrastive loss


def sample_negatives(mask, n: int, generator=None) -> torch.Tensor:
    """For every masked frame (b, t), ``n`` time indices drawn uniformly (with replacement)
    from the other masked frames of the same sequence b, never t itself. mask (B, T) bool
    -> (B, T, n) long; unmasked frames hold their own index t (placeholders, unused). A
    sequence needs none or at least two masked frames."""
    mask = torch.as_tensor(mask, dtype=torch.bool)
    b, t = mask.shape
    counts = mask.sum(1)                                             # masked frames per row
    if (counts == 1).any():
        row = int((counts == 1).nonzero()[0])
        raise ValueError(f"sequence {row} has one masked frame and so no distractor; mask "
                         "at least two frames (e.g. span_mask(..., min_spans=2))")
    rank = mask.long().cumsum(1) - 1                                 # rank among masked
    order = torch.sort(~mask, dim=1, stable=True).indices            # masked positions first
    draw = (torch.rand(b, t, n, generator=generator) * (counts - 1).clamp(min=0)[:, None, None]
            ).long()
    draw = draw + (draw >= rank[:, :, None]).long()                  # skip over the frame itself
    picked = order.gather(1, draw.clamp(max=t - 1).reshape(b, -1)).reshape(b, t, n)
    own = torch.arange(t).expand(b, t)[:, :, None]
    return torch.where(mask[:, :, None], picked, own)


def contrastive_logits(context, targets, negatives, mask, kappa: float = 0.1):
    """sim(c_t, q) / kappa for the positive q_t and the K distractors of every masked frame,
    sim the cosine similarity; a distractor equal to the positive gets -inf.

    context, targets (B, T, d); negatives (B, T, K) time indices; mask (B, T) bool.
    Returns (M, K + 1), M the number of masked frames, the positive in column 0.
    """
    rows = mask.nonzero()[:, 0]
    positive = targets[mask]                                         # (M, d)
    distractors = targets[rows[:, None], negatives[mask]]            # (M, K, d)
    candidates = torch.cat([positive[:, None], distractors], 1)      # (M, K + 1, d)
    logits = F.cosine_similarity(context[mask][:, None], candidates, dim=-1) / kappa
    same = (distractors == positive[:, None]).all(-1)
    return torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], 1)


def contrastive_loss(logits):
    """L_m = -log softmax(logits)[positive], averaged over the masked frames; logits
    (M, K + 1) with the positive in column 0. Returns (loss, accuracy), the accuracy the
    fraction of frames whose positive ranks first."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    accuracy = (logits.argmax(-1) == 0).float().mean()
    return F.cross_entropy(logits, target), accuracy


# --------------------------------------------------------------------- a small wav2vec 2.0

KERNELS = (10, 3, 3, 3, 3, 2, 2)
STRIDES = (5, 2, 2, 2, 2, 2, 2)  # 5 * 2^6 = 320 samples a frame: 20 ms at 16 kHz


def n_frames(n_samples: int) -> int:
    """The number of frames the feature encoder makes of ``n_samples`` samples."""
    for k, s in zip(KERNELS, STRIDES, strict=True):
        n_samples = (n_samples - k) // s + 1
    return max(n_samples, 0)


class FeatureEncoder(nn.Module):
    """Seven strided 1-D convolutions (kernels 10, 3, 3, 3, 3, 2, 2; strides 5, 2, ..., 2:
    total stride 320, receptive field 400 samples), GELU, group norm after the first,
    Kaiming-normal weights, as in wav2vec 2.0 base with fewer channels.
    (B, N) -> (B, T, channels)."""

    def __init__(self, channels: int = 64):
        super().__init__()
        layers, c_in = [], 1
        for i, (k, s) in enumerate(zip(KERNELS, STRIDES, strict=True)):
            conv = nn.Conv1d(c_in, channels, k, s, bias=False)
            nn.init.kaiming_normal_(conv.weight)  # as fairseq: the scale survives 7 layers
            layers += [conv, nn.GroupNorm(channels, channels)] if i == 0 else [conv]
            layers.append(nn.GELU())
            c_in = channels
        self.conv = nn.Sequential(*layers)

    def forward(self, wave):
        if wave.dim() != 2:
            raise ValueError(f"wave must be (B, N) samples, got shape {tuple(wave.shape)}")
        if n_frames(wave.shape[1]) < 1:
            raise ValueError(f"{wave.shape[1]} samples are fewer than the 400 of one frame")
        return self.conv(wave[:, None]).transpose(1, 2)


class Wav2Vec2(nn.Module):
    """A small wav2vec 2.0: feature encoder -> LayerNorm -> projection to d_model (the
    latents z) -> masked frames replaced by a learned vector -> a convolutional relative
    position embedding -> transformer encoder layers (post-norm) -> context c.
    The quantizer reads the unmasked encoder output; c and q are projected to ``final_dim``.
    The position embedding spans ``pos_kernel`` frames (128, 2.56 s, as in base): frames
    inside a long masked stretch differ only by where they sit relative to its edges.
    """

    def __init__(self, channels: int = 64, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, d_ff: int = 256, final_dim: int = 32, groups: int = 2,
                 entries: int = 320, pos_kernel: int = 128, pos_groups: int = 16,
                 dropout: float = 0.1):
        super().__init__()
        self.encoder = FeatureEncoder(channels)
        self.feature_norm = nn.LayerNorm(channels)
        self.project = nn.Linear(channels, d_model)
        self.mask_embedding = nn.Parameter(torch.rand(d_model))
        self.pos_conv = nn.Conv1d(d_model, d_model, pos_kernel, padding=pos_kernel // 2,
                                  groups=pos_groups)
        self.context_norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout)
                                    for _ in range(n_layers))
        self.quantizer = GumbelQuantizer(channels, final_dim, groups, entries)
        self.project_q = nn.Linear(final_dim, final_dim)
        self.final_proj = nn.Linear(d_model, final_dim)

    def features(self, wave):
        """wave (B, N) -> the normalised encoder output (B, T, channels)."""
        return self.feature_norm(self.encoder(wave))

    def context(self, features, mask=None, lengths=None):
        """features (B, T, channels) -> c (B, T, d_model); masked frames (``mask`` (B, T))
        are replaced before the transformer, padded frames (beyond ``lengths``) ignored."""
        x = self.drop(self.project(features))
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_embedding.to(x.dtype), x)
        attend = None
        if lengths is not None:
            valid = torch.arange(x.shape[1], device=x.device) < lengths[:, None]
            x = x * valid[..., None]  # padding must not reach valid frames through pos_conv
            attend = valid[:, None, None, :]
        pos = self.pos_conv(x.transpose(1, 2))[:, :, : x.shape[1]]
        x = self.drop(self.context_norm(x + F.gelu(pos).transpose(1, 2)))
        for layer in self.layers:
            x = layer(x, attend)
        return x

    def forward(self, wave, mask, lengths=None):
        """wave (B, N), mask (B, T) -> dict with ``c`` (B, T, final_dim) projected context,
        ``q`` (B, T, final_dim) projected quantized targets, ``quantized``
        (:class:`Quantized`), ``features`` (B, T, channels) before normalisation."""
        raw = self.encoder(wave)
        features = self.feature_norm(raw)
        quantized = self.quantizer(features)
        c = self.final_proj(self.context(features, mask, lengths))
        return {"c": c, "q": self.project_q(quantized.q), "quantized": quantized,
                "features": raw}


def pretraining_loss(model: Wav2Vec2, wave, mask, n_negatives: int = 100,
                     kappa: float = 0.1, alpha: float = 0.1, feature_penalty: float = 10.0,
                     generator=None) -> dict:
    """L = L_m + alpha L_d + feature_penalty * mean(features^2) for one batch, with L_m
    averaged over the masked frames. wave (B, N), mask (B, T). Returns a dict of the
    scalar tensors ``loss``, ``contrastive``, ``diversity``, ``penalty``, ``accuracy``,
    ``perplexity`` and ``confidence`` (the quantizer's largest softmax probability, averaged
    over the masked frames and the groups: 1 / V for a flat softmax, 1 for a sure choice)."""
    out = model(wave, mask)
    negatives = sample_negatives(mask.cpu(), n_negatives, generator).to(wave.device)
    logits = contrastive_logits(out["c"], out["q"], negatives, mask, kappa)
    l_m, accuracy = contrastive_loss(logits)
    probs = out["quantized"].probs
    perplexity = codebook_perplexity(probs, mask)
    l_d = diversity_loss(perplexity, model.quantizer.groups, model.quantizer.entries)
    penalty = out["features"].float().pow(2).mean()
    loss = l_m + alpha * l_d + feature_penalty * penalty
    return {"loss": loss, "contrastive": l_m.detach(), "diversity": l_d.detach(),
            "penalty": penalty.detach(), "accuracy": accuracy, "perplexity": perplexity.detach(),
            "confidence": probs[mask].amax(-1).mean().detach()}
