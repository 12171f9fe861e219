"""Stage 4, 04_train_regressors.py: each specialist trained on its own class's training rows only,
the global regressor on all of them; the learned routing's combiner fitted on exactly the
validation slice and tied to its four regressors by one run id and to the classifier by its
sha256; a classifier of other features refused."""
import json

import numpy as np
import pandas as pd
import pytest

import common
from conftest import copy_files, expect_error, interrupt_at_blocks, run, stage
from tweetlikes import features, files, models, pairs, tables, training

train_regressors = stage("04_train_regressors")


def test_a_small_validation_slice_means_a_fixed_number_of_trees(monkeypatch):
    calls = []

    class Trained:
        best_iteration = 41

    def spy(trainer, task, data, rounds=None):
        calls.append((list(data.fit_rows), list(data.validation_rows), rounds))
        return Trained()
    monkeypatch.setattr(training, "train_xgboost", spy)
    few, enough = np.arange(100, 100 + train_regressors.MIN_VALIDATION_ROWS - 1), np.arange(100, 150)
    settings = {"sketch_above": 10, "sketch_rows": 6}  # more than 10 fit rows: bins from a sample of 6
    trainer = training.Trainer(settings, "cpu")
    _, rounds, sample = train_regressors.fit_regressor(trainer, training.TrainingSet(None, None, np.arange(5), few))
    assert rounds == train_regressors.ROUNDS_WITHOUT_VALIDATION and sample == 6  # 14 rows fitted
    assert calls[-1] == ([*range(5), *few], [], train_regressors.ROUNDS_WITHOUT_VALIDATION)  # fitted on both
    _, rounds, sample = train_regressors.fit_regressor(trainer, training.TrainingSet(None, None, np.arange(5), enough))
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

    def train_spy(trainer, task, data, rounds=None):
        seen["regressors"].append((np.asarray(data.fit_rows), np.asarray(data.validation_rows)))
        return real_train(trainer, task, data, rounds)
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
    expect_error(f"--features seed, but 03b trained {common.CLASSIFIER} with --features all", "04_train_regressors",
                 "--features", "seed")
    run("03b_train_classifier_improved", "--features", "seed")
    expect_error("rerun 04_train_regressors.py", "05_predict_likes")


@pytest.mark.slow
def test_a_seed_other_than_the_classifiers_is_refused_with_the_command_that_agrees(pipeline_copy):
    # As a tester found it: `04 --seed 7` after 03b's 42 fitted the combiner and calibration on rows the
    # classifier trained on, without a word.
    before = {path.name: path.read_bytes() for path in pipeline_copy.iterdir()}
    message = expect_error(f"--seed 7, but 03b trained {common.CLASSIFIER} with --seed 42", "04_train_regressors",
                           "--max-depth", "3", "--seed", "7")
    assert "rerun as: python 04_train_regressors.py --max-depth 3 --seed 42" in message
    assert {path.name: path.read_bytes() for path in pipeline_copy.iterdir()} == before


@pytest.mark.slow
def test_04_follows_the_classifiers_features_and_seed(pipeline_copy):
    # As a tester found it: `03b --features history`, then plain 04, said "rerun 03b".
    run("03b_train_classifier_improved", "--features", "history", "--seed", "3", "--text-form", "none")
    run("04_train_regressors")
    meta = models.load_artifact(common.GLOBAL_REGRESSOR, {})["meta"]
    assert meta["features"] == ["text", "history"] and meta["settings"]["seed"] == 3
    table = tables.load_classed(["split", "popularity_class", "tweet_group"])[0]
    assert common.read_json(common.COMBINER)["fitted_rows"] == len(training.training_split(table, 3)[1])
    run("05_predict_likes", "--no-plots")  # the models belong together
    message = expect_error("--features all, but 03b trained", "04_train_regressors", "--features", "all")
    assert "rerun as: python 04_train_regressors.py --features history" in message


@pytest.mark.slow
def test_ctrl_c_anywhere_in_the_matrix_build_is_one_line_and_keeps_the_files(pipeline_copy):
    # In the first specialist's matrices, and in later regressors' (predictions read blocks too).
    interrupt_at_blocks(pipeline_copy, "04_train_regressors.py", (2, 30, 70))


