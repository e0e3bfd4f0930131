"""labutils.data.sleep_edf: generated nights read back with MNE under the real names,
stage mapping and wake trimming on hand-made hypnograms, split by subject, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from labutils.data import sleep_edf as se
from labutils.data.cache import DataUnavailableError

SMALL = dict(sleep_hours=1.5, wake_hours=0.5, seed=0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two generated nights (subjects 0 and 1) through the same fetcher as the real ones."""
    data_dir = tmp_path_factory.mktemp("sleep")
    return data_dir, se.fetch([0, 1], nights=[1], dataset="generated", data_dir=data_dir,
                              **SMALL)


def test_real_file_names_and_layout(generated):
    _, paths = generated
    names = [(p.name, h.name) for p, h in paths]
    # the names of the Sleep Cassette files as PhysioNet publishes them
    assert names == [("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf"),
                     ("SC4011E0-PSG.edf", "SC4011EH-Hypnogram.edf")]
    for p, h in paths:
        assert p.parent.name == h.parent.name == "physionet-sleep-data"


def test_psg_read_back_with_mne(generated):
    import mne

    _, paths = generated
    raw = mne.io.read_raw_edf(paths[0][0], verbose="error")
    assert raw.ch_names == [*se.CHANNELS, *se.SLOW_CHANNELS]
    raw_fast = mne.io.read_raw_edf(paths[0][0], include=list(se.CHANNELS), verbose="error")
    assert raw_fast.info["sfreq"] == 100.0
    assert raw_fast.n_times % 3000 == 0
    eeg = raw_fast.get_data(units="uV")
    assert 5 < np.std(eeg[0]) < 200  # microvolts, as in real EEG


def test_hypnogram_annotations_round_trip(generated):
    import mne

    _, paths = generated
    annotations = mne.read_annotations(paths[0][1])
    assert set(annotations.description) <= set(se.STAGE_OF)
    assert {"Sleep stage W", "Sleep stage 2", "Sleep stage R"} <= set(annotations.description)
    assert annotations.description[-1] == "Sleep stage ?"
    # the hypnogram drawn again from the same seed equals what MNE reads from the file
    expected = se.hypnogram(np.random.default_rng([0, 0, 1]), 1.5, 0.5, 0.5)
    read = se.epoch_stages(annotations.onset, annotations.duration, annotations.description,
                           len(expected))
    np.testing.assert_array_equal(read, expected)


def test_stages_have_their_textbook_spectra(generated):
    _, paths = generated
    night = se.read_night(*paths[0])

    def band(x, lo, hi):
        f, p = welch(x, fs=100, nperseg=256, axis=-1)
        return (p[..., (f >= lo) & (f < hi)].sum(-1) / p.sum(-1)).mean()

    fpz, pz = night.x[:, 0], night.x[:, 1]
    w, n2, n3, r = (night.stages == k for k in (0, 2, 3, 4))
    assert band(fpz[n3], 0.5, 4) > 1.3 * band(fpz[w], 0.5, 4)        # delta in N3
    assert band(pz[w], 8, 12) > 1.5 * band(pz[n3], 8, 12)           # alpha in W
    assert band(fpz[n2], 11, 16) > 1.2 * band(fpz[r], 11, 16)       # spindles in N2
    eye = night.x[:, 2].std(-1) / night.x[:, 0].std(-1)  # EOG beyond the EEG it picks up
    assert np.median(eye[r]) > 1.5 * np.median(eye[n3])            # rapid eye movements


def test_read_night_trims_wake_and_labels_epochs(generated):
    _, paths = generated
    night = se.read_night(*paths[0])
    assert night.x.shape == (len(night), 3, 3000) and night.x.dtype == np.float32
    assert night.subject == 0 and night.night == 1
    stages = night.stages
    asleep = np.flatnonzero(stages > 0)
    # 30 minutes (60 epochs) of wake kept on each side of sleep
    assert asleep[0] == 60 and len(stages) - 1 - asleep[-1] == 60
    assert set(np.unique(stages)) <= {0, 1, 2, 3, 4}


