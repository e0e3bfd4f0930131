"""Sleep-EDF Expanded (PhysioNet), Sleep Cassette study: the real loader and a generator
that writes nights in the same on-disk format.

Each night is two files in ``<root>/physionet-sleep-data/``: a PSG recording
``SC4ssNE0-PSG.edf`` (EEG Fpz-Cz, EEG Pz-Oz and EOG horizontal at 100 Hz; respiration,
submental EMG, rectal temperature and an event marker at 1 Hz) and an EDF+ hypnogram
``SC4ssNx-Hypnogram.edf`` whose annotations are "Sleep stage W/1/2/3/4/R/?" and "Movement
time", scored in 30 s epochs (Kemp et al., 2000). ``ss`` is the subject, ``N`` the night.

The real files are fetched with MNE's own fetcher (``mne.datasets.sleep_physionet.age``);
the generated ones are written under the same names into their own root, from which the
same fetcher returns them without a download, so both go through exactly the same code:
``fetch_data`` -> :func:`read_night` (``mne.io.read_raw_edf`` and
``mne.read_annotations``) -> epochs and stages.
"""

from __future__ import annotations

import csv
import datetime
import os
import pathlib
from dataclasses import dataclass

import numpy as np

from labutils.data.cache import DataUnavailableError, cache_dir, cached

EPOCH_SECONDS = 30.0
SFREQ = 100.0
CHANNELS = ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal")
SLOW_CHANNELS = ("Resp oro-nasal", "EMG submental", "Temp rectal", "Event marker")
STAGES = ("W", "N1", "N2", "N3", "R")
# The hypnogram's descriptions (Rechtschaffen & Kales) -> index into STAGES; stages 3 and 4
# merge into N3 (AASM). "Sleep stage ?" and "Movement time" are not stages: -1, dropped.
STAGE_OF = {
    "Sleep stage W": 0,
    "Sleep stage 1": 1,
    "Sleep stage 2": 2,
    "Sleep stage 3": 3,
    "Sleep stage 4": 3,
    "Sleep stage R": 4,
    "Sleep stage ?": -1,
    "Movement time": -1,
}
FOLDER = "physionet-sleep-data"
N_STAGES = len(STAGES)
OFFLINE_HINT = 'DATASET = "generated"'


@dataclass
class Night:
    """One night, cut into 30 s epochs: ``x`` (epochs, channels, 3000) float32 in
    microvolts, ``stages`` (epochs,) int64 in 0..4 (indices into :data:`STAGES`),
    ``start`` the index of the first kept epoch in the recording."""

    subject: int
    night: int
    x: np.ndarray
    stages: np.ndarray
    start: int
    channels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.stages)


# ------------------------------------------------------------------ the file list


def records() -> list[dict]:
    """The Sleep Cassette file list that MNE ships (subject, night, type, file name)."""
    import mne.datasets.sleep_physionet.age as age

    path = pathlib.Path(age.__file__).with_name("age_records.csv")
    with open(path, newline="") as f:
        return [{"subject": int(r["subject"]), "night": int(r["night"]),
                 "type": r["record type"], "fname": r["fname"]} for r in csv.DictReader(f)]


def file_names(subject: int, night: int) -> tuple[str, str]:
    """The real (PSG, hypnogram) file names of one night, e.g. (SC4001E0-PSG.edf,
    SC4001EC-Hypnogram.edf)."""
    found = {r["type"]: r["fname"] for r in records()
             if r["subject"] == subject and r["night"] == night}
    if set(found) != {"PSG", "Hypnogram"}:
        raise ValueError(f"Sleep-EDF has no night {night} of subject {subject}; subjects "
                         "are 0..82 (not 39, 68, 69, 78, 79), nights 1 and 2")
    return found["PSG"], found["Hypnogram"]


def available_subjects(night: int = 1) -> list[int]:
    """The subjects that have a recording of ``night``, in order."""
    return sorted({r["subject"] for r in records() if r["night"] == night})


# ------------------------------------------------------------- fetching the files


