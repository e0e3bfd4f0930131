"""One figure style for the series, loss curves, signal plots and ``save_figure``."""

from __future__ import annotations

import os
import pathlib

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from labutils import paths

STYLE = {
    "figure.figsize": (7.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "image.cmap": "magma",
    "axes.prop_cycle": mpl.cycler(
        color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
    ),
}


# One colour per model (and per reference) across the whole series, so that a GRU is the
# same green in every figure: ``color("gru")``.
COLORS = {
    "rnn": "#7f7f7f",
    "gru": "#2ca02c",
    "lstm": "#9467bd",
    "cnn": "#1f77b4",
    "bilstm": "#9467bd",
    "transformer": "#ff7f0e",
    "linear": "#8c564b",
    "wiener": "#d62728",
    "oracle": "#000000",
    "baseline": "#bcbd22",
    "noisy": "#aaaaaa",
    "clean": "#17becf",
    "mc_dropout": "#1f77b4",
    "single_model": "#e377c2",
    "ensemble": "#d62728",
    "temperature": "#8c564b",
    "framewise": "#1f77b4",
    "ctc": "#ff7f0e",
    "pretrained": "#2ca02c",
    "random_init": "#7f7f7f",
    "paper_codebook": "#393b79",
    "log_mel": "#8c564b",
    "spectral_subtraction": "#bcbd22",
    "stft_cnn": "#e377c2",
}


def color(name: str) -> str:
    """The series' colour of a model or reference, e.g. ``color("gru")``."""
    key = name.lower().replace("-", "_").replace(" ", "_")
    if key not in COLORS:
        raise KeyError(f"no series colour for {name!r}; add it to labutils.plotting.COLORS "
                       f"(known: {', '.join(COLORS)})")
    return COLORS[key]


def use_style() -> None:
    """Apply the series' matplotlib style (done once when labutils is imported)."""
    mpl.rcParams.update(STYLE)


def figures_dir() -> pathlib.Path:
    """Where figures are saved: ``$LABUTILS_FIGURES`` if set (the full batch run sets it to
    the repository's ``figures/``), else inside a clone the git-ignored ``runs/figures/``,
    so that running a notebook never changes the committed figures; else ``./figures``."""
    env = os.environ.get("LABUTILS_FIGURES")
    if env:
        return pathlib.Path(env).expanduser()
    if paths.in_clone():
        return paths.SCRATCH_FIGURES
    return pathlib.Path.cwd() / "figures"


def figure_path(name: str) -> pathlib.Path:
    """Where :func:`save_figure` puts ``name`` (PNG unless ``name`` has a suffix)."""
    if not name or pathlib.Path(name).name != name:
        raise ValueError(f"figure name {name!r} must be a plain file name like 'ctc_lattice.png'")
    return figures_dir() / (name if pathlib.Path(name).suffix else f"{name}.png")


def save_figure(fig: mpl.figure.Figure, name: str) -> None:
    """Save ``fig`` as ``figures/<name>`` (see :func:`figure_path`), atomically."""
    path = figure_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, metadata={"Software": None} if path.suffix == ".png" else None)
    os.replace(tmp, path)


def plot_history(history, keys: list[str] | None = None, axes=None, title: str = ""):
    """Plot a training :class:`~labutils.training.History`: the losses on the left and,
    if any, the other metrics on the right. Returns the figure."""
    keys = keys or [k for k in history.keys() if k not in {"lr", "seconds"}]
    losses = [k for k in keys if k.endswith("loss")]
    others = [k for k in keys if not k.endswith("loss")]
    if axes is None:
        ncols = 2 if others else 1
        fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols + 1, 3.3), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    names = {k.split("_", 1)[-1] for k in others}
    metric_label = names.pop() if len(names) == 1 else "metric"
    groups = ((axes[0], losses, "loss"), (axes[-1], others, metric_label))
    if len(axes) < 2:  # one axis: everything on it
        groups = ((axes[0], losses + others, "value" if others else "loss"),)
    for ax, group, label in groups:
        if not group:
            continue
        for key in group:
            values = history[key]
            ax.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None,
                    ms=3, label=key.replace("_", " "))
        if history.best_epoch is not None:
            ax.axvline(history.best_epoch + 1, color="0.6", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))  # no epoch 2.5
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


class LivePlot:
    """Loss curves redrawn in place in a notebook after every epoch (text outside one)."""

    def __init__(self):
        from IPython import get_ipython
        from IPython.display import display

        self.handle = None
        self.fig = None
        if get_ipython() is not None:
            self.fig = plt.figure(figsize=(6, 3))
            plt.close(self.fig)
            self.handle = display(self.fig, display_id=True)

    def update(self, history) -> None:
        if self.handle is None:
            return
        self.fig.clear()
        plot_history(history, axes=[self.fig.add_subplot(1, 1, 1)])
        self.handle.update(self.fig)

    def close(self) -> None:
        if self.fig is not None:
            plt.close(self.fig)