def test_generation_is_seeded_and_cached(tmp_path):
    a = se.fetch([0], dataset="generated", data_dir=tmp_path, **SMALL)
    mtime = a[0][0].stat().st_mtime_ns
    b = se.fetch([0], dataset="generated", data_dir=tmp_path, **SMALL)
    assert a == b and b[0][0].stat().st_mtime_ns == mtime    # the second call is free
    other = se.fetch([0], dataset="generated", data_dir=tmp_path / "x", **SMALL)
    assert a[0][0].read_bytes() == other[0][0].read_bytes()   # same seed, same bytes


def test_generated_fetch_never_downloads(tmp_path, monkeypatch):
    import pooch

    def no_network(*args, **kwargs):
        raise AssertionError("a generated night must not be downloaded")

    monkeypatch.setattr(pooch, "retrieve", no_network)
    assert len(se.fetch([0], dataset="generated", data_dir=tmp_path, **SMALL)) == 1


def test_real_fetch_offline_names_the_parameter(tmp_path, monkeypatch):
    import pooch

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(DataUnavailableError, match='DATASET = "generated"'):
        se.fetch([0], dataset="real", data_dir=tmp_path)
    assert not list(tmp_path.rglob("*.edf"))  # nothing half written


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(se, "synthesize", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        se.fetch([0], dataset="generated", data_dir=tmp_path, **SMALL)
    assert not list(tmp_path.rglob("*.edf")) and not list(tmp_path.glob("sleep-edf-*"))


def test_damaged_file_is_refused(generated, tmp_path):
    _, paths = generated
    psg, hyp = paths[0]
    broken = tmp_path / psg.name
    broken.write_bytes(psg.read_bytes()[:5000])  # a download cut short
    with pytest.raises(ValueError, match="damaged"):
        se.read_night(broken, hyp)
    with pytest.raises(ValueError, match="no channel"):
        se.read_night(psg, hyp, channels=("EEG Fpz-Cz", "EEG C3-A2"))


def test_stage_mapping_on_a_hand_made_hypnogram():
    onsets = [0, 60, 90, 150, 180, 240, 270]
    durations = [60, 30, 60, 30, 60, 30, 60]
    texts = ["Sleep stage W", "Sleep stage 1", "Sleep stage 3", "Sleep stage 4",
             "Movement time", "Sleep stage R", "Sleep stage ?"]
    stages = se.epoch_stages(onsets, durations, texts, 12)
    #                 W  W  N1 N3 N3 N3 MT MT R  ?  ?  (not covered)
    np.testing.assert_array_equal(stages, [0, 0, 1, 3, 3, 3, -1, -1, 4, -1, -1, -1])
    with pytest.raises(ValueError, match="unknown hypnogram annotation"):
        se.epoch_stages([0], [30], ["Sleep stage N2"], 1)


def test_trim_wake_keeps_thirty_minutes_each_side():
    stages = np.array([0] * 100 + [2, 2, 0, 3] + [0] * 100)
    assert se.trim_wake(stages) == slice(40, 164)
    assert se.trim_wake(stages, minutes=5) == slice(90, 114)
    short = np.array([0] * 10 + [4] + [0] * 3)   # less wake than the margin: keep it all
    assert se.trim_wake(short) == slice(0, 14)
    with pytest.raises(ValueError, match="no sleep"):
        se.trim_wake(np.array([0, 0, -1, 0]))


def test_split_by_subject():
    subjects = list(range(20))
    train, val, test = se.split_subjects(subjects, n_val=3, n_test=4, seed=1)
    assert (len(train), len(val), len(test)) == (13, 3, 4)
    assert sorted(train + val + test) == subjects
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert se.split_subjects(subjects, 3, 4, seed=1) == (train, val, test)
    with pytest.raises(ValueError, match="keep one for training"):
        se.split_subjects([1, 2, 3], n_val=1, n_test=2)


def test_unknown_night_and_dataset():
    with pytest.raises(ValueError, match="no night 2 of subject 13"):
        se.file_names(13, 2)
    with pytest.raises(ValueError, match="dataset must be"):
        se.fetch([0], dataset="edf")