def fetch(subjects, nights=(1,), dataset: str = "generated", data_dir=None,
          **generator_options) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """(PSG, hypnogram) paths of ``subjects`` x ``nights``, through MNE's fetcher.

    ``dataset="real"`` downloads Sleep-EDF into ``<cache>/physionet-sleep-data`` (about
    50 MB a night; files already there are used as they are). ``"generated"`` writes the
    same files with :func:`generate` into ``<cache>/sleep-edf-generated-<key>`` once and
    returns them through the same fetcher; ``generator_options`` go to :func:`generate`.
    """
    from mne.datasets.sleep_physionet.age import fetch_data

    subjects, nights = [int(s) for s in subjects], [int(n) for n in nights]
    if dataset == "real":
        root = cache_dir(data_dir)
        try:
            paths = fetch_data(subjects, recording=nights, path=str(root), on_missing="raise",
                               verbose="error")
        except ValueError:  # MNE's own refusal of a subject or night: already clear
            raise
        except Exception as err:  # no network, a refused request, a bad checksum
            raise DataUnavailableError(
                f"Sleep-EDF could not be fetched from PhysioNet ({type(err).__name__}: "
                f"{err}). Without network, set {OFFLINE_HINT} in the parameters cell, or put "
                f"the files in {root / FOLDER}."
            ) from err
    elif dataset == "generated":
        key = _generator_key(subjects, nights, generator_options)
        root = cached(f"sleep-edf-generated-{key}",
                      lambda tmp: generate(tmp, subjects, nights, **generator_options),
                      data_dir)
        for s in subjects:  # the fetcher would download a missing file: refuse instead
            for n in nights:
                for name in file_names(s, n):
                    if not (root / FOLDER / name).is_file():
                        raise FileNotFoundError(
                            f"{root / FOLDER / name} is missing from the generated set; "
                            f"delete {root} to have it written again")
        paths = fetch_data(subjects, recording=nights, path=str(root), verbose="error")
    else:
        raise ValueError(f'dataset must be "real" or "generated", got {dataset!r}')
    return [(pathlib.Path(p), pathlib.Path(h)) for p, h in paths]


def _generator_key(subjects, nights, options) -> str:
    import hashlib

    text = repr((sorted(subjects), sorted(nights), sorted(options.items()), GENERATOR_VERSION))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ------------------------------------------------------------------- reading a night


def epoch_stages(onsets, durations, descriptions, n_epochs: int) -> np.ndarray:
    """Stage per 30 s epoch from hypnogram annotations (onsets and durations in s).

    Returns (n_epochs,) int64: 0..4 for W, N1, N2, N3 (stages 3 and 4), R; -1 where no
    stage is scored ("?", "Movement time", or not covered). Unknown descriptions raise.
    """
    stages = np.full(n_epochs, -1, dtype=np.int64)
    for onset, duration, text in zip(onsets, durations, descriptions, strict=True):
        if text not in STAGE_OF:
            raise ValueError(f"unknown hypnogram annotation {text!r}; expected one of "
                             f"{sorted(STAGE_OF)}")
        first = int(round(onset / EPOCH_SECONDS))
        count = int(round(duration / EPOCH_SECONDS))
        stages[max(first, 0):max(min(first + count, n_epochs), 0)] = STAGE_OF[text]
    return stages


def trim_wake(stages: np.ndarray, minutes: float = 30.0) -> slice:
    """The epochs to keep: from ``minutes`` of wake before the first sleep epoch to
    ``minutes`` after the last one, as usual for Sleep-EDF (recordings run for about a day).
    A night without sleep raises."""
    stages = np.asarray(stages)
    asleep = np.flatnonzero(stages > 0)
    if asleep.size == 0:
        raise ValueError("the hypnogram scores no sleep stage (only W, ? or movement)")
    margin = int(round(minutes * 60 / EPOCH_SECONDS))
    return slice(max(int(asleep[0]) - margin, 0), min(int(asleep[-1]) + 1 + margin, len(stages)))


