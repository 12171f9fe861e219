"""Issue 17's tests, to be moved into the by-stage files."""
import json

import numpy as np
import pandas as pd
import pytest

import common
from conftest import run, stage
from tweetlikes import calibration, features, models, pairs, tables

# ------------------------------------------------------------------------ -> test_pairs.py


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


# ------------------------------------------------------------------- -> test_calibration.py

def test_calibrated_probabilities_are_probabilities():
    rng = np.random.default_rng(1)
    raw = rng.dirichlet([1, 1, 1], size=300)
    for method, fitter in calibration.FITTERS.items():
        calibrated = calibration.apply(fitter(raw, rng.integers(0, 3, 300)), raw)
        assert calibrated.shape == raw.shape and np.allclose(calibrated.sum(axis=1), 1), method
        assert (calibrated > 0).all() and (calibrated < 1).all(), method


def test_calibration_repairs_probabilities_that_are_too_sure_and_biased():
    rng = np.random.default_rng(2)
    true = rng.dirichlet([2, 1, 0.3], size=4000)
    classes = np.array([rng.choice(3, p=p) for p in true])
    skewed = true ** 3 * np.array([1.0, 1.0, 0.3])  # overconfident, and the rare class under-predicted
    skewed /= skewed.sum(axis=1, keepdims=True)
    fitted = calibration.fit(skewed[:2000], classes[:2000], seed=0)
    assert fitted["method"] != "none"
    after = calibration.apply(fitted, skewed[2000:])
    assert calibration.log_loss(after, classes[2000:]) < calibration.log_loss(skewed[2000:], classes[2000:])
    before_ece = calibration.class_figures(skewed[2000:], classes[2000:])["viral"]["ece"]
    assert calibration.class_figures(after, classes[2000:])["viral"]["ece"] < before_ece


def test_well_calibrated_probabilities_are_left_nearly_alone():
    rng = np.random.default_rng(3)
    true = rng.dirichlet([2, 1, 0.5], size=3000)
    classes = np.array([rng.choice(3, p=p) for p in true])
    fitted = calibration.fit(true, classes, seed=0)
    assert np.abs(calibration.apply(fitted, true) - true).mean() < 0.03


# ---------------------------------------------------------------- -> test_features.py

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


# ----------------------------------------------------------- -> test_05_predict_likes.py

def trained_models():
    info = tables.check_classed()
    predict = stage("05_predict_likes")
    return info, predict, predict.load_models(info)