def plot_signal(x, sr: float, ax=None, label: str | None = None, **kwargs):
    """Plot a waveform ``x`` of shape (N,) against time in seconds. Returns the axes."""
    x = np.asarray(x, dtype=float).reshape(-1)
    ax = ax or plt.subplots(figsize=(7, 2.4))[1]
    ax.plot(np.arange(x.size) / sr, x, lw=0.8, label=label, **kwargs)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if label:
        ax.legend(loc="upper right")
    return ax


def plot_spectrogram(spec_db, sr: float, hop: int, ax=None, fmax: float | None = None,
                     colorbar: bool = True):
    """Show a spectrogram in dB of shape (freqs, frames) from ``labutils.audio``."""
    spec_db = np.asarray(spec_db)
    ax = ax or plt.subplots(figsize=(7, 3))[1]
    extent = [0, spec_db.shape[1] * hop / sr, 0, sr / 2]
    im = ax.imshow(spec_db, origin="lower", aspect="auto", extent=extent)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.grid(False)
    if fmax:
        ax.set_ylim(0, fmax)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="dB")
    return ax


STFT_WINDOWS = ("hann", "hann (symmetric)", "hamming", "rectangular")


def stft_window(name: str, n_fft: int):
    """A window of ``n_fft`` samples by name (:data:`STFT_WINDOWS`); float64 tensor."""
    import torch

    makers = {
        "hann": lambda: torch.hann_window(n_fft, dtype=torch.float64),
        "hann (symmetric)": lambda: torch.hann_window(n_fft, periodic=False, dtype=torch.float64),
        "hamming": lambda: torch.hamming_window(n_fft, dtype=torch.float64),
        "rectangular": lambda: torch.ones(n_fft, dtype=torch.float64),
    }
    if name not in makers:
        raise ValueError(f"window {name!r} is not one of {STFT_WINDOWS}")
    return makers[name]()


def draw_stft_explorer(fig, noisy, clean, sr: int, window: str, n_fft: int,
                       hop_fraction: float) -> dict:
    """Draw, for one clip and one STFT setting, the noisy spectrogram, the overlap-add
    envelope of the window, and the oracle mask's result. ``noisy``, ``clean``: (N,)
    float64 tensors. Returns the numbers shown: ``ola_error_db`` (plain overlap-add,
    divided by the envelope's mean), ``wola_error_db`` (divided by the envelope itself,
    as ``torch.istft``), ``cola_ripple`` and ``irm_gain_db`` (SNR improvement of the
    oracle ideal ratio mask)."""
    import torch

    from labutils import audio, spectral

    hop = max(1, int(round(hop_fraction * n_fft)))
    w = stft_window(window, n_fft)
    spec = spectral.stft(noisy, w, hop)
    frames = torch.fft.irfft(spec.transpose(-1, -2), n=n_fft, dim=-1) * w
    ola = spectral.overlap_add(frames, hop)[n_fft // 2: n_fft // 2 + noisy.shape[-1]]
    envelope = spectral.overlap_add_envelope(w, hop, spec.shape[-1], power=2)
    inner = slice(n_fft, noisy.shape[-1] - n_fft)  # away from the ends
    envelope_in = envelope[n_fft // 2: n_fft // 2 + noisy.shape[-1]]

    def error_db(estimate):
        ref, est = noisy[inner], estimate[inner]
        return float(10 * torch.log10((ref - est).pow(2).sum() / ref.pow(2).sum() + 1e-30))

    plain = ola / envelope_in[inner].mean()
    wola = ola / envelope_in.clamp_min(1e-12)
    clean_spec = spectral.stft(clean, w, hop)
    mask = spectral.ideal_ratio_mask(clean_spec, spec - clean_spec)
    enhanced = spectral.istft(mask * spec, w, hop, noisy.shape[-1])
    numbers = {
        "ola_error_db": error_db(plain), "wola_error_db": error_db(wola),
        "cola_ripple": spectral.cola_ripple(w, hop, power=2),
        "irm_gain_db": float(audio.snr_db(clean, enhanced) - audio.snr_db(clean, noisy)),
    }
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.4, 1, 1.4]})
    db = 20 * np.log10(spec.abs().numpy() + 1e-9)
    plot_spectrogram(db - db.max(), sr, hop, ax=axes[0], fmax=8000, colorbar=False)
    axes[0].images[0].set_clim(-80, 0)
    axes[0].set_title(f"noisy, {window}, {1e3 * n_fft / sr:.0f} ms, hop {hop}", fontsize=9)
    show = min(envelope.shape[-1], 6 * n_fft)
    t_ms = 1e3 * np.arange(show) / sr
    axes[1].plot(t_ms, envelope[:show].numpy(), color="k", lw=1)
    axes[1].set_ylim(0, 1.15 * float(envelope.max()))
    axes[1].set_xlabel("time (ms)")
    axes[1].set_ylabel("sum of squared windows")
    axes[1].set_title(f"overlap-add envelope, ripple {numbers['cola_ripple']:.2f}", fontsize=9)
    freqs = np.arange(mask.shape[0]) * sr / n_fft / 1e3
    axes[2].plot(freqs, mask.mean(-1).numpy(), color=color("oracle"), lw=1)
    axes[2].set_ylim(0, 1)
    axes[2].set_xlim(0, sr / 2e3)
    axes[2].set_xlabel("frequency (kHz)")
    axes[2].set_ylabel("mean ideal ratio mask")
    axes[2].set_title(f"oracle mask: {numbers['irm_gain_db']:+.1f} dB SNR", fontsize=9)
    fig.suptitle(f"reconstruction error: plain overlap-add {numbers['ola_error_db']:.0f} dB, "
                 f"normalised (istft) {numbers['wola_error_db']:.0f} dB", fontsize=10)
    fig.tight_layout()
    return numbers



