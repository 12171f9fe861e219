"""Known answers for every figure 05 reports, and the structure of metrics.json."""
import json

import numpy as np
import pandas as pd
import pytest

import common
from conftest import stage

predict_likes = stage("05_predict_likes")


def test_perfect_prediction_scores_zero_error_and_full_rank():
    likes = np.array([0.0, 9.0, 99.0, 999.0])
    scores = predict_likes.regression_metrics(np.log1p(likes), likes, np.array([0, 0, 1, 2]), np.log1p(500))
    assert scores["log_rmse"] == pytest.approx(0) and scores["log_mae"] == pytest.approx(0)
    assert scores["raw_rmse"] == pytest.approx(0, abs=1e-9) and scores["spearman"] == pytest.approx(1)
    assert scores["viral_precision"] == 1.0 and scores["viral_recall"] == 1.0


def test_known_errors():
    actual = np.expm1([0.0, 1.0, 2.0, 3.0])
    scores = predict_likes.regression_metrics(np.ones(4), actual, np.array([0, 0, 1, 2]), viral_log_threshold=2.5)
    assert scores["log_rmse"] == pytest.approx(np.sqrt((1 + 0 + 1 + 4) / 4))
    assert scores["log_mae"] == pytest.approx(1.0)
    assert scores["spearman"] == 0.0  # a constant prediction ranks nothing
    assert scores["raw_rmse"] == pytest.approx(np.sqrt(np.mean(np.square(
        [np.e - 1, 0.0, np.e - np.e ** 2, np.e - np.e ** 3]))))
    assert scores["log_mae_by_class"] == pytest.approx({"common": 0.5, "popular": 1.0, "viral": 2.0})
    assert scores["viral_precision"] is None and scores["viral_recall"] == 0.0  # nothing predicted viral
    reversed_order = predict_likes.regression_metrics(np.array([4.0, 3.0, 2.0, 1.0]), actual, np.zeros(4, int), 2.5)
    assert reversed_order["spearman"] == pytest.approx(-1)
    assert reversed_order["log_mae_by_class"]["viral"] is None  # no viral rows: no figure
    assert reversed_order["viral_precision"] == 0.0 and reversed_order["viral_recall"] is None


def test_viral_precision_and_recall_at_the_predicted_level():
    true_class = np.array([2, 2, 2, 0, 1, 0])
    predicted_log = np.array([9.0, 9.0, 1.0, 9.0, 1.0, 1.0])  # above 5: predicted viral
    scores = predict_likes.regression_metrics(predicted_log, np.expm1(predicted_log), true_class, 5.0)
    assert scores["viral_precision"] == pytest.approx(2 / 3) and scores["viral_recall"] == pytest.approx(2 / 3)


def test_classifier_figures():
    figures = predict_likes.classifier_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), majority_class=0)
    assert figures["accuracy"] == pytest.approx(0.75)
    assert figures["per_class"]["common"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert figures["per_class"]["popular"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert figures["per_class"]["viral"] == {"precision": 1.0, "recall": 1.0, "support": 1}
    assert figures["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert figures["majority_baseline_macro_f1"] == pytest.approx((2 / 3) / 3)
    assert figures["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_group_statistics_fall_back_for_unseen_and_empty_keys():
    stats = pd.DataFrame({"kind": ["user", "user", "company"], "key": ["a", "b", "a"], "count": [3, 1, 9],
                          "sum_log_likes": [12.0, 5.0, 1.0], "median_log_likes": [2.0, 5.0, 7.0],
                          "first_day": [1.0, 2.0, 3.0]})
    found = common.key_stats(stats, "user", pd.Series(["a", "b", "stranger", ""]))
    assert found["median_log_likes"].fillna(-1.0).tolist() == [2.0, 5.0, -1.0, -1.0]
    assert found["count"].tolist() == [3, 1, 0, 0] and found["first_day"].isna().tolist() == [False, False, True, True]


def strict_json(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_json_files_are_strict(workdir):
    common.save_json("figures.json", {"rmse": float("inf"), "spearman": float("nan"), "by_class": [1.5, float("-inf")]})
    assert strict_json((workdir / "figures.json").read_text()) == {"rmse": None, "spearman": None,
                                                                   "by_class": [1.5, None]}


def test_metrics_json_structure(pipeline_dir):
    metrics = strict_json((pipeline_dir / predict_likes.METRICS_JSON).read_text())
    table = pd.read_csv(pipeline_dir / common.CLASSED_CSV)
    methods = ["global median", "per-account median", "per-company median", "single regressor",
               "two-stage, learned routing", "two-stage, soft routing", "two-stage, hard routing",
               "two-stage, oracle routing", "oracle class median"]
    assert list(metrics["regression"]) == methods
    for scores in metrics["regression"].values():
        assert set(scores) == {"log_rmse", "log_mae", "spearman", "raw_rmse", "log_mae_by_class",
                               "viral_precision", "viral_recall"}
        assert list(scores["log_mae_by_class"]) == list(common.CLASS_NAMES)
    assert metrics["regression"]["global median"]["spearman"] == 0.0
    classifier = metrics["classifier"]
    assert np.sum(classifier["confusion_matrix"]) == (table["split"] == "test").sum()
    assert set(classifier["per_class"]) == set(common.CLASS_NAMES)
    settings = metrics["settings"]
    assert settings["rows_scored"] == (table["split"] == "test").sum() and settings["in_sample_rows"] == 0
    assert settings["routing"] == predict_likes.DEFAULT_ROUTING == "learned"
    assert settings["features"] == ["text", "history", "surface", "media", "time"]  # no is_reply column
    assert settings["classifier"]["settings"]["learning_rate"] == common.LEARNING_RATE
    assert len(settings["regressors"]["rounds"]) == 4 and len(settings["combiner"]["coefficients"]) == 8
    scale = metrics["likes_scale"]
    assert scale["actual_total"] == pytest.approx(table.loc[table["split"] == "test", "likes"].sum())
    assert settings["train_rows"] == (table["split"] == "train").sum() and settings["split"] == "random"
    for plot in (predict_likes.SCATTER_PNG, predict_likes.CONFUSION_PNG):
        assert (pipeline_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