def read_night(psg_path, hypnogram_path, channels=CHANNELS, wake_minutes: float = 30.0) -> Night:
    """Read one night with MNE: the ``channels`` of the PSG in microvolts, cut into 30 s
    epochs, labelled from the hypnogram, wake trimmed (:func:`trim_wake`) and unscored
    epochs dropped. A damaged file, a missing channel or another sampling rate raises
    ``ValueError`` naming the file."""
    import mne

    psg_path, hypnogram_path = pathlib.Path(psg_path), pathlib.Path(hypnogram_path)
    try:
        raw = mne.io.read_raw_edf(psg_path, include=list(channels), preload=True,
                                  verbose="error")
        annotations = mne.read_annotations(hypnogram_path)
    except Exception as err:
        raise ValueError(f"{psg_path.name} / {hypnogram_path.name} could not be read as "
                         f"EDF ({type(err).__name__}: {err}); the file is damaged or "
                         "incomplete: delete it and fetch it again") from err
    missing = [c for c in channels if c not in raw.ch_names]
    if missing:
        raise ValueError(f"{psg_path.name} has no channel {missing}; it has {raw.ch_names}")
    if raw.info["sfreq"] != SFREQ:
        raise ValueError(f"{psg_path.name} is sampled at {raw.info['sfreq']} Hz, not {SFREQ}")
    per_epoch = int(EPOCH_SECONDS * SFREQ)
    n_epochs = raw.n_times // per_epoch
    data = raw.get_data(picks=list(channels), units="uV")[:, : n_epochs * per_epoch]
    x = data.reshape(len(channels), n_epochs, per_epoch).transpose(1, 0, 2)
    stages = epoch_stages(annotations.onset, annotations.duration, annotations.description,
                          n_epochs)
    keep = trim_wake(stages, wake_minutes)
    x, stages = x[keep], stages[keep]
    scored = stages >= 0
    subject, night = int(psg_path.name[3:5]), int(psg_path.name[5])
    return Night(subject, night, x[scored].astype(np.float32), stages[scored], keep.start,
                 tuple(channels))


def load_nights(subjects, nights=(1,), dataset: str = "generated", data_dir=None,
                channels=CHANNELS, wake_minutes: float = 30.0, **generator_options) -> list[Night]:
    """Fetch (or generate) and read the nights of ``subjects``: one :class:`Night` each."""
    return [read_night(p, h, channels, wake_minutes)
            for p, h in fetch(subjects, nights, dataset, data_dir, **generator_options)]


def split_subjects(subjects, n_val: int, n_test: int, seed: int = 0):
    """Split subject ids (never epochs) into (train, val, test) lists, shuffled by ``seed``."""
    subjects = sorted(set(int(s) for s in subjects))
    if n_val < 0 or n_test < 0 or n_val + n_test >= len(subjects):
        raise ValueError(f"cannot hold out {n_val} + {n_test} of {len(subjects)} subjects "
                         "and keep one for training")
    order = np.random.default_rng(seed).permutation(subjects).tolist()
    test, val = order[:n_test], order[n_test:n_test + n_val]
    return sorted(order[n_test + n_val:]), sorted(val), sorted(test)


# ---------------------------------------------------------------------- the generator

GENERATOR_VERSION = 1  # part of the cache key: change it when the generated files change
_CYCLE_MINUTES = 90.0


def hypnogram(rng: np.random.Generator, sleep_hours: float, wake_before: float = 1.0,
              wake_after: float = 1.0, fragmentation: float = 1.0) -> np.ndarray:
    """A seeded hypnogram (epochs,) in 0..4: wake, then cycles of about 90 minutes
    (N1 -> N2 -> N3 -> N2 -> R; N3 long in the first cycles and gone in the last, REM
    short at first and long at the end), interrupted by a Markov chain of brief
    excursions (awakenings, N1, N2 <-> N3 and R <-> N1 switches) whose rate scales with
    ``fragmentation``, then wake. Hours of wake before and after as given."""
    per_min = 60 / EPOCH_SECONDS
    stages: list[int] = [0] * int(wake_before * 60 * per_min)
    stages += [0] * int(rng.uniform(5, 25) * per_min)  # sleep latency
    n_cycles = max(1, int(round(sleep_hours * 60 / _CYCLE_MINUTES)))
    for c in range(n_cycles):
        late = c / max(n_cycles - 1, 1)  # 0 in the first cycle, 1 in the last
        n3 = max(0.0, rng.normal(35 * (1 - late) ** 1.5, 5))
        rem = max(3.0, rng.normal(8 + 25 * late, 4))
        n1 = rng.uniform(1, 5)
        n2a = rng.uniform(10, 25)
        length = _CYCLE_MINUTES * rng.uniform(0.85, 1.15)
        n2b = max(5.0, length - n1 - n2a - n3 - rem)
        for stage, minutes in ((1, n1), (2, n2a), (3, n3), (2, n2b), (4, rem)):
            stages += [stage] * int(round(minutes * per_min))
    stages += [0] * int(wake_after * 60 * per_min)
    stages = np.array(stages, dtype=np.int64)
    return _excursions(rng, stages, fragmentation)


