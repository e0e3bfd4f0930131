"""DAPS (Device and Produced Speech; Mysore, 2015), the clean studio set: 20 speakers
(``f1``..``f10``, ``m1``..``m10``) each reading the same five scripts, one WAV file per
reading, ``clean/{speaker}_script{k}_clean.wav``, at 44.1 kHz.

:func:`fetch_clean` downloads the archive (checksummed) and extracts only the clean set,
safely; :func:`generate` writes 20 synthetic speakers in exactly that layout and format;
:func:`load` reads either. :func:`split` assigns whole recordings to training, validation
and test (never chunks, so no part of a recording is in two sets) and holds some speakers
out entirely; :func:`chunks` cuts recordings into log-mel chunks.
"""

from __future__ import annotations

import os
import pathlib
import tarfile
from typing import NamedTuple

import numpy as np

from labutils.audio import Voice, log_mel, read_script, script_syllables
from labutils.data.cache import cache_dir, cached, fetch

SPEAKERS = tuple([f"f{i}" for i in range(1, 11)] + [f"m{i}" for i in range(1, 11)])
ACCEPTED = ("f1", "f7", "f8", "m3", "m6", "m8")
SCRIPTS = (1, 2, 3, 4, 5)
SAMPLE_RATE = 44100
URL = "https://zenodo.org/record/4660670/files/daps.tar.gz"
MD5 = "303c130b7ce2e02b59c7ca5cd595a89c"  # as published on the Zenodo record
CLEAN = "daps/clean/"


def file_name(speaker: str, script: int) -> str:
    """The DAPS name of one reading, e.g. ``f1_script3_clean.wav``."""
    return f"{speaker}_script{script}_clean.wav"


# ---------------------------------------------------------------- the real data set


def extract_clean(archive: str | os.PathLike, target: str | os.PathLike) -> pathlib.Path:
    """Extract the WAV files under ``daps/clean/`` of the DAPS archive into ``target`` and
    return ``target/daps``. Every member is checked first: a path that would land
    outside ``target/daps/clean/`` (absolute, or with ``..``), a link or a device refuses
    the whole archive; extraction then uses tarfile's ``data`` filter (Python 3.10.12+).
    Nothing else is extracted."""
    target = pathlib.Path(target).resolve()
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.startswith(CLEAN) and m.name.endswith(".wav")]
        for m in members:
            dest = (target / m.name).resolve()
            if not m.isfile() or not dest.is_relative_to(target / CLEAN):
                raise ValueError(
                    f"{archive}: member {m.name!r} is not a plain file inside {CLEAN} of "
                    "the target folder (it is a link, or its path leads outside the target); "
                    "the archive was refused and nothing was extracted. Download it again "
                    "from the DAPS record.")
        if not members:
            raise ValueError(f"{archive} holds no {CLEAN}*.wav; is it the DAPS archive?")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # 3.10.12+
        tar.extractall(target, members=members, **safe)
    return target / CLEAN.split("/")[0]


def fetch_clean(data_dir=None) -> pathlib.Path:
    """The folder that holds DAPS's ``clean/``: ``<cache>/daps`` if you put it there
    yourself, else the archive downloaded into the cache once (about 12 GB, MD5-checked)
    with its clean set extracted once, atomically, into ``<cache>/daps_extracted/daps``."""
    cache = cache_dir(data_dir)
    for root in (cache / "daps", cache / "daps_extracted" / "daps"):
        if (root / "clean").is_dir():
            return root
    archive = fetch("DAPS", URL, f"md5:{MD5}", data_dir=data_dir,
                    offline_hint="DATASET = 'generated'")
    folder = cached("daps_extracted", lambda path: extract_clean(archive, path), data_dir)
    return folder / "daps"


# ---------------------------------------------------------------- generated speakers

# Speakers that sound alike: the second of each pair is the first with a slightly
# different voice, and each pair straddles the accept/reject boundary.
LOOKALIKES = {"f2": "f1", "f9": "f8", "m4": "m3", "m9": "m8"}