@pytest.mark.slow
def test_contributions_sum_to_the_prediction(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    table, info = tables.load_classed()
    predict = stage("05_predict_likes")
    classifier, regressors, global_regressor, combiner = predict.load_models(info)
    trained = (classifier, regressors, global_regressor)
    _, _, (X_classifier, X_regressor) = predict.test_rows_input(table, classifier, global_regressor)
    rows = np.arange(X_regressor.rows)
    outputs = models.calibrated(models.predict(*trained, X_classifier.block(rows), X_regressor.block(rows)), combiner)
    by_routing = models.routed_log_likes(outputs, combiner)
    for routing in models.ROUTINGS:
        explanation = predict.explain(trained, X_regressor, by_routing, outputs, routing)
        assert set(explanation) == {"base", "routing", "text", "account_history", "company_history", "surface",
                                    "media", "time"}
        total = np.sum(list(explanation.values()), axis=0)
        assert np.abs(total - by_routing[routing]).max() < 1e-4
        assert np.abs(explanation["text"]).max() > 0  # the groups are not all in the bias


@pytest.mark.slow
def test_explain_writes_why_columns_that_sum_to_the_prediction(pipeline_copy):
    run("05_predict_likes", "--explain", "--no-plots")
    predictions = pd.read_csv(common.PREDICTIONS)
    why = predictions.filter(like="why_")
    assert {"why_base", "why_text", "why_account_history", "why_routing"} <= set(why.columns)
    predicted = np.log1p(predictions["predicted_likes"])
    # predicted_likes is rounded to 0.1 like: compare where that rounding is small in log space
    large = predictions["predicted_likes"] > 50
    assert np.abs(why.sum(axis=1)[large] - predicted[large]).max() < 2e-3
    metrics = json.loads(open("metrics.json").read())
    assert set(metrics["explanation"]["mean_abs_log1p"]) == {c[4:] for c in why.columns} - {"base"}


@pytest.mark.slow
def test_three_drafts_come_back_ranked(pipeline_copy, capsys):
    drafts = ["New Photoshop features are out <hyperlink>", "Photoshop", "We asked 100 designers: what's next?"]
    run("05_predict_likes", *[arg for text in drafts for arg in ("--text", text)], "--username", "adobe",
        "--company", "adobe", "--output", "drafts.csv")
    out = capsys.readouterr().out
    written = pd.read_csv("drafts.csv")
    assert len(written) == 3 and list(written["content"]) == drafts
    ranked = [line for line in out.splitlines() if line[:4].strip().isdigit()]
    assert [int(line[:4]) for line in ranked] == [1, 2, 3]
    shown_likes = [float(line.split()[1]) for line in ranked]
    assert shown_likes == sorted(shown_likes, reverse=True)
    assert shown_likes == sorted(written["predicted_likes"].round().tolist(), reverse=True)
    chances = [int(line.split()[2].rstrip("%")) for line in ranked[1:]]
    assert all(0 <= c <= 50 for c in chances) and chances == sorted(chances, reverse=True)
    assert "where each differs from #1" in out


@pytest.mark.slow
def test_a_draft_carries_its_media_time_and_reply(pipeline_copy, tmp_path):
    path = tmp_path / "drafts.csv"
    pd.DataFrame({"content": ["Same words", "Same words"], "media": ["", "[Photo(x), Video(y)]"]}).to_csv(path,
                                                                                                       index=False)
    run("05_predict_likes", "--drafts", path, "--username", "adobe", "--media", "gif", "--date",
        "2026-12-07T09:30:00Z", "--reply", "--output", "drafts_out.csv")
    written = pd.read_csv("drafts_out.csv", dtype=str, keep_default_na=False)
    assert list(written["media"]) == ["[Gif()]", "[Photo(x), Video(y)]"]  # a file's own cell wins
    assert (written["is_reply"] == "true").all() and (written["date"] == "2026-12-07T09:30:00Z").all()
    assert written["predicted_likes"].iloc[0] != written["predicted_likes"].iloc[1]  # the media are seen
    signals, _, _ = features.signal_features(written.assign(username="adobe"), tables.load_history_stats())
    assert signals["media_gifs"].tolist() == [1, 0] and signals["media_photos"].tolist() == [0, 1]
    assert (signals["time_hour"] == 9).all()


@pytest.mark.slow
def test_when_prints_the_best_hours_and_the_worst(pipeline_copy, capsys):
    run("05_predict_likes", "--text", "New brushes <hyperlink>", "--username", "adobe", "--when", "--date",
        "2026-12-07T09:00:00Z")
    out = capsys.readouterr().out
    assert "not a promise" in out
    best = [line for line in out.splitlines() if line.strip().startswith("best")]
    worst = [line for line in out.splitlines() if line.strip().startswith("worst")]
    assert len(best) == 3 and len(worst) == 1
    likes = [float(line.split(": ")[1].split()[0]) for line in best + worst]
    assert likes == sorted(likes, reverse=True)


@pytest.mark.parametrize("args, message", [
    (["--media", "photo"], "describe drafts"),
    (["--text", "a", "--text", "b", "--when"], "give one --text"),
    (["--text", "a", "--media", "photograph"], "unknown kind"),
    (["--text", "a", "--date", "next tuesday"], "expected an ISO 8601 time"),
])
def test_draft_settings_are_checked_before_any_work(workdir, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        run("05_predict_likes", *args)
    assert message in str(stop.value)


@pytest.mark.slow
def test_the_report_gives_pairwise_accuracy_and_calibration(pipeline_dir):
    metrics = json.loads((pipeline_dir / "metrics.json").read_text())
    pairwise = metrics["pairwise"]
    assert pairwise["within"] == "account" and pairwise["pairs"] > 20
    assert set(pairwise["accuracy"]) == set(metrics["regression"])
    assert pairwise["accuracy"]["global median"] == 0.5  # a constant orders nothing
    predictions = pd.read_csv(pipeline_dir / common.PREDICTIONS, keep_default_na=False)
    # predicted_likes is rounded to 0.1 like, which can tie two predictions the report told apart
    assert pairs.pairwise_accuracy(
        predictions["username"].astype(str).to_numpy(dtype=object), predictions["likes"],
        predictions["predicted_likes"])[0] == pytest.approx(pairwise["accuracy"]["two-stage, learned routing"], abs=0.03)
    figures = metrics["calibration"]
    assert figures["method"] in calibration.CALIBRATIONS
    for name in common.CLASS_NAMES:
        for stage_name in ("before", "after"):
            assert {"brier", "log_loss", "ece", "mean_probability", "share"} <= set(figures[stage_name][name])
    for name in ("calibration.png", "explanations.png"):
        assert (pipeline_dir / name).stat().st_size > 1000


@pytest.mark.slow
def test_served_probabilities_are_the_calibrated_ones(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    table, info = tables.load_classed()
    predict = stage("05_predict_likes")
    classifier, regressors, global_regressor, combiner = predict.load_models(info)
    _, _, (X_classifier, X_regressor) = predict.test_rows_input(table, classifier, global_regressor)
    rows = np.arange(X_regressor.rows)
    raw = models.predict(classifier, regressors, global_regressor, X_classifier.block(rows), X_regressor.block(rows))
    expected = calibration.apply(combiner["calibration"], raw.uncalibrated)
    served = pd.read_csv(pipeline_dir / common.PREDICTIONS)[[f"probability_{n}" for n in common.CLASS_NAMES]]
    assert np.abs(served.to_numpy() - expected).max() < 1e-4
    learned = models.routed_log_likes(models.calibrated(raw, combiner), combiner)["learned"]
    assert np.abs(pd.read_csv(pipeline_dir / common.PREDICTIONS)["predicted_likes"]
                  - np.clip(np.expm1(learned), 0, None).round(1)).max() < 1e-6
