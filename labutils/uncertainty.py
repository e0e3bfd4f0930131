"""Predictive uncertainty of classifiers: Monte Carlo dropout, deep ensembles and
temperature scaling, the scores that compare them (NLL, Brier, expected calibration
error), and the small spectrogram CNN and parameter-space tools of notebook 09.

Probabilities are arrays of shape (N, C) (or (S, N, C) for S sampled passes or members),
labels integer arrays of shape (N,).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn


class SpeakerCNN(nn.Module):
    """Three conv blocks (3x3 conv, batch norm, ReLU, 2x2 max pool), an average over time
    (who speaks does not depend on when in the chunk), then two fully connected layers with
    dropout before the last: (B, 1, n_mels, frames) -> logits (B, classes)."""

    def __init__(self, n_mels: int = 40, channels=(8, 16, 32), hidden: int = 64,
                 classes: int = 2, p: float = 0.5):
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*blocks)
        self.fc1 = nn.Linear(c_in * (n_mels // 2 ** len(channels)), hidden)
        self.dropout = nn.Dropout(p)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).mean(-1).flatten(1)  # (B, channels * bands)
        return self.fc2(self.dropout(torch.relu(self.fc1(h))))


# ---------------------------------------------------------------- predictions


@contextlib.contextmanager
def dropout_only(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block ``model`` is in eval mode (batch norm uses its running statistics
    and does not update them) except its dropout layers, which keep sampling masks.
    The previous train/eval state of every module is restored after."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.train()
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode


@torch.no_grad()
def _outputs(model: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


def logits(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """The model's outputs in eval mode (dropout off, batch norm frozen); (N, C)."""
    model.eval()
    return _outputs(model, x, batch).numpy()


def predict(model: nn.Module, x: torch.Tensor, batch: int = 256,
            temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``model(x) / temperature`` in eval mode (dropout off); (N, C)."""
    return torch.softmax(torch.from_numpy(logits(model, x, batch)) / temperature, -1).numpy()


def mc_dropout(model: nn.Module, x: torch.Tensor, passes: int, batch: int = 256,
               seed: int | None = None) -> np.ndarray:
    """``passes`` stochastic forward passes with dropout on and batch norm frozen
    (:func:`dropout_only`); returns the softmax outputs, (passes, N, C)."""
    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    if not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()):
        raise ValueError("the model has no dropout layer; MC dropout would repeat one output")
    if seed is not None:
        torch.manual_seed(seed)
    with dropout_only(model):
        return torch.stack([torch.softmax(_outputs(model, x, batch), -1)
                            for _ in range(passes)]).numpy()


def seeded_models(make, n: int, seed: int = 0) -> list[nn.Module]:
    """``n`` models from ``make()``, the i-th built right after ``torch.manual_seed(seed +
    i)``, so that every member of an ensemble starts from its own random initialisation."""
    models = []
    for i in range(n):
        torch.manual_seed(seed + i)
        models.append(make())
    return models


def ensemble(models, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Each member's eval-mode softmax outputs, (M, N, C)."""
    return np.stack([predict(m, x, batch) for m in models])


def fit_temperature(logits, labels, max_iter: int = 200) -> float:
    """The temperature T > 0 minimising the NLL of ``softmax(logits / T)`` on held-out
    data (Guo et al., 2017); ``logits`` (N, C), ``labels`` (N,). Optimises log T (LBFGS)."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


# ---------------------------------------------------------------- scores


def _check(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(probs, dtype=float), np.asarray(labels)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probabilities must be (N, C) and labels (N,); got {p.shape} and "
                         f"{y.shape}. Average sampled passes first (probs.mean(0)).")
    if not np.allclose(p.sum(1), 1, atol=1e-4) or p.min() < 0:
        raise ValueError("each row of probabilities must be non-negative and sum to 1; "
                         "apply a softmax to logits")
    return p, y.astype(int)


def nll(probs, labels, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood, -mean log p[n, y_n] (natural log)."""
    p, y = _check(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1))))


def brier(probs, labels) -> float:
    """Brier score in Brier's (1950) multi-class form, mean over n of sum over c of
    (p[n, c] - 1[y_n = c])^2; for two classes it is twice scikit-learn's binary score."""
    p, y = _check(probs, labels)
    return float(np.mean(np.sum((p - np.eye(p.shape[1])[y]) ** 2, axis=1)))


def reliability(probs, labels, bins: int = 10) -> dict[str, np.ndarray]:
    """Top-label reliability over ``bins`` equal-width confidence bins (right-closed,
    (0, 1/bins], ...): per bin the mean ``confidence``, the ``accuracy`` and the
    ``count`` (NaN where a bin is empty)."""
    p, y = _check(probs, labels)
    conf, correct = p.max(1), (p.argmax(1) == y).astype(float)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, bins) / count
        acc = np.bincount(idx, correct, bins) / count
    return {"confidence": mean_conf, "accuracy": acc, "count": count}


def ece(probs, labels, bins: int = 10) -> float:
    """Expected calibration error (Naeini et al., 2015; Guo et al., 2017): the
    count-weighted mean over confidence bins of |accuracy - mean confidence|."""
    r = reliability(probs, labels, bins)
    full = r["count"] > 0
    gap = np.abs(r["accuracy"][full] - r["confidence"][full])
    return float(np.sum(r["count"][full] * gap) / r["count"].sum())


