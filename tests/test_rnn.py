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


# ------------------------------------------------------------------------- BPTT, RTRL

METHODS = [rnn.bptt_gradients, rnn.rtrl_gradients]


def _autograd_reference(x, y, weights, h0, activation, window, chunk):
    """L and its gradients by autograd. ``window=k``: each loss term l_t is recomputed
    from h_{t-k} detached, the truncated sum by definition. ``chunk=k``: the state is
    detached every k steps, as ``unroll(..., truncate=k)`` does."""
    W_hx, W_hh, W_ho = (w.clone().requires_grad_() for w in weights)
    T = x.shape[0]
    states, loss = [], 0.0
    for t in range(T):
        start = 0 if window is None else max(0, t - window + 1)
        h = h0 if start == 0 else states[start - 1].detach()
        for i in range(start, t + 1):
            if chunk is not None and i > 0 and i % chunk == 0:
                h = h.detach()
            h = W_hx @ x[i] + W_hh @ h
            h = torch.tanh(h) if activation == "tanh" else h
        states.append(h)
        loss = loss + 0.5 * ((W_ho @ h - y[t]) ** 2).sum() / T
    grads = torch.autograd.grad(loss, [W_hx, W_hh, W_ho])
    return loss.detach(), dict(zip(["W_hx", "W_hh", "W_ho"], grads, strict=True))


@SETTINGS
@given(method=st.sampled_from(METHODS), T=st.integers(1, 7), F=st.integers(1, 4),
       H=st.integers(1, 5), O=st.integers(1, 3), activation=st.sampled_from([None, "tanh"]),
       with_h0=st.booleans(),
       truncation=st.sampled_from([(None, None), (1, None), (2, None), (3, None), (10, None),
                                   (None, 1), (None, 2), (None, 3), (None, 10)]),
       seed=st.integers(0, 2**16))
def test_gradients_match_autograd(method, T, F, H, O, activation, with_h0, truncation, seed):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)

    window, chunk = truncation
    x, y = rand(T, F), rand(T, O)
    weights = rand(H, F, scale=0.7), rand(H, H, scale=0.5), rand(O, H, scale=0.7)
    h0 = rand(H) if with_h0 else torch.zeros(H, dtype=torch.float64)
    loss, grads = method(x, y, *weights, h0 if with_h0 else None, activation,
                         window=window, chunk=chunk)
    ref_loss, ref_grads = _autograd_reference(x, y, weights, h0, activation, window, chunk)
    torch.testing.assert_close(loss, ref_loss)
    for name in ("W_hx", "W_hh", "W_ho"):
        torch.testing.assert_close(grads[name], ref_grads[name])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("window", "chunk", "d_hx", "d_hh"), [
    (None, None, 101.25 / 3, 61 / 3), (3, None, 101.25 / 3, 61 / 3),
    (2, None, 97 / 3, 61 / 3), (1, None, 25.0, 17.5), (None, 2, 80 / 3, 17.5),
    (None, 3, 101.25 / 3, 61 / 3)])
def test_truncation_scalar_case_by_hand(method, window, chunk, d_hx, d_hh):
    # w_hx = 1, w_hh = 0.5, w_ho = 2, x = (1, 2, 3), y = 0, h0 = 0, identity activation:
    # h = (1, 2.5, 4.25), o - y = (2, 5, 8.5), L = (4 + 25 + 72.25) / 6 = 16.875,
    # g_t = w_ho (o_t - y_t) / T = (4, 10, 17) / 3, c_t = w_hh = 0.5.
    # W_hx: b = x = (1, 2, 3). Full: a = (1, 2.5, 4.25) -> (4 + 25 + 72.25) / 3.
    #   window 2: a_3 = 3 + 0.5 * 2 = 4 -> (4 + 25 + 68) / 3;  window 1: a = b -> 75 / 3.
    #   chunk 2 (steps 1-2, then 3, h_2 detached): a = (1, 2.5, 3) -> (4 + 25 + 51) / 3.
    # W_hh: b = h_{t-1} = (0, 1, 2.5). Full (and k = 2, since b_1 = 0): a = (0, 1, 3) -> 61/3;
    #   window 1, and chunk 2: a = (0, 1, 2.5) -> (10 + 42.5) / 3 = 17.5.
    # W_ho: sum_t (o_t - y_t) h_t / T = (2 + 12.5 + 36.125) / 3, for every k.
    loss, grads = method([[1.0], [2.0], [3.0]], [[0.0]] * 3, [[1.0]], [[0.5]], [[2.0]],
                         window=window, chunk=chunk)
    assert loss.item() == pytest.approx(16.875)
    assert grads["W_hx"].item() == pytest.approx(d_hx)
    assert grads["W_hh"].item() == pytest.approx(d_hh)
    assert grads["W_ho"].item() == pytest.approx(50.625 / 3)


