"""Linear models on frozen features (sklearn), the built-in tasks' ``probe``: how well the features already
predict the targets before any training. Standardised features, default regularisation, no search over it:
the probes compare groups of one backbone with each other, not models with the trained one."""
from __future__ import annotations

import warnings

import numpy as np


def _scaled(train_x: np.ndarray, val_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(train_x)
    return scaler.transform(train_x), scaler.transform(val_x)


def _logistic(seed: int):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(max_iter=1000, C=1.0, random_state=seed)


def classes(train_x, train_y, val_x, seed: int = 0) -> np.ndarray:
    """The class a multinomial logistic regression predicts for each validation row."""
    from sklearn.exceptions import ConvergenceWarning
    xtr, xva = _scaled(train_x, val_x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _logistic(seed).fit(xtr, train_y).predict(xva)


def label_logits(train_x, train_y, val_x, seed: int = 0) -> np.ndarray:
    """``[n_val, k]`` logits of one logistic regression per label (0/1 columns of ``train_y``); a label that is
    always or never true in ``train_y`` gets a constant logit (sklearn cannot fit one class)."""
    from sklearn.exceptions import ConvergenceWarning
    xtr, xva = _scaled(train_x, val_x)
    y = np.asarray(train_y) > 0.5
    out = np.empty((len(xva), y.shape[1]), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for j in range(y.shape[1]):
            if y[:, j].all() or not y[:, j].any():
                out[:, j] = 10.0 if y[:, j].all() else -10.0
            else:
                out[:, j] = _logistic(seed).fit(xtr, y[:, j]).decision_function(xva)
    return out


def values(train_x, train_y, val_x) -> np.ndarray:
    """``[n_val, k]`` predictions of a ridge regression per target column, its penalty chosen by
    leave-one-out on the training rows (cheap for ridge; 384 features on 1,000 rows overfit without one)."""
    from sklearn.linear_model import RidgeCV
    xtr, xva = _scaled(train_x, val_x)
    y = np.asarray(train_y, dtype=np.float64).reshape(len(xtr), -1)
    return RidgeCV(alphas=np.logspace(-1, 4, 11)).fit(xtr, y).predict(xva).reshape(len(xva), -1)
