"""Recurrent networks (notebook 01): the RNN, GRU and LSTM cells written from their
equations, and the gradient of a simple RNN by hand, backwards (BPTT) and forwards (RTRL).

Shapes: ``T`` time steps, ``B`` sequences in a batch, ``F`` input features, ``H`` hidden
units, ``O`` outputs. The cells use the parameter names, shapes and gate order of
``torch.nn.RNNCell``, ``GRUCell`` and ``LSTMCell``, so ``cell.load_state_dict(
torch_cell.state_dict())`` works and both compute the same thing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

__all__ = [
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "SequenceModel",
    "bptt_gradients",
    "cell_like",
    "jacobian_norms",
    "rtrl_gradients",
    "unroll",
]

# ----------------------------------------------------------------------------- cells


class _Cell(nn.Module):
    """Parameters shared by the three cells: ``weight_ih`` (G*H, F), ``weight_hh`` (G*H, H),
    ``bias_ih`` and ``bias_hh`` (G*H,), with ``G`` blocks stacked in torch's gate order."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size}, {hidden_size}"
            )
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform on [-1/sqrt(H), 1/sqrt(H)], as torch initialises its cells."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (B, {self.input_size}), got "
                f"{tuple(x.shape)}; unroll a (T, B, F) sequence with labutils.rnn.unroll"
            )

    def _state(self, x: torch.Tensor, h: torch.Tensor | None, name: str = "h") -> torch.Tensor:
        """The state ``h`` (B, H) for input ``x`` (B, F): zeros when None, else checked."""
        if h is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        expected = (x.shape[0], self.hidden_size)
        if not torch.is_tensor(h) or tuple(h.shape) != expected:
            got = tuple(h.shape) if torch.is_tensor(h) else type(h).__name__
            raise ValueError(
                f"{type(self).__name__}: the state {name} must have shape (B, H) = {expected} "
                f"for an input batch of B={x.shape[0]}, got {got}"
            )
        return h

    def _affine(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``weight_ih x + bias_ih`` and ``weight_hh h + bias_hh``, each (B, G*H)."""
        gi = x @ self.weight_ih.T
        gh = h @ self.weight_hh.T
        if self.bias_ih is not None:
            gi, gh = gi + self.bias_ih, gh + self.bias_hh
        return gi, gh


class RNNCell(_Cell):
    """Elman cell: ``h' = act(W_hx x + b_ih + W_hh h + b_hh)``, ``act`` tanh or relu;
    ``W_hx`` is ``weight_ih``, ``W_hh`` is ``weight_hh``.

    ``forward(x (B, F), h (B, H) or None) -> h' (B, H)``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh"):
        if nonlinearity not in {"tanh", "relu"}:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)
        gi, gh = self._affine(x, self._state(x, h))
        return torch.tanh(gi + gh) if self.nonlinearity == "tanh" else torch.relu(gi + gh)


class GRUCell(_Cell):
    """Gated recurrent unit in PyTorch's variant (the reset gate multiplies
    ``U_n h + b_hn``; Cho et al. 2014 apply it to h before U_n), gates stacked (r, z, n)
    like ``torch.nn.GRUCell``. ``W_*`` are the blocks of ``weight_ih``, ``U_*`` those of
    ``weight_hh``; ``b_*`` is ``b_i* + b_h*`` except in n::

        r  = sigmoid(W_r x + U_r h + b_r)                    reset gate
        z  = sigmoid(W_z x + U_z h + b_z)                    update gate
        n  = tanh(W_n x + b_in + r * (U_n h + b_hn))         candidate
        h' = (1 - z) * n + z * h

    ``forward(x (B, F), h (B, H) or None) -> h' (B, H)``.
    """

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)
        h = self._state(x, h)
        gi, gh = self._affine(x, h)
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h