# A brief excursion from a stage (row) to another (column): relative odds.
_EXCURSION = np.array([
    # W    N1   N2   N3   R
    [0.0, 1.0, 0.1, 0.0, 0.0],   # from W
    [1.0, 0.0, 1.0, 0.0, 0.3],   # from N1
    [0.6, 0.8, 0.0, 0.8, 0.1],   # from N2
    [0.2, 0.1, 2.0, 0.0, 0.0],   # from N3
    [0.6, 1.0, 0.4, 0.0, 0.0],   # from R
])
_EXCURSION_RATE = np.array([0.0, 0.08, 0.025, 0.03, 0.02])  # per epoch, by stage


def _excursions(rng, stages: np.ndarray, fragmentation: float) -> np.ndarray:
    """Interrupt the bouts of ``stages`` with excursions of 1 to 6 epochs (geometric)."""
    out = stages.copy()
    sleep = np.flatnonzero(stages > 0)
    t = int(sleep[0]) + 2
    while t < sleep[-1]:
        here = int(stages[t])
        if rng.random() < fragmentation * _EXCURSION_RATE[here]:
            odds = _EXCURSION[here]
            to = int(rng.choice(5, p=odds / odds.sum()))
            length = min(int(rng.geometric(0.5)), 6)
            out[t:t + length] = to
            t += length + 2
        else:
            t += 1
    return out


def _band(rng, shape: tuple[int, int], low: float, high: float) -> np.ndarray:
    """Noise limited to [low, high] Hz, unit variance in every row: (epochs, samples)."""
    n = shape[1]
    f = np.fft.rfftfreq(n, 1 / SFREQ)
    inside = np.flatnonzero((f >= low) & (f <= high))
    spectrum = np.zeros((shape[0], f.size), dtype=complex)
    spectrum[:, inside] = (rng.standard_normal((shape[0], inside.size))
                           + 1j * rng.standard_normal((shape[0], inside.size)))
    x = np.fft.irfft(spectrum, n, axis=1)
    return x / (x.std(axis=1, keepdims=True) + 1e-12)


def _events(rng, out: np.ndarray, rates: np.ndarray, shape) -> None:
    """Add Poisson(rates[e]) events to each epoch (row) e of ``out`` (epochs, samples):
    ``shape(rng, t)`` draws one event's waveform on the local times ``t`` (s, centred on
    the event), rendered only within 2.5 s of its centre."""
    n = out.shape[1]
    half = int(2.5 * SFREQ)
    t_local = np.arange(-half, half + 1) / SFREQ
    for e, count in enumerate(rng.poisson(np.maximum(rates, 0))):
        for _ in range(count):
            c = int(rng.integers(0, n))
            a, b = max(c - half, 0), min(c + half + 1, n)
            out[e, a:b] += shape(rng, t_local)[a - (c - half):b - (c - half)]


def _spindle(f_range):
    def shape(rng, t):
        width = rng.uniform(0.5, 1.5) / 4
        return np.exp(-0.5 * (t / width) ** 2) * np.sin(2 * np.pi * rng.uniform(*f_range) * t
                                                        + rng.uniform(0, 6.3))
    return shape