# ------------------------------------------------------------------ explorer drawings


def attention_image(ax, weights, rows, cols):
    """One attention map (Tq, Tk) as an image, queries down, keys across, with token
    labels. Returns the image (for a colour bar)."""
    image = ax.imshow(np.asarray(weights), vmin=0, vmax=1, cmap="magma")
    ax.set_xticks(range(len(cols)), cols, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.grid(False)
    return image


def draw_attention_head(fig, maps, labels, kind, layer, head):
    """The attention-head viewer of notebook 05: ``maps[kind]`` is a list over layers of
    (h, Tq, Tk) weights, ``labels[kind]`` the (query, key) token labels; ``layer`` and
    ``head`` count from 1, as in the title."""
    layers = maps[kind]
    if not 1 <= layer <= len(layers) or not 1 <= head <= len(layers[0]):
        raise ValueError(f"layer {layer} / head {head} out of range: layers 1..{len(layers)}, "
                         f"heads 1..{len(layers[0])}")
    ax = fig.add_subplot(1, 1, 1)
    rows, cols = labels[kind]
    image = attention_image(ax, layers[layer - 1][head - 1], rows, cols)
    fig.colorbar(image, ax=ax, label="attention weight")
    ax.set_title(f"{kind}: layer {layer} of {len(layers)}, head {head} of {len(layers[0])}")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    return ax


def draw_ctc_lattice(fig, lattices, target, t):
    """The CTC lattice explorer of notebook 06. ``lattices[target]`` holds ``log_alpha``
    and ``log_beta`` (T, S') and ``states``, the labels of l'; ``t`` counts frames from 1.
    Draws log10 alpha, log10 beta and the posterior gamma = alpha beta / p with frame t
    marked, and gamma_t(s) over the states of frame t."""
    lat = lattices[target]
    la, lb, states = np.asarray(lat["log_alpha"]), np.asarray(lat["log_beta"]), lat["states"]
    T, S = la.shape
    if not 1 <= t <= T:
        raise ValueError(f"frame t={t} is outside 1..{T}")
    log_p = np.logaddexp.reduce(la[0] + lb[0])
    gamma = np.exp(la + lb - log_p)
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 0.8]})
    panels = [(la / np.log(10), r"$\log_{10}\alpha_t(s)$", "magma"),
              (lb / np.log(10), r"$\log_{10}\beta_t(s)$", "magma"),
              (gamma, r"posterior $\gamma_t(s)$", "viridis")]
    for ax, (values, title, cmap) in zip(axes[:3], panels, strict=True):
        shown = np.where(np.isfinite(values), values, np.nan)
        image = ax.imshow(shown.T, aspect="auto", cmap=cmap, extent=(0.5, T + 0.5, S - 0.5, -0.5))
        ax.axvline(t, color="w", lw=1.5)
        ax.axvline(t, color="k", lw=0.8, ls="--")
        fig.colorbar(image, ax=ax, fraction=0.06)
        ax.set_title(title)
        ax.set_xlabel("frame t")
        ax.set_yticks(range(S), states)
        ax.grid(False)
    axes[0].set_ylabel(f"state of l' ({target})")
    axes[3].barh(range(S), gamma[t - 1], color=color("ctc"))
    axes[3].set_ylim(S - 0.5, -0.5)
    axes[3].set_yticks(range(S), states)
    axes[3].set_xlim(0, 1)
    axes[3].set_xlabel(r"$\gamma_t(s)$")
    axes[3].set_title(f"frame {t}: states sum to {gamma[t - 1].sum():.2f}")
    fig.suptitle(f"target {target}, frame {t} of {T}: p(l|x) = {np.exp(log_p):.3g}; "
                 f"alpha_t(s) beta_t(s) / p summed over s is 1 in every frame")
    fig.tight_layout()
    return axes


def draw_beam_search(fig, beams, exact, beam_width, names=None):
    """The beam-width explorer of notebook 06. ``beams[w]`` is the output of
    ``prefix_beam_search`` with beam w (best first); ``exact`` maps every labelling (tuple)
    to its exact log p(l|x). Shows the kept labellings' beam scores against their exact
    probabilities; ``names`` turns a labelling into text (default: digits)."""
    names = names or (lambda labels: " ".join(map(str, labels)) or "(empty)")
    kept = beams[beam_width][:8]
    best = max(exact, key=exact.get)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(kept))
    ax.barh(y - 0.2, [np.exp(s) for _, s in kept], height=0.4, color=color("ctc"),
            label="beam score")
    ax.barh(y + 0.2, [np.exp(exact[tuple(lab)]) for lab, _ in kept], height=0.4,
            color="0.6", label="exact p(l|x)")
    ax.set_yticks(y, [names(lab) + ("  (best)" if tuple(lab) == best else "")
                      for lab, _ in kept])
    ax.set_ylim(len(kept) - 0.5, -0.5)
    ax.set_xlabel("probability")
    ax.legend(loc="lower right")
    found, score = kept[0]
    verdict = "the best labelling" if tuple(found) == best else \
        f"missed: best is {names(best)} (p = {np.exp(exact[best]):.3f})"
    ax.set_title(f"beam width {beam_width}: decodes {names(found)} with score "
                 f"{np.exp(score):.3f}; {verdict}", fontsize=9)
    return ax


