import numpy as np

from labutils.data import mnist1d


def test_generated_offline_cached_and_global_rng_kept(tmp_path):
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    data = mnist1d.load(tmp_path, seed=42)
    assert np.random.rand() == expected_next
    assert data["x"].shape == (4000, 40) and data["x_test"].shape == (1000, 40)
    assert data["x"].dtype == np.float32 and data["y"].dtype == np.int64
    assert set(np.unique(data["y"])) == set(range(10))
    reference = make_dataset(get_dataset_args())  # the package's own defaults, seed 42
    np.testing.assert_allclose(data["x_test"], reference["x_test"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(data["y"], reference["y"])
    path = tmp_path / "mnist1d_seed42.npz"
    stamp = path.stat().st_mtime_ns
    mnist1d.load(tmp_path, seed=42)
    assert path.stat().st_mtime_ns == stamp
