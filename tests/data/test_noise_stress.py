"""NST records: the nst protocol, its SNR definition, reproducible from a seed."""

import numpy as np
import pytest

from edge_ecg.data import noise_stress as ns


def test_protocol_blocks_alternate_after_five_minutes():
    fs = 360.0
    blocks = ns.noise_blocks(int(1805 * fs), fs)               # a 30-min MIT-BIH record
    assert blocks[0, 0] == 300 * 360 and blocks[0, 1] == 420 * 360
    assert np.all(np.diff(blocks[:, 0]) == 240 * 360)           # 2 min noisy, 2 min clean
    assert blocks[-1, 1] <= int(1805 * fs) and len(blocks) == 7
    assert ns.noise_blocks(int(200 * fs), fs).shape == (0, 2)   # shorter than the learning


def test_snr_definition_on_a_synthetic_signal():
    fs = 250.0
    rng = np.random.default_rng(0)
    beats = np.arange(100, 60_000, 200)
    x = np.zeros(60_000)
    x[beats] = 2.0                                              # 2 mV peak-to-peak spikes
    assert ns.qrs_amplitude(x, beats, fs) == pytest.approx(2.0)
    noise = rng.standard_normal(60_000) * 0.3 + 5.0             # the mean is removed
    assert ns.noise_rms(noise, fs) == pytest.approx(0.3, rel=0.02)
    # an outlier second is trimmed away (sigamp's 5 % trimmed mean)
    noise[:250] *= 100
    assert ns.noise_rms(noise, fs) == pytest.approx(0.3, rel=0.05)


def test_added_noise_is_continuous_and_only_in_blocks():
    n = 10_000
    blocks = np.array([[2000, 4000], [6000, 8000]])
    noise = np.linspace(0.0, 50.0, n) + np.sin(np.arange(n))
    added = ns._add_blocks(np.zeros(n), noise, 0.5, blocks)
    assert np.all(added[:2000] == 0.0)
    assert np.max(np.abs(np.diff(added))) < 1.0                 # no step at any boundary
    assert np.all(added[4000:6000] == added[3999])              # level held between blocks
    assert np.ptp(added[2000:4000]) > 5.0


@pytest.mark.needs_data("mitdb/118", "nstdb/bw", "nstdb/ma")
def test_nst_records_reproducible_and_calibrated(shared_data):
    clean = shared_data / "mitdb" / "118"
    a = ns.make_noise_stress(clean, shared_data / "nstdb", 6.0, seed=3, channels=[0])
    b = ns.make_noise_stress(clean, shared_data / "nstdb", 6.0, seed=3, channels=[0])
    c = ns.make_noise_stress(clean, shared_data / "nstdb", 6.0, seed=4, channels=[0])
    assert np.array_equal(a.signal, b.signal) and a.name == b.name
    assert not np.array_equal(a.signal, c.signal)               # the seed moves the noise
    from edge_ecg.data.records import read_record

    x = read_record(clean, channels=[0]).signal[:, 0].astype(np.float64)
    added = a.signal[:, 0].astype(np.float64) - x
    first = int(a.noisy[0, 0])
    assert np.max(np.abs(added[:first])) < 1e-5                 # five clean minutes
    in_blocks = np.concatenate([added[s:e] for s, e in a.noisy])
    s_power = ns.qrs_amplitude(x, a.ref, a.fs_hz) ** 2 / 8.0
    snr = 10 * np.log10(s_power / ns.noise_rms(in_blocks, a.fs_hz) ** 2)
    assert snr == pytest.approx(6.0, abs=0.1)
    assert a.in_noise(np.array([first - 1, first, int(a.noisy[0, 1])])).tolist() == [
        False, True, False]