def draw_vowel_spectrum(fig, vowel, f0, *, freqs, spectra):
    """Notebook 00's explorer: the mean spectrum ``spectra[vowel, f0]`` (F,) in dB at
    ``freqs`` (F,) in Hz, with the vowel's formants (``audio.VOWEL_FORMANTS``) dashed."""
    from labutils import audio

    if (vowel, f0) not in spectra:
        raise ValueError(f"no spectrum for vowel {vowel!r} at f0 = {f0} Hz: precompute it")
    ax = fig.add_subplot()
    ax.plot(freqs, spectra[vowel, f0], lw=0.8, color="C0")
    for f in audio.VOWEL_FORMANTS[vowel]:
        ax.axvline(f, color="C1", ls="--", lw=1)
    ax.set(xlim=(0, 4000), xlabel="frequency (Hz)", ylabel="mean level (dB)",
           title=f"vowel /{vowel}/ at f0 = {f0} Hz: harmonics under the formants (dashed)")
    return ax


def draw_gradient_norms(fig, rho, activation, input_scale, *, Q, W_hx, x, h0):
    """Notebook 01's explorer: ``||dh_T/dh_{T-k}||_2`` for k = 0..T (``rnn.jacobian_norms``)
    of the bias-free RNN with ``W_hh = rho Q``, on a log axis, beside ``rho^k``. ``Q``
    (H, H) is orthogonal, so that the linear network's curve is exactly ``rho^k``;
    ``W_hx`` (H, F); ``x`` (T, F) is the input drive, multiplied by ``input_scale``; ``h0``
    (H,). ``activation`` is ``"tanh"`` or ``"identity"``. Returns the norms (T + 1,)."""
    from labutils import rnn

    if activation not in ("tanh", "identity"):
        raise ValueError(f"activation must be 'tanh' or 'identity', got {activation!r}")
    act = None if activation == "identity" else activation
    norms = rnn.jacobian_norms(rho * Q, W_hx, input_scale * x, h0, act).numpy()
    steps = np.arange(len(norms))
    ax = fig.add_subplot(1, 1, 1)
    ax.semilogy(steps, norms, color="C0", label=f"{activation}, input x {input_scale:g}")
    ax.semilogy(steps, rho**steps, color="0.4", ls=":", lw=1, label=r"$\rho^{T-t}$")
    ax.set_ylim(1e-8, 1e8)
    ax.set_xlabel("steps back, $T - t$")
    ax.set_ylabel(r"$\Vert\partial h_T / \partial h_t\Vert_2$")
    ax.set_title(rf"$\rho(W_{{hh}})$ = {rho:.2f}: the gradient from {len(norms) - 1} steps back "
                 f"is {norms[-1]:.1e} times the last step's")
    ax.legend(loc="upper left")
    return norms


def draw_wiener_explorer(fig, clean, noise, snr_db, taps, sr, label="noise") -> dict:
    """Notebook 02's explorer. ``clean`` (C, N) speech clips and ``noise`` (C, N) noise of
    unit power are mixed at ``snr_db`` (relative to each clip's speech power); the Wiener
    FIR filter of ``taps`` taps (``conv.wiener_fir``) is fitted on the first C - 1 clips
    and applied to the last. Draws the speech and noise spectra (Welch) under the filter's
    response |H(f)|, and 50 ms of the held-out clip. Returns ``h`` (taps,), the held-out
    ``noisy``, ``filtered`` and ``clean`` signals (N,), and ``gain_db``, their SNR gain."""
    import scipy.signal
    import torch

    from labutils import audio, conv

    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.ndim != 2 or clean.shape != noise.shape or len(clean) < 2:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} must both be (C, N) "
                         "with C >= 2 clips: C - 1 to fit the filter, one to test it")
    speech_rms = np.sqrt((clean**2).mean(1, keepdims=True))
    noisy = torch.from_numpy(clean + noise * speech_rms / 10 ** (snr_db / 20))
    target = torch.from_numpy(clean)
    h = conv.wiener_fir(noisy[:-1], target[:-1], taps)
    out = conv.mimo_conv1d(noisy[-1:, None], h.view(-1, 1, 1))[0, 0]
    gain = (audio.snr_db(target[-1], out) - audio.snr_db(target[-1], noisy[-1])).item()
    ax, ax_t = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    nperseg = min(1024, clean.shape[1])
    f, speech_psd = scipy.signal.welch(clean, fs=sr, nperseg=nperseg)
    _, noise_psd = scipy.signal.welch(noisy.numpy() - clean, fs=sr, nperseg=nperseg)
    ax.plot(f / 1e3, 10 * np.log10(speech_psd.mean(0)), color=color("clean"), label="speech")
    ax.plot(f / 1e3, 10 * np.log10(noise_psd.mean(0)), color=color("noisy"), label="noise")
    ax.set_xlabel("frequency (kHz)")
    ax.set_ylabel("PSD (dB/Hz)")
    response = ax.twinx()
    f_resp = np.fft.rfftfreq(4096, 1 / sr)
    response.plot(f_resp / 1e3, 20 * np.log10(np.abs(np.fft.rfft(h.numpy(), 4096)) + 1e-9),
                  color=color("wiener"), label="Wiener |H(f)|")
    response.set_ylim(-60, 10)
    response.set_ylabel("|H(f)| (dB)")
    response.grid(False)
    ax.legend(loc="lower left", fontsize=8)
    response.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{label} at {snr_db:g} dB, {taps} taps: SNR gain {gain:+.2f} dB")
    start = min(int(0.3 * sr), max(0, clean.shape[1] - int(0.05 * sr)))
    span = slice(start, min(clean.shape[1], start + int(0.05 * sr)))
    t_ms = 1e3 * np.arange(span.start, span.stop) / sr
    ax_t.plot(t_ms, noisy[-1, span], color=color("noisy"), lw=0.8, label="noisy")
    ax_t.plot(t_ms, out[span], color=color("wiener"), lw=0.8, label="filtered")
    ax_t.plot(t_ms, clean[-1, span], color=color("clean"), lw=0.8, ls="--", label="clean")
    ax_t.set_xlabel("time (ms)")
    ax_t.set_title("50 ms of the held-out clip")
    ax_t.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return {"h": h.numpy(), "noisy": noisy[-1].numpy(), "filtered": out.numpy(),
            "clean": clean[-1], "gain_db": gain}


