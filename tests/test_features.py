"""tweetlikes/features.py: the feature groups, the history features (and the prior for unseen
keys), the signal parsers (media, dates, surface counts, replies), the columns 01 derives, and the
model input built a block of rows at a time."""
import numpy as np
import pandas as pd
import pytest

from tweetlikes import features

PHOTO = "Photo(previewUrl='https://pbs.twimg.com/media/a.jpg?name=small', fullUrl='https://pbs.twimg.com/media/a.jpg')"
VIDEO = ("Video(thumbnailUrl='https://pbs.twimg.com/t.jpg', variants=[VideoVariant(contentType='video/mp4', "
         "url='https://video.twimg.com/v.mp4', bitrate=832000), VideoVariant(contentType='video/mp4', url='x', "
         "bitrate=None)], duration=30.0, views=None)")
GIF = "Gif(thumbnailUrl='https://pbs.twimg.com/g.jpg', variants=[VideoVariant(contentType='video/mp4', url='g')])"


# ------------------------------------------------------------------------------------- signals

def test_media_lists_are_counted_and_junk_is_missing():
    cells = [f"[{PHOTO}, {PHOTO}]", f"[{VIDEO}]", f"[{GIF}]", f"[{PHOTO}, {VIDEO}]", "", None, "[]",
             "Photo", "[Sticker(url=x)]", "not a list"]
    counts, malformed = features.media_signals(cells)
    expected = [[2, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert counts.iloc[:7].to_numpy().tolist() == expected  # a VideoVariant is not a second video
    assert counts.iloc[7:].isna().all().all() and malformed == 3


def test_dates_with_and_without_time_zones():
    days = features.parse_dates(["2020-12-12 00:47:00+00:00", "2020-12-12T02:47:00+02:00", "2020-12-12 00:47:00",
                               "2020-12-12T00:47:00Z", "2020-12-11 19:47:00-05:00", "yesterday", "", None, "13/45/2020"])
    same = days.iloc[0]
    assert same == pytest.approx((pd.Timestamp("2020-12-12 00:47", tz="UTC") - pd.Timestamp(0, tz="UTC")).days + 47 / 1440)
    assert days.iloc[:5].tolist() == pytest.approx([same] * 5)  # one moment, five spellings
    assert days.iloc[5:].isna().all()
    frame = features.time_signals(days.iloc[:2], pd.Series(["a", "stranger"]), pd.DataFrame(
        {"kind": ["user"], "key": ["a"], "count": [1], "sum_log_likes": [1.0], "median_log_likes": [1.0],
         "first_day": [same - 10]}))
    assert frame["time_hour"].tolist() == [0, 0] and frame["time_weekday"].tolist() == [5, 5]  # a Saturday
    assert frame["time_account_days"].iloc[0] == pytest.approx(10) and np.isnan(frame["time_account_days"].iloc[1])


def test_surface_counts():
    frame = features.surface_signals(["<mention> Big news!! #launch #AI <hyperlink> 🎉🔥 really?",
                                    "@bob see https://t.co/x and @amy", "", "plain words here"])
    assert frame.loc[0, ["surface_links", "surface_mentions", "surface_hashtags", "surface_emoji",
                         "surface_questions", "surface_exclamations", "surface_starts_with_mention"]].tolist() == \
        [1, 1, 2, 2, 1, 2, 1]
    assert frame.loc[1, ["surface_links", "surface_mentions", "surface_starts_with_mention"]].tolist() == [1, 2, 1]
    assert frame.loc[2].tolist() == [0] * 9
    assert frame.loc[3, ["surface_chars", "surface_words", "surface_starts_with_mention"]].tolist() == [16, 3, 0]


def test_reply_flags():
    frame, malformed = features.reply_signals(["True", "false", "1", "0", "yes", "maybe", ""])
    assert frame["reply_is_reply"].iloc[:5].tolist() == [1, 0, 1, 0, 1]
    assert frame["reply_is_reply"].iloc[5:].isna().all() and malformed == 1


def test_missing_columns_turn_groups_off():
    table = pd.DataFrame({"content": ["hi #x"], "username": ["a"], "company": ["c"]})
    stats = pd.DataFrame(columns=features.STATS_COLUMNS)
    signals, found, malformed = features.signal_features(table, stats)
    assert found == ["surface", "wording"] and malformed == {"surface": 0, "wording": 0}
    assert signals[features.SIGNAL_FEATURES["media"] + features.SIGNAL_FEATURES["time"]].isna().all().all()


def test_feature_groups():
    available = ["surface", "media", "time"]
    assert features.parse_features("all", available) == (("text", "history", "surface", "media", "time"),
                                                          ("reply", "wording"))
    assert features.parse_features("seed", available) == (("text",), ())
    assert features.parse_features("all,-text", available)[0] == ("history", "surface", "media", "time")
    assert features.parse_features("history,reply", available) == (("text", "history"), ("reply",))
    with pytest.raises(SystemExit, match="unknown group 'colour'"):
        features.parse_features("all,colour", available)
    with pytest.raises(SystemExit, match="leaves no input"):
        features.parse_features("all,-text,-history,-surface,-media,-time", available)


# ------------------------------------------------------------------------------------- history

def test_unseen_accounts_get_the_prior():
    stats = pd.DataFrame({"kind": ["user", "company"], "key": ["known", "acme"], "count": [3, 5],
                          "sum_log_likes": [6.0, 5.0], "median_log_likes": [2.0, 1.0]})
    prior = {"mean_log_likes": 4.0, "median_log_likes": 3.0}
    query = pd.DataFrame({"username": ["known", "stranger", ""], "company": ["acme", "acme", "other"]})
    history = features.lookup_history(query, stats, prior)
    assert history["user_log_count"].tolist() == pytest.approx([np.log1p(3), 0, 0])
    assert history["user_median_log_likes"].tolist() == [2.0, 3.0, 3.0]
    smoothing = features.HISTORY_SMOOTHING
    assert history.loc[0, "user_mean_log_likes"] == pytest.approx((6 + smoothing * 4) / (3 + smoothing))
    assert history.loc[1, "user_mean_log_likes"] == pytest.approx(4.0)
    assert history["company_median_log_likes"].tolist() == [1.0, 1.0, 3.0]


def test_group_statistics_fall_back_for_unseen_and_empty_keys():
    stats = pd.DataFrame({"kind": ["user", "user", "company"], "key": ["a", "b", "a"], "count": [3, 1, 9],
                          "sum_log_likes": [12.0, 5.0, 1.0], "median_log_likes": [2.0, 5.0, 7.0],
                          "first_day": [1.0, 2.0, 3.0]})
    found = features.key_stats(stats, "user", pd.Series(["a", "b", "stranger", ""]))
    assert found["median_log_likes"].fillna(-1.0).tolist() == [2.0, 5.0, -1.0, -1.0]
    assert found["count"].tolist() == [3, 1, 0, 0] and found["first_day"].isna().tolist() == [False, False, True, True]


# ---------------------------------------------------------------------------- groups and columns

def test_history_and_derived_columns_have_one_owner():
    assert features.HISTORY_FEATURES == [f"{kind}_{stat}" for kind in ("user", "company")
                                         for stat in ("log_count", "mean_log_likes", "median_log_likes")]
    assert [column for _, column in features.HISTORY_KEYS] == ["username", "company"]
    signals = [column for group in features.SIGNAL_FEATURES.values() for column in group]
    assert features.DERIVED_COLUMNS == ("split", "popularity_class", "tweet_group", *features.HISTORY_FEATURES, *signals)
    assert features.feature_columns(("text",)) == []
    assert features.feature_columns(("text", "media", "history")) == [*features.SIGNAL_FEATURES["media"],
                                                                       *features.HISTORY_FEATURES]


# ---------------------------------------------------------------------------------- model input

def test_model_input_is_the_embeddings_rows_beside_the_feature_columns(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(10, 4)).astype(np.float32)
    table = pd.DataFrame(rng.normal(size=(6, 6)), columns=features.HISTORY_FEATURES)
    index = np.array([9, 0, 4, 4, 7, 2])  # row i of the table is embeddings row index[i]
    expected = np.hstack([embeddings[index], table.to_numpy(dtype=np.float32)])
    np.save(tmp_path / "e.npy", embeddings)
    monkeypatch.setattr(features, "BLOCK_ROWS", 4)
    for source in (embeddings, np.load(str(tmp_path / "e.npy"), mmap_mode="r")):  # a str, as tables opens it
        inputs = features.model_input(table, source, ("text", "history"), index)
        assert (inputs.rows, inputs.width) == (6, 10)
        rows = np.array([5, 1, 3])
        assert np.array_equal(inputs.block(rows), expected[rows]) and inputs.block(rows).dtype == np.float32
        assert [block.tolist() for block in inputs.blocks(np.arange(6))] == [[0, 1, 2, 3], [4, 5]]
    assert isinstance(inputs.task(rows)[0], str)  # a memory-mapped file travels as its path
    without_text = features.model_input(table, embeddings, ("history",))
    assert without_text.width == 6 and np.array_equal(without_text.block(np.arange(6)), expected[:, 4:])


# ---------------------------------------------------------------- dates out of range, empty columns

def test_dates_pandas_cannot_hold_are_missing():
    days = features.parse_dates(["2020-12-12 00:47:00+00:00", "1448-01-01 00:00:00", "0001-01-01", "9999-12-31",
                                 "2262-04-12"])
    assert days.iloc[0] == pytest.approx(18608 + 47 / 1440)
    assert days.iloc[1:].isna().all()
    assert features.parse_dates(["1448-01-01 00:00:00"]).isna().all()  # alone too


def test_an_unholdable_date_is_an_unreadable_cell_counted():
    table = pd.DataFrame({"content": ["a", "b"], "username": ["u", "v"], "company": ["", ""],
                          "date": ["1448-01-01 00:00:00", "2020-01-01"]})
    stats = pd.DataFrame(columns=features.STATS_COLUMNS)
    signals, found, malformed = features.signal_features(table, stats)
    assert "time" in found and malformed["time"] == 1
    assert np.isnan(signals["time_hour"].iloc[0]) and signals["time_hour"].iloc[1] == 0


def test_blank_columns_are_those_without_a_single_value():
    table = pd.DataFrame({"media": ["", None, "  "], "date": ["", "2020-01-01", ""], "company": ["", "", ""]})
    assert features.blank_columns(table, ["media", "date", "company", "is_reply"]) == ["media", "company"]


# ------------------------------------------------------------------------------- explanations

def test_every_model_input_column_is_explained_by_exactly_one_group():
    for groups in [features.FEATURE_GROUPS, ("text",), ("history", "media"), ("text", "time", "reply")]:
        names = features.explanation_groups(groups, embedding_dim=384)
        width = (384 if "text" in groups else 0) + len(features.feature_columns(groups))
        assert len(names) == width
        for group in groups:
            if group == "history":
                assert names.count("account_history") == names.count("company_history") == 3
            elif group != "text":
                assert names.count(group) == len(features.SIGNAL_FEATURES[group])


def test_wording_signals_count_what_a_writer_chooses():
    stats = pd.DataFrame([["user", "a", 2, 0.0, 0.0, np.nan, 10.0], ["company", "c", 1, 0.0, 0.0, np.nan, 20.0]],
                         columns=features.STATS_COLUMNS)
    table = pd.DataFrame({"content": ["Why did WE win? <hyperlink>", "Please RT and vote for me: 3 days left",
                                      "hello you"], "username": ["a", "x", ""], "company": ["c", "c", ""]})
    frame = features.wording_signals(table["content"], table["username"], table["company"], stats)
    assert list(frame.columns) == features.SIGNAL_FEATURES["wording"]
    # Length against the account's usual (10 chars), else the company's (20), else unknown.
    assert frame["wording_relative_length"].iloc[:2].tolist() == pytest.approx([27 / 10, 38 / 20])
    assert np.isnan(frame["wording_relative_length"].iloc[2])
    assert frame.iloc[:, 1:].to_numpy().tolist() == [[1, 0, 0, 1, 0, 1],  # question, we, WE
                                                     [0, 1, 1, 1, 0, 1],  # vote, 3, me, RT
                                                     [0, 0, 0, 0, 1, 0]]  # you


def test_one_signal_column_can_be_dropped():
    available = ["surface", "wording"]
    groups, _ = features.parse_features("all,-wording_question,-surface_emoji,-media_photos", available)
    assert groups == ("text", "history", "surface", "wording", "-wording_question", "-surface_emoji")
    columns = features.feature_columns(groups, "score")
    assert "wording_question" not in columns and "surface_emoji" not in columns and "wording_numbers" in columns
    assert len(columns) == len(features.feature_columns(groups[:4], "score")) - 2
    names = features.explanation_groups(groups, 384, "score")
    assert len(names) == len(columns) and names.count("wording") == len(features.SIGNAL_FEATURES["wording"]) - 1


def test_rows_of_a_npy_are_read_a_window_of_the_file_at_a_time(workdir, monkeypatch):
    """A block of rows spread over a big file never maps all of it: one mapping per window of
    MAPPED_ROWS rows that holds some, each dropped once read; the rows come back in their order."""
    embeddings = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.save("e.npy", embeddings)
    monkeypatch.setattr(features, "MAPPED_ROWS", 8)
    mapped, memmap = [], np.memmap

    def spy(*args, **options):
        window = memmap(*args, **options)
        if len(window) < len(embeddings):  # not np.load's map of the whole file, whose pages stay untouched
            mapped.append(window.offset)
        return window
    monkeypatch.setattr(np, "memmap", spy)
    rows = np.array([49, 3, 3, 17, 0, 20, 46])  # unsorted, one twice: windows 0, 2, 5 and 6 of 8 rows
    assert np.array_equal(features.mapped_rows("e.npy", rows), embeddings[rows])
    header = np.load("e.npy", mmap_mode="r").offset
    assert sorted(mapped) == [header + window * 8 * 12 for window in (0, 2, 5, 6)]  # 12 bytes a row
    assert features.mapped_rows("e.npy", np.array([], dtype=int)).shape == (0, 3)
