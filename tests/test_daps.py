"""The DAPS data: the generator writes the real layout and format, the loader reads it
and rejects damaged files, the split keeps recordings whole, the archive extraction is
safe, and the synthesizer's speakers behave as their parameters say."""

import hashlib
import io
import pathlib
import shutil
import tarfile

import librosa
import numpy as np
import pytest
import soundfile as sf

from labutils import audio
from labutils.data import ChecksumError, daps


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return daps.generate(3, seed=3, data_dir=tmp_path_factory.mktemp("daps"))


def test_generated_files_have_the_daps_names_layout_and_format(root):
    names = sorted(p.name for p in (root / "clean").iterdir())
    expected = sorted(f"{s}_script{k}_clean.wav" for s in [f"f{i}" for i in range(1, 11)]
                      + [f"m{i}" for i in range(1, 11)] for k in range(1, 6))
    assert names == expected and len(names) == 100
    info = sf.info(root / "clean" / "m10_script5_clean.wav")
    assert info.samplerate == 44100 and info.channels == 1 and info.subtype == "PCM_16"
    rate = daps.voices(3)["m10"].rate
    assert info.frames == round(round(3 * 4.25 / rate, 2) * 44100)


def test_generated_files_read_back(root):
    recs = daps.load(root, sr=16000, speakers=("f1", "m3"), scripts=(2,))
    assert [(r.speaker, r.script) for r in recs] == [("f1", 2), ("m3", 2)]
    raw, rate = sf.read(root / "clean" / "m3_script2_clean.wav", dtype="float32")
    assert rate == 44100
    reference = librosa.resample(raw, orig_sr=44100, target_sr=16000)
    np.testing.assert_allclose(recs[1].audio, reference, atol=1e-6)
    assert recs[1].audio.dtype == np.float32 and len(recs[1].audio) == len(reference)
    assert len(reference) == round(len(raw) * 16000 / 44100)
    peak = np.abs(raw).max()
    assert 10 ** (-12.5 / 20) < peak < 10 ** (-2.5 / 20)  # the reading level


def test_generation_is_seeded_and_cached(root, tmp_path):
    again = daps.generate(3, seed=3, data_dir=tmp_path)
    a = sf.read(root / "clean" / "f7_script1_clean.wav")[0]
    assert np.array_equal(a, sf.read(again / "clean" / "f7_script1_clean.wav")[0])
    stamp = (again / "clean" / "f7_script1_clean.wav").stat().st_mtime_ns
    assert daps.generate(3, seed=3, data_dir=tmp_path) == again
    assert (again / "clean" / "f7_script1_clean.wav").stat().st_mtime_ns == stamp


def test_a_damaged_wav_is_rejected_with_a_clear_message(root, tmp_path):
    bad = tmp_path / "clean"
    bad.mkdir()
    for p in (root / "clean").iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    victim = bad / "f4_script3_clean.wav"
    victim.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + b"\x00" * 40)
    with pytest.raises(ValueError, match="f4_script3_clean.wav is not a readable WAV.*Delete"):
        daps.load(tmp_path)
    (bad / "m2_script1_clean.wav").unlink()
    with pytest.raises(FileNotFoundError, match="missing.*m2_script1_clean.wav"):
        daps.load(tmp_path)


def test_split_keeps_every_recording_in_one_set_and_holds_out_unknown_speakers(root):
    recs = daps.load(root)
    sets = daps.split(recs, val_script=4, test_script=5, unknown=("f5", "m5"))
    keys = {name: {(r.speaker, r.script) for r in rs} for name, rs in sets.items()}
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not keys[a] & keys[b], (a, b)
    assert sum(len(v) for v in keys.values()) == 100
    assert {s for s, _ in keys["unknown"]} == {"f5", "m5"} and len(keys["unknown"]) == 10
    assert not {s for s, _ in keys["train"] | keys["val"] | keys["test"]} & {"f5", "m5"}
    assert {k for _, k in keys["test"]} == {5} and {k for _, k in keys["val"]} == {4}
    # chunks of the test set come only from test recordings
    c = daps.chunks(sets["test"], hop_seconds=0.5)
    assert set(zip(c.speaker, c.script, strict=True)) <= keys["test"]
    assert c.x.shape[1:] == (1, 64, 125)
    assert np.array_equal(c.label, np.isin(c.speaker, daps.ACCEPTED).astype(int))


def test_chunks_are_windows_of_the_recording_spectrogram():
    sr = 16000
    wave = np.sin(2 * np.pi * 440 * np.arange(5 * sr) / sr).astype(np.float32)
    rec = daps.Recording("f1", 1, wave)
    c = daps.chunks([rec], sr=sr, seconds=2.0, hop_seconds=1.0)
    spec = librosa.power_to_db(librosa.feature.melspectrogram(
        y=wave, sr=sr, n_fft=512, hop_length=256, n_mels=64), ref=1.0, amin=1e-10, top_db=None)
    assert len(c.x) == (spec.shape[1] - 125) // 62 + 1
    np.testing.assert_allclose(c.x[2, 0], spec[:, 124:249], atol=1e-3)
    assert c.start[2] == pytest.approx(124 * 256 / sr)
    cropped = daps.chunks([rec], sr=sr, crop=True, rng=0)
    assert np.all(cropped.start >= c.start) and np.any(cropped.start > c.start)


