"""Recurrent networks (notebook 01): the RNN, GRU and LSTM cells written from their
equations, backpropagation through time by hand, and the data of the experiments.

Shapes: ``T`` time steps, ``B`` sequences in a batch, ``F`` input features, ``H`` hidden
units, ``O`` outputs. The cells use the parameter names, shapes and gate order of
``torch.nn.RNNCell``, ``GRUCell`` and ``LSTMCell``, so ``cell.load_state_dict(
torch_cell.state_dict())`` works and both compute the same thing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = [
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "SequenceModel",
    "adding_problem",
    "bptt_gradients",
    "cell_like",
    "draw_cell",
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
        """``W_ih x + b_ih`` and ``W_hh h + b_hh``, each (B, G*H)."""
        gi = x @ self.weight_ih.T
        gh = h @ self.weight_hh.T
        if self.bias_ih is not None:
            gi, gh = gi + self.bias_ih, gh + self.bias_hh
        return gi, gh


class RNNCell(_Cell):
    """Elman cell: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, ``act`` tanh or relu.

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
    """Gated recurrent unit, gates stacked as (r, z, n) like ``torch.nn.GRUCell``::

        r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)          reset gate
        z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)          update gate
        n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))       candidate
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
    """Long short-term memory, gates stacked as (i, f, g, o) like ``torch.nn.LSTMCell``::

        i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)          input gate
        f  = sigmoid(W_if x + b_if + W_hf h + b_hf)          forget gate
        g  = tanh(W_ig x + b_ig + W_hg h + b_hg)             candidate
        o  = sigmoid(W_io x + b_io + W_ho h + b_ho)          output gate
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
    (truncated BPTT): gradients flow back at most ``k`` steps, the forward pass is unchanged.
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


# --------------------------------------------------------------- BPTT written by hand


def _as_matrix(name: str, value, shape: tuple[int, ...]) -> torch.Tensor:
    value = torch.as_tensor(value)
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    return value


def bptt_gradients(x, y, W_hx, W_hh, W_ho, h0=None, activation: str | None = None,
                   truncate: int | None = None):
    """Loss and gradients of the bias-free RNN, by hand (no autograd)::

        h_t = act(W_hx x_t + W_hh h_{t-1}),   o_t = W_ho h_t,
        L = (1/T) sum_t 0.5 ||o_t - y_t||^2

    ``x`` (T, F), ``y`` (T, O), ``W_hx`` (H, F), ``W_hh`` (H, H), ``W_ho`` (O, H), ``h0``
    (H,) or None (zeros); ``activation`` None (identity) or ``"tanh"``.

    For ``w`` = W_hx or W_hh the sensitivity ``a_t = dh_t/dw`` (H, *w.shape) follows the
    recursion ``a_t = b_t + c_t a_{t-1}``, ``a_0 = 0``, where ``b_t`` is the partial
    derivative of h_t with h_{t-1} held fixed and ``c_t = dh_t/dh_{t-1} = diag(act'_t) W_hh``.
    Then ``dL/dw = sum_t (dL/do_t W_ho) a_t``. This is forward accumulation (cost
    O(T H^4)): fine for the small networks it checks, and autograd's reverse order gives the
    same sum. ``truncate=k`` keeps the last ``k`` terms of the unrolled sum,
    ``a_t = sum_{i=t-k+1}^{t} (prod_{j=i+1}^{t} c_j) b_i``: each loss term sees h_{t-k} as a
    constant. Returns ``(L, {"W_hx": ..., "W_hh": ..., "W_ho": ...})`` as tensors.
    """
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
    if truncate is not None and truncate < 1:
        raise ValueError(f"truncate must be a positive number of steps or None, got {truncate}")

    loss, grad_ho, g, b, c = _forward_terms(x, y, W_hx, W_hh, W_ho, h, activation)
    grads = {name: _accumulate(g, b[name], c, truncate) for name in ("W_hx", "W_hh")}
    return loss, {**grads, "W_ho": grad_ho}


def _forward_terms(x, y, W_hx, W_hh, W_ho, h, activation):
    """Run the network and collect, per step t: g_t = dL/do_t W_ho (H,), b_t for W_hx
    (H, H, F) and W_hh (H, H, H), and c_t (H, H); with the loss and dL/dW_ho."""
    T, H = x.shape[0], W_hh.shape[0]
    eye = torch.eye(H, dtype=x.dtype)
    b, c, g = {"W_hx": [], "W_hh": []}, [], []
    loss, grad_ho = x.new_zeros(()), torch.zeros_like(W_ho)
    for t in range(T):
        h_prev = h
        h = W_hx @ x[t] + W_hh @ h_prev
        slope = torch.ones_like(h)                          # act'(z_t)
        if activation == "tanh":
            h = torch.tanh(h)
            slope = 1 - h**2
        err = W_ho @ h - y[t]                               # o_t - y_t = dl_t/do_t
        loss = loss + 0.5 * (err @ err) / T
        grad_ho = grad_ho + torch.outer(err, h) / T         # dl_t/dW_ho needs no recursion
        g.append(W_ho.T @ err / T)                          # dL/dh_t through o_t only
        # b_t[k, m, n] = d h_t[k] / d w[m, n] with h_{t-1} fixed
        b["W_hx"].append(slope[:, None, None] * eye[:, :, None] * x[t][None, None, :])
        b["W_hh"].append(slope[:, None, None] * eye[:, :, None] * h_prev[None, None, :])
        c.append(slope[:, None] * W_hh)                     # c_t = dh_t/dh_{t-1}
    return loss, grad_ho, g, b, c


