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


def test_the_stated_chance_is_held_against_how_often_the_pick_was_right():
    keys = np.array(["a", "a", "a", "b", "b"], dtype=object)
    actual = np.array([1.0, 2, 3, 10, 5])
    predicted = np.array([0.0, 0.1, 3.0, 1.0, 0.0])
    chance = {"slope": 1.0, "pairs": 500}
    figures = pairs.chance_figures(keys, actual, predicted, chance, seed=0)
    # a: gaps 0.1 (right), 3.0 (right), 2.9 (right); b: gap 1.0 (right). Stated chances by band:
    stated = pairs.chance_to_beat(chance, np.array([0.1, 1.0, 2.9, 3.0]))  # 52.5%, 73.1%, 94.8%, 95.3%
    assert figures["pairs"] == 4 and [band["pairs"] for band in figures["bands"]] == [1, 1, 2]
    assert [band["from"] for band in figures["bands"]] == [0.5, 0.7, 0.9]
    assert all(band["right"] == 1.0 for band in figures["bands"])
    assert figures["ece"] == pytest.approx(np.mean(1 - stated))
    # The pick is wrong when the one predicted higher got fewer likes: row 1 above row 2 here.
    flipped = pairs.chance_figures(keys[:3], actual[:3], np.array([0.0, 3.0, 0.1]), chance, seed=0)
    assert sum(band["right"] * band["pairs"] for band in flipped["bands"]) == 2  # of 3 pairs
    none = pairs.chance_figures(keys, actual, predicted, {"slope": None, "pairs": 4, "why": "too few"}, seed=0)
    assert none == {"ece": None, "pairs": 4, "bands": [], "why": "too few"}


@pytest.mark.parametrize("entry, usable", [
    ({"slope": 1.2, "pairs": 300}, True),
    ({"slope": None, "pairs": 3, "why": "too few pairs"}, True),
    ({"slope": -5.22, "pairs": 4}, False),  # backwards: never used
    ({"slope": 0.0, "pairs": 300}, False),
    ({"slope": float("nan"), "pairs": 300}, False),
    ({"slope": None, "pairs": 3}, False),  # none, without why
    ({"slope": 1.2}, False),
    ({"slope": "1.2", "pairs": 300}, False),
])
def test_only_a_positive_slope_or_none_with_why_is_a_usable_chance(entry, usable):
    assert pairs.valid_chance(entry) is usable