def voices(seed: int = 0) -> dict[str, Voice]:
    """The 20 synthetic voices, by DAPS speaker name: women with F0 about 165-240 Hz and
    shorter vocal tracts, men about 95-150 Hz; the :data:`LOOKALIKES` differ from their
    model only a little (F0 by about 5 %, the formants by about 3 %)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in SPEAKERS:
        female = name.startswith("f")
        out[name] = Voice(
            f0=rng.uniform(165, 240) if female else rng.uniform(95, 150),
            f0_range=rng.uniform(0.08, 0.25),
            tract=rng.uniform(1.12, 1.22) if female else rng.uniform(0.95, 1.05),
            formant_shift=tuple(rng.uniform(-0.08, 0.08, 3)),
            jitter=rng.uniform(0.003, 0.02),
            shimmer=rng.uniform(0.02, 0.12),
            breath=rng.uniform(0.01, 0.08),
            rate=rng.uniform(3.0, 5.5),
            pause=rng.uniform(0.15, 0.5),
        )
    for twin, model in LOOKALIKES.items():
        v = out[model]
        out[twin] = v.__class__(
            f0=v.f0 * rng.choice([0.95, 1.05]), f0_range=v.f0_range,
            tract=v.tract * rng.choice([0.97, 1.03]),
            formant_shift=tuple(np.add(v.formant_shift, rng.uniform(-0.02, 0.02, 3))),
            jitter=v.jitter, shimmer=v.shimmer, breath=v.breath,
            rate=v.rate * rng.uniform(0.9, 1.1), pause=v.pause)
    return out


def reading_seconds(seconds: float, voice: Voice) -> float:
    """How long a reading lasts: ``seconds`` for a speaker of 4.25 syllables a second,
    longer for slower readers (the same script takes them more time), in whole frames of
    10 ms."""
    return round(seconds * 4.25 / voice.rate, 2)


def generate(seconds: float = 30.0, seed: int = 0, data_dir=None) -> pathlib.Path:
    """A folder in the layout of DAPS, ``clean/{speaker}_script{k}_clean.wav`` for the 20
    speakers and 5 scripts, 16-bit PCM WAV at 44.1 kHz, each reading about ``seconds`` long
    (:func:`reading_seconds`: slow readers take longer), at a level that varies by speaker
    and recording. Written once into the cache
    (atomically) and reused; the same arguments always give the same files."""
    import soundfile as sf

    if seconds < 3:
        raise ValueError(f"seconds must be at least 3, so that even the fastest reader's "
                         f"reading holds a 2 s chunk; got {seconds}")

    def write(path: pathlib.Path) -> None:
        (path / "clean").mkdir(parents=True)
        rng = np.random.default_rng(seed)
        scripts = {k: script_syllables(400, seed * 100 + k) for k in SCRIPTS}
        for name, voice in voices(seed).items():
            for k in SCRIPTS:
                y = read_script(voice, scripts[k], reading_seconds(seconds, voice),
                                SAMPLE_RATE, rng)
                y *= 10 ** (rng.uniform(-12, -3) / 20)  # reading level: -12 to -3 dBFS peak
                sf.write(path / "clean" / file_name(name, k), y, SAMPLE_RATE, subtype="PCM_16")

    return cached(f"daps_generated_{seconds:g}s_seed{seed}", write, data_dir)


# ---------------------------------------------------------------- loading and splitting


class Recording(NamedTuple):
    """One reading: ``speaker`` (e.g. ``"f1"``), ``script`` (1-5) and ``audio`` (N,) at
    the loader's sampling rate, float32."""

    speaker: str
    script: int
    audio: np.ndarray


