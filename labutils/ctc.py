"""Connectionist temporal classification (Graves et al., 2006; Graves 2012, ch. 7).

The loss, written as log-space forward (alpha) and backward (beta) recursions over the
blank-extended label sequence with a hand-written gradient, the two decoders (greedy and
prefix beam search), edit distance and the character error rate, and the small models and
training step the CTC notebooks share.

Shapes follow ``torch.nn.functional.ctc_loss``: ``T`` frames, ``N`` sequences, ``C``
classes (blank included), ``S`` the longest target, ``S' = 2 S + 1`` extended states.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

NEG_INF = float("-inf")
_LOG2E = math.log2(math.e)
_REDUCTIONS = ("none", "mean", "sum")
_SCRATCH_MAX = 2**22  # elements kept per scratch buffer (16 MiB in float32)
# torch splits an elementwise kernel over its threads only from this many elements on
# (at::internal::GRAIN_SIZE); below it, one thread does all
_GRAIN = 32768
_scratch_buffers = threading.local()


# --------------------------------------------------------------------------- inputs


def _lengths(value, n: int, name: str, device) -> torch.Tensor:
    """``value`` (a tensor, a sequence or an int) as a (N,) long tensor. Lengths are
    counts: a float (even 3.0) is refused, as torch refuses it, never truncated."""
    t = torch.as_tensor(value, device=device).reshape(-1)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers (torch.long), got {t.dtype} values "
                        f"{t.tolist()}; convert counts with .long() only if they are whole")
    t = t.long()
    if t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} entries; it needs one per sequence ({n})")
    if n and int(t.min()) < 0:
        raise ValueError(f"{name} must be non-negative, got {t.tolist()}")
    return t


def _padded_targets(targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Targets as a padded (N, S) long tensor, from the padded or the concatenated form."""
    n = target_lengths.numel()
    longest = int(target_lengths.max()) if n else 0
    if targets.dim() == 2:
        if targets.shape[0] != n:
            raise ValueError(f"padded targets have {targets.shape[0]} rows for {n} sequences")
        if targets.shape[1] < longest:
            raise ValueError(
                f"padded targets have {targets.shape[1]} columns but a target length is "
                f"{longest}; pad every target to at least the longest one"
            )
        return targets.long()
    if targets.dim() != 1:
        raise ValueError("targets must be (N, S) padded or 1-D concatenated, "
                         f"got shape {tuple(targets.shape)}")
    total = int(target_lengths.sum())
    if targets.numel() != total:
        raise ValueError(f"concatenated targets have {targets.numel()} labels but the "
                         f"target lengths add up to {total}")
    starts = torch.cumsum(target_lengths, 0) - target_lengths
    index = starts[:, None] + torch.arange(longest, device=targets.device)
    inside = torch.arange(longest, device=targets.device) < target_lengths[:, None]
    flat = targets.long()
    if total == 0:
        return torch.zeros(n, longest, dtype=torch.long, device=targets.device)
    return torch.where(inside, flat[index.clamp(max=total - 1)], 0)


def _prepare(log_probs, targets, input_lengths, target_lengths, blank):
    """Check the arguments of :func:`ctc_loss`; return them batched and padded."""
    if not torch.is_tensor(log_probs) or not log_probs.is_floating_point():
        raise TypeError("log_probs must be a floating-point tensor of shape (T, N, C)")
    batched = log_probs.dim() == 3
    if log_probs.dim() == 2:  # one unbatched sequence (T, C), as torch accepts
        log_probs = log_probs.unsqueeze(1)
        targets = torch.as_tensor(targets).reshape(1, -1)
    elif log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (T, N, C), got shape {tuple(log_probs.shape)}")
    T, N, C = log_probs.shape
    if T == 0:
        raise ValueError("log_probs has T = 0 frames; CTC needs at least one frame per "
                         "sequence (shape (T, N, C) with T >= 1)")
    if not 0 <= blank < C:
        raise ValueError(f"blank={blank} is not a class index in [0, {C})")
    device = log_probs.device
    targets = torch.as_tensor(targets, device=device)
    input_lengths = _lengths(input_lengths, N, "input_lengths", device)
    target_lengths = _lengths(target_lengths, N, "target_lengths", device)
    if N and int(input_lengths.max()) > T:
        raise ValueError(f"input_lengths must be at most T={T}, got {input_lengths.tolist()}")
    padded = _padded_targets(targets, target_lengths)
    inside = torch.arange(padded.shape[1], device=device) < target_lengths[:, None]
    padded = torch.where(inside, padded, blank)
    if bool(((padded < 0) | (padded >= C) | ((padded == blank) & inside)).any()):  # one check
        used = padded[inside]  # for the message
        if int(used.min()) < 0 or int(used.max()) >= C:
            raise ValueError(f"target labels must lie in [0, {C}), got {used.min()}..{used.max()}")
        raise ValueError(f"a target contains the blank label {blank}; targets hold only "
                         "real labels (pad after the target length instead)")
    return log_probs, padded, input_lengths, target_lengths, batched


