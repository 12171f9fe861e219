"""What 05 tells a writer about drafts (tweetlikes.advice, tweetlikes.contrast): differences named
only where inputs differ, split exactly; names as people type them; a table that tells drafts
apart; notes on settings that change nothing; when to post."""
import numpy as np
import pandas as pd
import pytest

from conftest import run
from tweetlikes import advice, contrast, features

pytestmark = pytest.mark.slow


def told(monkeypatch):
    """Capture what advice.tell returns (the advice 05 printed) in a list."""
    found, tell = [], advice.tell
    monkeypatch.setattr(advice, "tell", lambda *args: found.append(tell(*args)) or found[-1])
    return found


def run_drafts(path, table, *args):
    table.to_csv(path, index=False)
    run("05_predict_likes", "--drafts", path, "--username", "adobe", "--company", "adobe", "--output", "out.csv", *args)
    return pd.read_csv("out.csv", keep_default_na=False)


def assert_parts_add_up(found, written):
    best = int(np.argmin(found.rank))
    diffs = written.filter(like="diff_")
    assert list(diffs.columns) == [f"diff_{player}" for player in contrast.PLAYERS]
    assert np.abs(diffs.sum(axis=1).to_numpy() - (found.predicted_log - found.predicted_log[best])).max() < 1e-6
    assert np.abs(sum(found.why.values()) - (found.predicted_log - found.typical_log)).max() < 1e-6


def test_drafts_that_differ_in_their_words_differ_only_where_the_content_is_read(pipeline_copy, tmp_path,
                                                                                  monkeypatch):
    found = told(monkeypatch)
    texts = ["New Photoshop features are out <hyperlink>", "Photoshop", "We asked 100 designers: what's next? #design",
             "Meet the new brushes <mention>"]
    written = run_drafts(tmp_path / "drafts.csv", pd.DataFrame({"content": texts, "media": "video",
                                                                  "date": "2020-06-01T10:00:00Z"}))
    assert list(written["draft"]) == [1, 2, 3, 4] and sorted(written["rank"]) == [1, 2, 3, 4]
    assert list(written["content"]) == texts
    for group in ("media", "time", "reply", "account", "company"):
        assert (written[f"diff_{group}"] == 0).all(), group
    assert (written["diff_words"] != 0).sum() == 3  # every draft but #1
    assert_parts_add_up(found[0], written)


def test_drafts_that_differ_only_in_media_differ_only_in_media(pipeline_copy, tmp_path, monkeypatch, capsys):
    found = told(monkeypatch)
    written = run_drafts(tmp_path / "drafts.csv", pd.DataFrame({"content": "Same words <hyperlink>",
                                                                  "media": ["", "video", "photo,video"]}),
                         "--date", "2020-06-01T10:00:00Z")
    out = capsys.readouterr().out
    others = written.drop(columns="diff_media").filter(like="diff_")
    assert (others == 0).all().all()
    assert (written["diff_media"] != 0).sum() == 2
    assert_parts_add_up(found[0], written)
    # The table tells the three apart by their media; the differences say what each carries.
    assert all(words in out for words in ("no media", "a video", "a photo and a video"))
    assert "instead of" in out.split("where each differs from #1")[1]


def test_a_name_is_read_as_people_type_it(pipeline_copy, capsys):
    likes = []
    for name in ("adobe", "Adobe", "@ADOBE", " @adobe ", "Ａｄｏｂｅ", "adobe\u200b"):  # fullwidth, a pasted zero-width space
        run("05_predict_likes", "--text", "New brushes <hyperlink>", "--username", name, "--date",
            "2020-06-01T10:00:00Z", "--output", "one.csv")
        likes.append(pd.read_csv("one.csv")["predicted_likes"].iloc[0])
    assert len(set(likes)) == 1
    assert "username '@ADOBE' (read as 'adobe'): seen in training" in capsys.readouterr().out
    run("05_predict_likes", "--text", "a", "--text", "b", "--username", "adobee", "--date", "2020-06-01T10:00:00Z")
    out = capsys.readouterr().out
    assert "username 'adobee': not seen in training (did you mean adobe" in out  # with several drafts too


def test_a_drafts_file_with_a_csv_header_is_a_csv_whatever_its_name(pipeline_copy, tmp_path, capsys):
    path = tmp_path / "drafts.txt"
    path.write_text("content,media\nNew brushes,photo\nNew brushes,\n")
    run("05_predict_likes", "--drafts", path, "--username", "adobe", "--output", "out.csv")
    written = pd.read_csv("out.csv", keep_default_na=False)
    assert list(written["content"]) == ["New brushes", "New brushes"] and list(written["media"]) == ["[Photo()]", ""]


def test_a_lone_draft_is_explained_against_a_stated_typical_tweet(pipeline_copy, monkeypatch, capsys):
    found = told(monkeypatch)
    run("05_predict_likes", "--text", "Would you vote for this? Tell us below", "--username", "adidas")
    out = capsys.readouterr().out
    typical = np.expm1(found[0].typical_log)
    assert f"why, against a typical training tweet ({typical:,.0f} likes; each input at its median" in out
    factors = [float(x) for x in
               __import__("re").findall(r" x([0-9.]+)", out.split("training tweets):")[1].split("\n")[1])]
    predicted = np.expm1(found[0].predicted_log[0])
    assert np.prod(factors) == pytest.approx(predicted / typical, rel=0.03)  # shown to 2 decimals
    assert "posting time: now (set --date to choose another)" in out  # the default date is said
    assert "text read as" not in out and "openvino" not in out  # internals only with --verbose
    run("05_predict_likes", "--text", "Would you vote for this?", "--username", "adidas", "--verbose")
    assert "text read as" in capsys.readouterr().out