def test_window_and_chunk_agree_with_a_loss_at_the_last_step_only():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 2, generator=gen), torch.randn(8, 1, generator=gen)
    weights = (torch.randn(3, 2, generator=gen), 0.5 * torch.randn(3, 3, generator=gen),
               torch.randn(1, 3, generator=gen))
    every_step = [rnn.bptt_gradients(x, y, *weights, **kw)[1]["W_hh"]
                  for kw in ({"window": 4}, {"chunk": 4})]
    assert (every_step[0] - every_step[1]).abs().max() > 1e-3
    # zero the error at steps 0..6: only l_8 is left, and both keep its last 4 steps
    W_ho = weights[2]
    h = torch.zeros(3)
    for t in range(8):
        h = weights[0] @ x[t] + weights[1] @ h
        if t < 7:
            y[t] = W_ho @ h
    last_only = [rnn.bptt_gradients(x, y, *weights, **kw)[1]["W_hh"]
                 for kw in ({"window": 4}, {"chunk": 4})]
    torch.testing.assert_close(last_only[0], last_only[1])


@pytest.mark.parametrize("method", METHODS)
def test_gradients_check_shapes(method):
    x, y = torch.zeros(4, 2), torch.zeros(4, 1)
    ok = torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(1, 3)
    with pytest.raises(ValueError, match=r"W_hx must have shape \(3, 2\)"):
        method(x, y, torch.zeros(3, 5), torch.zeros(3, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="activation"):
        method(x, y, *ok, activation="relu")
    with pytest.raises(ValueError, match="window"):
        method(x, y, *ok, window=0)
    with pytest.raises(ValueError, match="not both"):
        method(x, y, *ok, window=2, chunk=2)


@pytest.mark.parametrize("activation", [None, "tanh"])
def test_jacobian_norms_match_autograd(activation):
    gen = torch.Generator().manual_seed(3)
    T, F, H = 9, 2, 5
    W_hh = 0.6 * torch.randn(H, H, generator=gen, dtype=torch.float64)
    W_hx = torch.randn(H, F, generator=gen, dtype=torch.float64)
    x = torch.randn(T, F, generator=gen, dtype=torch.float64)
    h0 = 0.3 * torch.randn(H, generator=gen, dtype=torch.float64)
    norms = rnn.jacobian_norms(W_hh, W_hx, x, h0, activation)
    assert norms.shape == (T + 1,) and norms[0] == 1

    def step(h, t):
        z = W_hx @ x[t] + W_hh @ h
        return torch.tanh(z) if activation == "tanh" else z

    states = [h0]
    for t in range(T):
        states.append(step(states[-1], t))
    for k in (1, 4, T):
        def last(h, k=k):
            for t in range(T - k, T):
                h = step(h, t)
            return h
        J = torch.autograd.functional.jacobian(last, states[T - k])
        assert norms[k].item() == pytest.approx(torch.linalg.matrix_norm(J, ord=2).item())


def test_jacobian_norms_of_a_scaled_rotation_are_powers():
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64))
    norms = rnn.jacobian_norms(0.9 * Q, torch.zeros(6, 1, dtype=torch.float64),
                               torch.zeros(12, 1, dtype=torch.float64),
                               torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(norms, 0.9 ** torch.arange(13, dtype=torch.float64))


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
