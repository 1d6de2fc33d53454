"""Sample-quality metrics on hand-made feature sets whose Fréchet distance is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.sample_metrics import (
    class_accuracy,
    diversity,
    feature_statistics,
    frechet_distance,
    frechet_distance_features,
    mean_pairwise_distance,
)


def test_one_dimensional_gaussians():
    # W2² between N(m1, s1²) and N(m2, s2²) is (m1 − m2)² + (s1 − s2)²
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_diagonal_covariances_sum_per_axis():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)


def test_non_commuting_covariances_match_the_2x2_closed_form():
    # For 2×2 PSD M: tr √M = √(tr M + 2 √det M), with M = Σ1^{1/2} Σ2 Σ1^{1/2} (tr M = tr Σ1Σ2, det M = det Σ1 det Σ2)
    s1 = np.array([[2.0, 0.5], [0.5, 1.0]])
    r = np.array([[math.cos(0.7), -math.sin(0.7)], [math.sin(0.7), math.cos(0.7)]])
    s2 = r @ np.diag([3.0, 0.2]) @ r.T
    trace_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(np.zeros(2), s2, np.zeros(2), s1) == pytest.approx(expected, rel=1e-9)


def test_hand_made_feature_sets():
    # A: the four points (±1, 0), (0, ±1): mean 0, unbiased covariance (2/3) I.
    a = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    mu, cov = feature_statistics(a)
    np.testing.assert_allclose(mu, 0)
    np.testing.assert_allclose(cov, np.eye(2) * 2 / 3)
    # B = 2A + (3, 0): mean (3, 0), covariance 4 · (2/3) I  →  FD = 9 + 2 (√(8/3) − √(2/3))² = 9 + 4/3
    b = 2 * a + np.array([3.0, 0])
    assert frechet_distance_features(a, b) == pytest.approx(9 + 4 / 3)
    assert frechet_distance_features(a, a) == pytest.approx(0, abs=1e-9)


def test_singular_covariance_of_few_samples_in_many_dimensions_is_finite():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 64)), rng.normal(size=(5, 64)) + 1
    value = frechet_distance_features(a, b)
    assert math.isfinite(value) and value > 0


def test_frechet_distance_shrinks_with_more_samples_of_the_same_law():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(20_000, 8))
    small, large = (frechet_distance_features(rng.normal(size=(n, 8)), ref) for n in (50, 5000))
    assert large < small / 10


def test_class_accuracy_per_class():
    overall, per_class = class_accuracy(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), num_classes=4)
    assert overall == pytest.approx(4 / 6)
    assert per_class[:3] == pytest.approx([0.5, 0.5, 1.0])
    assert per_class[3] is None


def test_diversity_is_the_within_class_mean_pairwise_distance():
    # class 0: points 0, 3, 4 on a line → distances 3, 4, 1 → mean 8/3; class 1: two points 10 apart
    feats = np.array([[0.0], [3.0], [4.0], [0.0], [10.0]])
    labels = np.array([0, 0, 0, 1, 1])
    assert mean_pairwise_distance(feats[:3]) == pytest.approx(8 / 3)
    assert diversity(feats, labels) == pytest.approx((8 / 3 + 10) / 2)
    assert diversity(np.zeros((4, 3)), np.array([0, 0, 1, 1])) == pytest.approx(0, abs=1e-9)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError):
        feature_statistics(np.zeros((1, 4)))