def extend_targets(targets: torch.Tensor, blank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The blank-extended label sequences l' and where the skip transition is allowed.

    ``targets`` (N, S) -> ``ext`` (N, 2S+1) with a blank before, between and after the
    labels, and ``skip`` (N, 2S+1) bool: True where state s may be entered from s - 2
    (s holds a label that differs from the label two states back).
    """
    n, s = targets.shape
    ext = targets.new_full((n, 2 * s + 1), blank)
    ext[:, 1::2] = targets
    return ext, _skips(ext, blank)


def _skips(ext: torch.Tensor, blank: int) -> torch.Tensor:
    skip = torch.zeros_like(ext, dtype=torch.bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return skip


# --------------------------------------------------------------- forward and backward


def _forward(emit: torch.Tensor, mask: torch.Tensor, starts: dict) -> torch.Tensor:
    """The alpha recursion in log space along the long row of :func:`_lattice`.

    ``emit`` (T, L): log y_t of each position's label, -inf in the padding; ``mask`` (L,): 0
    where the position may be entered from two positions back (a skip), -inf elsewhere;
    ``starts`` maps frames to (L,) tensors, 0 (log 1) where paths start at that frame, -inf
    elsewhere (frame 0 must be among them). Returns ``paths`` (T, L), the sum over the
    predecessors of each position before frame t's emission: log alpha_t = paths[t] + emit[t].
    Positions 0 and 1 are the first sequence's padding and stay -inf.

    Shifting the row by 0, 1 and 2 positions gives every state s its candidates s, s - 1 and
    s - 2 at once, as contiguous slices (two to three times faster than strided ones). Only
    two rows of alpha are kept, the previous frame's and the current one.
    """
    T, n = emit.shape
    paths = _scratch("paths", emit.shape, emit)
    paths[:, :2].fill_(NEG_INF)
    starts = dict(starts)
    paths[0] = starts.pop(0)
    alpha = emit.new_empty((2, n))  # alpha of frames t - 1 and t, in turn
    alpha[1, :2] = NEG_INF  # the first sequence's padding; the others' comes from emit
    torch.add(paths[0], emit[0], out=alpha[0])
    # every slice made once, outside the loop: the loop then only runs kernels
    prev = [(row[2:], row[1:-1], row[:-2]) for row in alpha]  # states s, s - 1, s - 2
    path, em = paths[:, 2:].unbind(0), emit[:, 2:].unbind(0)
    mask = mask[2:]
    starts = {t: start[2:] for t, start in starts.items()}
    skipped = torch.empty_like(mask)
    with _no_subnormals():
        for t in range(1, T):
            stay, step, skip_from = prev[(t - 1) % 2]
            torch.logaddexp(stay, step, out=path[t])              # stay, or step by one
            torch.add(skip_from, mask, out=skipped)
            torch.logaddexp(path[t], skipped, out=path[t])        # or skip a blank
            if t in starts:  # some sequences start at this frame
                torch.logaddexp(path[t], starts[t], out=path[t])
            torch.add(path[t], em[t], out=prev[t % 2][0])         # times y_t(l'_s)
    return paths


@contextlib.contextmanager
def _no_subnormals():
    """Flush subnormal numbers to zero in this thread's CPU arithmetic, then restore.

    logaddexp(a, b) = max + log1p(exp(-|a - b|)), and exp of -87 to -104 (float32) is a
    subnormal number, which x86 CPUs compute seven to nine times slower; in a CTC lattice such
    gaps between states are common. Flushed to zero, the sum changes by less than 1e-37 of
    the max, below float32's resolution. torch has no getter for the mode: a probe reads it.
    """
    was = float(torch.tensor(1e-39, dtype=torch.float32)) == 0.0
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was)


def _scratch(name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` for values that die with the call, carved from a
    buffer this thread keeps under ``name`` (CPU, up to ``_SCRATCH_MAX`` elements; larger or
    GPU tensors are allocated as usual). Fresh memory costs the operating system a page
    fault per 4 KiB on first touch: at the lab's size, a fifth of the loss's time."""
    numel = math.prod(shape)
    if like.device.type != "cpu" or numel > _SCRATCH_MAX:
        return like.new_empty(shape)
    buffer = getattr(_scratch_buffers, name, None)
    if buffer is None or buffer.dtype != like.dtype or buffer.numel() < numel:
        buffer = like.new_empty(numel)
        setattr(_scratch_buffers, name, buffer)
    return buffer[:numel].view(shape)


def _layout(ext, skip, input_lengths, target_lengths, T: int, rows: int):
    """Where every state of every row lies in the long row of :func:`_lattice`.

    Rows 0..N-1 are the sequences, rows N..2N-1 (when ``rows`` = 2N) the same sequences
    flipped in time and states. Each row holds two -inf padding columns, then its own
    S'_n = 2 |l_n| + 1 states. Returns per position (L,): ``row``, ``state`` (-2 and -1 for
    the padding), the ``label`` of the blank-extended sequence there, the additive skip
    ``mask`` and the ``frame`` at which paths start there (-1: none); and per row (rows,):
    ``begin``, where the row starts, and ``width`` = S'_n + 2.
    """
    N, S = ext.shape
    device = ext.device
    seq = torch.arange(rows, device=device) % N               # the sequence of each row
    flipped = torch.arange(rows, device=device) >= N          # rows that run backwards
    width = (2 * target_lengths + 3)[seq]                     # S'_n states and 2 padding
    begin = width.cumsum(0) - width
    row = torch.repeat_interleave(torch.arange(rows, device=device), width)
    state = torch.arange(row.numel(), device=device) - begin[row] - 2
    last, back = width[row] - 3, flipped[row]                 # S'_n - 1; flipped or not
    base = seq[row] * S                                       # the sequence's first state in ext
    # a flipped row reads its sequence's states backwards
    label = ext.take(base + torch.where(back, last - state, state).clamp(0, S - 1))
    # skips: s - 2 -> s as ``skip`` says; flipped, u - 2 -> u iff s -> s + 2 was allowed.
    # Padding and the first two states read states 0, 1 or those past the target's end
    # (blanks): -inf, no skip.
    mask = skip.take(base + torch.where(back, last + 2 - state, state).clamp(0, S - 1))
    # paths start in states 0 and 1: at frame 0, flipped at frame T - T_n (T: never)
    frame = torch.where(flipped, T - input_lengths[seq], 0)
    frame = torch.where((state >= 0) & (state < 2), frame[row], -1)
    return row, state, label, mask, frame, begin, width


def _lattice(log_probs, ext, skip, input_lengths, target_lengths, backward: bool = True):
    """log alpha and (with ``backward``) log beta, each (T, N, S'), from ONE recursion.

    The batch is laid out as one long row (:func:`_layout`): sequence after sequence, each
    behind two -inf columns (the states -2 and -1) and only as long as its own
    S'_n = 2 |l_n| + 1 states. beta_t(s), the probability of the frames after t given state
    s at t, obeys the alpha recursion run backwards: from frame T_n - 1 down, out of the last
    two states, through the same transitions reversed. Flipping time and states (frame
    T - 1 - t, state S'_n - 1 - s) turns it into an alpha recursion, so the flipped sequences
    follow the others in the row and every step's kernels serve both; beta is their
    ``paths`` flipped back. Both results are views of scratch memory (see :func:`_scratch`).
    """
    T, N, C = log_probs.shape
    S, device = ext.shape[1], log_probs.device
    rows = 2 * N if backward else N
    row, state, label, mask, frame, begin, width = _layout(ext, skip, input_lengths,
                                                           target_lengths, T, rows)
    source = log_probs.new_empty((T, rows, C + 1))            # class C: -inf, for the padding
    source[:, :N, :C] = log_probs
    if backward:
        source[:, N:, :C] = log_probs.flip(0)                 # frame T - 1 - t at step t
    source[:, :, C].fill_(NEG_INF)
    index = row * (C + 1) + torch.where(state >= 0, label, C)
    extra = _GRAIN + 3 - row.numel()  # a row a little short of the grain: padded past it
    if torch.get_num_threads() > 1 and device.type == "cpu" and 0 < extra < _GRAIN // 2:
        index = torch.cat([index, index.new_full((extra,), C)])        # class C: -inf
        mask = torch.cat([mask, mask.new_full((extra,), NEG_INF)])
        frame = torch.cat([frame, frame.new_full((extra,), -1)])
    emit = _columns(source.view(T, -1), index, _scratch("emit", (T, index.numel()), log_probs))
    start, never = emit.new_zeros(()), emit.new_full((), NEG_INF)
    starts = {f: torch.where(frame == f, start, never)
              for f in sorted({0, *(T - input_lengths).tolist()} - {T})}
    paths = _forward(emit, mask, starts)
    # back to (T, N, S'): states past a sequence's end read position 0, which is -inf
    states = torch.arange(S, device=device)
    inside = states < width[:N, None] - 2
    at = torch.where(inside, begin[:N, None] + 2 + states, 0).view(-1)
    cells = int(begin[N]) if backward and N else row.numel()
    alpha_flat = torch.add(paths[:, :cells], emit[:, :cells],
                           out=_scratch("alpha_flat", (T, cells), emit))
    alpha = _columns(alpha_flat, at, _scratch("alpha", (T, N * S), emit))
    if not backward:
        return alpha.view(T, N, S), None
    at = torch.where(inside, begin[N:, None] + width[:N, None] - 1 - states, 0).view(-1)
    beta = _columns(paths, at, _scratch("beta_flat", (T, N * S), emit))
    frames = torch.arange(T - 1, -1, -1, device=device)
    beta = torch.index_select(beta, 0, frames, out=_scratch("beta", (T, N * S), emit))
    return alpha.view(T, N, S), beta.view(T, N, S)


def _columns(x: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = x[:, index] for x (T, K), index (L,), out (T, L). On one thread index_select is
    the faster (about 2x at the lab's size); gather with the index broadcast over the frames
    is split over several threads, index_select is not."""
    if torch.get_num_threads() > 1:
        return torch.gather(x, 1, index.expand(x.shape[0], -1), out=out)
    return torch.index_select(x, 1, index, out=out)


def _exp(x: torch.Tensor) -> torch.Tensor:
    """exp(x) in place, as 2^(x log2 e). On the CPU torch.exp goes through a
    multi-threaded vector library even for small tensors, which stalls on a busy machine;
    exp2 does not."""
    return x.mul_(_LOG2E).exp2_()


def _nll(alpha, input_lengths, target_lengths) -> torch.Tensor:
    """-log p(l | x) (N,): alpha at each sequence's last frame, in its last blank or its
    last label."""
    T, N, S = alpha.shape
    frame = (input_lengths - 1).clamp(min=0)
    last = alpha.gather(0, frame[None, :, None].expand(1, N, S))[0]  # (N, S'): each one's last
    end = (2 * target_lengths)[:, None]
    logp = torch.logaddexp(last.gather(1, end), last.gather(1, (end - 1).clamp(min=0)))
    logp = torch.where(target_lengths[:, None] == 0, last[:, :1], logp)[:, 0]
    empty = input_lengths == 0  # no frames: only the empty target is possible
    return torch.where(empty, torch.where(target_lengths == 0, 0.0, math.inf).to(logp),
                       -logp)


def _skip_mask(skip, dtype):
    return torch.where(skip, 0.0, NEG_INF).to(dtype)


def ctc_alpha_beta(log_probs, targets, input_lengths, target_lengths, blank: int = 0):
    """The CTC lattice: ``(log_alpha, log_beta, nll)``, for plotting and teaching.

    log_alpha, log_beta: (T, N, 2S+1) (or (T, 2S+1) for an unbatched (T, C) input);
    nll: (N,) = -log p(l | x). alpha includes frame t's output, beta only the later
    frames, so for every frame t < T_n,
    logsumexp_s(log_alpha[t, n] + log_beta[t, n]) = -nll[n].
    """
    log_probs, padded, input_lengths, target_lengths, batched = _prepare(
        log_probs, targets, input_lengths, target_lengths, blank)
    with torch.no_grad():
        ext, skip = extend_targets(padded, blank)
        alpha, beta = _lattice(log_probs, ext, _skip_mask(skip, log_probs.dtype),
                               input_lengths, target_lengths)
        alpha, beta = alpha.clone(), beta.clone()  # out of the scratch memory
        nll = _nll(alpha, input_lengths, target_lengths)
    if not batched:
        return alpha[:, 0], beta[:, 0], nll[0]
    return alpha, beta, nll


class _CTCFunction(torch.autograd.Function):
    """-log p(l | x) per sequence, with the gradient formed from alpha and beta."""

    @staticmethod
    def forward(ctx, log_probs, ext, skip, input_lengths, target_lengths, zero_infinity):
        if not ctx.needs_input_grad[0]:  # alpha alone
            alpha = _lattice(log_probs, ext, skip, input_lengths, target_lengths, False)[0]
            return _nll(alpha, input_lengths, target_lengths)
        alpha, beta = _lattice(log_probs, ext, skip, input_lengths, target_lengths)
        nll = _nll(alpha, input_lengths, target_lengths)
        # gamma_t(s) = alpha_t(s) beta_t(s) / p(l | x): the probability of state s at t;
        # torch's convention: the gradient w.r.t. the logits under a log_softmax,
        # softmax minus the occupation of each class (its states' gammas summed). Formed
        # here, while alpha and beta are at hand, for backward to scale.
        with _no_subnormals():
            gamma = _exp(alpha.add_(beta).add_(nll[:, None]))
            grad = _exp(log_probs.clone()).scatter_add_(2, ext[None].expand_as(gamma),
                                                        gamma.neg_())
        ctx.save_for_backward(grad, nll, input_lengths)
        ctx.zero_infinity = zero_infinity
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_nll):
        grad, nll, input_lengths = ctx.saved_tensors
        grad = grad * grad_nll[:, None]
        T = grad.shape[0]
        inside = torch.arange(T, device=grad.device)[:, None] < input_lengths  # (T, N)
        if input_lengths.numel() and int(input_lengths.min()) < T:
            grad.masked_fill_(~inside[:, :, None], 0.0)  # frames past a sequence's end
        impossible = torch.isinf(nll)
        if bool(impossible.any()):  # torch: NaN in its frames, or 0 with zero_infinity
            rows = impossible.expand_as(inside) if ctx.zero_infinity else inside & impossible
            grad[rows] = 0.0 if ctx.zero_infinity else math.nan
        return grad, None, None, None, None, None


def ctc_loss(log_probs: torch.Tensor, targets, input_lengths, target_lengths,
             blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
    """The CTC loss, with the contract of ``torch.nn.functional.ctc_loss``.

    log_probs: (T, N, C) log-softmax outputs (or (T, C) for one sequence);
    targets: (N, S) padded or 1-D concatenated labels (never ``blank``);
    input_lengths, target_lengths: (N,). ``reduction``: "none" gives (N,) losses, "sum"
    their sum, "mean" the mean of each loss divided by its target length (at least 1).
    An impossible alignment gives inf (0 with ``zero_infinity``). The gradient is the
    one torch returns: softmax minus state occupancy, i.e. assuming log_softmax inputs.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    log_probs, padded, input_lengths, target_lengths, batched = _prepare(
        log_probs, targets, input_lengths, target_lengths, blank)
    ext, skip = extend_targets(padded, blank)
    nll = _CTCFunction.apply(log_probs, ext, _skip_mask(skip, log_probs.dtype),
                             input_lengths, target_lengths, zero_infinity)
    if zero_infinity:
        nll = torch.where(torch.isinf(nll), 0.0, nll)
    if reduction == "sum":
        return nll.sum()
    if reduction == "mean":
        return (nll / target_lengths.clamp(min=1).to(nll.dtype)).mean()
    return nll if batched else nll[0]


# --------------------------------------------------------------------------- decoding


def collapse(path: Sequence[int], blank: int = 0) -> list[int]:
    """The CTC map B: merge repeated labels, then drop blanks ([1,1,0,1,2,2] -> [1,1,2])."""
    return [int(k) for k, _ in itertools.groupby(path) if k != blank]


def _batched(log_probs: torch.Tensor) -> torch.Tensor:
    if log_probs.dim() == 2:
        return log_probs.unsqueeze(1)
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (T, N, C) or (T, C), got {tuple(log_probs.shape)}")
    return log_probs


def greedy_decode(log_probs: torch.Tensor, input_lengths=None, blank: int = 0):
    """Best-path decoding: the most probable class in each frame, then :func:`collapse`.

    log_probs: (T, N, C) or (T, C); input_lengths: (N,) or None for all T frames.
    Returns ``(sequences, scores)``: N label lists and the (N,) log probability of each
    best path (a lower bound on the probability of its label sequence).
    """
    lp = _batched(log_probs).detach()
    T, N, _ = lp.shape
    lengths = [T] * N if input_lengths is None else _lengths(input_lengths, N,
                                                            "input_lengths", "cpu").tolist()
    if N and max(lengths) > T:
        raise ValueError(f"input_lengths must be at most T={T}, got {lengths}")
    best, index = lp.max(-1)
    inside = torch.arange(T, device=lp.device)[:, None] < torch.tensor(lengths, device=lp.device)
    scores = torch.where(inside, best, 0.0).sum(0)
    keep = (index != blank) & inside
    keep[1:] &= index[1:] != index[:-1]
    index, keep = index.T.cpu(), keep.T.cpu()
    return [index[n][keep[n]].tolist() for n in range(N)], scores


def prefix_beam_step(beams: dict, log_probs_t: np.ndarray, blank: int = 0) -> dict:
    """One frame of prefix beam search, before pruning.

    ``beams`` maps each kept prefix (a tuple of labels) to ``(log p_b, log p_nb)``, the
    log probabilities of the paths so far that collapse to it and end in a blank (b) or
    in its last label (nb); ``log_probs_t`` (C,) is the next frame. Returns the same map
    one frame later, for every prefix that one more output can reach:

    - blank: the prefix is unchanged, p_b += (p_b + p_nb) y_blank;
    - its last label again: the prefix is unchanged, p_nb += p_nb y_last (the repeat
      merges); after a blank it is a new label: prefix + last gets p_b y_last;
    - any other label k: prefix + k gets (p_b + p_nb) y_k.
    """
    out: dict[tuple, list] = {}
    for prefix, (pb, pnb) in beams.items():
        total = np.logaddexp(pb, pnb)
        same = out.setdefault(prefix, [NEG_INF, NEG_INF])
        same[0] = np.logaddexp(same[0], total + log_probs_t[blank])
        if prefix:
            same[1] = np.logaddexp(same[1], pnb + log_probs_t[prefix[-1]])
        for c in range(log_probs_t.shape[0]):
            if c == blank:
                continue
            longer = out.setdefault(prefix + (c,), [NEG_INF, NEG_INF])
            source = pb if prefix and c == prefix[-1] else total
            longer[1] = np.logaddexp(longer[1], source + log_probs_t[c])
    return {k: (float(v[0]), float(v[1])) for k, v in out.items()}


def prefix_beam_search(log_probs: torch.Tensor, beam_size: int, blank: int = 0):
    """Prefix beam search over one sequence's log_probs (T, C).

    Each frame extends every kept prefix with :func:`prefix_beam_step` and keeps the
    ``beam_size`` prefixes of highest p_b + p_nb, which sums over all the alignments of a
    prefix (unlike the single best path of greedy decoding). Returns the ``beam_size``
    best ``(labels, log_prob)`` pairs, best first. ``log_prob`` counts only the paths whose
    prefixes stayed in the beam, so it is at most log p(labels | x), and equal to it when
    nothing was pruned.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"prefix_beam_search takes one sequence (T, C), got "
                         f"{tuple(log_probs.shape)}; loop over the batch")
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    lp = log_probs.detach().double().cpu().numpy()
    beams = {(): (0.0, NEG_INF)}
    for t in range(lp.shape[0]):
        candidates = prefix_beam_step(beams, lp[t], blank)
        scored = [(np.logaddexp(*v), k, v) for k, v in candidates.items()]
        ranked = sorted((x for x in scored if x[0] > NEG_INF), key=lambda x: -x[0])
        beams = {k: v for _, k, v in ranked[:beam_size]}
    return [(list(k), float(np.logaddexp(*v))) for k, v in beams.items()]


def label_sequence_log_probs(log_probs: torch.Tensor, blank: int = 0,
                             max_paths: int = 2_000_000) -> dict[tuple, float]:
    """Brute force: log p(l | x) of every label sequence l, by enumerating all C^T paths
    of one sequence's log_probs (T, C) and summing those that collapse to l."""
    lp = log_probs.detach().double().cpu().numpy()
    T, C = lp.shape
    if C**T > max_paths:
        raise ValueError(f"{C}^{T} paths is too many to enumerate; use T and C with "
                         f"C**T <= {max_paths}")
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(C), repeat=T):
        score = lp[np.arange(T), path].sum()
        label = tuple(collapse(path, blank))
        totals[label] = float(np.logaddexp(totals.get(label, NEG_INF), score))
    return totals


def viterbi_align(log_probs: torch.Tensor, target: Sequence[int], blank: int = 0):
    """Forced alignment: the most probable path of one sequence that collapses to ``target``.

    The alpha recursion with max in place of logsumexp (Viterbi), then backtracking.
    log_probs (T, C); target, a label list without blanks. Returns ``(path, states,
    log_prob)``: the T classes of the best path, the T states of l' it passes through
    (indices into the blank-extended sequence) and its log probability.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"viterbi_align takes one sequence (T, C), got "
                         f"{tuple(log_probs.shape)}; loop over the batch")
    lp = log_probs.detach().double().cpu().numpy()
    T, C = lp.shape
    labels = [int(k) for k in target]
    if any(k == blank or not 0 <= k < C for k in labels):
        raise ValueError(f"target {labels} must hold labels in [0, {C}) other than the "
                         f"blank {blank}")
    ext, skip = (x[0].tolist() for x in extend_targets(
        torch.tensor([labels], dtype=torch.long), blank))
    S = len(ext)
    score = np.full((T, S), NEG_INF)
    back = np.zeros((T, S), dtype=np.int64)
    score[0, : min(2, S)] = lp[0, ext[: min(2, S)]]
    for t in range(1, T):
        for s in range(S):
            sources = [s, s - 1, s - 2] if skip[s] else [s, s - 1]
            sources = [j for j in sources if j >= 0]
            best = max(sources, key=lambda j: score[t - 1, j])
            score[t, s], back[t, s] = score[t - 1, best] + lp[t, ext[s]], best
    ends = [S - 1, S - 2] if S > 1 else [0]
    state = max(ends, key=lambda j: score[T - 1, j])
    if score[T - 1, state] == NEG_INF:
        raise ValueError(f"no path of {T} frames collapses to {labels}: it needs at least "
                         "one frame per label and one between repeated labels")
    states = [state]
    for t in range(T - 1, 0, -1):
        states.append(int(back[t, states[-1]]))
    states.reverse()
    return [ext[s] for s in states], states, float(score[T - 1, state])


# ----------------------------------------------------------------------- error rates


def edit_distance(ref: Sequence, hyp: Sequence) -> tuple[int, int, int]:
    """Levenshtein alignment of ``hyp`` to ``ref``: ``(substitutions, deletions,
    insertions)`` of a minimum-cost alignment (ties prefer substitutions, then
    deletions)."""
    ref, hyp = list(ref), list(hyp)
    # row[j] = (cost, S, D, I) for ref[:i] against hyp[:j]
    row = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        new = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            c, s, d, n = row[j - 1]
            miss = ref[i - 1] != hyp[j - 1]
            diag = (c + miss, s + miss, d, n)
            c, s, d, n = row[j]
            up = (c + 1, s, d + 1, n)
            c, s, d, n = new[j - 1]
            left = (c + 1, s, d, n + 1)
            new.append(min((diag, up, left), key=lambda x: x[0]))
        row = new
    return row[-1][1:]


def cer(ref: Sequence, hyp: Sequence) -> float:
    """Character (label) error rate (S + D + I) / len(ref).

    An empty reference has no characters to get wrong: the rate is 0 when ``hyp`` is
    empty too and ``inf`` otherwise (every label of ``hyp`` is an insertion).
    """
    errors = sum(edit_distance(ref, hyp))
    if len(ref) == 0:
        return 0.0 if errors == 0 else math.inf
    return errors / len(ref)


def corpus_cer(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    """The error rate of a set: total edits over total reference length."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    length = sum(len(r) for r in refs)
    errors = sum(sum(edit_distance(r, h)) for r, h in zip(refs, hyps, strict=True))
    if length == 0:
        return 0.0 if errors == 0 else math.inf
    return errors / length


# ------------------------------------------------------------------ models and training


def he_init(module: nn.Module) -> nn.Module:
    """He (Kaiming) normal initialisation of every Linear and Conv1d weight, zero biases
    (recurrent layers keep their own initialisation). Returns the module."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class ConvCTC(nn.Module):
    """A stack of same-length 1-D convolutions with ReLU and a linear read-out per frame.

    (N, features, T) -> logits (N, T, classes); ``classes`` includes the blank.
    """

    def __init__(self, features: int, classes: int, channels: int = 32, layers: int = 4,
                 kernel: int = 5):
        super().__init__()
        blocks, width = [], features
        for _ in range(layers):
            blocks += [nn.Conv1d(width, channels, kernel, padding=kernel // 2), nn.ReLU()]
            width = channels
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).transpose(1, 2))


class BiLSTMCTC(nn.Module):
    """One bidirectional LSTM layer and a linear read-out per frame, as in Graves (2006).

    The LSTM reads frames of ``frame`` consecutive samples (each frame's samples of every
    feature stacked into one vector), so it takes T / frame steps:
    (N, features, T) -> logits (N, T / frame, classes). T must be a multiple of ``frame``.
    """

    def __init__(self, features: int, classes: int, hidden: int = 64, layers: int = 1,
                 frame: int = 1):
        super().__init__()
        if frame < 1:
            raise ValueError(f"frame must be a positive number of samples, got {frame}")
        self.frame = frame
        self.lstm = nn.LSTM(features * frame, hidden, layers, batch_first=True,
                            bidirectional=True)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, f, t = x.shape
        if t % self.frame:
            raise ValueError(f"the input has {t} samples, not a multiple of frame={self.frame}")
        # (N, F, T) -> (N, T / frame, frame * F): consecutive samples side by side
        frames = x.transpose(1, 2).reshape(n, t // self.frame, self.frame * f)
        return self.head(self.lstm(frames)[0])


def ctc_step(blank: int = 0, loss=ctc_loss):
    """A ``step`` for ``lu.fit`` on batches ``(x, targets, target_lengths)``: the model
    maps x (N, F, T) to logits (N, T, C). It returns ``(loss, out, target)`` with
    ``out = (log_probs (T, N, C), input_lengths)`` and ``target = (targets,
    target_lengths)``, the arguments :func:`greedy_cer` takes."""

    def step(model, batch):
        x, targets, target_lengths = batch
        log_probs = model(x).log_softmax(-1).transpose(0, 1)
        input_lengths = torch.full((x.shape[0],), log_probs.shape[0], dtype=torch.long,
                                   device=log_probs.device)
        value = loss(log_probs, targets, input_lengths, target_lengths, blank=blank)
        return value, (log_probs, input_lengths), (targets, target_lengths)

    return step


def greedy_cer(out, target, blank: int = 0) -> tuple[int, int]:
    """The character errors of greedy decoding over a batch, as ``(edits, reference
    length)``: a corpus-ratio metric for ``lu.fit``/``lu.evaluate(metrics={"cer":
    greedy_cer})``, which sum both over the batches, so that the CER they report is
    total edits / total reference length, not a mean of per-batch rates."""
    return decoded_edits(out, target, "errors", None, blank)


_EDIT_KINDS = ("errors", "substitutions", "deletions", "insertions")


def decoded_edits(out, target, kind: str = "errors", beam_size: int | None = None,
                  blank: int = 0) -> tuple[int, int]:
    """A corpus-ratio metric for ``lu.evaluate``/``lu.fit``: decode ``out = (log_probs
    (T, N, C), input_lengths)`` greedily (``beam_size`` None) or by prefix beam search, and
    count the edits against ``target = (targets, target_lengths)``. Returns ``(count,
    total reference length)``; ``kind`` is "errors" (S + D + I: the CER), "substitutions",
    "deletions" or "insertions"."""
    if kind not in _EDIT_KINDS:
        raise ValueError(f"kind must be one of {_EDIT_KINDS}, got {kind!r}")
    log_probs, input_lengths = out
    targets, target_lengths = target
    refs = [t[:n].tolist() for t, n in zip(targets.cpu(), target_lengths.cpu(), strict=True)]
    if beam_size is None:
        hyps, _ = greedy_decode(log_probs, input_lengths, blank)
    else:
        lp = log_probs.detach().cpu()
        hyps = [prefix_beam_search(lp[: int(n), i], beam_size, blank)[0][0]
                for i, n in enumerate(input_lengths.tolist())]
    counts = [edit_distance(r, h) for r, h in zip(refs, hyps, strict=True)]
    pick = {"errors": lambda c: sum(c), "substitutions": lambda c: c[0],
            "deletions": lambda c: c[1], "insertions": lambda c: c[2]}[kind]
    return sum(pick(c) for c in counts), sum(len(r) for r in refs)
