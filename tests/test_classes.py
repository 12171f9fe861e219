"""Known answers for the class thresholds, the class labels and the train/test split."""
import json

import numpy as np
import pandas as pd
import pytest

import common
from conftest import run, stage

create_classes = stage("01_create_classes")


def tweets(n, likes=None, users=None):
    return pd.DataFrame({
        "content": [f"tweet number {i}" for i in range(n)],
        "username": users if users is not None else [f"user{i % 10}" for i in range(n)],
        "company": [f"company{i % 4}" for i in range(n)],
        "likes": likes if likes is not None else np.arange(n),
    })


def test_thresholds_are_the_75th_and_95th_percentiles():
    assert create_classes.class_thresholds(np.arange(101)) == (75.0, 95.0)
    assert create_classes.class_thresholds([0, 0, 0, 0, 10, 20, 30, 40]) == pytest.approx((22.5, 36.5))  # linear interpolation


def test_classes_split_at_the_thresholds():
    likes = [0, 75, 75.5, 95, 96, 10**6]
    assert common.assign_classes(likes, (75.0, 95.0)).tolist() == [0, 0, 1, 1, 2, 2]


def test_class_shares_on_distinct_likes():
    classes = common.assign_classes(np.arange(1000), create_classes.class_thresholds(np.arange(1000)))
    assert np.bincount(classes).tolist() == [750, 200, 50]


def test_random_split_is_seeded_and_sized():
    table = tweets(1000)
    first = create_classes.assign_split(table, "random", 0.2, seed=42)
    assert (first == "test").sum() == 200
    assert (first == create_classes.assign_split(table, "random", 0.2, seed=42)).all()
    assert (first != create_classes.assign_split(table, "random", 0.2, seed=7)).any()


@pytest.mark.parametrize("how, column", [("account", "username"), ("company", "company")])
def test_group_split_holds_out_a_share_of_rows_in_whole_groups(how, column):
    # 20 groups of 30 rows and 200 of 2: a fifth of the groups is a fifth of the rows only on
    # average (one seed in two misses by more than a big group); a fifth of the rows in whole
    # groups always lands within one group of 200.
    groups = [f"big{i}" for i in range(20) for _ in range(30)] + [f"small{i}" for i in range(200) for _ in range(2)]
    table = tweets(1000).assign(**{column: groups})
    for seed in range(20):
        split = create_classes.assign_split(table, how, 0.2, seed=seed)
        assert (pd.Series(split).groupby(table[column]).nunique() == 1).all()
        assert abs((split == "test").sum() - 200) <= 30, seed


def test_group_split_refuses_to_miss_the_test_fraction():
    # One account holds 90% of the rows: whichever side it lands on, the split cannot be 80/20.
    table = tweets(1000, users=["whale"] * 900 + [f"user{i}" for i in range(100)])
    with pytest.raises(SystemExit, match=r"holds out \d+% of rows, not the 20% asked.*'whale', holds 90% of rows"):
        for seed in range(10):
            create_classes.assign_split(table, "account", 0.2, seed=seed)


@pytest.mark.parametrize("column", ["split", "popularity_class", "user_log_count"])
def test_columns_that_01_derives_are_not_overwritten(workdir, column):
    tweets(100).assign(**{column: "mine"}).to_csv("tweets.csv", index=False)
    with pytest.raises(SystemExit, match=f"already has column.*'{column}'.*rename"):
        run("01_create_classes", "--input", "tweets.csv")
    assert not (workdir / common.CLASSED_CSV).exists()


def test_thresholds_come_from_training_rows_only(workdir):
    table = tweets(500, likes=np.random.default_rng(0).integers(0, 10**6, size=500))
    table.to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv")
    classed = pd.read_csv(common.CLASSED_CSV)
    train_likes = classed.loc[classed["split"] == "train", "likes"]
    thresholds = json.loads((workdir / common.THRESHOLDS_JSON).read_text())["thresholds"]
    assert thresholds == pytest.approx(list(np.quantile(train_likes, common.QUANTILES)))
    assert thresholds != pytest.approx(list(np.quantile(classed["likes"], common.QUANTILES)))


def test_history_features_never_see_their_own_row():
    # One account, every tweet with its own number of likes. Rows that share a history share a
    # fold, and their history must be exactly that of the rows outside it: a row that saw its
    # own likes (or its fold's) would have more rows behind it, and another mean and median.
    log_likes = np.log1p(np.arange(100.0) ** 2)
    table = tweets(100, likes=np.expm1(log_likes), users=["solo"] * 100)
    history = create_classes.history_features(table, np.ones(100, dtype=bool), "random", seed=0)
    folds = history.groupby(["user_log_count", "user_mean_log_likes", "user_median_log_likes"]).groups
    assert len(folds) > 1
    for (log_count, mean, median), rows in folds.items():
        seen = np.setdiff1d(np.arange(100), rows)
        assert log_count == pytest.approx(np.log1p(len(seen)))
        assert mean == pytest.approx(log_likes[seen].mean())  # the smoothing prior is their mean too
        assert median == pytest.approx(np.median(log_likes[seen]))


def test_unseen_accounts_get_the_prior():
    stats = pd.DataFrame({"kind": ["user", "company"], "key": ["known", "acme"], "count": [3, 5],
                          "sum_log_likes": [6.0, 5.0], "median_log_likes": [2.0, 1.0]})
    prior = {"mean_log_likes": 4.0, "median_log_likes": 3.0}
    query = pd.DataFrame({"username": ["known", "stranger", ""], "company": ["acme", "acme", "other"]})
    history = common.lookup_history(query, stats, prior)
    assert history["user_log_count"].tolist() == pytest.approx([np.log1p(3), 0, 0])
    assert history["user_median_log_likes"].tolist() == [2.0, 3.0, 3.0]
    smoothing = common.HISTORY_SMOOTHING
    assert history.loc[0, "user_mean_log_likes"] == pytest.approx((6 + smoothing * 4) / (3 + smoothing))
    assert history.loc[1, "user_mean_log_likes"] == pytest.approx(4.0)
    assert history["company_median_log_likes"].tolist() == [1.0, 1.0, 3.0]
