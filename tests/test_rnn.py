"""labutils.rnn against torch's cells and layers, autograd, and cases worked out by hand."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labutils import rnn

SETTINGS = settings(max_examples=15, deadline=None)
PAIRS = [(rnn.RNNCell, torch.nn.RNNCell), (rnn.GRUCell, torch.nn.GRUCell),
         (rnn.LSTMCell, torch.nn.LSTMCell)]


def _state(kind, b, h, gen):
    if kind is rnn.LSTMCell:
        return (torch.randn(b, h, generator=gen, dtype=torch.float64),
                torch.randn(b, h, generator=gen, dtype=torch.float64))
    return torch.randn(b, h, generator=gen, dtype=torch.float64)


def _flat(out):
    return torch.cat([o.reshape(-1) for o in out]) if isinstance(out, tuple) else out.reshape(-1)


@SETTINGS
@given(pair=st.sampled_from(PAIRS), b=st.integers(1, 5), f=st.integers(1, 6),
       h=st.integers(1, 7), bias=st.booleans(), with_state=st.booleans(),
       relu=st.booleans(), seed=st.integers(0, 2**16))
def test_cells_match_torch_outputs_and_gradients(pair, b, f, h, bias, with_state, relu, seed):
    ours_cls, torch_cls = pair
    gen = torch.Generator().manual_seed(seed)
    extra = {"nonlinearity": "relu" if relu else "tanh"} if ours_cls is rnn.RNNCell else {}
    ref = torch_cls(f, h, bias=bias, **extra).double()
    ours = ours_cls(f, h, bias=bias, **extra).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(b, f, generator=gen, dtype=torch.float64, requires_grad=True)
    state = _state(ours_cls, b, h, gen) if with_state else None
    out_ours, out_ref = _flat(ours(x, state)), _flat(ref(x, state))
    torch.testing.assert_close(out_ours, out_ref)
    weights = torch.randn(out_ref.shape, generator=gen, dtype=torch.float64)
    g_ours = torch.autograd.grad(out_ours @ weights, [x, *ours.parameters()])
    g_ref = torch.autograd.grad(out_ref @ weights, [x, *ref.parameters()])
    for a, r in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, r)


def test_cell_parameter_names_and_shapes_are_torchs():
    for ours_cls, torch_cls in PAIRS:
        ours, ref = ours_cls(3, 5), torch_cls(3, 5)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: v.shape for k, v in ref.state_dict().items()}


def test_cell_initialisation_range_is_torchs():
    cell = rnn.GRUCell(4, 25)
    for p in cell.parameters():
        assert p.abs().max() <= 1 / 5 and p.std() > 0.05


@SETTINGS
@given(kind=st.sampled_from(["RNN", "GRU", "LSTM"]), t=st.integers(1, 9), b=st.integers(1, 4),
       f=st.integers(1, 5), h=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_unroll_matches_torch_layers(kind, t, b, f, h, seed):
    torch.manual_seed(seed)
    layer = getattr(torch.nn, kind)(f, h).double()
    x = torch.randn(t, b, f, dtype=torch.float64)
    state = torch.randn(1, b, h, dtype=torch.float64)
    ref_state = (state, torch.randn_like(state)) if kind == "LSTM" else state
    our_state = tuple(s[0] for s in ref_state) if kind == "LSTM" else state[0]
    out, final = rnn.unroll(rnn.cell_like(layer), x, our_state)
    ref_out, ref_final = layer(x, ref_state)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(_flat(final), _flat(ref_final))


def test_unroll_truncation_cuts_gradients_only():
    torch.manual_seed(0)
    cell = rnn.GRUCell(2, 3).double()
    x = torch.randn(10, 1, 2, dtype=torch.float64, requires_grad=True)
    full, _ = rnn.unroll(cell, x)
    cut, _ = rnn.unroll(cell, x, truncate=4)  # chunks [0, 4), [4, 8), [8, 10)
    torch.testing.assert_close(cut, full)
    (grad,) = torch.autograd.grad(cut[-1].sum(), x)
    assert grad[:8].abs().max() == 0 and grad[8:].abs().min() > 0
    (grad,) = torch.autograd.grad(full[-1].sum(), x)
    assert grad.abs().min() > 0


def test_cell_like_rejects_layers_it_cannot_copy():
    with pytest.raises(ValueError, match="unidirectional"):
        rnn.cell_like(torch.nn.GRU(2, 3, bidirectional=True))
    with pytest.raises(ValueError, match="one-layer"):
        rnn.cell_like(torch.nn.LSTM(2, 3, num_layers=2))


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        rnn.GRUCell(3, 4)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="unroll"):
        rnn.LSTMCell(3, 4)(torch.zeros(7, 5, 3))
    with pytest.raises(ValueError, match=r"\(T, B, F\)"):
        rnn.unroll(rnn.RNNCell(3, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn.RNNCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="kind"):
        rnn.SequenceModel("TCN", 1, 4, 1)


# ------------------------------------------------------------------------------- BPTT


def _autograd_reference(x, y, weights, h0, activation, truncate):
    """L and its gradients by autograd; with ``truncate=k`` each loss term l_t is
    recomputed from h_{t-k} detached, which is the truncated sum by definition."""
    W_hx, W_hh, W_ho = (w.clone().requires_grad_() for w in weights)
    T = x.shape[0]
    states, loss = [], 0.0
    for t in range(T):
        start = 0 if truncate is None else max(0, t - truncate + 1)
        h = h0 if start == 0 else states[start - 1].detach()
        for i in range(start, t + 1):
            h = W_hx @ x[i] + W_hh @ h
            h = torch.tanh(h) if activation == "tanh" else h
        states.append(h)
        loss = loss + 0.5 * ((W_ho @ h - y[t]) ** 2).sum() / T
    grads = torch.autograd.grad(loss, [W_hx, W_hh, W_ho])
    return loss.detach(), dict(zip(["W_hx", "W_hh", "W_ho"], grads, strict=True))


@SETTINGS
@given(T=st.integers(1, 7), F=st.integers(1, 4), H=st.integers(1, 5), O=st.integers(1, 3),
       activation=st.sampled_from([None, "tanh"]), with_h0=st.booleans(),
       truncate=st.sampled_from([None, 1, 2, 3, 10]), seed=st.integers(0, 2**16))
def test_bptt_gradients_match_autograd(T, F, H, O, activation, with_h0, truncate, seed):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)

    x, y = rand(T, F), rand(T, O)
    weights = rand(H, F, scale=0.7), rand(H, H, scale=0.5), rand(O, H, scale=0.7)
    h0 = rand(H) if with_h0 else torch.zeros(H, dtype=torch.float64)
    loss, grads = rnn.bptt_gradients(x, y, *weights, h0 if with_h0 else None, activation,
                                     truncate)
    ref_loss, ref_grads = _autograd_reference(x, y, weights, h0, activation, truncate)
    torch.testing.assert_close(loss, ref_loss)
    for name in ("W_hx", "W_hh", "W_ho"):
        torch.testing.assert_close(grads[name], ref_grads[name])


@pytest.mark.parametrize(("truncate", "d_hx", "d_hh"), [
    (None, 101.25 / 3, 61 / 3), (3, 101.25 / 3, 61 / 3), (2, 97 / 3, 61 / 3), (1, 25.0, 17.5)])
def test_bptt_truncation_scalar_case_by_hand(truncate, d_hx, d_hh):
    # w_hx = 1, w_hh = 0.5, w_ho = 2, x = (1, 2, 3), y = 0, h0 = 0, identity activation:
    # h = (1, 2.5, 4.25), o - y = (2, 5, 8.5), L = (4 + 25 + 72.25) / 6 = 16.875,
    # g_t = w_ho (o_t - y_t) / T = (4, 10, 17) / 3, c_t = w_hh = 0.5.
    # W_hx: b = x = (1, 2, 3). Full: a = (1, 2.5, 4.25) -> (4 + 25 + 72.25) / 3.
    #   k = 2: a_3 = 3 + 0.5 * 2 = 4 -> (4 + 25 + 68) / 3;  k = 1: a = b -> 75 / 3.
    # W_hh: b = h_{t-1} = (0, 1, 2.5). Full (and k = 2, since b_1 = 0): a = (0, 1, 3) -> 61/3;
    #   k = 1: a = (0, 1, 2.5) -> (10 + 42.5) / 3 = 17.5.
    # W_ho: sum_t (o_t - y_t) h_t / T = (2 + 12.5 + 36.125) / 3, for every k.
    loss, grads = rnn.bptt_gradients(
        [[1.0], [2.0], [3.0]], [[0.0]] * 3, [[1.0]], [[0.5]], [[2.0]], truncate=truncate)
    assert loss.item() == pytest.approx(16.875)
    assert grads["W_hx"].item() == pytest.approx(d_hx)
    assert grads["W_hh"].item() == pytest.approx(d_hh)
    assert grads["W_ho"].item() == pytest.approx(50.625 / 3)


def test_bptt_gradients_checks_shapes():
    x, y = torch.zeros(4, 2), torch.zeros(4, 1)
    with pytest.raises(ValueError, match=r"W_hx must have shape \(3, 2\)"):
        rnn.bptt_gradients(x, y, torch.zeros(3, 5), torch.zeros(3, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="activation"):
        rnn.bptt_gradients(x, y, torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(1, 3),
                           activation="relu")
    with pytest.raises(ValueError, match="truncate"):
        rnn.bptt_gradients(x, y, torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(1, 3),
                           truncate=0)


# ----------------------------------------------------------------------- models, data


def test_sequence_model_truncation_keeps_outputs_and_cuts_gradients():
    torch.manual_seed(0)
    full = rnn.SequenceModel("LSTM", 2, 8, 1)
    cut = rnn.SequenceModel("LSTM", 2, 8, 1, truncate=5)
    cut.load_state_dict(full.state_dict())
    x = torch.randn(3, 12, 2, requires_grad=True)
    torch.testing.assert_close(cut(x), full(x))
    (grad,) = torch.autograd.grad(cut(x).sum(), x)
    assert grad[:, :10].abs().max() == 0 and grad[:, 10:].abs().min() > 0


def test_adding_problem():
    x, y = rnn.adding_problem(20000, 30, seed=1)
    assert x.shape == (20000, 30, 2) and y.shape == (20000, 1)
    marks = x[..., 1]
    assert torch.all(marks[:, :15].sum(1) == 1) and torch.all(marks[:, 15:].sum(1) == 1)
    torch.testing.assert_close(y[:, 0], (x[..., 0] * marks).sum(1))
    # the sum of two independent U(0, 1) has mean 1 and variance 2/12
    assert ((y - 1.0) ** 2).mean().item() == pytest.approx(1 / 6, abs=0.005)
    torch.testing.assert_close(rnn.adding_problem(5, 8, seed=3)[0], rnn.adding_problem(5, 8, 3)[0])
    with pytest.raises(ValueError, match="length"):
        rnn.adding_problem(4, 1)
    with pytest.raises(ValueError, match="lag"):
        rnn.adding_problem(4, 10, lag=9)


def test_adding_problem_with_lag_leaves_the_end_unmarked():
    x, y = rnn.adding_problem(5000, 40, seed=2, lag=20)
    marks = x[..., 1]
    assert torch.all(marks[:, :10].sum(1) == 1) and torch.all(marks[:, 10:20].sum(1) == 1)
    assert marks[:, 20:].abs().max() == 0
    assert marks[:, 19].sum() > 0 and marks[:, 0].sum() > 0  # both ends of the span used
    torch.testing.assert_close(y[:, 0], (x[..., 0] * marks).sum(1))


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_draw_cell(kind):
    import matplotlib.pyplot as plt

    fig = rnn.draw_cell(kind)
    patches = len(fig.axes[0].patches)
    assert patches == 1 + len(rnn._DIAGRAMS[kind][1])
    plt.close(fig)


def test_draw_cell_rejects_unknown_kind():
    with pytest.raises(ValueError, match="lstm"):
        rnn.draw_cell("transformer")


def test_lstm_state_must_be_a_pair_as_torch_requires():
    x, h = torch.randn(3, 2), torch.randn(3, 4)
    with pytest.raises((RuntimeError, ValueError, TypeError, IndexError)):
        torch.nn.LSTMCell(2, 4)(x, h)  # torch refuses a single tensor as the state
    with pytest.raises(TypeError, match=r"pair \(h, c\).*shape \(3, 4\)"):
        rnn.LSTMCell(2, 4)(x, h)
    with pytest.raises(ValueError, match=r"state c must have shape"):
        rnn.LSTMCell(2, 4)(x, (h, torch.randn(1, 4)))


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell"])
def test_a_state_of_the_wrong_batch_size_is_refused_as_torch_does(kind):
    x, h = torch.randn(3, 2), torch.randn(1, 4)  # would broadcast over the batch
    with pytest.raises(RuntimeError):
        getattr(torch.nn, kind)(2, 4)(x, h)
    with pytest.raises(ValueError, match=r"\(B, H\) = \(3, 4\).*got \(1, 4\)"):
        getattr(rnn, kind)(2, 4)(x, h)