def _accumulate(g, b, c, truncate):
    """sum_t g_t a_t with a_t = b_t + c_t a_{t-1}, restarted from 0 k steps back if
    ``truncate=k``."""
    total, a = torch.zeros_like(b[0][0]), torch.zeros_like(b[0])
    for t in range(len(b)):
        if truncate is None:                                # carry a_{t-1}: one more step
            first = t
        else:                                               # restart at step t - k + 1
            first, a = max(0, t - truncate + 1), torch.zeros_like(b[0])
        for i in range(first, t + 1):
            a = b[i] + torch.tensordot(c[i], a, dims=1)     # a_i = b_i + c_i a_{i-1}
        total = total + torch.tensordot(g[t], a, dims=1)
    return total


# ------------------------------------------------------------------------- models


class SequenceModel(nn.Module):
    """A one-layer ``torch.nn.RNN``/``GRU``/``LSTM`` and a linear read-out of the last hidden
    state: ``forward(x (B, T, F)) -> (B, O)``.

    ``truncate=k`` trains with truncated BPTT: the sequence is fed in chunks of ``k`` steps
    and the state is detached between chunks. Experiments use torch's layers for speed;
    :func:`cell_like` shows they compute what the from-scratch cells compute.
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


# --------------------------------------------------------------------------- data


def adding_problem(n: int, length: int, seed: int = 0,
                   lag: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem: ``x`` (n, length, 2) holds random numbers in [0, 1) and a marker
    channel with two ones, one in each half of the first ``length - lag`` steps (the last
    ``lag`` steps are never marked); ``y`` (n, 1) is the sum of the two marked numbers.
    Predicting the mean, 1, scores MSE 1/6 (the variance of the sum)."""
    if n < 1 or length < 2 or not 0 <= lag <= length - 2:
        raise ValueError(
            f"adding_problem needs n >= 1, length >= 2 and 0 <= lag <= length - 2, got n={n}, "
            f"length={length}, lag={lag}"
        )
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, length, generator=g)
    rows, span = torch.arange(n), length - lag
    first = torch.randint(0, span // 2, (n,), generator=g)
    second = torch.randint(span // 2, span, (n,), generator=g)
    marks = torch.zeros(n, length)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    return torch.stack([values, marks], dim=-1), (values * marks).sum(1, keepdim=True)


# ------------------------------------------------------------------------ diagrams

_GATE, _OP = (0.55, 0.32), 0.3  # gate half-width/height, operation radius (data units)

# Each diagram: nodes {name: (x, y, "gate" | "op", text)}, wires (polylines whose ends may
# be node names), and free labels (x, y, text). The cell spans (0, 0)-(10, 6).
_DIAGRAMS = {
    "rnn": (
        "Vanilla RNN cell",
        {"act": (5.0, 3.0, "gate", "tanh")},
        [[(-1.0, 1.2), (5.0, 1.2), "act"], [(5.0, -1.0), (5.0, 1.2)],
         ["act", (5.0, 4.6), (11.0, 4.6)], [(5.0, 4.6), (5.0, 7.0)]],
        [(-1.0, 1.5, "$h_{t-1}$"), (5.3, -0.9, "$x_t$"), (10.6, 4.9, "$h_t$"),
         (5.3, 6.8, "$h_t$"), (5.8, 3.0, "$W_{hh}h_{t-1} + W_{hx}x_t + b$")],
    ),
    "gru": (
        "GRU cell (gates r, z, n)",
        {"z": (2.0, 2.2, "gate", "σ"), "r": (3.8, 2.2, "gate", "σ"),
         "n": (7.0, 2.2, "gate", "tanh"), "rh": (5.4, 2.2, "op", "×"),
         "zh": (2.0, 4.8, "op", "×"), "one": (6.0, 3.6, "op", "1−"),
         "zn": (7.0, 3.6, "op", "×"), "sum": (8.6, 4.8, "op", "+")},
        [[(-1.0, 4.8), "zh"], ["zh", "sum"], ["sum", (11.0, 4.8)], [(9.6, 4.8), (9.6, 7.0)],
         [(0.6, 4.8), (0.6, 0.8), (7.0, 0.8), "n"], [(1.2, -1.0), (1.2, 0.8)],
         [(2.0, 0.8), "z"], [(3.8, 0.8), "r"], [(5.4, 0.8), "rh"],
         ["r", "rh"], ["rh", "n"], ["z", "zh"], [(2.0, 3.6), "one"], ["one", "zn"],
         ["n", "zn"], ["zn", (8.6, 3.6), "sum"]],
        [(-1.0, 5.1, "$h_{t-1}$"), (1.5, -0.9, "$x_t$"), (10.6, 5.1, "$h_t$"),
         (9.9, 6.8, "$h_t$"), (2.3, 1.45, "$z_t$"), (4.1, 1.45, "$r_t$"),
         (7.3, 1.45, "$n_t$")],
    ),
    "lstm": (
        "LSTM cell (gates i, f, g, o)",
        {"f": (2.0, 2.2, "gate", "σ"), "i": (3.8, 2.2, "gate", "σ"),
         "g": (5.4, 2.2, "gate", "tanh"), "o": (7.2, 2.2, "gate", "σ"),
         "fc": (2.0, 5.0, "op", "×"), "ig": (4.6, 3.6, "op", "×"),
         "sum": (4.6, 5.0, "op", "+"), "tc": (8.6, 3.6, "gate", "tanh"),
         "oc": (8.6, 2.2, "op", "×")},
        [[(-1.0, 5.0), "fc"], ["fc", "sum"], ["sum", (11.0, 5.0)],
         [(-1.0, 0.8), (7.2, 0.8), "o"], [(0.9, -1.0), (0.9, 0.8)],
         [(2.0, 0.8), "f"], [(3.8, 0.8), "i"], [(5.4, 0.8), "g"],
         ["f", "fc"], ["i", (3.8, 3.6), "ig"], ["g", (5.4, 3.6), "ig"], ["ig", "sum"],
         [(8.6, 5.0), "tc"], ["tc", "oc"], ["o", "oc"],
         ["oc", (8.6, 1.2), (9.6, 1.2), (9.6, 0.4), (11.0, 0.4)], [(9.6, 1.2), (9.6, 7.0)]],
        [(-1.0, 5.3, "$c_{t-1}$"), (-1.0, 1.1, "$h_{t-1}$"), (1.2, -0.9, "$x_t$"),
         (10.6, 5.3, "$c_t$"), (10.6, 0.7, "$h_t$"), (9.9, 6.8, "$h_t$"),
         (2.3, 1.45, "$f_t$"), (4.1, 1.45, "$i_t$"), (5.7, 1.45, "$g_t$"),
         (7.5, 1.45, "$o_t$")],
    ),
}


def _node_extent(node, direction) -> float:
    """Distance from a node's centre to its edge along the unit vector ``direction``."""
    if node[2] == "op":
        return _OP
    dx, dy = abs(direction[0]), abs(direction[1])
    return min(_GATE[0] / dx if dx else math.inf, _GATE[1] / dy if dy else math.inf)


def _wire_points(wire, nodes) -> np.ndarray:
    """The polyline of a wire, its ends pulled back to the edges of the nodes they touch."""
    pts = np.array([nodes[p][:2] if isinstance(p, str) else p for p in wire], dtype=float)
    for end, near in ((0, 1), (-1, -2)):
        if isinstance(wire[end], str):
            d = pts[near] - pts[end]
            d /= np.linalg.norm(d)
            pts[end] += d * _node_extent(nodes[wire[end]], d)
    return pts


def draw_cell(kind: str):
    """Draw the ``"rnn"``, ``"gru"`` or ``"lstm"`` cell as a schematic; returns the figure.

    Yellow boxes are layers (a weight matrix, a bias and the named nonlinearity applied to
    the inputs wired into them), pink circles are elementwise operations.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyBboxPatch

    if kind not in _DIAGRAMS:
        raise ValueError(f"kind must be one of {sorted(_DIAGRAMS)}, got {kind!r}")
    title, nodes, wires, labels = _DIAGRAMS[kind]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.add_patch(FancyBboxPatch((0, 0), 10, 6, boxstyle="round,pad=0,rounding_size=0.5",
                                fc="#eef3fa", ec="#4a6fa5", lw=1.5))
    for wire in wires:
        pts = _wire_points(wire, nodes)
        ax.plot(pts[:-1, 0], pts[:-1, 1], color="0.25", lw=1.4, solid_capstyle="round")
        style = "-|>" if isinstance(wire[-1], str) or not (0 < pts[-1][0] < 10
                                                          and 0 < pts[-1][1] < 6) else "-"
        ax.annotate("", xy=pts[-1], xytext=pts[-2],
                    arrowprops={"arrowstyle": style, "color": "0.25", "lw": 1.4,
                                "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12})
    for x, y, shape, text in nodes.values():
        if shape == "gate":
            patch = FancyBboxPatch((x - _GATE[0], y - _GATE[1]), 2 * _GATE[0], 2 * _GATE[1],
                                   boxstyle="round,pad=0,rounding_size=0.1", fc="#ffd866",
                                   ec="#a07800", lw=1.2, zorder=3)
        else:
            patch = Circle((x, y), _OP, fc="#f6b3c6", ec="#a0304f", lw=1.2, zorder=3)
        ax.add_patch(patch)
        ax.text(x, y, text, ha="center", va="center", fontsize=10, zorder=4)
    for x, y, text in labels:
        ax.text(x, y, text, ha="left", va="center", fontsize=10)
    ax.set_xlim(-1.3, 11.6)
    ax.set_ylim(-1.3, 7.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return fig
