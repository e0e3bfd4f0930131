"""labutils.conv against independent references: numpy.convolve, torch's conv1d, least
squares on the explicit data matrix, and hand-computed cases."""

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from hypothesis import given, settings
from hypothesis import strategies as st

from labutils import conv


def reference(x, h):
    """y[:, g, n] = sum_k sum_f h[k, g, f] x[:, f, n - k] with torch's conv1d (which
    correlates): flip the taps, pad K - 1 zeros on the left."""
    weight = h.flip(0).permute(1, 2, 0)
    return nnf.conv1d(nnf.pad(x, (h.shape[0] - 1, 0)), weight)


def test_shift_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert conv.shift(x, 0).tolist() == [1, 2, 3, 4]
    assert conv.shift(x, 1).tolist() == [0, 1, 2, 3]
    assert conv.shift(x, 3).tolist() == [0, 0, 0, 1]
    assert conv.shift(x, 9).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="delay"):
        conv.shift(x, -1)


def test_convolution_1d_by_hand():
    y = conv.convolution_1d(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0]))
    assert y.tolist() == [1.0, 3.0, 5.0]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_convolution_1d_matches_numpy(n, k, seed):
    rng = np.random.default_rng(seed)
    x, h = rng.standard_normal((2, n)), rng.standard_normal(k)
    y = conv.convolution_1d(torch.from_numpy(x), torch.from_numpy(h))
    for row, out in zip(x, y, strict=True):
        np.testing.assert_allclose(out.numpy(), np.convolve(row, h)[:n], atol=1e-12)


mimo_shapes = dict(
    b=st.integers(1, 3), f=st.integers(1, 4), g=st.integers(1, 4), k=st.integers(1, 12),
    n=st.integers(1, 70), block=st.one_of(st.none(), st.integers(1, 20)),
    seed=st.integers(0, 2**16),
)


