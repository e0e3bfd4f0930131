"""Sleep staging: band-power features for the baseline, per-recording normalisation,
windows of consecutive epochs, an epoch encoder with a sequence model on top, trained
framewise (cross-entropy per epoch) or with CTC on the window's stage sequence, and the
metrics that compare them (per-epoch scores and the sequence of stage transitions).

Shapes: ``E`` epochs of a night, ``C`` channels, ``S`` = 3000 samples per 30 s epoch at
100 Hz, ``N`` windows in a batch, ``L`` epochs per window, ``K`` classes. Stages are
0..4 (W, N1, N2, N3, R); for CTC, stage k is label k + 1 and 0 is the blank.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from labutils import ctc

N_STAGES = 5
BLANK = 0
# The bands of MNE's sleep-staging tutorial (Hz).
BANDS = {"delta": (0.5, 4.5), "theta": (4.5, 8.5), "alpha": (8.5, 11.5),
         "sigma": (11.5, 15.5), "beta": (15.5, 30.0)}


# ---------------------------------------------------------------------- features


def band_powers(x: np.ndarray, sfreq: float = 100.0, bands=BANDS) -> np.ndarray:
    """Relative power in each band: x (E, C, S) -> (E, C * len(bands)).

    Welch's method (256-sample segments), each spectrum divided by its total power, then
    averaged over the frequencies of each band, as in MNE's sleep-staging tutorial.
    """
    from scipy.signal import welch

    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"band_powers needs epochs of shape (E, C, S), got {x.shape}")
    f, psd = welch(x, fs=sfreq, nperseg=min(256, x.shape[-1]), axis=-1)
    psd = psd / psd.sum(-1, keepdims=True)
    feats = [psd[..., (f >= lo) & (f < hi)].mean(-1) for lo, hi in bands.values()]
    return np.stack(feats, -1).reshape(len(x), -1)


def normalize_night(x: np.ndarray) -> np.ndarray:
    """Per-recording normalisation: each channel of a night (E, C, S) to zero median and
    unit interquartile range / 1.349 (a robust standard deviation), over the whole night."""
    x = np.asarray(x, dtype=np.float32)
    flat = x.transpose(1, 0, 2).reshape(x.shape[1], -1)
    q25, q50, q75 = np.percentile(flat, [25, 50, 75], axis=1)
    scale = (q75 - q25) / 1.349
    if np.any(scale <= 0):
        raise ValueError("a channel is constant over the night; it cannot be normalised")
    return ((x - q50[None, :, None]) / scale[None, :, None]).astype(np.float32)


# ----------------------------------------------------------------------- windows


class Windows(torch.utils.data.Dataset):
    """Windows of ``length`` consecutive epochs of each night, starting every ``stride``.

    ``nights``: a list of (x (E, ...), stages (E,)), x the raw epochs (E, C, S) or their
    features (E, F). Item i is (x (L, ...) float32, stages (L,) long). Windows never cross
    from one night into another.
    """

    def __init__(self, nights, length: int, stride: int):
        if length < 1 or stride < 1:
            raise ValueError(f"length and stride must be positive, got {length}, {stride}")
        self.nights = [(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y).long())
                       for x, y in nights]
        self.index = [(n, s) for n, (_, y) in enumerate(self.nights)
                      for s in range(0, len(y) - length + 1, stride)]
        if not self.index:
            raise ValueError(f"no night has {length} epochs; use a shorter window")
        self.length = length

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        n, s = self.index[i]
        x, y = self.nights[n]
        return x[s:s + self.length], y[s:s + self.length]


def stage_sequence(stages) -> list[int]:
    """The stages of a hypnogram with repeats merged ([2, 2, 3, 3, 2] -> [2, 3, 2])."""
    return [int(k) for k, _ in itertools.groupby(np.asarray(stages).tolist())]


def transitions(stages) -> int:
    """The number of stage changes in a hypnogram (E,)."""
    return max(len(stage_sequence(stages)) - 1, 0)


def bout_lengths(stages) -> np.ndarray:
    """The length in epochs of the bout (run of one stage) each epoch belongs to:
    hypnogram (E,) -> (E,); [2, 2, 3, 2, 2, 2] -> [2, 2, 1, 3, 3, 3]."""
    y = np.asarray(stages)
    if y.ndim != 1:
        raise ValueError(f"a hypnogram is one stage per epoch, shape (E,), got {y.shape}")
    runs = [len(list(g)) for _, g in itertools.groupby(y.tolist())]
    return np.repeat(runs, runs).astype(np.int64)


def merge_short_bouts(stages, max_length: int) -> np.ndarray:
    """The hypnogram (E,) with every bout of at most ``max_length`` epochs given the stage
    of the epoch before it (the first epoch keeps its own): what a scorer blind to
    excursions of that length would write. [2, 2, 3, 2, 2, 0, 1, 1] with 1 -> [2, 2, 2,
    2, 2, 2, 1, 1]."""
    out = np.array(stages, copy=True)
    if out.ndim != 1 or max_length < 0:
        raise ValueError(f"need a hypnogram (E,) and max_length >= 0, "
                         f"got {out.shape} and {max_length}")
    lengths = bout_lengths(out)
    for t in range(1, len(out)):
        if lengths[t] <= max_length:
            out[t] = out[t - 1]
    return out


def ctc_targets(stages) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC targets of windows: stages (N, L) -> (targets (N, S_max) padded with the blank,
    target_lengths (N,)). The target of a window is its stage sequence, each stage k as
    label k + 1."""
    sequences = [[k + 1 for k in stage_sequence(y)] for y in stages]
    lengths = torch.tensor([len(s) for s in sequences])
    targets = torch.full((len(sequences), int(lengths.max())), BLANK, dtype=torch.long)
    for i, s in enumerate(sequences):
        targets[i, :len(s)] = torch.tensor(s)
    return targets, lengths


