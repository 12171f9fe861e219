"""Stage 4, 04_train_regressors.py: each specialist trained on its own class's training rows only,
the global regressor on all of them; the learned routing's combiner fitted on exactly the
validation slice and tied to its four regressors by one run id and to the classifier by its
sha256; a classifier of other features refused."""
import json

import numpy as np
import pytest

import common
from conftest import copy_files, expect_error, interrupt_at_blocks, run, stage
from tweetlikes import models, tables, training

train_regressors = stage("04_train_regressors")


def test_a_small_validation_slice_means_a_fixed_number_of_trees(monkeypatch):
    calls = []

    class Trained:
        best_iteration = 41

    def spy(task, settings, device, X, target, fit_rows, validation_rows=(), rounds=None, client=None):
        calls.append((list(fit_rows), list(validation_rows), rounds))
        return Trained()
    monkeypatch.setattr(training, "train_xgboost", spy)
    few, enough = np.arange(100, 100 + train_regressors.MIN_VALIDATION_ROWS - 1), np.arange(100, 150)
    settings = {"sketch_above": 10, "sketch_rows": 6}  # more than 10 fit rows: bins from a sample of 6
    _, rounds, sample = train_regressors.fit_regressor(None, None, np.arange(5), few, settings, "cpu", None)
    assert rounds == train_regressors.ROUNDS_WITHOUT_VALIDATION and sample == 6  # 14 rows fitted
    assert calls[-1] == ([*range(5), *few], [], train_regressors.ROUNDS_WITHOUT_VALIDATION)  # fitted on both
    _, rounds, sample = train_regressors.fit_regressor(None, None, np.arange(5), enough, settings, "cpu", None)
    assert rounds == 42 and calls[-1] == (list(range(5)), list(enough), None)  # early-stopped on the slice
    assert sample is None  # 5 rows fitted: all their bins


def test_the_combiner_is_a_correction_of_the_global_regressor_on_raw_inputs():
    rng = np.random.default_rng(0)
    n = 300
    probabilities = rng.dirichlet(np.ones(3), size=n)
    outputs = models.ModelOutputs(probabilities, rng.integers(0, 3, size=n), rng.normal(3, 1, size=(n, 3)),
                                  rng.normal(3, 1, size=n), probabilities)
    true = np.array([0.7, 0, 0, 0, 0, 0, -0.3, 0])  # on specialist_common - global and probability_popular
    target = outputs.global_log + models.combiner_inputs(outputs) @ true + 0.2
    combiner = train_regressors.fit_combiner(outputs, target)
    assert combiner["inputs"] == models.COMBINER_INPUTS and combiner["alpha"] == train_regressors.RIDGE_ALPHAS[0]
    assert combiner["coefficients"] == pytest.approx(true, abs=1e-3) and combiner["intercept"] == pytest.approx(0.2, abs=1e-3)
    assert np.abs(models.routed_log_likes(outputs, combiner)["learned"] - target).max() < 1e-3


@pytest.fixture(scope="module")
def spied_run(pipeline_dir, tmp_path_factory):
    """04 rerun in a copy of the pipeline folder, with what it fitted the combiner and each
    regressor on."""
    folder = copy_files(pipeline_dir, tmp_path_factory.mktemp("rerun_04"))
    seen = {"regressors": []}
    real_fit, real_train = train_regressors.fit_combiner, training.train_xgboost

    def combiner_spy(outputs, target):
        seen["target"] = target
        return real_fit(outputs, target)

    def train_spy(task, settings, device, X, target, fit_rows, validation_rows=(), **options):
        seen["regressors"].append((np.asarray(fit_rows), np.asarray(validation_rows)))
        return real_train(task, settings, device, X, target, fit_rows, validation_rows, **options)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(train_regressors, "fit_combiner", combiner_spy)
        patch.setattr(training, "train_xgboost", train_spy)
        run("04_train_regressors")
        table, _ = tables.load_classed()
    return folder, table, seen


@pytest.mark.slow
def test_the_combiner_learns_only_from_the_validation_slice(spied_run, monkeypatch):
    folder, table, seen = spied_run
    monkeypatch.chdir(folder)
    fit_rows, validation_rows = training.training_split(table, common.SEED, "random")
    assert np.array_equal(seen["target"], np.log1p(table["likes"].to_numpy()[validation_rows]))
    assert (table["split"].to_numpy()[validation_rows] == "train").all()
    assert not set(validation_rows) & set(fit_rows)
    combiner = json.loads(open(common.COMBINER).read())
    assert combiner["fitted_rows"] == len(validation_rows) and set(combiner["smearing"]) == set(models.ROUTINGS)


@pytest.mark.slow
def test_each_specialist_is_trained_only_on_its_class(spied_run):
    _, table, seen = spied_run
    train = (table["split"] == "train").to_numpy()
    classes = table["popularity_class"].to_numpy()
    _, validation_slice = training.training_split(table, common.SEED, "random")
    assert len(seen["regressors"]) == len(train_regressors.MODELS) == 4
    for (k, name), (fit_rows, validation_rows) in zip(train_regressors.MODELS, seen["regressors"]):
        rows = np.concatenate([fit_rows, validation_rows])
        wanted = train if k is None else train & (classes == k)
        assert sorted(rows) == list(np.flatnonzero(wanted)), name  # all its class's training rows, no other
        assert set(validation_rows) <= set(validation_slice), name  # early-stopped on the shared slice


@pytest.mark.slow
def test_the_four_regressors_and_the_combiner_are_one_run_made_after_the_classifier(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    combiner = common.read_json(common.COMBINER)
    metas = [models.load_artifact(common.REGRESSOR.format(k=k), {"popularity_class": k})["meta"] for k in range(3)]
    metas.append(models.load_artifact(common.GLOBAL_REGRESSOR, {"popularity_class": None})["meta"])
    assert len(combiner["run_id"]) == 12 and {meta["run_id"] for meta in metas} == {combiner["run_id"]}
    assert combiner["classifier_sha256"] == common.file_sha256(common.CLASSIFIER)
    classifier = models.load_classifier({})["meta"]
    for meta in [*metas, combiner]:
        assert meta["features"] == classifier["features"] and meta["classed_csv_sha256"] == classifier["classed_csv_sha256"]
        assert meta["target"] == "log1p(likes)"
    assert {meta["embeddings_combined_sha256"] for meta in metas} == {
        common.read_json(common.EMBEDDINGS_META)["combined"]["npy_sha256"]}


@pytest.mark.slow
def test_models_of_different_feature_sets_are_not_mixed(pipeline_copy):
    expect_error(f"{common.CLASSIFIER} is stale: it was made with features=", "04_train_regressors",
                 "--features", "seed")
    run("03b_train_classifier_improved", "--features", "seed")
    expect_error("rerun 04_train_regressors.py", "05_predict_likes")


@pytest.mark.slow
def test_ctrl_c_anywhere_in_the_matrix_build_is_one_line_and_keeps_the_files(pipeline_copy):
    # In the first specialist's matrices, and in later regressors' (predictions read blocks too).
    interrupt_at_blocks(pipeline_copy, "04_train_regressors.py", (2, 30, 70))


@pytest.mark.slow
def test_04_refuses_a_validation_slice_other_than_03bs(pipeline_copy):
    """04 fits its combiner on rows the classifier was not fitted on: another --seed draws
    another slice, whose rows the classifier may have been fitted on."""
    message = expect_error("04's validation slice is not the one", "04_train_regressors", "--seed", "7")
    assert f"03b's --seed ({common.SEED})" in message
