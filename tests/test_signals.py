"""Known answers for the signal parsers (media, dates, surface counts, replies), the time split and
its leak-free history, the feature groups, and the learned routing's training rows."""
import json

import numpy as np
import pandas as pd
import pytest

import common
from conftest import run, stage

create_classes = stage("01_create_classes")
train_regressors = stage("04_train_regressors")

PHOTO = "Photo(previewUrl='https://pbs.twimg.com/media/a.jpg?name=small', fullUrl='https://pbs.twimg.com/media/a.jpg')"
VIDEO = ("Video(thumbnailUrl='https://pbs.twimg.com/t.jpg', variants=[VideoVariant(contentType='video/mp4', "
         "url='https://video.twimg.com/v.mp4', bitrate=832000), VideoVariant(contentType='video/mp4', url='x', "
         "bitrate=None)], duration=30.0, views=None)")
GIF = "Gif(thumbnailUrl='https://pbs.twimg.com/g.jpg', variants=[VideoVariant(contentType='video/mp4', url='g')])"


def test_media_lists_are_counted_and_junk_is_missing():
    cells = [f"[{PHOTO}, {PHOTO}]", f"[{VIDEO}]", f"[{GIF}]", f"[{PHOTO}, {VIDEO}]", "", None, "[]",
             "Photo", "[Sticker(url=x)]", "not a list"]
    counts, malformed = common.media_signals(cells)
    expected = [[2, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert counts.iloc[:7].to_numpy().tolist() == expected  # a VideoVariant is not a second video
    assert counts.iloc[7:].isna().all().all() and malformed == 3


def test_dates_with_and_without_time_zones():
    days = common.parse_dates(["2020-12-12 00:47:00+00:00", "2020-12-12T02:47:00+02:00", "2020-12-12 00:47:00",
                               "2020-12-12T00:47:00Z", "2020-12-11 19:47:00-05:00", "yesterday", "", None, "13/45/2020"])
    same = days.iloc[0]
    assert same == pytest.approx((pd.Timestamp("2020-12-12 00:47", tz="UTC") - pd.Timestamp(0, tz="UTC")).days + 47 / 1440)
    assert days.iloc[:5].tolist() == pytest.approx([same] * 5)  # one moment, five spellings
    assert days.iloc[5:].isna().all()
    frame = common.time_signals(days.iloc[:2], pd.Series(["a", "stranger"]), pd.DataFrame(
        {"kind": ["user"], "key": ["a"], "count": [1], "sum_log_likes": [1.0], "median_log_likes": [1.0],
         "first_day": [same - 10]}))
    assert frame["time_hour"].tolist() == [0, 0] and frame["time_weekday"].tolist() == [5, 5]  # a Saturday
    assert frame["time_account_days"].iloc[0] == pytest.approx(10) and np.isnan(frame["time_account_days"].iloc[1])


def test_surface_counts():
    frame = common.surface_signals(["<mention> Big news!! #launch #AI <hyperlink> 🎉🔥 really?",
                                    "@bob see https://t.co/x and @amy", "", "plain words here"])
    assert frame.loc[0, ["surface_links", "surface_mentions", "surface_hashtags", "surface_emoji",
                         "surface_questions", "surface_exclamations", "surface_starts_with_mention"]].tolist() == \
        [1, 1, 2, 2, 1, 2, 1]
    assert frame.loc[1, ["surface_links", "surface_mentions", "surface_starts_with_mention"]].tolist() == [1, 2, 1]
    assert frame.loc[2].tolist() == [0] * 9
    assert frame.loc[3, ["surface_chars", "surface_words", "surface_starts_with_mention"]].tolist() == [16, 3, 0]


def test_reply_flags():
    frame, malformed = common.reply_signals(["True", "false", "1", "0", "yes", "maybe", ""])
    assert frame["reply_is_reply"].iloc[:5].tolist() == [1, 0, 1, 0, 1]
    assert frame["reply_is_reply"].iloc[5:].isna().all() and malformed == 1


def test_missing_columns_turn_groups_off():
    table = pd.DataFrame({"content": ["hi #x"], "username": ["a"], "company": ["c"]})
    stats = pd.DataFrame(columns=["kind", "key", "count", "sum_log_likes", "median_log_likes", "first_day"])
    signals, found, malformed = common.signal_features(table, stats)
    assert found == ["surface"] and malformed == {"surface": 0}
    assert signals[common.SIGNAL_FEATURES["media"] + common.SIGNAL_FEATURES["time"]].isna().all().all()


def test_feature_groups():
    available = ["surface", "media", "time"]
    assert common.parse_features("all", available) == (("text", "history", "surface", "media", "time"), ("reply",))
    assert common.parse_features("seed", available) == (("text",), ())
    assert common.parse_features("all,-text", available)[0] == ("history", "surface", "media", "time")
    assert common.parse_features("history,reply", available) == (("text", "history"), ("reply",))
    with pytest.raises(SystemExit, match="unknown group 'colour'"):
        common.parse_features("all,colour", available)
    with pytest.raises(SystemExit, match="leaves no input"):
        common.parse_features("all,-text,-history,-surface,-media,-time", available)


def dated_tweets(n=300, seed=0):
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-01", tz="UTC")
    return pd.DataFrame({
        "date": [(start + pd.Timedelta(hours=int(h))).isoformat() for h in rng.permutation(n) * 7],
        "content": [f"tweet {i}" for i in range(n)], "username": [f"user{i % 3}" for i in range(n)],
        "company": [f"co{i % 2}" for i in range(n)], "likes": rng.integers(0, 10_000, size=n),
    })


def test_time_split_holds_out_the_latest_tweets(workdir):
    dated_tweets().to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv", "--split", "time")
    table = pd.read_csv(common.CLASSED_CSV)
    days = common.parse_dates(table["date"])
    assert (table["split"] == "test").sum() == 60
    assert days[table["split"] == "train"].max() < days[table["split"] == "test"].min()


def test_time_split_history_never_sees_the_future(workdir):
    """Scramble the test rows' likes and those of training rows after a cut: the history features
    of every row before the cut must not move."""
    tweets = dated_tweets()
    tweets.to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv", "--split", "time")
    before = pd.read_csv(common.CLASSED_CSV)
    days = common.parse_dates(before["date"])
    cut = days[before["split"] == "train"].quantile(0.6)
    future = days.to_numpy() >= cut
    scrambled = tweets.copy()
    scrambled.loc[future, "likes"] = np.random.default_rng(1).integers(0, 10**6, size=future.sum())
    scrambled.to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv", "--split", "time")
    after = pd.read_csv(common.CLASSED_CSV)
    assert (after["split"] == before["split"]).all()
    pd.testing.assert_frame_equal(after.loc[~future, common.HISTORY_FEATURES], before.loc[~future, common.HISTORY_FEATURES])
    assert not after.loc[future, common.HISTORY_FEATURES].equals(before.loc[future, common.HISTORY_FEATURES])
    # and each row's history is exactly its account's earlier training tweets
    row = after[~future].iloc[-1]
    earlier = after[(after["username"] == row["username"]) & (after["split"] == "train")
                    & (common.parse_dates(after["date"]) < common.parse_dates(pd.Series([row["date"]]))[0])]
    assert row["user_log_count"] == pytest.approx(np.log1p(len(earlier)))
    assert row["user_median_log_likes"] == pytest.approx(np.median(np.log1p(earlier["likes"])))


def test_the_combiner_learns_only_from_the_validation_slice(pipeline_copy, monkeypatch):
    seen = {}
    real_fit = train_regressors.fit_combiner

    def spy(parts, target):
        seen["target"] = target
        return real_fit(parts, target)
    monkeypatch.setattr(train_regressors, "fit_combiner", spy)
    run("04_train_regressors")
    table, _ = common.load_classed()
    fit_rows, validation_rows = common.training_split(table, common.SEED)
    assert np.array_equal(seen["target"], np.log1p(table["likes"].to_numpy()[validation_rows]))
    assert (table["split"].to_numpy()[validation_rows] == "train").all()
    assert not set(validation_rows) & set(fit_rows)
    combiner = json.loads(open(common.COMBINER).read())
    assert combiner["fitted_rows"] == len(validation_rows) and set(combiner["smearing"]) == set(common.ROUTINGS)


def test_a_class_that_falls_wholly_into_the_validation_slice_is_fitted_on():
    n = 40
    slice_rows = np.random.default_rng(common.SEED).permutation(n)[:round(n * common.VALIDATION_FRACTION)]
    classes = np.zeros(n, dtype=int)
    classes[slice_rows[:2]] = 2  # both viral rows where the validation slice falls
    classes[slice_rows[2:]] = 1
    classes[-5:][~np.isin(np.arange(n - 5, n), slice_rows)] = 1
    table = pd.DataFrame({"split": "train", "popularity_class": classes})
    fit_rows, validation_rows = common.training_split(table, common.SEED)
    assert set(classes[fit_rows]) == {0, 1, 2}
    assert not set(slice_rows[:2]) & set(validation_rows)
    assert set(slice_rows[2:]) <= set(validation_rows)  # other classes keep their slice


def test_a_tiny_input_trains_and_predicts_without_embeddings(workdir):
    table = pd.DataFrame({"content": [f"t{i} #x" * (i % 3) for i in range(50)], "username": [f"u{i % 4}" for i in range(50)],
                          "company": "c", "likes": np.arange(50)})
    table.to_csv("tiny.csv", index=False)
    run("01_create_classes", "--input", "tiny.csv")
    run("03b_train_classifier_improved", "--features", "all,-text")
    run("04_train_regressors", "--features", "all,-text")
    run("05_predict_likes", "--no-plots")
    predictions = pd.read_csv(common.PREDICTIONS)
    assert len(predictions) == 10 and np.isfinite(predictions["expected_likes"]).all()
    assert not list(workdir.glob("embeddings_*"))  # no embeddings were needed