def read_wav(path: str | os.PathLike, sr: int | None = None) -> np.ndarray:
    """One mono WAV file as float32 (N,), resampled to ``sr`` (librosa) if given. A file
    that is not a readable WAV raises ValueError naming it."""
    import soundfile as sf

    path = pathlib.Path(path)
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ValueError(
            f"{path} is not a readable WAV file ({err}); it may be truncated or damaged. "
            "Delete it and fetch or generate the data again.") from err
    if audio.shape[0] == 0:
        raise ValueError(f"{path} holds no samples; delete it and fetch or generate again")
    audio = audio.mean(axis=1)
    if sr is not None and sr != rate:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=sr)
    return audio.astype(np.float32)


def load(root: str | os.PathLike, sr: int = 16000, speakers=SPEAKERS,
         scripts=SCRIPTS) -> list[Recording]:
    """Read ``root/clean/{speaker}_script{k}_clean.wav`` for the given speakers and
    scripts, resampled to ``sr``. Missing files are named in the error."""
    clean = pathlib.Path(root) / "clean"
    paths = {(s, k): clean / file_name(s, k) for s in speakers for k in scripts}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} DAPS file(s) missing in {clean}, e.g. {', '.join(missing[:3])}. "
            "Point DATA_DIR at the folder that holds clean/, or use DATASET = 'generated'.")
    return [Recording(s, k, read_wav(p, sr)) for (s, k), p in paths.items()]


def split(recordings: list[Recording], val_script: int = 4, test_script: int = 5,
          unknown=("f5", "m5")) -> dict[str, list[Recording]]:
    """Whole recordings into sets: ``train`` (known speakers, the other scripts), ``val``
    (``val_script``), ``test`` (``test_script``) and ``unknown`` (every recording of the
    ``unknown`` speakers, who are never trained on)."""
    if val_script == test_script:
        raise ValueError("the validation and test scripts must differ")
    out = {"train": [], "val": [], "test": [], "unknown": []}
    for r in recordings:
        if r.speaker in unknown:
            out["unknown"].append(r)
        elif r.script == val_script:
            out["val"].append(r)
        elif r.script == test_script:
            out["test"].append(r)
        else:
            out["train"].append(r)
    return out


class Chunks(NamedTuple):
    """Log-mel chunks: ``x`` (N, 1, n_mels, frames) float32, ``label`` (N,) 1 for an
    accepted speaker, ``speaker`` (N,) names, ``script`` (N,) and ``start`` (N,) seconds."""

    x: np.ndarray
    label: np.ndarray
    speaker: np.ndarray
    script: np.ndarray
    start: np.ndarray


def chunks(recordings: list[Recording], sr: int = 16000, seconds: float = 2.0,
           hop_seconds: float = 1.0, n_mels: int = 64, hop: int = 256, transform=None,
           crop: bool = False, rng=None, accepted=ACCEPTED) -> Chunks:
    """Cut each recording's log-mel spectrogram (:func:`labutils.audio.log_mel`, ``hop``
    samples a frame) into windows of ``seconds`` every ``hop_seconds``. With ``crop`` each
    window starts at a random frame within its hop (random cropping); ``transform(wave,
    rng)`` (optional) changes each recording first (augmentation). Label 1 marks a speaker
    in ``accepted``."""
    rng = np.random.default_rng(rng)
    frames, step = int(seconds * sr / hop), max(1, int(hop_seconds * sr / hop))
    rows = []
    for r in recordings:
        wave = r.audio if transform is None else transform(r.audio, rng)
        spec = log_mel(wave, sr, n_mels, hop=hop)
        for s in range(0, spec.shape[1] - frames + 1, step):
            if crop:
                s = min(s + int(rng.integers(step)), spec.shape[1] - frames)
            rows.append((spec[None, :, s:s + frames], int(r.speaker in accepted), r.speaker,
                         r.script, s * hop / sr))
    if not rows:
        raise ValueError(f"no recording is {seconds} s long; nothing to cut")
    x, label, speaker, script, start = zip(*rows, strict=True)
    return Chunks(np.stack(x), np.array(label), np.array(speaker), np.array(script),
                  np.array(start))