class LSTMCell(_Cell):
    """Long short-term memory with a forget gate (Gers et al. 2000), gates stacked
    (i, f, g, o) like ``torch.nn.LSTMCell``; ``W_*`` blocks of ``weight_ih``, ``U_*`` of
    ``weight_hh``, ``b_* = b_i* + b_h*``::

        i  = sigmoid(W_i x + U_i h + b_i)                    input gate
        f  = sigmoid(W_f x + U_f h + b_f)                    forget gate
        g  = tanh(W_g x + U_g h + b_g)                       candidate
        o  = sigmoid(W_o x + U_o h + b_o)                    output gate
        c' = f * c + i * g,   h' = o * tanh(c')

    ``forward(x (B, F), (h, c) each (B, H), or None) -> (h', c')``.
    """

    gates = 4

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        self._check(x)
        if state is None:
            state = (None, None)
        elif not isinstance(state, (tuple, list)) or len(state) != 2:
            got = f"a tensor of shape {tuple(state.shape)}" if torch.is_tensor(state) else state
            raise TypeError("LSTMCell's state is the pair (h, c), each (B, H), or None for "
                            f"zeros; got {got}")
        h, c = self._state(x, state[0], "h"), self._state(x, state[1], "c")
        gi, gh = self._affine(x, h)
        i, f, g, o = (gi + gh).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def unroll(cell: nn.Module, x: torch.Tensor, state=None, truncate: int | None = None):
    """Run ``cell`` over a sequence ``x`` of shape (T, B, F) from ``state`` (None: zeros).

    Returns ``(outputs, state)``: the hidden states (T, B, H) and the final state (``h``, or
    ``(h, c)`` for an LSTM). With ``truncate=k`` the state is detached every ``k`` steps
    (truncated BPTT by chunks, ``bptt_gradients(chunk=k)``): no gradient crosses a chunk
    boundary, the forward pass is unchanged.
    """
    if x.dim() != 3:
        raise ValueError(f"unroll expects x of shape (T, B, F), got {tuple(x.shape)}")
    if truncate is not None and truncate < 1:
        raise ValueError(f"truncate must be a positive number of steps or None, got {truncate}")
    outputs = []
    for t in range(x.shape[0]):
        if truncate is not None and t > 0 and t % truncate == 0:
            state = _detach(state)
        state = cell(x[t], state)
        outputs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outputs), state


_CELLS = {"RNN": (RNNCell, nn.RNN), "GRU": (GRUCell, nn.GRU), "LSTM": (LSTMCell, nn.LSTM)}


def cell_like(layer: nn.RNNBase) -> _Cell:
    """A from-scratch cell holding a copy of the weights of a one-layer, unidirectional
    ``torch.nn.RNN``/``GRU``/``LSTM``, so ``unroll(cell_like(layer), x)`` equals ``layer(x)``."""
    kind = type(layer).__name__
    if kind not in _CELLS or layer.num_layers != 1 or layer.bidirectional or layer.proj_size:
        raise ValueError(
            f"cell_like needs a one-layer, unidirectional torch.nn.RNN, GRU or LSTM without "
            f"projection, got {layer}"
        )
    extra = {"nonlinearity": layer.nonlinearity} if kind == "RNN" else {}
    cell = _CELLS[kind][0](layer.input_size, layer.hidden_size, layer.bias, **extra)
    state = {name.removesuffix("_l0"): p for name, p in layer.state_dict().items()}
    cell.load_state_dict(state)
    return cell.to(layer.weight_ih_l0)


# ------------------------------------------------------- gradients written by hand


def _as_matrix(name: str, value, shape: tuple[int, ...]) -> torch.Tensor:
    value = torch.as_tensor(value)
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    return value


