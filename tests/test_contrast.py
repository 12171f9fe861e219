"""tweetlikes.contrast: exact Shapley values over groups of model inputs."""
import numpy as np
import pytest

from tweetlikes import contrast


def test_shapley_values_split_the_gap_exactly_and_share_interactions_evenly():
    players = np.array(["a", "a", "b", "c"], dtype=object)
    served = lambda X_classifier, X_regressor: 2 * X_regressor[:, 0] + X_regressor[:, 1] + X_regressor[:, 2] * X_regressor[:, 3]  # noqa: E731
    tweet = (np.array([[1.0, 2, 3, 4]]),) * 2
    reference = (np.array([[0.0, 0, 1, 1]]),) * 2
    values = contrast.shapley(served, tweet, reference, players)
    assert values["a"][0] == pytest.approx(4)
    assert values["b"][0] == pytest.approx((3 - 1 + 12 - 4) / 2)  # the b*c interaction split in half
    assert values["c"][0] == pytest.approx((4 - 1 + 12 - 3) / 2)


def test_a_group_whose_inputs_are_equal_gets_exactly_nothing():
    players = np.array(["a", "b", "b"], dtype=object)
    served = lambda X_classifier, X_regressor: np.sin(np.nan_to_num(X_regressor)).sum(axis=1) * X_classifier[:, 0]  # noqa: E731
    tweet = (np.array([[2.0, 5, np.nan]]), np.array([[1.0, 3, np.nan]]))
    reference = (np.array([[1.0, 5, np.nan]]), np.array([[0.5, 3, np.nan]]))
    values = contrast.shapley(served, tweet, reference, players)
    assert values["b"][0] == 0.0 and values["a"][0] == pytest.approx(served(*tweet)[0] - served(*reference)[0])


def test_likes_factors_multiply_from_one_count_to_the_other():
    parts = {"words": 0.4, "media": -0.1, "time": 0.05}
    predicted, reference = np.log1p(200.0), np.log1p(200.0) - 0.35
    factors = contrast.likes_factors(parts, predicted, reference)
    assert np.prod(list(factors.values())) == pytest.approx(200 / np.expm1(reference))
    assert factors["words"] > 1 > factors["media"]
