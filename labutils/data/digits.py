"""scikit-learn's bundled 8 x 8 handwritten digits (1,797 images, no download), split into
training and test sets the same way every time."""

from __future__ import annotations

import numpy as np


def load(test_fraction: float = 0.25, seed: int = 0) -> dict:
    """The digits as ``x`` (n, 8, 8) float32 in [0, 1] (the 0-16 counts divided by 16),
    ``y`` (n,) int64, and ``x_test``, ``y_test``: a stratified split that keeps
    ``test_fraction`` of each class for testing (``seed`` fixes it)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x, x_test, y, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                            random_state=seed)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}