def _check_steps(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be a positive number of steps or None, got {value}")


class _Run(NamedTuple):
    """The forward pass of the bias-free RNN and what both gradient methods need, per step
    t: the inputs of each weight (``x`` (T, F) for W_hx, ``h_prev`` (T, H) for W_hh),
    ``slope`` = act'(z_t) (T, H) and ``g`` = (o_t - y_t)^T W_ho / T (T, H), the gradient
    reaching h_t through its own output."""

    loss: torch.Tensor
    grad_ho: torch.Tensor
    inputs: dict
    slope: torch.Tensor
    g: torch.Tensor


def _run(x, y, W_hx, W_hh, W_ho, h0, activation, window, chunk) -> _Run:
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (T, F), got {tuple(x.shape)}")
    T, F = x.shape
    W_hh = torch.as_tensor(W_hh)
    H = W_hh.shape[0]
    W_hh = _as_matrix("W_hh", W_hh, (H, H))
    W_hx = _as_matrix("W_hx", W_hx, (H, F))
    O = torch.as_tensor(W_ho).shape[0]
    W_ho = _as_matrix("W_ho", W_ho, (O, H))
    y = _as_matrix("y", y, (T, O))
    h = x.new_zeros(H) if h0 is None else _as_matrix("h0", h0, (H,))
    if activation not in (None, "tanh"):
        raise ValueError(f"activation must be None (identity) or 'tanh', got {activation!r}")
    _check_steps("window", window)
    _check_steps("chunk", chunk)
    if window is not None and chunk is not None:
        raise ValueError("give window (a k-step window per loss term) or chunk (detach the "
                         "state every k steps), not both")
    states = []
    for t in range(T):
        z = W_hx @ x[t] + W_hh @ h
        h = torch.tanh(z) if activation == "tanh" else z
        states.append(h)
    h = torch.stack(states)                                  # (T, H)
    err = h @ W_ho.T - y                                     # o_t - y_t, (T, O)
    slope = 1 - h**2 if activation == "tanh" else torch.ones_like(h)
    h_prev = torch.cat([(x.new_zeros(H) if h0 is None else torch.as_tensor(h0))[None], h[:-1]])
    return _Run(loss=0.5 * (err**2).sum() / T, grad_ho=err.T @ h / T,
                inputs={"W_hx": x, "W_hh": h_prev}, slope=slope, g=err @ W_ho / T)


def bptt_gradients(x, y, W_hx, W_hh, W_ho, h0=None, activation: str | None = None,
                   window: int | None = None, chunk: int | None = None):
    """Loss and gradients of the bias-free RNN by backpropagation through time (reverse
    mode, no autograd)::

        h_t = act(W_hx x_t + W_hh h_{t-1}),   o_t = W_ho h_t,
        L = (1/T) sum_t 0.5 ||o_t - y_t||^2

    ``x`` (T, F), ``y`` (T, O), ``W_hx`` (H, F), ``W_hh`` (H, H), ``W_ho`` (O, H), ``h0``
    (H,) or None (zeros); ``activation`` None (identity) or ``"tanh"``.

    The vector ``delta_t = dL/dh_t`` (H,) runs backwards from T::

        delta_T = g_T,   delta_{t-1} = g_{t-1} + c_t^T delta_t,   c_t = diag(act'_t) W_hh
        dL/dW_hh = sum_t (act'_t * delta_t) h_{t-1}^T,   dL/dW_hx = sum_t (act'_t * delta_t) x_t^T

    with ``g_t = W_ho^T (o_t - y_t) / T``: O(T H^2) time, the T states in memory.

    Two truncations (both None: the exact gradient). ``window=k``: each loss term l_t is
    backpropagated through its last k steps only (h_{t-k} is a constant for l_t), O(T k H^2).
    ``chunk=k``: the state is detached every k steps, as ``unroll(..., truncate=k)`` and
    ``SequenceModel(truncate=k)`` do, so delta does not cross a chunk boundary; with a loss
    only at the last step the two agree. Returns ``(L, {"W_hx", "W_hh", "W_ho"})``.
    """
    run = _run(x, y, W_hx, W_hh, W_ho, h0, activation, window, chunk)
    W_hh = torch.as_tensor(W_hh)
    grads = {name: v.new_zeros(W_hh.shape[0], v.shape[1]) for name, v in run.inputs.items()}

    def step(t, delta):                                      # one step back through h_t
        dz = run.slope[t] * delta                            # dL/dz_t
        for name, v in run.inputs.items():
            grads[name] += torch.outer(dz, v[t])
        return W_hh.T @ dz                                   # c_t^T delta_t

    T = len(run.g)
    if window is None:                                       # one backward sweep
        carry = torch.zeros_like(run.g[0])
        for t in reversed(range(T)):
            carry = step(t, run.g[t] + carry)                # delta_t = g_t + c_{t+1}^T delta_{t+1}
            if chunk is not None and t % chunk == 0:
                carry = torch.zeros_like(carry)              # h_{t-1} was detached
    else:                                                    # one short sweep per loss term
        for t in range(T):
            delta = run.g[t]
            for i in range(t, max(-1, t - window), -1):
                delta = step(i, delta)
    return run.loss, {**grads, "W_ho": run.grad_ho}


def rtrl_gradients(x, y, W_hx, W_hh, W_ho, h0=None, activation: str | None = None,
                   window: int | None = None, chunk: int | None = None):
    """The same loss and gradients as :func:`bptt_gradients`, by forward-mode accumulation
    (real-time recurrent learning, Williams & Zipser 1989): the sensitivity
    ``a_t = dh_t/dw`` (H, *w.shape) of w = W_hx or W_hh is carried forward in time::

        a_t = b_t + c_t a_{t-1},  a_0 = 0,   dL/dw = sum_t g_t a_t

    where ``b_t`` is the partial derivative of h_t with h_{t-1} held fixed and
    ``c_t = dh_t/dh_{t-1} = diag(act'_t) W_hh``. For W_hh, a_t holds H^3 numbers and each
    step costs O(H^4): fine for the small networks it checks, far costlier than BPTT.

    ``window=k`` keeps the last k terms of the unrolled sum,
    ``a_t = sum_{i=t-k+1}^{t} (prod_{j=i+1}^{t} c_j) b_i``; ``chunk=k`` restarts ``a`` at
    every chunk boundary. Same arguments and return value as :func:`bptt_gradients`.
    """
    run = _run(x, y, W_hx, W_hh, W_ho, h0, activation, window, chunk)
    W_hh = torch.as_tensor(W_hh)
    H = W_hh.shape[0]
    eye = torch.eye(H, dtype=run.g.dtype)
    c = run.slope[:, :, None] * W_hh                         # c_t, (T, H, H)
    grads = {}
    for name, v in run.inputs.items():
        # b_t[k, m, n] = d h_t[k] / d w[m, n] with h_{t-1} fixed = act'_t[k] delta_km v_t[n]
        b = run.slope[:, :, None, None] * eye[None, :, :, None] * v[:, None, None, :]
        grads[name] = _accumulate(run.g, b, c, window, chunk)
    return run.loss, {**grads, "W_ho": run.grad_ho}


def _accumulate(g, b, c, window, chunk):
    """sum_t g_t a_t with a_t = b_t + c_t a_{t-1}; ``a`` restarts from 0 k steps back
    (``window=k``) or at each chunk boundary (``chunk=k``)."""
    total, a = torch.zeros_like(b[0][0]), torch.zeros_like(b[0])
    for t in range(len(b)):
        if window is None:                                  # carry a_{t-1}: one more step
            if chunk is not None and t % chunk == 0:
                a = torch.zeros_like(a)
            first = t
        else:                                               # restart at step t - k + 1
            first, a = max(0, t - window + 1), torch.zeros_like(b[0])
        for i in range(first, t + 1):
            a = b[i] + torch.tensordot(c[i], a, dims=1)     # a_i = b_i + c_i a_{i-1}
        total = total + torch.tensordot(g[t], a, dims=1)
    return total


def jacobian_norms(W_hh, W_hx, x, h0, activation: str | None = None) -> torch.Tensor:
    """How much the state k steps back still moves the last one: the spectral norms
    ``||dh_T/dh_{T-k}||_2`` for k = 0, 1, ..., T of the bias-free RNN
    ``h_t = act(W_hx x_t + W_hh h_{t-1})``, as products of ``c_j = diag(act'_j) W_hh``.

    ``W_hh`` (H, H), ``W_hx`` (H, F), ``x`` (T, F), ``h0`` (H,); ``activation`` None
    (identity) or ``"tanh"``. Returns (T + 1,), the first entry 1 (k = 0)."""
    run = _run(x, torch.zeros(len(x), 1, dtype=torch.as_tensor(x).dtype), W_hx, W_hh,
               torch.zeros(1, len(h0), dtype=torch.as_tensor(x).dtype), h0, activation,
               None, None)
    W_hh = torch.as_tensor(W_hh)
    product, norms = torch.eye(W_hh.shape[0], dtype=W_hh.dtype), [1.0]
    for slope in reversed(run.slope):
        product = product @ (slope[:, None] * W_hh)          # c_T c_{T-1} ... c_{T-k+1}
        norms.append(torch.linalg.matrix_norm(product, ord=2).item())
    return torch.tensor(norms, dtype=W_hh.dtype)


# ------------------------------------------------------------------------- models


class SequenceModel(nn.Module):
    """A one-layer ``torch.nn.RNN``/``GRU``/``LSTM`` and a linear read-out of the last hidden
    state: ``forward(x (B, T, F)) -> (B, O)``.

    ``truncate=k`` trains with truncated BPTT by chunks: the sequence is fed in chunks of
    ``k`` steps and the state is detached between chunks (``bptt_gradients(chunk=k)``).
    Experiments use torch's layers for speed; :func:`cell_like` shows they compute what
    the from-scratch cells compute.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, output_size: int,
                 truncate: int | None = None):
        super().__init__()
        if kind not in _CELLS:
            raise ValueError(f"kind must be one of {sorted(_CELLS)}, got {kind!r}")
        if truncate is not None and truncate < 1:
            raise ValueError(f"truncate must be a positive number of steps or None, got {truncate}")
        self.kind, self.truncate = kind, truncate
        self.rnn = _CELLS[kind][1](input_size, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"SequenceModel expects x of shape (B, T, F), got {tuple(x.shape)}")
        step = self.truncate or x.shape[1]
        state = None
        for start in range(0, x.shape[1], step):
            if state is not None:
                state = _detach(state)
            out, state = self.rnn(x[:, start:start + step], state)
        return self.readout(out[:, -1])