# ------------------------------------------------------------- recurrent cell diagrams

_GATE, _OP = (0.55, 0.32), 0.3  # box half-width/height, operation radius (data units)

# Each diagram: nodes {name: (x, y, kind, text)} with kind "gate" (a layer: weights, bias
# and the named nonlinearity of everything wired into it), "lin" (weights and bias only)
# or "op" (elementwise); wires (polylines whose ends may be node names, drawn in order: a
# later wire crossing an earlier one is drawn with a gap, meaning "not connected"); dots
# where wires join; free labels (x, y, text). The cell spans (0, 0)-(10, 6).
_DIAGRAMS = {
    "rnn": (
        "Vanilla RNN cell",
        {"act": (5.0, 3.0, "gate", "tanh")},
        [[(-1.0, 1.2), (5.0, 1.2), "act"], [(5.0, -1.0), (5.0, 1.2)],
         ["act", (5.0, 4.6), (11.0, 4.6)], [(5.0, 4.6), (5.0, 7.0)]],
        [(5.0, 1.2), (5.0, 4.6)],
        [(-1.0, 1.5, "$h_{t-1}$"), (5.3, -0.9, "$x_t$"), (10.6, 4.9, "$h_t$"),
         (5.3, 6.8, "$h_t$"), (5.8, 3.0, "$W_{hh}h_{t-1} + W_{hx}x_t + b$")],
    ),
    "gru": (
        "GRU cell (PyTorch's variant: $r_t$ gates $U_n h_{t-1}$ only)",
        {"z": (2.0, 2.2, "gate", "σ"), "r": (3.6, 2.2, "gate", "σ"),
         "whn": (2.8, 4.0, "lin", "$U_n$"), "rh": (3.6, 3.2, "op", "×"),
         "n": (5.2, 2.2, "gate", "tanh"), "zh": (2.0, 5.2, "op", "×"),
         "one": (6.6, 4.5, "op", "1−"), "zn": (6.6, 2.2, "op", "×"),
         "sum": (8.6, 5.2, "op", "+")},
        [[(-1.0, 5.2), "zh"], ["zh", "sum"], ["sum", (11.0, 5.2)], [(9.6, 5.2), (9.6, 7.0)],
         [(0.5, 5.2), (0.5, 0.8), (3.6, 0.8), "r"], [(1.2, -1.0), (1.2, 0.8)],
         [(2.0, 0.8), "z"], ["z", "zh"], [(2.0, 4.5), "one"], ["one", "zn"],
         [(0.5, 4.0), "whn"], ["whn", (3.6, 4.0), "rh"], ["r", "rh"], ["rh", (5.2, 3.2), "n"],
         [(1.2, 0.3), (5.2, 0.3), "n"], ["n", "zn"], ["zn", (8.6, 2.2), "sum"]],
        [(9.6, 5.2), (0.5, 5.2), (1.2, 0.8), (2.0, 0.8), (2.0, 4.5), (0.5, 4.0),
         (1.2, 0.3)],
        [(-1.0, 5.5, "$h_{t-1}$"), (1.5, -0.9, "$x_t$"), (10.6, 5.5, "$h_t$"),
         (9.9, 6.8, "$h_t$"), (2.3, 1.45, "$z_t$"), (3.9, 1.45, "$r_t$"),
         (5.5, 1.45, "$n_t$")],
    ),
    "lstm": (
        "LSTM cell with a forget gate (Gers et al. 2000)",
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
        [(0.9, 0.8), (2.0, 0.8), (3.8, 0.8), (5.4, 0.8), (8.6, 5.0), (9.6, 1.2)],
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
    return min(_GATE[0] / dx if dx else np.inf, _GATE[1] / dy if dy else np.inf)


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
    """Draw the ``"rnn"``, ``"gru"`` or ``"lstm"`` cell of ``labutils.rnn`` as a schematic;
    returns the figure.

    Yellow boxes are layers (weights, a bias and the named nonlinearity applied to the sum
    of the inputs wired into them), white boxes weights and a bias only, pink circles
    elementwise operations. Dots join wires; a wire that crosses another with a gap is not
    connected to it.
    """
    from matplotlib import patheffects
    from matplotlib.patches import Circle, FancyBboxPatch

    if kind not in _DIAGRAMS:
        raise ValueError(f"kind must be one of {sorted(_DIAGRAMS)}, got {kind!r}")
    title, nodes, wires, dots, labels = _DIAGRAMS[kind]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.add_patch(FancyBboxPatch((0, 0), 10, 6, boxstyle="round,pad=0,rounding_size=0.5",
                                fc="#eef3fa", ec="#4a6fa5", lw=1.5))
    halo = [patheffects.Stroke(linewidth=5, foreground="#eef3fa"), patheffects.Normal()]
    for z, wire in enumerate(wires):
        pts = _wire_points(wire, nodes)
        ax.plot(pts[:, 0], pts[:, 1], color="0.25", lw=1.4, solid_capstyle="butt",
                path_effects=halo, zorder=1 + z / 100)
        inside = 0 < pts[-1][0] < 10 and 0 < pts[-1][1] < 6
        if isinstance(wire[-1], str) or not inside:  # an arrowhead where the wire ends
            step = (pts[-1] - pts[-2]) / np.linalg.norm(pts[-1] - pts[-2])
            ax.annotate("", xy=pts[-1], xytext=pts[-1] - 0.3 * step, zorder=2,
                        arrowprops={"arrowstyle": "-|>", "color": "0.25", "lw": 1.4,
                                    "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12})
    for x, y in dots:
        ax.add_patch(Circle((x, y), 0.09, fc="0.25", ec="none", zorder=2.5))
    colours = {"gate": ("#ffd866", "#a07800"), "lin": ("white", "#a07800")}
    for x, y, shape, text in nodes.values():
        if shape == "op":
            patch = Circle((x, y), _OP, fc="#f6b3c6", ec="#a0304f", lw=1.2, zorder=3)
        else:
            patch = FancyBboxPatch((x - _GATE[0], y - _GATE[1]), 2 * _GATE[0], 2 * _GATE[1],
                                   boxstyle="round,pad=0,rounding_size=0.1",
                                   fc=colours[shape][0], ec=colours[shape][1], lw=1.2, zorder=3)
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


use_style()


# ------------------------------------------------------------------ sleep staging

SLEEP_STAGES = ("W", "N1", "N2", "N3", "R")
# Hypnograms are drawn in the clinical order: W at the top, then R, N1, N2, N3.
_HYPNOGRAM_LEVEL = {0: 4, 4: 3, 1: 2, 2: 1, 3: 0}


def plot_hypnogram(ax, stages, color: str = "k", label: str | None = None,
                   epoch_seconds: float = 30.0, **kwargs):
    """Draw a hypnogram, stages (E,) in 0..4 (W, N1, N2, N3, R), as a step line against
    time in hours, W at the top and N3 at the bottom. Returns the axes."""
    stages = np.asarray(stages)
    levels = np.array([_HYPNOGRAM_LEVEL[int(s)] for s in stages])
    hours = np.arange(len(stages) + 1) * epoch_seconds / 3600
    ax.step(hours, np.append(levels, levels[-1:]), where="post", color=color, label=label,
            lw=kwargs.pop("lw", 1.0), **kwargs)
    ax.set_yticks(sorted(_HYPNOGRAM_LEVEL.values()),
                  [SLEEP_STAGES[s] for s in sorted(_HYPNOGRAM_LEVEL, key=_HYPNOGRAM_LEVEL.get)])
    ax.set_xlabel("time (hours)")
    return ax


def draw_sleep_scrubber(fig, epoch: int, x, stages, frame_probs, ctc_probs, freqs, spectra,
                        channels, sfreq: float = 100.0) -> None:
    """One state of the hypnogram scrubber: the night's hypnogram with the chosen epoch
    marked, that epoch's signals (x: (E, C, S)), its spectra (spectra: (E, C, F) in
    uV^2/Hz at ``freqs`` (F,)), and the stage probabilities of the framewise model
    (frame_probs: (E, 5)) and of the CTC model (ctc_probs: (E, 6), blank first)."""
    epoch = int(np.clip(epoch, 0, len(stages) - 1))
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 1.3])
    ax = fig.add_subplot(grid[0, :])
    plot_hypnogram(ax, stages, color="k", label="scored")
    hour = epoch * len(x[0, 0]) / sfreq / 3600
    ax.axvline(hour, color=color("ctc"), lw=2, alpha=0.8)
    ax.set_title(f"epoch {epoch + 1} of {len(stages)}: scored {SLEEP_STAGES[int(stages[epoch])]}")
    sig = fig.add_subplot(grid[1, 0])
    t = np.arange(x.shape[-1]) / sfreq
    step = 4 * float(np.median(np.abs(x[epoch]))) + 1e-9
    for c, name in enumerate(channels):
        sig.plot(t, x[epoch, c] - c * step, lw=0.5, color="k")
        sig.text(0, -c * step + 0.45 * step, name, fontsize=7)
    sig.set_yticks([])
    sig.set_xlabel("time in the epoch (s)")
    sig.set_title("signals (offset)")
    spec = fig.add_subplot(grid[1, 1])
    for c, name in enumerate(channels):
        spec.semilogy(freqs, spectra[epoch, c], lw=1, label=name)
    spec.set_xlim(0, 30)
    spec.set_xlabel("frequency (Hz)")
    spec.set_ylabel("power (uV²/Hz)")
    spec.set_title("spectrum")
    spec.legend(fontsize=7, loc="upper right")
    bars = fig.add_subplot(grid[1, 2])
    pos = np.arange(len(SLEEP_STAGES))
    bars.bar(pos - 0.2, frame_probs[epoch], 0.4, color=color("framewise"), label="framewise")
    bars.bar(pos + 0.2, ctc_probs[epoch, 1:], 0.4, color=color("ctc"),
             label=f"CTC (blank {ctc_probs[epoch, 0]:.2f})")
    bars.set_xticks(pos, SLEEP_STAGES)
    bars.set_ylim(0, 1)
    bars.set_ylabel("probability")
    bars.set_title("stage probabilities")
    bars.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
def svd_rank_explorer(model, x, y, defaults, reference=None):
    """The pieces of an explorer (``lu.explorer(draw, controls)``) of the rank of each linear
    layer of ``model`` (see :mod:`labutils.compression`). The SVDs and spectra are computed
    once; ``draw(fig, rank_W1=..., ...)`` factorises the layers at those ranks (the full rank
    keeps a layer dense), measures the accuracy on ``x`` (N, ...) with labels ``y`` (N,),
    and draws the spectra with the ranks marked beside accuracy against parameter count.
    ``defaults`` gives the starting rank of each layer (None: full); ``reference`` maps a
    label to fixed (parameters, accuracy) points drawn for comparison.
    Returns ``(draw, controls)``."""
    import torch

    from labutils import compression
    from labutils.metrics import accuracy

    model = model.eval().cpu()
    layers = compression.linear_layers(model)
    if len(defaults) != len(layers):
        raise ValueError(f"defaults has {len(defaults)} ranks for {len(layers)} linear layers")
    svds = [compression.svd(layer.weight) for layer in layers]
    spectra = [s.double().numpy() for _, s, _ in svds]
    full = [len(s) for s in spectra]
    names = [f"rank_W{i}" for i in range(1, len(layers) + 1)]
    controls = {name: (1, k, 1, k if d is None else int(d))
                for name, k, d in zip(names, full, defaults, strict=True)}
    dense_params = compression.count_parameters(model)
    x, y = x.cpu(), y.cpu()
    reference = dict(reference or {})

    def draw(fig, **ranks):
        chosen = [int(ranks[name]) for name in names]
        net = compression.compress(model, [None if r >= k else r for r, k in
                                           zip(chosen, full, strict=True)], svds).eval()
        with torch.no_grad():
            acc = accuracy(net(x), y)
        n_params = compression.count_parameters(net)
        ax_s, ax_a = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
        ax_a.minorticks_off()  # fewer ticks to lay out: a redraw stays fast
        for i, (s, r) in enumerate(zip(spectra, chosen, strict=True)):
            line, = ax_s.loglog(np.arange(1, len(s) + 1), s, lw=1.2, label=f"W{i + 1}")
            ax_s.plot([r], [s[r - 1]], "o", color=line.get_color(), ms=6)
        ax_s.set_ylim(bottom=1e-2 * max(s[0] for s in spectra))
        ax_s.set_xlabel("index i (dots: the rank kept)")
        ax_s.set_ylabel("singular value $s_i$")
        ax_s.set_title("Spectra of the layers")
        ax_s.legend(ncol=2, fontsize=8, loc="lower left")
        for label, (p, a) in reference.items():
            ax_a.plot(p, 100 * a, "s", color="0.6", ms=5)
            ax_a.annotate(label, (p, 100 * a), fontsize=7, color="0.4",
                          xytext=(4, -10), textcoords="offset points")
        ax_a.plot(n_params, 100 * acc, "o", color=color("wiener"), ms=9)
        ax_a.set_xscale("log")
        ax_a.set_xlabel("parameters of the network")
        ax_a.set_ylabel("test accuracy (%)")
        ax_a.set_title(f"{n_params:,} parameters ({100 * n_params / dense_params:.1f} %),"
                       f" accuracy {100 * acc:.1f} %", fontsize=9)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)

    return draw, controls
def plot_reliability(ax, rel: dict, label: str, color: str | None = None):
    """A reliability curve from :func:`labutils.uncertainty.reliability`: accuracy against
    mean confidence per bin (empty bins skipped), with the diagonal of perfect calibration."""
    full = rel["count"] > 0
    ax.plot([0.5, 1], [0.5, 1], color="0.6", ls=":", lw=1)
    ax.plot(rel["confidence"][full], rel["accuracy"][full], marker="o", ms=4, label=label,
            color=color)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    return ax


def draw_mc_passes(fig, samples, labels, chunk: int, passes: int, bins: int = 10):
    """The MC dropout explorer: ``samples`` (S, N, 2) softmax outputs of S passes,
    ``labels`` (N,). Left: the first ``passes`` outputs P(accept) for chunk ``chunk`` with
    their running mean and standard deviation; right: the reliability curve of the mean
    over ``passes`` passes on all N chunks, with its ECE."""
    from labutils import uncertainty as un

    s = np.asarray(samples)[:passes]
    p_accept = s[:, chunk, 1]
    n = np.arange(1, passes + 1)
    running = np.cumsum(p_accept) / n
    spread = np.array([p_accept[:k].std() for k in n])
    ax1, ax2 = fig.subplots(1, 2)
    ax1.scatter(n, p_accept, s=10, color="0.5", label="one pass")
    ax1.plot(n, running, color=color("mc_dropout"), label="mean so far")
    ax1.fill_between(n, running - spread, running + spread, color=color("mc_dropout"),
                     alpha=0.2, lw=0, label="± standard deviation")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("number of passes")
    ax1.set_ylabel("P(accept)")
    truth = "accept" if labels[chunk] == 1 else "reject"
    ax1.set_title(f"chunk {chunk} (truth: {truth}): mean {running[-1]:.2f} "
                  f"± {spread[-1]:.2f}")
    ax1.legend(loc="lower left", fontsize=8)
    mean = s.mean(0)
    plot_reliability(ax2, un.reliability(mean, labels, bins), f"{passes} passes",
                     color("mc_dropout"))
    ax2.set_title(f"calibration over all chunks: ECE {un.ece(mean, labels, bins):.3f}")
    fig.tight_layout()
    return fig
def draw_wav2vec_explorer(fig, p: float, span: int, tau: float, *, lengths, logits, gumbel,
                          expected, seed: int = 0) -> dict:
    """Notebook 07's explorer. Left: the span masks that ``labutils.wav2vec.span_mask``
    draws for sequences of ``lengths`` frames at start probability ``p`` and ``span``, with
    the measured masked fraction against ``expected(length, p, span)``. Right: how a
    codebook's entries are used by the Gumbel-softmax samples at temperature ``tau``:
    ``logits`` (M, V) of M frames and fixed noise ``gumbel`` (M, V). Returns the numbers
    shown (fraction, expectation, soft and hard perplexity)."""
    import torch

    from labutils.wav2vec import span_mask

    lengths = torch.as_tensor(lengths)
    mask = span_mask(lengths, int(lengths.max()), p, span,
                     generator=torch.Generator().manual_seed(seed))
    valid = torch.arange(mask.shape[1]) < lengths[:, None]
    fraction = mask[valid].float().mean().item()
    expect = float(np.average([expected(int(n), p, span) for n in lengths], weights=lengths))
    ax_mask, ax_code = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    shown = np.where(valid.numpy(), mask.numpy().astype(float), np.nan)
    ax_mask.imshow(shown, aspect="auto", cmap="Greys", vmin=-0.3, vmax=1, interpolation="none")
    ax_mask.set_xlabel("frame (20 ms each)")
    ax_mask.set_ylabel("utterance")
    ax_mask.grid(False)
    ax_mask.set_title(f"p = {p:.3f}, span = {span}: {fraction:.0%} masked "
                      f"(expected {expect:.0%})")
    soft = torch.softmax((torch.as_tensor(logits) + torch.as_tensor(gumbel)) / tau, -1)
    usage = soft.mean(0)
    hard = torch.bincount(soft.argmax(-1), minlength=soft.shape[1]).double() / soft.shape[0]

    def perplexity(q):
        return float(torch.exp(-torch.xlogy(q, q).sum()))

    order = torch.argsort(hard, descending=True)
    ranks = np.arange(1, len(order) + 1)
    ax_code.bar(ranks, hard[order].numpy(), color="0.75", width=1.0,
                label=f"hard choices (perplexity {perplexity(hard):.0f})")
    ax_code.plot(ranks, usage[order].numpy(), color=color("pretrained"), lw=1.5,
                 label=f"soft samples, averaged (perplexity {perplexity(usage):.0f})")
    per_frame = float(torch.exp(-torch.xlogy(soft, soft).sum(-1)).mean())
    ax_code.set_xscale("log")
    ax_code.set_xlabel("codebook entry, by rank of use")
    ax_code.set_ylabel("share of frames")
    ax_code.set_title(f"tau = {tau:.2f}: one soft sample spreads over {per_frame:.1f} entries")
    ax_code.legend(loc="upper right")
    fig.tight_layout()
    return {"fraction": fraction, "expected": expect, "soft_perplexity": perplexity(usage),
            "hard_perplexity": perplexity(hard), "per_frame_perplexity": per_frame}
