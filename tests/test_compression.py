import numpy as np
import pytest
import torch
from torch import nn

from labutils import compression as C


def _low_rank_plus_noise(n_out, n_in, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_out, n_in, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("shape", [(30, 20), (20, 30), (64, 64)])
@pytest.mark.parametrize("rank", [1, 3, 10])
def test_factorize_error_is_the_tail_of_the_spectrum(shape, rank):
    # Eckart-Young: the best rank-r approximation leaves exactly the tail singular values,
    # ||W - W_r||_F^2 = sum_{i>r} s_i^2 and ||W - W_r||_2 = s_{r+1}.
    layer = nn.Linear(shape[1], shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(_low_rank_plus_noise(*shape, seed=rank))
    s = np.linalg.svd(layer.weight.detach().numpy(), compute_uv=False)  # numpy as reference
    pair = C.factorize(layer, rank)
    w_r = pair[1].weight @ pair[0].weight
    err = (layer.weight - w_r).detach()
    assert torch.linalg.matrix_rank(w_r).item() == rank
    np.testing.assert_allclose(torch.linalg.norm(err).item() ** 2, np.sum(s[rank:] ** 2),
                               rtol=1e-9)
    np.testing.assert_allclose(torch.linalg.matrix_norm(err, ord=2).item(), s[rank], rtol=1e-9)
    # no other rank-r matrix does better: compare with a perturbed factorisation
    noisy = (pair[1].weight + 1e-3) @ pair[0].weight
    assert torch.linalg.norm(layer.weight - noisy) > torch.linalg.norm(err)


def test_factorize_full_rank_reproduces_the_layer_and_keeps_the_bias():
    torch.manual_seed(0)
    layer = nn.Linear(12, 7)
    pair = C.factorize(layer, 7)
    x = torch.randn(5, 12)
    torch.testing.assert_close(pair(x), layer(x), atol=1e-5, rtol=1e-5)
    assert pair[0].bias is None
    torch.testing.assert_close(pair[1].bias, layer.bias)
    assert pair[0].weight.shape == (7, 12) and pair[1].weight.shape == (7, 7)
    # the singular values are split evenly: both factors have the same singular values
    s0 = torch.linalg.svdvals(pair[0].weight)
    s1 = torch.linalg.svdvals(pair[1].weight)
    torch.testing.assert_close(s0, s1, atol=1e-5, rtol=1e-5)


def test_factorize_refuses_impossible_ranks():
    layer = nn.Linear(10, 4)
    for bad in (0, 5):
        with pytest.raises(ValueError, match="between 1 and min"):
            C.factorize(layer, bad)


@pytest.mark.parametrize("n_in,n_out,rank,bias,expected", [
    (1024, 1024, 51, True, 51 * 2048 + 1024),
    (40, 1024, 3, True, 3 * 1064 + 1024),
    (1024, 10, 1, False, 1034),
    (784, 1024, 100, True, 180_800 + 1024),
])
def test_parameter_counts_by_hand(n_in, n_out, rank, bias, expected):
    assert C.factorized_parameters(n_in, n_out, rank, bias) == expected
    pair = C.factorize(nn.Linear(n_in, n_out, bias=bias), rank)
    assert C.count_parameters(pair) == expected
    assert C.dense_parameters(n_in, n_out, bias) == n_in * n_out + (n_out if bias else 0)
    assert C.count_parameters(nn.Linear(n_in, n_out, bias=bias)) == C.dense_parameters(
        n_in, n_out, bias)


@pytest.mark.parametrize("n_in,n_out,factor,expected", [
    (1024, 1024, 10, 51),     # 1048576 / 20480 = 51.2
    (1024, 1024, 20, 25),     # 25.6
    (1024, 1024, 200, 2),     # 2.56
    (784, 1024, 10, 44),      # 802816 / 18080 = 44.4
    (1024, 10, 10, 1),        # 0.99 -> at least 1
    (40, 1024, 100, 1),
])
def test_rank_for_factor_by_hand(n_in, n_out, factor, expected):
    r = C.rank_for_factor(n_in, n_out, factor)
    assert r == expected
    if expected > 1:  # the largest rank that meets the factor
        assert r * (n_in + n_out) * factor <= n_in * n_out
        assert (r + 1) * (n_in + n_out) * factor > n_in * n_out
    with pytest.raises(ValueError, match="positive"):
        C.rank_for_factor(n_in, n_out, 0)


def test_rank_for_energy_by_hand_and_on_random_spectra():
    s = np.array([3.0, 2.0, 1.0, 1.0])  # squares 9, 4, 1, 1: cumulative 9/15, 13/15, 14/15, 1
    assert C.rank_for_energy(s, 0.5) == 1
    assert C.rank_for_energy(s, 0.6) == 1
    assert C.rank_for_energy(s, 0.61) == 2
    assert C.rank_for_energy(s, 0.9) == 3
    assert C.rank_for_energy(s, 1.0) == 4
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = np.sort(rng.exponential(size=rng.integers(1, 50)))[::-1]
        e = rng.uniform(0.05, 1.0)
        r = C.rank_for_energy(s, e)
        brute = next(k for k in range(1, s.size + 1)
                     if np.sum(s[:k] ** 2) >= e * np.sum(s**2) * (1 - 1e-12))
        assert r == brute


def test_rank_for_energy_refuses_bad_input():
    with pytest.raises(ValueError, match="decreasing"):
        C.rank_for_energy([1.0, 2.0], 0.9)
    with pytest.raises(ValueError, match="energy"):
        C.rank_for_energy([2.0, 1.0], 1.5)


def test_mlp_shape_and_parameter_count():
    model = C.mlp(40, 10, width=1024, depth=5, dropout=0.2)
    expected = (40 * 1024 + 1024) + 4 * (1024 * 1024 + 1024) + (1024 * 10 + 10)
    assert C.count_parameters(model) == expected
    assert C.memory_bytes(model) == 4 * expected
    assert model(torch.zeros(3, 40)).shape == (3, 10)
    assert C.mlp(64, 10, width=16)(torch.zeros(3, 8, 8)).shape == (3, 10)  # images flattened
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.2 for m in model.modules()) == 5
    with pytest.raises(ValueError, match="dropout"):
        C.mlp(40, 10, dropout=1.0)


def test_width_for_parameters_by_hand():
    # depth 2, 40 -> w -> w -> 10: 41 w + (w + 1) w + 10 (w + 1); w = 30 gives 2470
    assert C.mlp_parameters(40, 10, 30, 2) == 41 * 30 + 31 * 30 + 31 * 10 == 2470
    assert C.count_parameters(C.mlp(40, 10, width=30, depth=2)) == 2470
    assert C.width_for_parameters(40, 10, 2, 2470) == 30
    assert C.width_for_parameters(40, 10, 2, 2469) == 29
    assert C.width_for_parameters(40, 10, 5, 10) == 1


def test_compress_counts_agree_with_the_closed_form_and_keeps_the_original():
    torch.manual_seed(0)
    model = C.mlp(20, 5, width=32, depth=3, dropout=0.0).eval()
    before = [p.clone() for p in model.parameters()]
    ranks = [None, 4, 2, None]
    small = C.compress(model, ranks).eval()
    expected = (C.dense_parameters(20, 32) + C.factorized_parameters(32, 32, 4)
                + C.factorized_parameters(32, 32, 2) + C.dense_parameters(32, 5))
    assert C.count_parameters(small) == expected
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # full ranks everywhere: the same function
    full = C.compress(model, [20, 32, 32, 5]).eval()
    x = torch.randn(8, 20)
    torch.testing.assert_close(full(x), model(x), atol=1e-5, rtol=1e-5)
    # precomputed SVDs give the same network
    svds = [C.svd(layer.weight) for layer in C.linear_layers(model)]
    again = C.compress(model, ranks, svds=svds).eval()
    torch.testing.assert_close(again(x), small(x))
    with pytest.raises(ValueError, match="4 linear layers"):
        C.compress(model, [None, 4])


def test_svd_matches_numpy():
    w = torch.randn(9, 6)
    u, s, vh = C.svd(w)
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(w.numpy(), compute_uv=False),
                               rtol=1e-5)
    torch.testing.assert_close(u @ torch.diag(s) @ vh, w, atol=1e-5, rtol=1e-5)