def _signals_and_taps(b, f, g, k, n, seed):
    """x (b, f, n), h (k, g, f) and an output gradient (b, g, n), float64, seeded."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=gen, dtype=torch.float64)
                 for shape in ((b, f, n), (k, g, f), (b, g, n)))


@settings(max_examples=60, deadline=None)
@given(**mimo_shapes)
def test_both_mimo_versions_match_conv1d(b, f, g, k, n, block, seed):
    x, h, _ = _signals_and_taps(b, f, g, k, n, seed)
    expected = reference(x, h)
    torch.testing.assert_close(conv.mimo_conv1d_loop(x, h), expected)
    torch.testing.assert_close(conv.mimo_conv1d(x, h, block), expected)
    torch.testing.assert_close(conv.torch_conv1d(x, h), expected)


@settings(max_examples=25, deadline=None)
@given(**mimo_shapes)
def test_fast_mimo_gradients_match_conv1d(b, f, g, k, n, block, seed):
    x, h, grad_out = _signals_and_taps(b, f, g, k, n, seed)
    grads = []
    for fn in (lambda x, h: conv.mimo_conv1d(x, h, block), reference):
        xx, hh = x.clone().requires_grad_(), h.clone().requires_grad_()
        fn(xx, hh).backward(grad_out)
        grads.append((xx.grad, hh.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_mimo_is_a_matrix_per_tap_by_hand():
    # two inputs, one output: y[n] = x0[n] + 2 x1[n - 1]
    h = torch.zeros(2, 1, 2)
    h[0, 0, 0], h[1, 0, 1] = 1.0, 2.0
    x = torch.tensor([[[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]])
    expected = [[[1.0, 22.0, 43.0]]]
    assert conv.mimo_conv1d(x, h).tolist() == expected
    assert conv.mimo_conv1d_loop(x, h).tolist() == expected


def test_shift_equivariance():
    x, h = torch.randn(2, 3, 50), torch.randn(6, 2, 3)
    y = conv.mimo_conv1d(x, h)
    torch.testing.assert_close(conv.mimo_conv1d(conv.shift(x, 7), h), conv.shift(y, 7))


@pytest.mark.parametrize("fn", [conv.mimo_conv1d, conv.mimo_conv1d_loop, conv.torch_conv1d])
def test_mimo_shape_errors(fn):
    with pytest.raises(ValueError, match=r"\(B, F, N\)"):
        fn(torch.randn(3, 10), torch.randn(4, 1, 3))
    with pytest.raises(ValueError, match=r"\(K, G, F\)"):
        fn(torch.randn(1, 3, 10), torch.randn(4, 3))
    with pytest.raises(ValueError, match="F=2 features"):
        fn(torch.randn(1, 2, 10), torch.randn(4, 1, 3))


def test_block_must_be_positive():
    with pytest.raises(ValueError, match="block must be a positive"):
        conv.mimo_conv1d(torch.randn(1, 1, 10), torch.randn(3, 1, 1), block=0)


def test_conv_layer_is_numpy_convolution():
    layer = conv.ConvLayer(5)
    x = torch.randn(2, 1, 40)
    with torch.no_grad():
        y = layer(x).numpy()
    h = layer.h.detach().numpy()
    for row, out in zip(x[:, 0].numpy(), y[:, 0], strict=True):
        np.testing.assert_allclose(out, np.convolve(row, h)[:40], rtol=1e-5, atol=1e-6)


def test_cnn_is_the_recursion():
    model = conv.CNN(3, [4, 2, 5])
    x = torch.randn(2, 1, 30)
    z = x
    for i, layer in enumerate(model.layers):
        z = reference(z, layer.h.detach().view(-1, 1, 1))
        z = torch.tanh(z) if i < 2 else z
    torch.testing.assert_close(model(x).detach(), z)


def test_mimo_cnn_is_the_recursion():
    model = conv.MIMOCNN(2, [6, 4], [1, 5, 2])
    assert [tuple(layer.h.shape) for layer in model.layers] == [(6, 5, 1), (4, 2, 5)]
    x = torch.randn(3, 1, 64)
    h1, h2 = (layer.h.detach() for layer in model.layers)
    expected = reference(torch.tanh(reference(x, h1)), h2)
    torch.testing.assert_close(model(x).detach(), expected)


def test_networks_start_near_the_identity():
    x = 1e-3 * torch.randn(4, 1, 2000)  # small: tanh is linear there
    for net in (conv.MIMOCNN(2, [40, 40], [1, 5, 1]), conv.CNN(2, [10, 10])):
        with torch.no_grad():
            error = net(x) - x
        assert error.pow(2).sum() < 0.1 * x.pow(2).sum()


def test_network_specification_errors():
    with pytest.raises(ValueError, match="L=2 layers but 3 tap counts"):
        conv.CNN(2, [3, 3, 3])
    with pytest.raises(ValueError, match="L \\+ 1 = 3 entries"):
        conv.MIMOCNN(2, [3, 3], [1, 5])
    with pytest.raises(ValueError, match="positive"):
        conv.MIMOConvLayer(0, 1, 3)
    with pytest.raises(ValueError, match="positive"):
        conv.ConvLayer(0)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 1, N\)"):
        conv.MIMOCNN(1, [3], [1, 1])(torch.randn(4, 100))
    with pytest.raises(ValueError, match=r"\(B, 2, N\)"):
        conv.MIMOConvLayer(2, 1, 3)(torch.randn(4, 3, 100))


@settings(max_examples=20, deadline=None)
@given(q=st.integers(1, 4), n=st.integers(1, 80), taps=st.integers(1, 30),
       seed=st.integers(0, 2**16))
def test_wiener_solves_least_squares(q, n, taps, seed):
    taps = min(taps, n)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(q, 1, n, generator=gen, dtype=torch.float64)
    y = torch.randn(q, 1, n, generator=gen, dtype=torch.float64)
    # The data matrix: row n holds x[n], x[n-1], ..., x[n-taps+1] (zeros before the start)
    rows = torch.stack([nnf.pad(x[:, 0], (k, 0))[:, :n] for k in range(taps)], -1)
    rows, target = rows.reshape(-1, taps), y.reshape(-1)
    if torch.linalg.cond(rows) > 1e4:
        return  # no well-determined least-squares filter to compare with
    expected = torch.linalg.lstsq(rows, target[:, None]).solution[:, 0]
    torch.testing.assert_close(conv.wiener_fir(x, y, taps), expected, rtol=1e-7, atol=1e-8)


def test_wiener_recovers_a_known_filter():
    x = torch.randn(3, 1, 500, dtype=torch.float64)
    h = torch.tensor([0.5, -0.25, 0.125, 0.0, 1.0], dtype=torch.float64)
    y = conv.convolution_1d(x, h)
    torch.testing.assert_close(conv.wiener_fir(x, y, 5), h)
    torch.testing.assert_close(conv.wiener_fir(x, y, 8)[5:], torch.zeros(3, dtype=torch.float64))


def test_wiener_errors():
    with pytest.raises(ValueError, match="differ"):
        conv.wiener_fir(torch.randn(2, 10), torch.randn(2, 11), 3)
    with pytest.raises(ValueError, match="taps must lie"):
        conv.wiener_fir(torch.randn(2, 10), torch.randn(2, 10), 11)


@pytest.mark.parametrize("fn", [conv.mimo_conv1d, conv.mimo_conv1d_loop, conv.torch_conv1d])
def test_an_integer_signal_is_promoted_not_truncated(fn):
    x = torch.tensor([[[1, 2, 3, 4]]])  # int64, as torch.tensor of integers gives
    h = torch.tensor([[[0.5]], [[0.25]]])  # (K=2, G=1, F=1)
    expected = [0.5, 1.25, 2.0, 2.75]  # y[n] = 0.5 x[n] + 0.25 x[n - 1], by hand
    y = fn(x, h)
    assert y.dtype == torch.float32 and y.flatten().tolist() == expected
    both_int = fn(x, torch.tensor([[[1]], [[1]]]))
    assert both_int.is_floating_point() and both_int.flatten().tolist() == [1, 3, 5, 7]


@pytest.mark.parametrize("fn", [conv.mimo_conv1d, conv.mimo_conv1d_loop])
def test_an_empty_signal_gives_an_empty_output(fn):
    y = fn(torch.zeros(2, 3, 0), torch.ones(4, 5, 3))
    assert y.shape == (2, 5, 0)