def ctc_batch(batch):
    """A ``collate_fn`` for CTC: items (x, stages) -> (x (N, L, C, S), targets (N, S_max),
    target_lengths (N,)), the batches of ``ctc.ctc_step`` (targets as :func:`ctc_targets`)."""
    x = torch.stack([item[0] for item in batch])
    return (x, *ctc_targets([item[1] for item in batch]))


# ------------------------------------------------------------------------ models


class EpochEncoder(nn.Module):
    """A small CNN on the raw epoch, in the spirit of DeepSleepNet / TinySleepNet:
    (N, C, S) -> (N, features). A wide first convolution (0.5 s, stride 60 ms), then
    three narrow ones, max pooling, and the mean over time."""

    def __init__(self, channels: int = 3, width: int = 32, features: int = 64,
                 dropout: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, width, 50, stride=6), nn.BatchNorm1d(width), nn.ReLU(),
            nn.MaxPool1d(8), nn.Dropout(dropout),
            nn.Conv1d(width, width, 8, padding=4), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, width, 8, padding=4), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, features, 8, padding=4), nn.BatchNorm1d(features), nn.ReLU(),
            nn.MaxPool1d(4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(-1)


class SleepStager(nn.Module):
    """Epoch encoder + a one-layer bidirectional LSTM over consecutive epochs + a linear
    read-out per epoch: (N, L, C, S) -> logits (N, L, classes). ``classes`` = 5 for
    framewise training, 6 (blank + 5 stages) for CTC."""

    def __init__(self, classes: int, channels: int = 3, width: int = 32, features: int = 64,
                 hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.encoder = EpochEncoder(channels, width, features, dropout)
        self.lstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length = x.shape[:2]
        z = self.encoder(x.reshape(n * length, *x.shape[2:])).reshape(n, length, -1)
        return self.head(self.drop(self.lstm(z)[0]))


def framewise_loss(logits: torch.Tensor, stages: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every epoch of every window: logits (N, L, K),
    stages (N, L)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), stages.reshape(-1))


def framewise_accuracy(logits: torch.Tensor, stages: torch.Tensor) -> float:
    """The fraction of epochs whose most probable stage is right (a metric for lu.fit)."""
    return (logits.argmax(-1) == stages).float().mean().item()


@torch.no_grad()
def night_log_probs(model: nn.Module, x, window: int | None, device=None) -> torch.Tensor:
    """Log-probabilities (E, K) for a whole night x (E, C, S), from consecutive
    non-overlapping windows of ``window`` epochs (the last one shorter), the length the
    model was trained on, or with ``window=None`` from one pass over the whole night."""
    model.eval()
    device = device or next(model.parameters()).device
    x = torch.as_tensor(x, dtype=torch.float32)
    window = window or len(x)
    return torch.cat([model(x[None, i:i + window].to(device))[0].log_softmax(-1).cpu()
                      for i in range(0, len(x), window)])


@torch.no_grad()
def epoch_features(encoder: nn.Module, x, device=None, batch: int = 256) -> torch.Tensor:
    """The features of every epoch of a night, x (E, C, S) -> (E, F), from a trained epoch
    encoder in evaluation mode (frozen: computed once, without gradients)."""
    encoder.eval()
    device = device or next(encoder.parameters()).device
    x = torch.as_tensor(x, dtype=torch.float32)
    return torch.cat([encoder(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


class JointStager(nn.Module):
    """A one-layer BiLSTM over epoch features with two read-outs, for multi-task training
    (CTC + cross-entropy): z (N, L, F) -> (stage logits (N, L, 5), CTC logits (N, L, 6),
    blank first). Both read-outs share the BiLSTM, so the framewise loss keeps its states
    aligned with the epochs while the CTC read-out learns to mark where stages begin."""

    def __init__(self, features: int = 64, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.frame_head = nn.Linear(2 * hidden, N_STAGES)
        self.ctc_head = ctc.he_init(nn.Linear(2 * hidden, N_STAGES + 1))

    @classmethod
    def from_stager(cls, stager: SleepStager) -> JointStager:
        """A JointStager that starts from a trained framewise :class:`SleepStager`: its
        BiLSTM and read-out are copied; the CTC read-out is new (He initialisation)."""
        lstm, head = stager.lstm, stager.head
        if head.out_features != N_STAGES:
            raise ValueError(f"start from a framewise stager ({N_STAGES} classes), "
                             f"not one with {head.out_features}")
        model = cls(lstm.input_size, lstm.hidden_size, stager.drop.p)
        model.lstm.load_state_dict(lstm.state_dict())
        model.frame_head.load_state_dict(head.state_dict())
        return model

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.drop(self.lstm(z)[0])
        return self.frame_head(h), self.ctc_head(h)


def joint_step(frame_weight: float, loss=ctc.ctc_loss):
    """A ``step`` for ``lu.fit`` on batches (z (N, L, F), stages (N, L)) of a
    :class:`JointStager`: the loss is (1 - w) L_CTC + w L_CE with w = ``frame_weight``
    (L_CTC per target label, as ``ctc.ctc_loss``'s "mean"; L_CE per epoch). ``out`` and
    ``target`` are those of ``ctc.ctc_step``, so ``ctc.greedy_cer`` works as a metric."""
    if not 0.0 <= frame_weight <= 1.0:
        raise ValueError(f"frame_weight must be in [0, 1], got {frame_weight}")

    def step(model, batch):
        z, stages = batch
        frame_logits, ctc_logits = model(z)
        targets, target_lengths = ctc_targets(stages.cpu())
        targets, target_lengths = targets.to(z.device), target_lengths.to(z.device)
        log_probs = ctc_logits.log_softmax(-1).transpose(0, 1)
        input_lengths = torch.full((len(z),), log_probs.shape[0], dtype=torch.long,
                                   device=z.device)
        value = (1 - frame_weight) * loss(log_probs, targets, input_lengths, target_lengths,
                                          blank=BLANK)
        if frame_weight > 0:
            value = value + frame_weight * framewise_loss(frame_logits, stages)
        return value, (log_probs, input_lengths), (targets, target_lengths)

    return step


@torch.no_grad()
def joint_night_log_probs(model: JointStager, z, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both read-outs of a :class:`JointStager` over a whole night of features z (E, F) in
    one pass (no windows to stitch): (stage log-probabilities (E, 5), CTC (E, 6))."""
    model.eval()
    device = device or next(model.parameters()).device
    frame, ctc_logits = model(torch.as_tensor(z, dtype=torch.float32)[None].to(device))
    return frame[0].log_softmax(-1).cpu(), ctc_logits[0].log_softmax(-1).cpu()


def ctc_stage_sequence(log_probs: torch.Tensor, blank_penalty: float = 0.0) -> list[int]:
    """Greedy CTC decoding of a night's (E, 6) log-probabilities into stages 0..4.

    ``blank_penalty`` is subtracted from the blank's log-probability first (0: plain
    greedy decoding), so that a stage is emitted wherever its probability comes within a
    factor exp(blank_penalty) of the blank's; choose it on validation nights
    (:func:`tune_blank_penalty`)."""
    lp = log_probs.clone()
    lp[:, BLANK] -= blank_penalty
    return [k - 1 for k in ctc.greedy_decode(lp)[0][0]]


def tune_blank_penalty(log_probs, true_nights, penalties) -> tuple[float, list[float]]:
    """The blank penalty with the lowest sequence CER on (validation) nights: log_probs
    (E, 6) and hypnograms (E,) per night. Returns (best penalty, CER for each penalty)."""
    refs = [stage_sequence(y) for y in true_nights]
    cers = [ctc.corpus_cer(refs, [stage_sequence(ctc_stage_sequence(lp, p)) for lp in log_probs])
            for p in penalties]
    return float(penalties[int(np.argmin(cers))]), cers


def ctc_framewise(log_probs: torch.Tensor) -> np.ndarray:
    """A per-epoch reading of CTC outputs (E, 6): the most probable stage, blank ignored."""
    return (log_probs[:, 1:].argmax(-1)).numpy()


# ----------------------------------------------------------------------- metrics


def epoch_scores(y_true, y_pred) -> dict[str, float]:
    """Per-epoch accuracy, macro-F1 (over the stages that occur in either) and Cohen's
    kappa, computed by scikit-learn."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape} true stages but {y_pred.shape} predictions")
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "kappa": float(cohen_kappa_score(y_true, y_pred))}


def sequence_scores(true_nights, predicted_sequences) -> dict[str, float]:
    """How well the stage sequences of nights are recovered.

    ``true_nights``: hypnograms (E,) per night; ``predicted_sequences``: a predicted stage
    sequence per night (repeats already merged, or a per-epoch prediction, which is
    merged here). Returns the corpus CER of the sequences and the mean absolute error in
    the number of transitions per night, with the true mean count beside it.
    """
    refs = [stage_sequence(y) for y in true_nights]
    hyps = [stage_sequence(p) for p in predicted_sequences]
    errors = [abs((len(h) - 1) - (len(r) - 1)) for r, h in zip(refs, hyps, strict=True)]
    return {"cer": ctc.corpus_cer(refs, hyps),
            "transition_error": float(np.mean(errors)),
            "true_transitions": float(np.mean([len(r) - 1 for r in refs]))}