def _archive(path: pathlib.Path, members: dict[str, bytes]) -> pathlib.Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extraction_takes_only_the_clean_wavs(tmp_path):
    archive = _archive(tmp_path / "daps.tar.gz", {
        "daps/clean/f1_script1_clean.wav": b"wav1",
        "daps/produced/f1_script1_produced.wav": b"other",
        "daps/clean/readme.txt": b"text",
    })
    out = daps.extract_clean(archive, tmp_path / "out")
    files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")
                   if p.is_file())
    assert out == tmp_path / "out" / "daps"
    assert files == ["daps/clean/f1_script1_clean.wav"]


@pytest.mark.parametrize("name", ["daps/clean/../../../evil.wav", "daps/clean/../evil.wav",
                                  "daps/clean/../../../outside/evil.wav"])
def test_an_archive_with_a_path_outside_the_target_is_refused(tmp_path, name):
    archive = _archive(tmp_path / "bad.tar.gz", {"daps/clean/ok_clean.wav": b"ok", name: b"x"})
    with pytest.raises(ValueError, match="outside the target.*refused"):
        daps.extract_clean(archive, tmp_path / "out")
    assert not list(tmp_path.rglob("evil.wav"))
    assert not list(tmp_path.rglob("ok_clean.wav"))  # nothing at all was extracted


def test_a_symlink_member_is_refused(tmp_path):
    path = tmp_path / "link.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("daps/clean/f1_script1_clean.wav")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="not a plain file"):
        daps.extract_clean(path, tmp_path / "out")


def test_fetch_clean_checks_the_md5_and_extracts(tmp_path, monkeypatch):
    payload = _archive(tmp_path / "src.tar.gz", {"daps/clean/m1_script1_clean.wav": b"w"})
    data = payload.read_bytes()
    monkeypatch.setattr(daps, "MD5", hashlib.md5(data).hexdigest())

    def serve(url, output_file, pooch_obj, check_only=False):
        pathlib.Path(output_file).write_bytes(data)

    real_fetch = daps.fetch
    monkeypatch.setattr(daps, "fetch", lambda *a, **k: real_fetch(*a, **k, downloader=serve))
    root = daps.fetch_clean(tmp_path / "cache")
    assert (root / "clean" / "m1_script1_clean.wav").read_bytes() == b"w"
    monkeypatch.setattr(daps, "MD5", "0" * 32)
    (tmp_path / "cache" / "daps.tar.gz").unlink()
    shutil.rmtree(tmp_path / "cache" / "daps_extracted")
    with pytest.raises(ChecksumError, match="DAPS.*checksum md5:0+"):
        daps.fetch_clean(tmp_path / "cache")


def test_shimmer_perturbs_pulse_amplitudes_only():
    sr, n = 16000, 16000
    plain = audio.glottal_source(100.0, n, sr, jitter=0.0, rng=0)
    shaky = audio.glottal_source(100.0, n, sr, jitter=0.0, rng=0, shimmer=0.2)
    assert np.argmax(plain[:200]) == np.argmax(shaky[:200])  # same pulse times
    a = np.array([plain[i:i + 160].max() for i in range(0, n, 160)])
    b = np.array([shaky[i:i + 160].max() for i in range(0, n, 160)])
    assert np.std(a[2:]) < 1e-6 < np.std(b[2:] / a[2:])


def test_a_voice_reads_at_its_pitch_and_rate():
    sr = 16000
    voice = audio.Voice(f0=200.0, f0_range=0.0, tract=1.0, formant_shift=(0, 0, 0),
                        jitter=0.0, shimmer=0.0, breath=0.0, rate=4.0, pause=0.3)
    y = audio.read_script(voice, audio.script_syllables(50, 1), 4.0, sr, rng=0)
    assert y.shape == (4 * sr,) and np.abs(y).max() < 1.01
    f0, voiced, _ = librosa.pyin(y, fmin=80, fmax=400, sr=sr, frame_length=1024)
    assert np.nanmedian(f0[voiced]) == pytest.approx(200.0, rel=0.03)
    frames = y[: len(y) // 160 * 160].reshape(-1, 160)
    assert (np.abs(frames).max(1) < 0.01).mean() > 0.05  # pauses between phrases


def test_lookalikes_are_close_to_their_models():
    v = daps.voices(0)
    for twin, model in daps.LOOKALIKES.items():
        assert (twin in daps.ACCEPTED) != (model in daps.ACCEPTED)
        assert v[twin].f0 / v[model].f0 == pytest.approx(1.0, abs=0.051)
    women = [v[s].f0 for s in daps.SPEAKERS if s.startswith("f")]
    men = [v[s].f0 for s in daps.SPEAKERS if s.startswith("m")]
    assert min(women) > max(men)
