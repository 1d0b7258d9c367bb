"""The scikit-learn digits data set (8x8 images, 1797 samples) with a fixed split.

Pixels are integers 0..16; the network input is ``x = pixels / 16`` in ``[0, 1]``, fed
unchanged at every timestep (direct encoding). The split is stratified 70 % train / 30 %
test with ``random_state = 0`` (1257 / 540 samples), the same for every model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PIXEL_SCALE", "SPLIT_SEED", "TEST_FRACTION", "load_digits_split"]

PIXEL_SCALE = 1.0 / 16.0
SPLIT_SEED = 0
TEST_FRACTION = 0.3


def load_digits_split():
    """Return ``(train_pixels, train_labels, test_pixels, test_labels)``.

    Pixels are ``uint8`` of shape ``(n, 64)`` with values 0..16; labels ``int64``.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            "the digits data set needs scikit-learn: pip install 'spikefold[train]'") from exc
    digits = load_digits()
    pixels = digits.data.astype(np.uint8)
    labels = digits.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(pixels, labels, test_size=TEST_FRACTION,
                                          stratify=labels, random_state=SPLIT_SEED)
    return xtr, ytr, xte, yte