def _k_complex(rng, t):
    """A sharp negative wave followed by a slower positive one (about 1 s)."""
    return -np.exp(-0.5 * (t / 0.12) ** 2) + 0.6 * np.exp(-0.5 * ((t - 0.45) / 0.25) ** 2)


def _sawtooth(rng, t):
    """A train of sharpened 2-5 Hz waves lasting 1-3 s (REM sawtooth waves)."""
    width = rng.uniform(1.0, 3.0) / 4
    wave = np.sin(2 * np.pi * rng.uniform(2.0, 5.0) * t + rng.uniform(0, 6.3))
    return np.exp(-0.5 * (t / width) ** 2) * np.sign(wave) * np.abs(wave) ** 0.5


def _eye_movement(seconds):
    def shape(rng, t):
        return rng.choice([-1.0, 1.0]) * np.exp(-0.5 * (t / seconds) ** 2)
    return shape


# Per stage W, N1, N2, N3, R: amplitudes in microvolts (before the subject's gain) and
# event rates per 30 s epoch. Each epoch draws its own depth around these values, so
# that neighbouring stages overlap as they do in scored data.
_PROFILE = {
    #               W     N1    N2    N3    R
    "alpha": (18.0, 5.0, 1.0, 0.0, 4.0),
    "theta": (2.0, 10.0, 6.0, 4.0, 10.0),
    "delta": (2.0, 6.0, 14.0, 45.0, 4.0),
    "spindle_rate": (0.0, 0.3, 3.0, 0.8, 0.0),
    "kc_rate": (0.0, 0.2, 1.2, 0.4, 0.0),
    "sawtooth_rate": (0.0, 0.2, 0.0, 0.0, 2.5),
    "blink_rate": (6.0, 0.5, 0.0, 0.0, 0.0),
    "sem": (5.0, 45.0, 8.0, 0.0, 5.0),           # slow eye movements (uV)
    "rem_rate": (2.0, 0.3, 0.0, 0.0, 6.0),       # rapid eye movements per epoch
    "muscle": (6.0, 3.0, 2.0, 2.0, 1.0),         # broadband EMG artefact on the EEG (uV)
    "emg": (8.0, 5.0, 4.0, 3.5, 1.0),            # submental EMG, the 1 Hz channel
}


def _render(rng, stages: np.ndarray, depth: np.ndarray, subject: dict) -> np.ndarray:
    """The three 100 Hz channels of epochs of the given stages: (3, epochs, 3000) in
    microvolts; ``depth`` (epochs,) scales each epoch's stage features."""
    E, n = len(stages), int(EPOCH_SECONDS * SFREQ)
    t = np.arange(n) / SFREQ

    def p(name):  # a profile row per epoch, times its depth: (epochs, 1)
        return (np.asarray(_PROFILE[name])[stages] * depth)[:, None]

    # alpha in eyes-closed episodes (W: on for a random part of the epoch, else always)
    on, off = rng.uniform(-10, 20, (E, 1)), rng.uniform(12, 45, (E, 1))
    closed = np.where((stages == 0)[:, None], (t > on) & (t < off), 1.0)
    alpha = p("alpha") * closed * np.sin(2 * np.pi * subject["alpha"] * t
                                         + rng.uniform(0, 6.3, (E, 1)))
    eeg = p("theta") * _band(rng, (E, n), 4.0, 7.5) + p("delta") * _band(rng, (E, n), 0.5, 2.0)
    events = np.zeros((E, n))
    _events(rng, events, p("spindle_rate")[:, 0], _spindle(subject["spindle"]))
    eeg += 22 * depth[:, None] * events
    events[:] = 0
    _events(rng, events, p("kc_rate")[:, 0], _k_complex)
    _events(rng, events, np.asarray(_PROFILE["sawtooth_rate"])[stages], _sawtooth)
    eeg += 70 * np.where((stages == 4)[:, None], 18 / 70, 1.0) * depth[:, None] * events
    eeg += np.asarray(_PROFILE["muscle"])[stages][:, None] * rng.standard_normal((E, n))
    eog = 0.4 * (eeg + alpha)  # frontal EEG leaks into the EOG
    events[:] = 0
    _events(rng, events, np.asarray(_PROFILE["blink_rate"])[stages], _eye_movement(0.08))
    eog += 150 * events
    eog += p("sem") * np.sin(2 * np.pi * rng.uniform(0.15, 0.4, (E, 1)) * t
                             + rng.uniform(0, 6.3, (E, 1)))
    events[:] = 0
    phasic = rng.random(E) < 0.75  # tonic REM epochs have no rapid eye movements
    _events(rng, events, p("rem_rate")[:, 0] * phasic, _eye_movement(0.15))
    eog += 90 * events
    return np.stack([eeg + alpha, eeg + 1.8 * alpha, eog])  # alpha is strongest posteriorly


