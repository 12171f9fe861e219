"""Stage 1, 01_create_classes.py: the class thresholds and labels, the train/test split (random,
by group, by time), the history features that never see their own row or the future, and the
input it refuses (bad likes, too few rows, columns it would overwrite)."""
import json

import numpy as np
import pandas as pd
import pytest

import common
from conftest import expect_error, run, sample, stage, tweets_with_copies, write_csv
from tweetlikes import features, splits, tables

create_classes = stage("01_create_classes")


def tweets(n, likes=None, users=None):
    return pd.DataFrame({
        "content": [f"tweet number {i}" for i in range(n)],
        "username": users if users is not None else [f"user{i % 10}" for i in range(n)],
        "company": [f"company{i % 4}" for i in range(n)],
        "likes": likes if likes is not None else np.arange(n),
    })


def dated_tweets(n=300, seed=0):
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-01", tz="UTC")
    return pd.DataFrame({
        "date": [(start + pd.Timedelta(hours=int(h))).isoformat() for h in rng.permutation(n) * 7],
        "content": [f"tweet {i}" for i in range(n)], "username": [f"user{i % 3}" for i in range(n)],
        "company": [f"co{i % 2}" for i in range(n)], "likes": rng.integers(0, 10_000, size=n),
    })


# ------------------------------------------------------------------------------------ classes

def test_thresholds_are_the_75th_and_95th_percentiles():
    assert create_classes.class_thresholds(np.arange(101)) == (75.0, 95.0)
    assert create_classes.class_thresholds([0, 0, 0, 0, 10, 20, 30, 40]) == pytest.approx((22.5, 36.5))  # linear interpolation


def test_class_shares_on_distinct_likes():
    classes = common.assign_classes(np.arange(1000), create_classes.class_thresholds(np.arange(1000)))
    assert np.bincount(classes).tolist() == [750, 200, 50]


def test_thresholds_come_from_training_rows_only(workdir):
    table = tweets(500, likes=np.random.default_rng(0).integers(0, 10**6, size=500))
    table.to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv")
    classed = pd.read_csv(common.CLASSED_CSV)
    train_likes = classed.loc[classed["split"] == "train", "likes"]
    thresholds = json.loads((workdir / common.THRESHOLDS_JSON).read_text())["thresholds"]
    assert thresholds == pytest.approx(list(np.quantile(train_likes, common.QUANTILES)))
    assert thresholds != pytest.approx(list(np.quantile(classed["likes"], common.QUANTILES)))


def test_too_few_rows_and_degenerate_likes(small_csv, workdir):
    sample(small_csv, rows=10).to_csv(workdir / "tiny.csv", index=False)
    expect_error("only 10 usable rows", "01_create_classes", "--input", "tiny.csv")
    flat = sample(small_csv).assign(likes=[0] * 190 + [5] * 10)
    flat.to_csv(workdir / "flat.csv", index=False)
    expect_error("too uniform to form three classes", "01_create_classes", "--input", "flat.csv")


# -------------------------------------------------------------------------------------- split

def test_random_split_is_seeded_and_sized():
    table = tweets(1000)
    group = splits.tweet_groups(table)
    first = create_classes.assign_split(table, "random", 0.2, 42, group)
    assert (first == "test").sum() == 200
    assert (first == create_classes.assign_split(table, "random", 0.2, 42, group)).all()
    assert (first != create_classes.assign_split(table, "random", 0.2, 7, group)).any()


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


@pytest.mark.parametrize("seed", range(10))
def test_group_split_refuses_to_miss_the_test_fraction(seed):
    # One account holds 90% of the rows: whichever side it lands on, the split cannot be 80/20.
    table = tweets(1000, users=["whale"] * 900 + [f"user{i}" for i in range(100)])
    with pytest.raises(SystemExit, match=r"holds out \d+% of rows, not the 20% asked.*'whale', holds 90% of rows"):
        create_classes.assign_split(table, "account", 0.2, seed=seed)


def test_group_split_without_usernames_suggests_company(small_csv, workdir):
    sample(small_csv).assign(username="").to_csv(workdir / "anonymous.csv", index=False)
    expect_error("try --split company", "01_create_classes", "--input", "anonymous.csv", "--split", "account")


def test_test_fraction_out_of_range(workdir):
    expect_error("--test-fraction must be at least 0 and below 1, got 1.5", "01_create_classes", "--test-fraction", "1.5")


def test_time_split_holds_out_the_latest_tweets(workdir):
    dated_tweets().to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv", "--split", "time")
    table = pd.read_csv(common.CLASSED_CSV)
    days = features.parse_dates(table["date"])
    assert (table["split"] == "test").sum() == 60
    assert days[table["split"] == "train"].max() < days[table["split"] == "test"].min()