def test_the_chance_model_is_fitted_only_where_earned():
    rng = np.random.default_rng(0)
    n = 2 * train_regressors.MIN_CHANCE_PAIRS
    predicted = rng.normal(size=n)
    actual = predicted + rng.normal(scale=1.0, size=n)
    enough = np.array([f"user{i % 40}" for i in range(n)], dtype=object)  # 40 accounts of many tweets
    fitted = train_regressors.earned_chance(enough, actual, predicted, "account", seed=0)
    assert fitted["slope"] > 0 and fitted["independent_pairs"] == n - 40 >= train_regressors.MIN_CHANCE_PAIRS
    # One account of MIN_CHANCE_PAIRS tweets: thousands of pairs, but one independent pair short of the floor.
    one = np.array(["user"] * train_regressors.MIN_CHANCE_PAIRS, dtype=object)
    too_few = train_regressors.earned_chance(one, actual[: len(one)], predicted[: len(one)], "account", seed=0)
    assert too_few["slope"] is None and too_few["independent_pairs"] == train_regressors.MIN_CHANCE_PAIRS - 1
    assert too_few["pairs"] > 10 * train_regressors.MIN_CHANCE_PAIRS
    assert f"fewer than the {train_regressors.MIN_CHANCE_PAIRS}" in too_few["why"]
    backwards = train_regressors.earned_chance(enough, actual, -predicted, "account", seed=0)  # a real slope < 0
    assert backwards["slope"] is None and "backwards" in backwards["why"] and pairs.valid_chance(backwards)


def test_too_few_validation_rows_mean_the_global_regressor_and_uncalibrated_probabilities(capsys):
    rng = np.random.default_rng(0)
    n = train_regressors.MIN_FIT_ROWS - 1
    probabilities = rng.dirichlet(np.ones(3), size=n)
    outputs = models.ModelOutputs(probabilities, rng.integers(0, 3, size=n), rng.normal(3, 1, size=(n, 3)),
                                  rng.normal(3, 1, size=n), probabilities)
    validation = pd.DataFrame({"likes": rng.integers(0, 100, size=n), "popularity_class": rng.integers(0, 3, size=n)})
    keys = (np.array(["a"] * n, dtype=object), "account"), (np.ones(n, bool), np.ones(n, bool))
    combiner = train_regressors.fit_routing(outputs, validation, keys, outputs, seed=0)
    assert combiner["calibration"]["method"] == "none" and combiner["alpha"] is None
    assert np.array_equal(models.routed_log_likes(outputs, combiner)["learned"], outputs.global_log)
    assert combiner["pair_chance"]["learned"]["slope"] is None  # 28 independent pairs: too few
    train_regressors.print_routing(combiner, n)
    assert f"too few validation rows ({n}, fewer than {train_regressors.MIN_FIT_ROWS})" in capsys.readouterr().out


@pytest.mark.parametrize("groups", [["history", "surface"], ["history", "-user_log_count"]])
def test_the_chance_is_fitted_on_the_history_a_draft_gets(workdir, groups):
    """Validation rows' own history is out of fold, different for two rows of one account; a draft's
    comes from all training rows, the same for every draft of the account: the chance is fitted on that."""
    pd.DataFrame({"kind": ["user", "company"], "key": ["a", "x"], "count": [4, 9], "sum_log_likes": [8.0, 9.0],
                  "median_log_likes": [2.0, 1.0], "first_day": [np.nan, np.nan], "mean_chars": [10.0, 10.0]}
                 ).to_csv(common.HISTORY_CSV, index=False)
    prior = {"mean_log_likes": 3.0, "median_log_likes": 2.5}
    files.save_json(common.THRESHOLDS_JSON, {"history_prior": prior})
    names = features.feature_columns(groups)
    columns = np.random.default_rng(0).normal(size=(5, len(names))).astype(np.float32)
    inputs = {kind: features.ModelInput(None, columns.copy()) for kind in ("content", "combined")}
    keyed = pd.DataFrame({"username": ["a", "a", "b"], "company": ["x", "x", "x"]})
    drafted = train_regressors.drafts_history(inputs, np.array([0, 2, 4]), keyed, groups, "raw")
    block = drafted["combined"].block(np.arange(3))
    history = [names.index(name) for name in features.HISTORY_FEATURES if name in names]
    expected = features.lookup_history(keyed, tables.load_history_stats(), prior)[[names[i] for i in history]]
    assert np.allclose(block[:, history], expected.to_numpy())
    assert np.array_equal(block[0, history], block[1, history])  # one account: one history
    others = [i for i in range(len(names)) if i not in history]
    assert np.array_equal(block[:, others], columns[[0, 2, 4]][:, others])  # the rest as they were
    assert np.array_equal(inputs["combined"].columns, columns)  # the training inputs untouched
    assert train_regressors.drafts_history(inputs, np.arange(3), keyed, ["surface"], "raw") is None


def test_04_refuses_a_validation_slice_other_than_03bs():
    """04 fits its combiner on rows the classifier was not fitted on: another slice (another
    seed, another classed CSV) may hold rows the classifier was fitted on."""
    rows = np.arange(10)
    meta = {"validation_slice": training.slice_fingerprint(rows), "settings": {"seed": 42}}
    training.check_same_slice(meta, rows)
    with pytest.raises(SystemExit, match="04's validation slice is not the one"):
        training.check_same_slice(meta, rows + 1)