def entropy(probs) -> np.ndarray:
    """Predictive entropy in nats, -sum_c p log p, of (N, C) probabilities; (N,)."""
    p = np.asarray(probs, dtype=float)
    return -np.sum(p * np.log(np.clip(p, 1e-12, 1)), axis=-1)


def mutual_information(samples) -> np.ndarray:
    """The part of the entropy due to disagreement between passes or members (BALD):
    H[mean_s p_s] - mean_s H[p_s], of (S, N, C) probabilities; (N,)."""
    s = np.asarray(samples, dtype=float)
    return entropy(s.mean(0)) - entropy(s).mean(0)


def accept_probs(probs, accepted) -> np.ndarray:
    """Accept/reject probabilities from a posterior over known speakers: ``probs``
    (..., K), ``accepted`` the indices of the accepted speakers among the K; returns
    (..., 2) with column 0 ``1 - P(accept)`` and column 1 ``P(accept) = sum_{k in accepted}
    p_k``."""
    p, idx = np.asarray(probs, dtype=float), np.asarray(accepted)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise ValueError(f"accepted must be a non-empty list of class indices, got {accepted!r}")
    if idx.min() < 0 or idx.max() >= p.shape[-1] or len(set(idx.tolist())) != idx.size:
        raise ValueError(f"accepted indices {idx.tolist()} must be distinct and in "
                         f"0..{p.shape[-1] - 1} (probabilities have {p.shape[-1]} classes)")
    a = np.clip(p[..., idx].sum(-1), 0.0, 1.0)  # float32 softmax sums may pass 1 by 1e-7
    return np.stack([1 - a, a], axis=-1)


def detection_auroc(known, unknown) -> float:
    """AUROC of a score for telling ``unknown`` inputs (positives) from ``known`` ones,
    scores (N_known,) and (N_unknown,), higher meaning "more likely unknown": the chance
    that a random unknown input scores above a random known one (ties count half;
    scikit-learn's ``roc_auc_score``). 0.5 is chance; below it the score is backwards."""
    from sklearn.metrics import roc_auc_score

    k, u = np.ravel(known), np.ravel(unknown)
    if not (len(k) and len(u)):
        raise ValueError(f"need scores of both groups, got {len(k)} known and {len(u)} unknown")
    return float(roc_auc_score(np.r_[np.zeros(len(k)), np.ones(len(u))], np.r_[k, u]))


def pooled(scores, recording, n: int) -> np.ndarray:
    """Scores of ``n`` consecutive chunks of one recording averaged: a decision made on a
    longer stretch of speech. ``scores`` (N,) in the chunks' order within each recording,
    ``recording`` (N,) which recording each chunk is from; every run of ``n`` consecutive
    chunks of a recording (sliding by one chunk) gives one mean: (M,). Recordings with
    fewer than ``n`` chunks give none."""
    s, r = np.asarray(scores, dtype=float), np.asarray(recording)
    if s.ndim != 1 or s.shape != r.shape:
        raise ValueError(f"scores and recording must both be (N,), got {s.shape} and {r.shape}")
    if n < 1:
        raise ValueError(f"n must be at least 1 chunk, got {n}")
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    if len(set(r[starts].tolist())) != len(starts):
        raise ValueError("the chunks of each recording must be consecutive in scores")
    out = [np.convolve(part, np.ones(n) / n, mode="valid")
           for part in np.split(s, starts[1:]) if len(part) >= n]
    if not out:
        raise ValueError(f"no recording has {n} chunks; use a smaller n")
    return np.concatenate(out)


def scores(probs, labels, bins: int = 10) -> dict[str, float]:
    """Accuracy, NLL, Brier score, ECE and the AUROC of the predictive entropy for
    telling errors from correct predictions (scikit-learn's ``roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    p, y = _check(probs, labels)
    wrong = p.argmax(1) != y
    auroc = roc_auc_score(wrong, entropy(p)) if 0 < wrong.sum() < len(y) else float("nan")
    return {"accuracy": float(np.mean(~wrong)), "nll": nll(p, y), "brier": brier(p, y),
            "ece": ece(p, y, bins), "error_auroc": float(auroc)}


# ---------------------------------------------------------------- parameter space


def layer_change(before: dict, after: dict) -> dict[str, float]:
    """Relative change ||w_after - w_before|| / ||w_before|| of every weight tensor of two
    ``state_dict``s (biases and batch-norm statistics left out), by parameter name."""
    out = {}
    for name, w0 in before.items():
        if name.endswith("weight") and w0.dim() > 1:
            w0, w1 = w0.double(), after[name].double()
            out[name] = float((w1 - w0).norm() / w0.norm())
    return out


def reinitialised(model: nn.Module, layer: str, state: dict | None = None) -> nn.Module:
    """A copy of ``model`` whose module ``layer`` (e.g. ``"fc1"``) is set back to its
    parameters in ``state`` (a ``state_dict`` of the same model, e.g. at initialisation),
    or, with ``state=None``, re-drawn at random (``reset_parameters``); Zhang, Bengio and
    Singer (2019), "Are all layers created equal?"."""
    import copy

    clone = copy.deepcopy(model)
    module = dict(clone.named_modules()).get(layer)
    if module is None or not list(module.parameters(recurse=False)):
        raise ValueError(f"{layer!r} is not a layer with parameters of this model")
    if state is None:
        module.reset_parameters()
    else:
        with torch.no_grad():
            for name, p in module.named_parameters(recurse=False):
                p.copy_(state[f"{layer}.{name}"])
    return clone