def test_time_split_never_cuts_between_rows_posted_together():
    # Rows of one date were split by file order, as if it were time.
    def time_split(days):
        table = tweets(100)
        return create_classes.assign_split(table, "time", 0.2, 42, splits.tweet_groups(table, days), days)
    days = np.concatenate([np.arange(78), np.full(4, 78.0), np.arange(79, 97)])  # 4 rows at the 20% cut
    split = time_split(days)
    assert days[split == "train"].max() < days[split == "test"].min()
    assert (split == "test").sum() in (18, 22)  # the four go to one side, whole
    with pytest.raises(SystemExit, match="all 100 usable rows have the same `date`; use --split random"):
        time_split(np.zeros(100))
    with pytest.raises(SystemExit, match="holds out 10% of rows, not the 20% asked .* only 2 distinct times"):
        time_split(np.repeat([0.0, 1.0], [90, 10]))


def test_time_split_of_one_date_is_refused_in_one_line(workdir):
    dated_tweets().assign(date="2021-05-01T10:00:00Z").to_csv("tweets.csv", index=False)
    expect_error("--split time needs tweets posted at different times", "01_create_classes", "--input", "tweets.csv",
                 "--split", "time")
    assert not (workdir / common.CLASSED_CSV).exists()


# ------------------------------------------------------------------------------------ history

def test_history_features_never_see_their_own_row():
    # One account, every tweet with its own number of likes. Rows that share a history share a
    # fold, and their history must be exactly that of the rows outside it: a row that saw its
    # own likes (or its fold's) would have another mean and median. Its count is the account's
    # count over all the training rows, as a test row's is: counted on the other folds alone it
    # would sit a fifth below every test row's, and trees that tell accounts apart by their
    # count would take a test row for another account (seed 44 on the 538 tweets: 1.45 RMSE).
    log_likes = np.log1p(np.arange(100.0) ** 2)
    table = tweets(100, likes=np.expm1(log_likes), users=["solo"] * 100)
    is_train = np.ones(100, dtype=bool)
    history = create_classes.history_features(table, is_train, "random", 0,
                                              create_classes.training_history(table, is_train))
    folds = history.groupby(["user_log_count", "user_mean_log_likes", "user_median_log_likes"]).groups
    assert len(folds) > 1
    for (log_count, mean, median), rows in folds.items():
        seen = np.setdiff1d(np.arange(100), rows)
        assert log_count == pytest.approx(np.log1p(100))
        assert mean == pytest.approx(log_likes[seen].mean())  # the smoothing prior is their mean too
        assert median == pytest.approx(np.median(log_likes[seen]))


def test_time_split_history_never_sees_the_future(workdir):
    """Scramble the test rows' likes and those of training rows after a cut: the history features
    of every row before the cut must not move."""
    tweets = dated_tweets()
    tweets.to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv", "--split", "time")
    before = pd.read_csv(common.CLASSED_CSV)
    days = features.parse_dates(before["date"])
    cut = days[before["split"] == "train"].quantile(0.6)
    future = days.to_numpy() >= cut
    scrambled = tweets.copy()
    scrambled.loc[future, "likes"] = np.random.default_rng(1).integers(0, 10**6, size=future.sum())
    scrambled.to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv", "--split", "time")
    after = pd.read_csv(common.CLASSED_CSV)
    assert (after["split"] == before["split"]).all()
    pd.testing.assert_frame_equal(after.loc[~future, features.HISTORY_FEATURES], before.loc[~future, features.HISTORY_FEATURES])
    assert not after.loc[future, features.HISTORY_FEATURES].equals(before.loc[future, features.HISTORY_FEATURES])
    # and each row's history is exactly its account's earlier training tweets
    row = after[~future].iloc[-1]
    earlier = after[(after["username"] == row["username"]) & (after["split"] == "train")
                    & (features.parse_dates(after["date"]) < features.parse_dates(pd.Series([row["date"]]))[0])]
    assert row["user_log_count"] == pytest.approx(np.log1p(len(earlier)))
    assert row["user_median_log_likes"] == pytest.approx(np.median(np.log1p(earlier["likes"])))


# ------------------------------------------------------------------------------------- input

