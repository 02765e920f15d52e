"""Built-in datasets that work offline: arrays ready for ``model.fit``.

Each loader is a self-contained function of a seed (its imports inside it), so
that an exported training script carries the very same code
(:mod:`builder_app.exporters.train_script` copies their source).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def load_digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits of scikit-learn: x (1797, 8, 8, 1) in [0, 1], y the digit."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    return x, data.target.astype("int64")


def load_iris(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fisher's iris flowers: x (150, 4) measurements in cm, y the species 0-2."""
    from sklearn.datasets import load_iris as sklearn_iris

    data = sklearn_iris()
    return data.data.astype("float32"), data.target.astype("int64")


def make_regression(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy non-linear regression: x (2000, 8) standard normal, y (2000, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 8)).astype("float32")
    w = rng.normal(size=(8, 1))
    y = x @ w + 0.5 * np.sin(2.0 * x[:, :1]) + 0.1 * rng.normal(size=(2000, 1))
    return x, y.astype("float32")


def make_spirals(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: x (2000, 2) points, y the spiral 0 or 1."""
    rng = np.random.default_rng(seed)
    n = 1000
    turn = np.sqrt(rng.uniform(size=n)) * 3.0 * np.pi
    arm = np.stack([turn * np.cos(turn), turn * np.sin(turn)], axis=1) / (3.0 * np.pi)
    x = np.concatenate([arm, -arm]) + 0.02 * rng.normal(size=(2 * n, 2))
    y = np.concatenate([np.zeros(n), np.ones(n)])
    order = rng.permutation(2 * n)
    return x[order].astype("float32"), y[order].astype("int64")


@dataclass(frozen=True)
class Dataset:
    """A built-in dataset: its name, what it holds, and its loader."""

    name: str
    description: str
    load: Callable[[int], tuple[np.ndarray, np.ndarray]]
    #: The loss that fits its targets with the usual output layer.
    loss: str

    def source(self) -> str:
        """The loader's source code (self-contained: its imports are inside it)."""
        return inspect.getsource(self.load)


BUILTIN: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("digits", "8x8 handwritten digits, 10 classes (1797 images)", load_digits, "sparse_categorical_crossentropy"),
        Dataset("iris", "iris flowers, 4 measurements, 3 species (150 rows)", load_iris, "sparse_categorical_crossentropy"),
        Dataset("regression", "synthetic regression, 8 features, 1 target (2000 rows)", make_regression, "mean_squared_error"),
        Dataset("spirals", "two interleaved spirals, 2 classes (2000 points)", make_spirals, "binary_crossentropy"),
    )
}