def _pink(rng, n: int) -> np.ndarray:
    """Unit-variance noise with a 1/f power spectrum (n,)."""
    import scipy.fft

    m = scipy.fft.next_fast_len(n, real=True)
    spectrum = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    spectrum /= np.sqrt(np.maximum(np.arange(m // 2 + 1), 1))
    spectrum[0] = 0
    x = scipy.fft.irfft(spectrum, m)[:n]
    return x / x.std()


# How often a stage is mistaken for another by the scorers of real data (rows: the
# scored stage, columns: the stage whose features it borrows); the generator blends in
# the borrowed stage's features to make the stages overlap as they do in real epochs.
_CONFUSABLE = np.array([
    # W    N1   N2   N3   R
    [0.0, 0.7, 0.1, 0.0, 0.2],   # W
    [0.4, 0.0, 0.3, 0.0, 0.3],   # N1
    [0.05, 0.3, 0.0, 0.5, 0.15],  # N2
    [0.0, 0.0, 1.0, 0.0, 0.0],   # N3
    [0.2, 0.6, 0.2, 0.0, 0.0],   # R
])


def synthesize(rng: np.random.Generator, stages: np.ndarray, subject: dict,
               overlap: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Signals of a night from its hypnogram (epochs,): (3, epochs * 3000) at 100 Hz in
    microvolts for :data:`CHANNELS`, and (4, epochs * 30) at 1 Hz for
    :data:`SLOW_CHANNELS`.

    ``overlap`` in [0, 1] sets the difficulty: every epoch blends in the features of a
    confusable stage (W with N1, N2 with N3, R with N1, ...) with a weight drawn
    uniformly from [0, overlap]; the first epoch after a stage change blends in the
    previous stage instead. Each epoch's depth (the strength of its features) also
    varies by 30 %."""
    if not 0 <= overlap <= 1:
        raise ValueError(f"overlap must lie in [0, 1], got {overlap}")
    stages = np.asarray(stages)
    E = len(stages)
    depth = np.clip(rng.normal(1.0, 0.3, E), 0.3, 2.0)
    other = np.array([rng.choice(N_STAGES, p=_CONFUSABLE[s] / _CONFUSABLE[s].sum())
                      for s in stages])
    weight = rng.uniform(0, overlap, E)
    changed = np.flatnonzero(np.diff(stages)) + 1
    other[changed] = stages[changed - 1]
    weight[changed] = np.maximum(weight[changed], 0.4)
    own, borrowed = (_render(rng, s, depth, subject) for s in (stages, other))
    fast = (1 - weight[:, None]) * own + weight[:, None] * borrowed
    fast = fast.reshape(3, -1)
    for c in range(3):
        fast[c] = subject["gain"][c] * (fast[c] + subject["background"] * _pink(rng, fast.shape[1]))
    seconds = int(EPOCH_SECONDS)
    slow_t = np.arange(E * seconds)
    emg = np.repeat(np.asarray(_PROFILE["emg"])[stages], seconds)
    slow = np.stack([
        200 * np.sin(2 * np.pi * slow_t / 4.0),                     # breathing (a.u.)
        emg * subject["gain"][0] * (1 + 0.3 * rng.standard_normal(slow_t.size)),
        37.0 - 0.4 * np.sin(np.pi * slow_t / slow_t[-1]),           # degrees C
        np.zeros(slow_t.size),                                       # event marker
    ])
    return fast, slow


def generate(root, subjects, nights=(1,), sleep_hours: float = 7.5, wake_hours: float = 1.0,
             overlap: float = 0.5, fragmentation: float = 1.0, seed: int = 0) -> pathlib.Path:
    """Write generated nights as Sleep-EDF files into ``root/physionet-sleep-data``.

    Each subject gets its own gain per channel, alpha and spindle frequency and noise
    level; each night a hypnogram from :func:`hypnogram` with ``sleep_hours`` of sleep
    and ``wake_hours`` of wake before and after (real recordings hold many hours more),
    and signals from :func:`synthesize`. Seeded by (``seed``, subject, night).
    """
    import edfio

    folder = pathlib.Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for s in subjects:
        srng = np.random.default_rng([seed, int(s)])
        subject = {
            "gain": srng.uniform(0.6, 1.6) * srng.uniform(0.85, 1.15, 3),
            "alpha": srng.uniform(7.5, 11.0),
            "spindle": (lambda f: (f - 1.0, f + 1.0))(srng.uniform(12.0, 14.0)),
            "background": srng.uniform(5.0, 12.0),
        }
        for night in nights:
            rng = np.random.default_rng([seed, int(s), int(night)])
            stages = hypnogram(rng, sleep_hours, wake_hours, wake_hours, fragmentation)
            fast, slow = synthesize(rng, stages, subject, overlap)
            psg_name, hyp_name = file_names(int(s), int(night))
            _write_psg(edfio, folder / psg_name, fast, slow, int(s), night)
            _write_hypnogram(edfio, folder / hyp_name, stages, int(s), night)
    return folder


def _start(subject: int, night: int) -> tuple[datetime.date, datetime.time]:
    return datetime.date(1989, 4, 24) + datetime.timedelta(days=2 * subject + night), \
        datetime.time(22, 30)


def _write_psg(edfio, path: pathlib.Path, fast, slow, subject: int, night: int) -> None:
    date, time = _start(subject, night)
    signals = []
    for name, x in zip(CHANNELS, fast, strict=True):
        limit = float(np.ceil(np.abs(x).max() / 100) * 100)
        signals.append(edfio.EdfSignal(x, SFREQ, label=name, physical_dimension="uV",
                                       physical_range=(-limit, limit)))
    units = ("", "uV", "DegC", "")
    for name, x, unit in zip(SLOW_CHANNELS, slow, units, strict=True):
        low, high = float(x.min()) - 1, float(x.max()) + 1
        signals.append(edfio.EdfSignal(x, 1.0, label=name, physical_dimension=unit,
                                       physical_range=(low, high)))
    edf = edfio.Edf(signals, data_record_duration=EPOCH_SECONDS, starttime=time,
                    recording=edfio.Recording(startdate=date),
                    patient=edfio.Patient(name=f"Subject{subject:02d}"))
    edf.write(os.fspath(path))


def _write_hypnogram(edfio, path: pathlib.Path, stages: np.ndarray, subject: int,
                     night: int) -> None:
    """EDF+ with annotations only: one per bout, as in the real hypnograms, then a final
    "Sleep stage ?" as the real files end with."""
    names = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2", 4: "Sleep stage R"}
    annotations = []
    change = np.flatnonzero(np.diff(stages)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(stages)]])
    rng = np.random.default_rng([subject, night, 3])
    for a, b in zip(starts, ends, strict=True):
        stage = int(stages[a])
        # N3 was scored as R&K stage 3 or 4 (4: more than half the epoch in delta)
        text = names.get(stage) or ("Sleep stage 4" if rng.random() < 0.4 else "Sleep stage 3")
        annotations.append(edfio.EdfAnnotation(float(a * EPOCH_SECONDS),
                                               float((b - a) * EPOCH_SECONDS), text))
    annotations.append(edfio.EdfAnnotation(float(len(stages) * EPOCH_SECONDS), 1800.0,
                                           "Sleep stage ?"))
    date, time = _start(subject, night)
    edfio.Edf([], annotations=annotations, starttime=time,
              recording=edfio.Recording(startdate=date),
              patient=edfio.Patient(name=f"Subject{subject:02d}")).write(os.fspath(path))