def test_bad_likes_are_refused_and_counted(small_csv, workdir, capsys):
    tweets = sample(small_csv).astype({"likes": object})
    tweets.loc[:6, "likes"] = ["lots", "-5", "", "12.5k", "1e19", "inf", "1,234"]
    tweets.to_csv(workdir / "bad_likes.csv", index=False)
    run("01_create_classes", "--input", "bad_likes.csv")
    assert ("refused 7 rows whose likes are unusable: 1 missing, 3 not a number, 1 negative, "
            "2 above 1e+10 or infinite") in capsys.readouterr().out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert info["refused_rows"] == 7 and info["rows"] == len(tweets) - 7
    classed = pd.read_csv(common.CLASSED_CSV)
    assert len(classed) == len(tweets) - 7 and classed["likes"].between(0, tables.MAX_LIKES).all()


@pytest.mark.parametrize("column", ["split", "popularity_class", "user_log_count"])
def test_columns_that_01_derives_are_not_overwritten(workdir, column):
    tweets(100).assign(**{column: "mine"}).to_csv("tweets.csv", index=False)
    with pytest.raises(SystemExit, match=f"already has column.*'{column}'.*rename"):
        run("01_create_classes", "--input", "tweets.csv")
    assert not (workdir / common.CLASSED_CSV).exists()


def test_01_refuses_its_own_output_naming_what_it_is(small_csv, workdir):
    # As a tester found it: it listed 31 derived columns and said "rename them".
    run("01_create_classes", "--input", small_csv)
    message = expect_error(f"{common.CLASSED_CSV} is 01's own output", "01_create_classes", "--input",
                           common.CLASSED_CSV)
    assert "give the original input" in message and "rename" not in message


def test_01_refuses_a_predictions_file(workdir):
    # As a tester found it: 01-04 trained on 05's predictions, and 05 ended in a pandas traceback.
    tweets(100).assign(predicted_class=0, probability_common=1.0, probability_popular=0.0, probability_viral=0.0,
                       predicted_likes=3.0, expected_likes=4.0).to_csv("preds.csv", index=False)
    message = expect_error("preds.csv is 05's predictions file", "01_create_classes", "--input", "preds.csv")
    assert "give the original input" in message
    assert not (workdir / common.CLASSED_CSV).exists()


# ---------------------------------------------------------------------------- copies of a tweet

@pytest.mark.parametrize("how", ["random", "time"])
def test_copies_of_a_tweet_land_on_one_side_of_the_split(how):
    table = tweets_with_copies()
    days = features.parse_dates(table["date"]).to_numpy()
    for seed in range(5):
        split = pd.Series(create_classes.assign_split(table, how, 0.2, seed,
                                                      splits.tweet_groups(table, days if how == "time" else None),
                                                      days))
        assert (split.groupby([table["content"], table["username"]]).nunique() == 1).all(), seed
        assert abs((split == "test").mean() - 0.2) < 0.02
    if how == "time":  # no training row is posted after the latest copy of any test tweet
        latest_test = pd.Series(days).groupby(splits.duplicate_groups(table)).transform("max")
        assert days[(split == "train").to_numpy()].max() <= latest_test[(split == "test").to_numpy()].min()


@pytest.mark.parametrize("how", ["random", "time"])
def test_a_split_without_copies_is_the_same_as_before(how):
    table = tweets_with_copies(copies=0)
    days = features.parse_dates(table["date"]).to_numpy()
    is_test = np.zeros(len(table), dtype=bool)
    if how == "random":  # the split of the code before copies were grouped
        is_test[np.random.default_rng(42).permutation(len(table))[:60]] = True
    else:
        is_test[np.argsort(days, kind="stable")[len(table) - 60:]] = True
    group = splits.tweet_groups(table, days if how == "time" else None)
    assert (create_classes.assign_split(table, how, 0.2, 42, group, days) == np.where(is_test, "test", "train")).all()


def test_no_row_history_holds_its_own_likes_through_a_copy():
    # 100 accounts of two tweets each, the second a copy of the first: out of fold, a row may see
    # neither, so every account's history is empty.
    table = pd.DataFrame({"content": [f"tweet {i // 2}" for i in range(200)],
                          "username": [f"user{i // 2}" for i in range(200)], "company": "",
                          "likes": np.arange(200, dtype=float)})
    is_train = np.ones(200, dtype=bool)
    history = create_classes.history_features(table, is_train, "random", 42,
                                              create_classes.training_history(table, is_train))
    assert (history["user_log_count"] == 0).all()


def test_01_counts_copies_in_its_receipt_and_record(workdir, capsys):
    tweets_with_copies().to_csv("copies.csv", index=False)
    run("01_create_classes", "--input", "copies.csv")
    assert "100 rows repeat another row's content and username" in capsys.readouterr().out
    assert json.loads((workdir / common.THRESHOLDS_JSON).read_text())["duplicate_rows"] == 100
    classed = pd.read_csv(common.CLASSED_CSV, dtype=str, keep_default_na=False)
    assert (classed.groupby(["content", "username"])["split"].nunique() == 1).all()


