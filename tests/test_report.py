"""tweetlikes/report.py: known answers for every figure 05 reports (the regression figures, the
classifier's, every method side by side) and the two plots."""
import warnings

import numpy as np
import pandas as pd
import pytest

from tweetlikes import calibration, intervals, models, pairs, report


def test_perfect_prediction_scores_zero_error_and_full_rank():
    likes = np.array([0.0, 9.0, 99.0, 999.0])
    scores = report.regression_metrics(np.log1p(likes), likes, np.array([0, 0, 1, 2]), np.log1p(500))
    assert scores["log_rmse"] == pytest.approx(0) and scores["log_mae"] == pytest.approx(0)
    assert scores["raw_rmse"] == pytest.approx(0, abs=1e-9) and scores["spearman"] == pytest.approx(1)
    assert scores["viral_precision"] == 1.0 and scores["viral_recall"] == 1.0


def test_known_errors():
    actual = np.expm1([0.0, 1.0, 2.0, 3.0])
    scores = report.regression_metrics(np.ones(4), actual, np.array([0, 0, 1, 2]), viral_log_threshold=2.5)
    assert scores["log_rmse"] == pytest.approx(np.sqrt((1 + 0 + 1 + 4) / 4))
    assert scores["log_mae"] == pytest.approx(1.0)
    assert scores["spearman"] == 0.0  # a constant prediction ranks nothing
    assert scores["raw_rmse"] == pytest.approx(np.sqrt(np.mean(np.square(
        [np.e - 1, 0.0, np.e - np.e ** 2, np.e - np.e ** 3]))))
    assert scores["log_mae_by_class"] == pytest.approx({"common": 0.5, "popular": 1.0, "viral": 2.0})
    assert scores["viral_precision"] is None and scores["viral_recall"] == 0.0  # nothing predicted viral
    reversed_order = report.regression_metrics(np.array([4.0, 3.0, 2.0, 1.0]), actual, np.zeros(4, int), 2.5)
    assert reversed_order["spearman"] == pytest.approx(-1)
    assert reversed_order["log_mae_by_class"]["viral"] is None  # no viral rows: no figure
    assert reversed_order["viral_precision"] == 0.0 and reversed_order["viral_recall"] is None


def test_likes_all_the_same_have_no_spearman_and_no_warning(capsys):
    # As a tester found it: scipy's ConstantInputWarning, with a source path and a line of code.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = report.regression_metrics(np.array([0.5, 1.0, 2.0]), np.zeros(3), np.zeros(3, int), np.log1p(500))
    assert scores["spearman"] is None and scores["log_mae"] == pytest.approx(3.5 / 3)
    report.print_regression({"global median": scores}, {"pairs": 0, "within": "account",
                                                        "accuracy": {"global median": None}}, 3)
    out = capsys.readouterr().out
    assert "Spearman n/a: every scored row has the same likes" in out and "nan" not in out


def test_viral_precision_and_recall_at_the_predicted_level():
    true_class = np.array([2, 2, 2, 0, 1, 0])
    predicted_log = np.array([9.0, 9.0, 1.0, 9.0, 1.0, 1.0])  # above 5: predicted viral
    scores = report.regression_metrics(predicted_log, np.expm1(predicted_log), true_class, 5.0)
    assert scores["viral_precision"] == pytest.approx(2 / 3) and scores["viral_recall"] == pytest.approx(2 / 3)


