"""tweetlikes/pairs.py: within-account pairwise accuracy (which pairs count, ties, accounts kept
apart, companies where there are no usernames) and the chance that one draft beats another."""
import numpy as np
import pandas as pd
import pytest

from tweetlikes import pairs


def test_pairwise_accuracy_counts_same_account_pairs_whose_likes_differ():
    keys = np.array(["a", "a", "a", "b", "b", ""], dtype=object)
    actual = np.array([1, 2, 3, 5, 5, 9])
    # a: 3 pairs, all differ; b: 1 pair, likes tie (left out); "" pairs with nothing
    assert pairs.pairwise_accuracy(keys, actual, actual) == (1.0, 3)
    assert pairs.pairwise_accuracy(keys, actual, -actual) == (0.0, 3)
    assert pairs.pairwise_accuracy(keys, actual, np.zeros(6)) == (0.5, 3)  # a tie in prediction is half right
    assert pairs.pairwise_accuracy(keys, actual, np.array([1, 3, 2, 0, 0, 0])) == (pytest.approx(2 / 3), 3)


def test_pairwise_accuracy_never_pairs_two_accounts():
    keys = np.array(["a", "b"], dtype=object)
    assert pairs.pairwise_accuracy(keys, np.array([1, 2]), np.array([1, 2])) == (None, 0)


def test_pairs_are_within_company_where_there_are_no_usernames():
    table = pd.DataFrame({"username": ["", ""], "company": ["x", "y"]})
    assert pairs.pair_keys(table)[1] == "company"
    assert pairs.pair_keys(table.assign(username=["u", ""]))[1] == "account"


def test_the_chance_of_beating_a_draft_falls_as_the_predicted_gap_grows():
    rng = np.random.default_rng(0)
    predicted = rng.normal(size=400)
    actual = predicted + rng.normal(scale=1.0, size=400)  # the prediction is informative, not perfect
    chance = pairs.fit_chance(np.array(["a"] * 400, dtype=object), actual, predicted, seed=0)
    assert chance["slope"] > 0 and chance["pairs"] > 0
    gaps = np.array([0.0, -0.5, -1.0, -2.0, -4.0])  # how far below the top draft
    beats = pairs.chance_to_beat(chance, gaps)
    assert beats[0] == pytest.approx(0.5) and np.all(np.diff(beats) < 0)