# ------------------------------------------------------------------------ inputs as they come

def test_01_counts_a_date_pandas_cannot_hold(small_csv, workdir, capsys):
    tweets = sample(small_csv)
    tweets.loc[3, "date"] = "1448-01-01 00:00:00"
    tweets.to_csv("old.csv", index=False)
    run("01_create_classes", "--input", "old.csv")
    assert "time from `date`, 1 unreadable cells left missing" in capsys.readouterr().out
    assert json.loads((workdir / common.THRESHOLDS_JSON).read_text())["malformed_cells"]["time"] == 1
    run("01_create_classes", "--input", "old.csv", "--split", "time")
    assert "refused 1 rows whose date is missing or unreadable" in capsys.readouterr().out


def test_01_reads_a_trailing_comma_as_the_header_says(small_csv, workdir, capsys):
    tweets = sample(small_csv)
    tweets.assign(content=tweets["content"].str.replace("\n", " ")).to_csv("plain.csv", index=False)
    write_csv(workdir / "trailing.csv", (workdir / "plain.csv").read_text().replace("\n", ",\n"))
    run("01_create_classes", "--input", "plain.csv")
    expected = (workdir / common.CLASSED_CSV).read_bytes()
    capsys.readouterr()
    run("01_create_classes", "--input", "trailing.csv")
    assert tables.TRAILING_DELIMITER in capsys.readouterr().out
    assert (workdir / common.CLASSED_CSV).read_bytes() == expected


def test_01_refuses_an_extra_cell_on_the_first_row(workdir):
    tweets_with_copies(copies=0).to_csv("plain.csv", index=False)
    lines = (workdir / "plain.csv").read_text().split("\n")
    lines[1] += ",oops"
    write_csv(workdir / "shifted.csv", "\n".join(lines))
    expect_error("the row on line 2 has 6 cells, but the header names 5 columns", "01_create_classes",
                 "--input", "shifted.csv")


def test_01_warns_about_a_stray_quote(workdir, capsys):
    tweets_with_copies(copies=0).to_csv("plain.csv", index=False)
    lines = (workdir / "plain.csv").read_text().split("\n")
    lines[10] = lines[10].replace("tweet 9,", '"tweet 9,')  # a quote opens a cell ...
    lines[15] = lines[15].replace("tweet 14,", 'tweet 14",')  # ... and closes five lines later
    write_csv(workdir / "quote.csv", "\n".join(lines))
    run("01_create_classes", "--input", "quote.csv")
    out = capsys.readouterr().out
    assert "read quote.csv: 295 rows" in out
    assert "warning: 1 cell(s) hold 5 line(s) shaped like whole rows" in out
    assert "a quote that never closes may have swallowed rows" in out


def test_01_reads_the_sheet_named(small_csv, workdir, capsys):
    tweets = sample(small_csv)
    with pd.ExcelWriter(workdir / "two.xlsx") as writer:
        tweets.head(150).to_excel(writer, sheet_name="first", index=False)
        tweets.tail(50).to_excel(writer, sheet_name="second", index=False)
    expect_error("has 2 sheets, ['first', 'second']; name the one to read with --sheet", "01_create_classes",
                 "--input", "two.xlsx")
    run("01_create_classes", "--input", "two.xlsx", "--sheet", "second")
    assert "read two.xlsx (sheet 'second'): 50 rows" in capsys.readouterr().out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert info["rows"] == 50 and info["sheet"] == "second"


def test_01_refuses_and_counts_rows_with_empty_content(small_csv, workdir, capsys):
    tweets = sample(small_csv)
    tweets.loc[[4, 9], "content"] = ["", "   "]
    tweets.to_csv("empty.csv", index=False)
    run("01_create_classes", "--input", "empty.csv")
    assert "refused 2 rows with empty content" in capsys.readouterr().out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert info["refused_rows"] == 2 and info["rows"] == len(tweets) - 2
    assert (pd.read_csv(common.CLASSED_CSV, dtype=str, keep_default_na=False)["content"] != "").all()


def test_01_turns_an_empty_column_off_and_says_so(small_csv, workdir, capsys):
    sample(small_csv).assign(media="", **{"inferred company": ""}).to_csv("blank.csv", index=False)
    run("01_create_classes", "--input", "blank.csv")
    out = capsys.readouterr().out
    assert "signals: media off (`media` has no values)" in out
    assert "history: `company` has no values, so every row's company history is the global prior" in out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert "media" not in info["signal_groups"] and info["blank_columns"] == ["company", "media"]
    assert pd.read_csv(common.CLASSED_CSV)[features.SIGNAL_FEATURES["media"]].isna().all().all()