def test_classifier_figures():
    figures = report.classifier_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), majority_class=0)
    assert figures["accuracy"] == pytest.approx(0.75)
    assert figures["per_class"]["common"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert figures["per_class"]["popular"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert figures["per_class"]["viral"] == {"precision": 1.0, "recall": 1.0, "support": 1}
    assert figures["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert figures["majority_baseline_macro_f1"] == pytest.approx((2 / 3) / 3)
    assert figures["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_every_method_is_scored_side_by_side(capsys):
    actual = np.array([0.0, 5.0, 50.0, 500.0])  # classes 0, 0, 1, 2 at thresholds 10 and 100
    truth = np.log1p(actual)
    specialists = np.zeros((4, 3))
    specialists[np.arange(4), [0, 0, 1, 2]] = truth  # each right in its own class only
    outputs = models.ModelOutputs(np.full((4, 3), 1 / 3), np.array([0, 0, 1, 1]), specialists, truth + 1,
                                  np.full((4, 3), 1 / 3))
    by_routing = {"learned": truth, "soft": np.zeros(4), "hard": np.zeros(4)}
    tweets = pd.DataFrame({"username": ["a", "b", "a", "c"], "company": ["x", "x", "y", "y"],
                           "user_log_count": np.log1p([3, 0, 3, 0]), "company_log_count": np.log1p([2, 2, 0, 0])})
    stats = pd.DataFrame({"kind": ["user", "company"], "key": ["a", "x"], "count": [3, 2], "sum_log_likes": [6.0, 2.0],
                          "median_log_likes": [2.0, 1.0], "first_day": [np.nan, np.nan]})
    info = {"thresholds": [10.0, 100.0], "history_prior": {"mean_log_likes": 3.0, "median_log_likes": 3.0},
            "class_counts": {"common": {"train": 60}, "popular": {"train": 30}, "viral": {"train": 10}}}
    train = pd.DataFrame({"likes": [1.0, 3.0, 20.0, 1000.0], "popularity_class": [0, 0, 1, 2]})
    explanation = {"base": np.full(4, 2.0), "text": np.array([0.5, -0.5, 0.0, 1.0]), "routing": np.zeros(4)}
    combiner = {"smearing": {"learned": 1.0}, "calibration": {"method": "none"},
                "pair_chance": {"within": "account", "learned": {"slope": 2.0, "pairs": 50}}}
    # Ranges: row 0 (0 likes) inside [0, 2], row 1 (5) above [1, 4], row 2 (50) inside [50, 60], row 3 none.
    served = intervals.Served("learned", 1.0, 0.8, np.array([0.0, 1, 50, np.nan]), np.array([2.0, 4, 60, np.nan]))
    figures = report.evaluate(report.Scored(tweets, actual, outputs, by_routing, explanation, served), train, stats,
                              info, "learned", combiner)
    scores = figures["regression"]
    assert list(scores) == ["global median", "per-account median", "per-company median", "single regressor",
                            "two-stage, learned routing", "two-stage, soft routing", "two-stage, hard routing",
                            "two-stage, oracle routing", "oracle class median"]
    assert scores["two-stage, oracle routing"]["log_rmse"] == 0 == scores["two-stage, learned routing"]["log_rmse"]
    assert scores["single regressor"]["log_rmse"] == pytest.approx(1.0)
    assert scores["global median"]["log_mae"] == pytest.approx(np.mean(np.abs(3.0 - truth)))
    assert scores["per-account median"]["log_mae"] == pytest.approx(np.mean(np.abs([2, 3, 2, 3] - truth)))
    assert scores["per-company median"]["log_mae"] == pytest.approx(np.mean(np.abs([1, 1, 3, 3] - truth)))
    common_median = np.median(np.log1p([1.0, 3.0]))  # each true class's median training log1p(likes)
    oracle_median = np.array([common_median, common_median, np.log1p(20.0), np.log1p(1000.0)])
    assert scores["oracle class median"]["log_mae"] == pytest.approx(np.mean(np.abs(oracle_median - truth)))
    # Always 'common' (the training majority): its F1 2/3 (precision 1/2, recall 1), the others' 0.
    assert figures["classifier"]["accuracy"] == 0.75
    assert figures["classifier"]["majority_baseline_macro_f1"] == pytest.approx((2 / 3) / 3)
    scale = figures["likes_scale"]  # smearing 1: the typical count is the expected one
    assert scale["actual_total"] == 555.0
    for name in ("predicted_likes", "expected_likes"):
        assert scale[name] == {"raw_rmse": pytest.approx(0, abs=1e-9), "total": pytest.approx(555.0)}
    assert "always 'common'" in capsys.readouterr().out
    # Pairs: one account ("a", rows 0 and 2) has two tweets; the learned routing orders them right.
    accuracy = {**{name: 1.0 for name in scores}, "global median": 0.5, "per-account median": 0.5,
                "two-stage, soft routing": 0.5, "two-stage, hard routing": 0.5}
    # Without media or reply columns, every pair of one account is of one kind.
    assert figures["pairwise"] == {"within": "account", "pairs": 1, "accuracy": accuracy,
                                   "same_kind": {"pairs": 1, "accuracy": accuracy}}
    assert figures["explanation"] == {"base_log1p": 2.0, "mean_abs_log1p": {"text": 0.5, "routing": 0.0}, "rows": 4}
    assert figures["calibration"]["before"] == figures["calibration"]["after"]  # nothing was calibrated
    ranges = figures["interval"]  # widths (high + 1) / (low + 1): 3, 2.5, 61/51
    assert {key: ranges[key] for key in ("level", "rows", "rows_without_range")} == {"level": 0.8, "rows": 3,
                                                                                     "rows_without_range": 1}
    assert ranges["coverage"] == pytest.approx(2 / 3) and ranges["median_width"] == pytest.approx(2.5)
    assert ranges["by_account"]["seen"] == {"rows": 2, "coverage": 1.0, "median_width": pytest.approx((3 + 61 / 51) / 2)}
    assert ranges["by_account"]["unseen"] == {"rows": 1, "coverage": 0.0, "median_width": 2.5}
    assert ranges["by_company"]["unseen"] == {"rows": 1, "coverage": 1.0, "median_width": pytest.approx(61 / 51)}
    assert ranges["by_predicted_class"]["popular"]["rows"] == 1 and ranges["by_predicted_class"]["viral"]["rows"] == 0
    # The chance over the one same-account pair (rows 0 and 2): the pick (row 2, predicted higher) was right.
    stated = pairs.chance_to_beat({"slope": 2.0}, truth[2] - truth[0])
    assert figures["pair_chance"] == {"ece": pytest.approx(1 - stated), "pairs": 1, "bands": [
        {"from": 0.9, "stated": pytest.approx(stated), "right": 1.0, "pairs": 1}]}


def test_the_diagnostic_plots_are_pngs(workdir):
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=50)
    figures = calibration.class_figures(probabilities, rng.integers(0, 3, size=50))
    report.save_diagnostics({"method": "vector", "before": figures, "after": figures}, {"text": 0.4, "time": 0.1})
    for name in (report.CALIBRATION_PNG, report.EXPLANATION_PNG):
        assert (workdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plots_are_pngs(workdir):
    report.save_plots(np.array([0.0, 5.0, 50.0]), np.array([1.0, 4.0, 70.0]), [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "soft")
    for name in (report.SCATTER_PNG, report.CONFUSION_PNG):
        assert (workdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
