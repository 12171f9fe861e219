"""tweetlikes/intervals.py: the conformal order statistics, the fallback of small groups, whole
likes, the coverage figures, and the coverage the ranges reach on exchangeable rows."""
import collections
import copy

import numpy as np
import pandas as pd
import pytest

from tweetlikes import intervals

Outputs = collections.namedtuple("Outputs", "predicted_class")  # of models.ModelOutputs, what the ranges read


def test_the_offsets_are_the_finite_sample_order_statistics():
    residuals = np.arange(19.0)[::-1]  # 19 rows, any order: 0..18 sorted
    # 80%: below the floor(20 * 0.1) = 2nd smallest, above the ceil(20 * 0.9) = 18th smallest
    assert intervals.offsets(residuals, 0.8) == [1.0, 17.0]
    assert intervals.offsets(residuals, 0.5) == [4.0, 14.0]  # floor(20 * 0.25) = 5th, ceil(20 * 0.75) = 15th
    assert intervals.offsets(np.arange(8.0), 0.8) is None  # 8 rows: floor(9 * 0.1) = 0, no rank to take
    assert intervals.offsets(np.arange(9.0), 0.8) == [0.0, 8.0]  # 9 is the fewest for 80%


def test_whole_likes_are_the_counts_inside_the_interval():
    low_log = np.array([np.log1p(0.4), np.log1p(2.0), -3.0, np.log1p(0.2), np.nan])
    high_log = np.array([np.log1p(2.5), np.log1p(2.0), np.log1p(0.2), np.log1p(0.5), np.nan])
    low, high = intervals.whole_likes(low_log, high_log)
    # 0.4-2.5 likes hold 1 and 2; 2-2 holds 2; below 0 starts at 0; 0.2-0.5 holds none: widened to 1.
    assert low[:4].tolist() == [1.0, 2.0, 0.0, 1.0] and high[:4].tolist() == [2.0, 2.0, 0.0, 1.0]
    assert np.isnan(low[4]) and np.isnan(high[4])


def test_coverage_and_width_on_a_tiny_known_example():
    actual = np.array([0.0, 5, 10, 100, 7])
    low, high = np.array([0.0, 6, 5, 50, np.nan]), np.array([3.0, 9, 20, 90, np.nan])
    figures = intervals.coverage(actual, low, high)  # inside: rows 0 and 2; row 4 has no range
    assert figures == {"rows": 4, "coverage": 0.5,
                       "median_width": pytest.approx(np.median([4 / 1, 10 / 7, 21 / 6, 91 / 51]))}
    assert intervals.coverage(actual[4:], low[4:], high[4:]) == {"rows": 0, "coverage": None, "median_width": None}


def fitted(rows_per_group, seed=0):
    """A record fitted on validation rows whose residual spread differs by group: unseen accounts
    three times as wide; with the rows' predicted class and seen flags."""
    rng = np.random.default_rng(seed)
    n = rows_per_group * 2
    account_seen = np.arange(n) < rows_per_group
    predicted_class = np.zeros(n, dtype=int)
    residuals = rng.normal(scale=np.where(account_seen, 0.5, 1.5))
    return intervals.fit({"learned": residuals}, predicted_class, account_seen, np.ones(n, dtype=bool))


def test_a_group_too_small_falls_back_to_a_coarser_one():
    record = fitted(intervals.MIN_GROUP_ROWS - 1)
    groups = record["routings"]["learned"]
    assert set(groups) == {intervals.ALL}  # every group under the floor: all rows only
    record = fitted(intervals.MIN_GROUP_ROWS)
    assert "common, account unseen, company seen" in record["routings"]["learned"]
    keys = intervals.group_keys(np.array([0, 2]), np.array([False, False]), np.array([True, True]))
    low, high, used = intervals.log_bounds(record, "learned", 0.8, np.zeros(2), keys)
    # A common prediction gets its own group's range; a viral one, with no group of its own, the seen-ness one.
    assert used.tolist() == ["common, account unseen, company seen", "account unseen, company seen"]
    assert (low < 0).all() and (high > 0).all()


def test_ranges_hold_at_their_level_on_exchangeable_rows_and_widen_for_unseen_accounts():
    record = fitted(2000)
    rng = np.random.default_rng(1)
    n = 20_000
    account_seen = rng.random(n) < 0.5
    predicted = rng.normal(3, 1, size=n)
    actual_log = predicted + rng.normal(scale=np.where(account_seen, 0.5, 1.5))
    tweets = pd.DataFrame({"user_log_count": np.where(account_seen, 2.0, 0.0), "company_log_count": 1.0})
    for level in (0.5, 0.8, 0.95):
        served = intervals.served({"intervals": record, "smearing": {"learned": 1.0}}, "learned", level,
                                  {"learned": predicted}, Outputs(np.zeros(n, dtype=int)), tweets)
        inside = (served.likes_low <= np.round(np.expm1(actual_log))) & (np.round(np.expm1(actual_log)) <= served.likes_high)
        for mask in (account_seen, ~account_seen):
            assert inside[mask].mean() == pytest.approx(level, abs=0.03), level  # per group, not only overall
        width = (served.likes_high + 1) / (served.likes_low + 1)
        assert np.median(width[~account_seen]) > 2 * np.median(width[account_seen])


@pytest.mark.parametrize("damage", [
    lambda r: r.update(version=0),
    lambda r: r.update(levels=[0.8]),
    lambda r: r["routings"].pop("learned"),
    lambda r: r["routings"]["learned"].pop(intervals.ALL),
    lambda r: r["routings"]["learned"][intervals.ALL].update(rows="400"),
    lambda r: r["routings"]["learned"][intervals.ALL]["offsets"].pop(),
    lambda r: r["routings"]["learned"][intervals.ALL]["offsets"].__setitem__(3, [1.0, -1.0]),  # reversed
    lambda r: r["routings"]["learned"][intervals.ALL]["offsets"].__setitem__(3, [float("nan"), 1.0]),
    lambda r: r["routings"]["learned"][intervals.ALL]["offsets"].__setitem__(3, [-1.0, float("inf")]),
])
def test_a_damaged_record_is_not_valid(damage):
    record = fitted(50)
    assert intervals.valid(record, ["learned"])
    damaged = copy.deepcopy(record)
    damage(damaged)
    assert not intervals.valid(damaged, ["learned"])