def test_rank_explorer_draws_the_count_and_accuracy_of_the_chosen_ranks():
    import matplotlib.pyplot as plt

    from labutils.plotting import svd_rank_explorer

    torch.manual_seed(0)
    model = C.mlp(6, 3, width=8, depth=2, dropout=0.0).eval()
    x = torch.randn(50, 6)
    y = torch.randint(0, 3, (50,))
    draw, controls = svd_rank_explorer(model, x, y, defaults=[None, 4, None],
                                       reference={"dense": (100, 0.5)})
    assert controls == {"rank_W1": (1, 6, 1, 6), "rank_W2": (1, 8, 1, 4),
                        "rank_W3": (1, 3, 1, 3)}
    dense_params = C.count_parameters(model)
    for ranks in [(6, 8, 3), (2, 4, 3), (1, 1, 1)]:
        fig = plt.figure()
        draw(fig, **dict(zip(controls, ranks, strict=True)))
        # expected by hand: a full rank keeps the layer dense
        expected = sum(C.dense_parameters(i, o) if r == min(i, o) else
                       C.factorized_parameters(i, o, r)
                       for (i, o), r in zip([(6, 8), (8, 8), (8, 3)], ranks, strict=True))
        # the accuracy of the same truncation, from numpy's SVD
        h = x.double().numpy()
        for k, (layer, r) in enumerate(zip(C.linear_layers(model), ranks, strict=True)):
            u, s, vh = np.linalg.svd(layer.weight.detach().double().numpy())
            w = (u[:, :r] * s[:r]) @ vh[:r]
            h = h @ w.T + layer.bias.detach().double().numpy()
            if k < 2:
                h = np.maximum(h, 0)
        acc = np.mean(h.argmax(1) == y.numpy())
        title = fig.axes[1].get_title()
        assert f"{expected:,} parameters" in title, (ranks, title)
        assert f"{100 * expected / dense_params:.1f} %" in title
        assert f"accuracy {100 * acc:.1f} %" in title, (ranks, title, acc)
        marks = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
        assert [int(m.get_xdata()[0]) for m in marks] == list(ranks)
        plt.close(fig)
    with pytest.raises(ValueError, match="3 linear layers"):
        svd_rank_explorer(model, x, y, defaults=[None])