def test_the_classes_are_given_in_likes(pipeline_copy, capsys):
    run("05_predict_likes", "--text", "New brushes", "--username", "adobe")
    thresholds = __import__("json").load(open("class_thresholds.json"))["thresholds"]
    assert f"viral (over {thresholds[1]:,.0f} likes)" in capsys.readouterr().out


def test_settings_that_change_nothing_or_reach_past_the_training_tweets_are_said(pipeline_copy, capsys):
    run("05_predict_likes", "--text", "New brushes", "--username", "adobe", "--date", "2031-01-01T10:00:00Z")
    out = capsys.readouterr().out
    assert "years after the last training tweet (2020-" in out  # the sample ends in 2020
    run("05_predict_likes", "--text", "New brushes", "--username", "adobe", "--date", "2020-06-01T10:00:00Z")
    assert "extrapolated" not in capsys.readouterr().out


def test_when_finds_no_reliable_hour_where_the_sample_has_none(pipeline_copy, capsys):
    """The sample's likes do not depend on the posting time (data/make_synthetic_tweets.py)."""
    run("05_predict_likes", "--text", "New brushes <hyperlink>", "--username", "adobe", "--when", "--date",
        "2020-06-01T09:00:00Z", "--tz", "Europe/Berlin")
    out = capsys.readouterr().out
    assert "when to post: how the likes of adobe's own" in out
    assert "no hour or day is reliably better in this data" in out


def test_input_without_a_column_the_models_read_is_said(pipeline_copy, small_csv, capsys):
    table = pd.read_csv(small_csv, keep_default_na=False).head(20).drop(columns=["date"])
    table.to_csv("new.csv", index=False)
    run("05_predict_likes", "--input", "new.csv", "--output", "preds.csv", "--no-plots")
    assert "new.csv has no `date` column, which the models read (time)" in capsys.readouterr().out


def test_same_kind_pairwise_accuracy_is_reported(pipeline_dir):
    metrics = __import__("json").loads((pipeline_dir / "metrics.json").read_text())
    same_kind = metrics["pairwise"]["same_kind"]
    assert 0 < same_kind["pairs"] < metrics["pairwise"]["pairs"]  # the sample's media split some pairs
    assert set(same_kind["accuracy"]) == set(metrics["pairwise"]["accuracy"])
    assert same_kind["accuracy"]["global median"] == 0.5


def test_the_players_cover_every_model_input_column():
    for groups in (features.FEATURE_GROUPS, ("text", "history"), ("history", "time", "-time_hour")):
        for form in features.TEXT_FORMS:
            columns = features.input_columns(groups, 384, form)
            assert len(contrast.players_of(columns)) == len(columns)


def test_drafts_within_a_coin_flip_of_the_best_are_about_the_same(capsys):
    """With a chance model (the small sample's validation slice has too few pairs for one): a
    draft whose chance to beat #1 is 45-55% is shown as about the same, and the others ranked."""
    served = lambda X_classifier, X_regressor: X_regressor[:, 0]  # noqa: E731
    inputs = (np.array([[3.0], [2.98], [1.0]]),) * 2
    found = advice.advise(served, inputs, {"classifier": [2.0], "regressor": [2.0]}, np.array(["words"], dtype=object),
                          served(*inputs), {"slope": 2.0, "pairs": 500})
    assert found.chance[1] == pytest.approx(0.49, abs=0.01) and found.chance[2] < 0.1
    tweets = pd.DataFrame({"content": ["a", "b", "c"], "username": "x", "company": "", "date": "2020-01-01T10:00:00Z",
                           "surface_chars": 1.0})
    drafted = advice.Drafted(tweets, None, None, found.predicted_log, ["1 to 2"] * 3)
    advice.describe_ranked(drafted, found, {"slope": 2.0, "pairs": 500}, 0.8)
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line[:5].strip().lstrip("=").isdigit()]
    assert [cells[0] for cells in rows] == ["1", "=1", "3"] and "about the same" in " ".join(rows[1])
    assert found.versus_first["words"][1] == pytest.approx(-0.02)


def test_the_output_ranks_coin_flips_with_the_best_and_names_dates_that_differ():
    found = advice.Advice(np.array([3.0, 3.0, 1.0]), np.array([1, 2, 3]), np.array([np.nan, 0.4951, 0.1]),
                          {"words": np.zeros(3)}, {"words": np.zeros(3)}, 1.0)
    table = advice.output_table(pd.DataFrame({"content": ["a", "a", "b"]}), found, explain=True)
    assert table["rank"].tolist() == [1, 1, 3]  # as the table shows: =1 for a coin flip
    assert (table["why_typical"] == 1.0).all()
    early, late = (pd.Series({"date": day, "time_hour": 10.0, "time_weekday": 0.0})
                   for day in ("2019-06-03T10:00:00Z", "2020-06-01T10:00:00Z"))
    assert advice.value_words("time", early) != advice.value_words("time", late)  # both Mondays at 10:00


def test_explained_drafts_add_up_to_their_prediction(pipeline_copy, monkeypatch):
    found = told(monkeypatch)
    run("05_predict_likes", "--text", "New brushes <hyperlink>", "--username", "adobe", "--date",
        "2020-06-01T10:00:00Z", "--explain", "--output", "why.csv")
    why = pd.read_csv("why.csv").filter(like="why_")
    assert abs(why.sum(axis=1).iloc[0] - found[0].predicted_log[0]) < 1e-6
