"""Sample-quality metrics on classifier outputs: accuracy, Fréchet distance and diversity (numpy only).

The Fréchet distance between Gaussians N(μ1, Σ1) and N(μ2, Σ2) fitted to two feature sets is

    ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2},

the FID recipe on the digit classifier's penultimate features. The matrix square root is taken with
symmetric eigendecompositions in float64 (no scipy): Σ1^{1/2} Σ2 Σ1^{1/2} is symmetric positive
semi-definite, so its trace square root is the sum of the square roots of its (clipped) eigenvalues.
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of N feature vectors (N, D), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least two feature vectors as an (N, D) array, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet (2-Wasserstein²) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: {mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    return max(value, 0.0)


def frechet_distance_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def class_accuracy(predicted: np.ndarray, labels: np.ndarray, num_classes: int = 10) -> tuple[float, list[float | None]]:
    """Overall accuracy and the accuracy per class (None for a class with no samples)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    per_class = [float((predicted[labels == c] == c).mean()) if (labels == c).any() else None for c in range(num_classes)]
    return float((predicted == labels).mean()), per_class


CONFIDENT = 0.9  # an unconditional sample "looks like a digit" when the classifier gives one digit this much


def confident_share(probs) -> float:
    """The share of images (rows of class probabilities, a tensor) whose most probable class has at least CONFIDENT."""
    return round(float((probs.max(1).values >= CONFIDENT).float().mean()), 4)


def digits_right(predicted: np.ndarray, asked: np.ndarray, parts: int) -> np.ndarray:
    """(N, parts) booleans: which digit of each `parts`-digit number the classifier read as asked, from the
    digits (N · parts) of the numbers in turn, left to right. A number is right where its whole row is."""
    return (np.asarray(predicted) == np.asarray(asked)).reshape(-1, parts)


def class_shares(predicted: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """The fraction of samples the classifier puts in each class (sums to one)."""
    return np.bincount(np.asarray(predicted), minlength=num_classes)[:num_classes] / max(len(predicted), 1)


def distance_from_uniform(shares: np.ndarray) -> float:
    """Total variation distance between class shares and the uniform distribution: 0 is perfectly balanced."""
    shares = np.asarray(shares, dtype=np.float64)
    return float(0.5 * np.abs(shares - 1 / len(shares)).sum())


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of distinct rows of (N, D)."""
    f = np.asarray(features, dtype=np.float64)
    n = f.shape[0]
    if n < 2:
        raise ValueError("need at least two vectors for a pairwise distance")
    sq = (f**2).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0, None)
    return float(np.sqrt(d2)[np.triu_indices(n, k=1)].mean())


def diversity(features: np.ndarray, labels: np.ndarray) -> float:
    """Within-class diversity: the mean pairwise distance inside each class, averaged over the classes."""
    labels = np.asarray(labels)
    values = [mean_pairwise_distance(features[labels == c]) for c in np.unique(labels) if (labels == c).sum() >= 2]
    if not values:
        raise ValueError("no class has two samples")
    return float(np.mean(values))
