"""tweetlikes/training.py: XGBoost trained from a QuantileDMatrix built a block of rows at a time is
the model sklearn's fit makes; the validation slice (seeded, training rows only, every class kept
in fitting); what 03b and 04 read to train."""
import signal

import numpy as np
import pandas as pd
import pytest

import common
from conftest import PROJECT_DIR, run, run_python, sample
from tweetlikes import features, models, tables, training


def test_blockwise_training_equals_sklearn_fit(workdir, monkeypatch):
    """train_xgboost bins the rows a block at a time from the .npy file: same model as fit(),
    early-stopped at the same round."""
    monkeypatch.setattr(features, "BLOCK_ROWS", 64)
    rng = np.random.default_rng(0)
    embeddings, columns = rng.normal(size=(400, 8)).astype(np.float32), rng.normal(size=(400, 3)).astype(np.float32)
    columns[rng.random(400) < 0.1, 0] = np.nan
    np.save("e.npy", embeddings)
    inputs = features.ModelInput(np.load("e.npy", mmap_mode="r"), columns)
    X = np.hstack([embeddings, columns])
    y = (X[:, 0] + X[:, 8] + 2 * rng.normal(size=400) > 0).astype(int) + (X[:, 1] > 1)  # noisy: validation loss turns
    weight = np.array([0.5, 1.0, 3.0])[y]
    fit_rows, validation_rows = np.arange(320), np.arange(320, 400)
    assert len(inputs.blocks(fit_rows)) == 5 and len(inputs.blocks(validation_rows)) == 2
    settings = {"n_estimators": 30, "learning_rate": 0.5, "max_depth": 3, "subsample": 0.8, "colsample_bytree": 0.5,
                "early_stopping_rounds": 3, "seed": 1, "sketch_above": 100_000, "sketch_rows": 16_384}
    reference = training.new_xgboost("classifier", settings, "cpu")
    reference.fit(X[fit_rows], y[fit_rows], sample_weight=weight[fit_rows], eval_set=[(X[validation_rows], y[validation_rows])],
                  sample_weight_eval_set=[weight[validation_rows]], verbose=False)
    model = training.train_xgboost(training.Trainer(settings, "cpu"), "classifier",
                                   training.TrainingSet(inputs, y, fit_rows, validation_rows, weight))
    assert type(model) is type(reference) and model.best_iteration == reference.best_iteration
    assert model.best_iteration + 1 + settings["early_stopping_rounds"] < settings["n_estimators"]  # it did stop early
    assert np.array_equal(model.predict_proba(X), reference.predict_proba(X))
    assert models.artifact(model, {})["model"] == models.artifact(reference, {})["model"]  # the same bytes
    rows = rng.permutation(400)[:150]  # unsorted rows, no early stopping: 04's tiny-class path
    reference = training.new_xgboost("regressor", settings, "cpu", rounds=8).fit(X[rows], X[rows, 2])
    model = training.train_xgboost(training.Trainer(settings, "cpu"), "regressor",
                                   training.TrainingSet(inputs, X[:, 2], rows), rounds=8)
    assert np.array_equal(model.predict(X), reference.predict(X))
    assert np.array_equal(training.predict_rows(model.predict, inputs, rows), reference.predict(X[rows]))


def test_above_the_threshold_the_bins_are_cut_from_a_seeded_sample(monkeypatch):
    """More fit rows than sketch_above: the training matrix takes the cuts of a matrix of a
    seeded sample of sketch_rows of them (XGBoost's ref), as XGBoost builds it from the arrays."""
    import xgboost

    monkeypatch.setattr(features, "BLOCK_ROWS", 64)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = X[:, 0] + X[:, 1] ** 2 + rng.normal(size=400)
    weight = rng.uniform(0.5, 2, size=400)
    inputs, fit_rows, validation_rows = features.ModelInput(X, None), np.arange(40, 360), np.arange(360, 400)
    base = {"n_estimators": 20, "learning_rate": 0.3, "max_depth": 3, "subsample": 1.0, "colsample_bytree": 1.0,
            "early_stopping_rounds": 5, "seed": 3, "sketch_rows": 50}

    def booster(**settings):
        model = training.train_xgboost(training.Trainer({**base, **settings}, "cpu"), "regressor",
                                       training.TrainingSet(inputs, y, fit_rows, validation_rows, weight))
        return models.artifact(model, {})["model"]

    quantile_dmatrix, built = xgboost.QuantileDMatrix, []  # the ref of each matrix built

    def spy(data, **options):
        built.append(options.get("ref"))
        return quantile_dmatrix(data, **options)
    monkeypatch.setattr(xgboost, "QuantileDMatrix", spy)
    every_row = booster(sketch_above=len(fit_rows))  # not above it: every row, and no sample matrix
    assert built == [None, built[1]] and built[1] is not None  # the training matrix, the validation one
    sampled = booster(sketch_above=100)
    assert len(built) == 5 and built[2] is None and built[3] is not None  # the sample's matrix is the ref
    assert sampled != every_row and sampled == booster(sketch_above=100)  # other bins, and seeded
    assert sampled != booster(sketch_above=100, seed=4)
    assert training.sketch_sample(len(fit_rows), {**base, "sketch_above": 100}) == 50
    assert training.sketch_sample(len(fit_rows), {**base, "sketch_above": len(fit_rows)}) is None

    sample = fit_rows[np.sort(np.random.default_rng(3).choice(len(fit_rows), 50, replace=False))]
    cuts = quantile_dmatrix(X[sample], y[sample], weight=weight[sample])
    train = quantile_dmatrix(X[fit_rows], y[fit_rows], weight=weight[fit_rows], ref=cuts)
    validation = quantile_dmatrix(X[validation_rows], y[validation_rows], weight=weight[validation_rows], ref=train)
    params = training.new_xgboost("regressor", {**base, "sketch_above": 100}, "cpu").get_xgb_params()
    reference = xgboost.train(params, train, 20, evals=[(validation, "validation_0")], early_stopping_rounds=5,
                              verbose_eval=False)
    served = xgboost.Booster(model_file=bytearray(sampled))
    assert np.array_equal(served.inplace_predict(X), reference[: reference.best_iteration + 1].inplace_predict(X))


def test_the_validation_slice_is_seeded_and_of_training_rows_only():
    table = pd.DataFrame({"split": ["train"] * 200 + ["test"] * 50, "popularity_class": np.arange(250) % 3,
                          "tweet_group": np.arange(250)})
    fit_rows, validation_rows = training.training_split(table, common.SEED, "random")
    assert len(validation_rows) == round(200 * training.VALIDATION_FRACTION)
    assert sorted([*fit_rows, *validation_rows]) == list(range(200))  # every training row, no test row
    again, other = training.training_split(table, common.SEED, "random"), training.training_split(table, 7, "random")
    assert np.array_equal(again[1], validation_rows) and not np.array_equal(other[1], validation_rows)


def test_copies_of_a_tweet_fall_on_one_side_of_the_validation_slice():
    group = np.arange(300) // 3  # every tweet three times
    table = pd.DataFrame({"split": "train", "popularity_class": np.arange(300) % 3, "tweet_group": group})
    for split, seed in [("random", 0), ("random", 1), ("latest", 0)]:
        fit_rows, validation_rows = training.training_split(table, seed, split)
        assert not set(group[fit_rows]) & set(group[validation_rows]), split
        assert len(validation_rows) == round(300 * training.VALIDATION_FRACTION)


def test_under_the_time_split_the_validation_slice_can_be_the_latest_training_rows(small_csv, workdir):
    """01 --split time numbers each tweet in posting order (`tweet_group`); with --validation
    latest the slice of 03b and 04 is the latest tweets of the training rows, whatever the seed, as
    the test rows are the latest of all."""
    sample(small_csv, rows=200).to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv", "--split", "time", "--validation", "latest")
    table, info = tables.load_classed(["split", "popularity_class", "tweet_group", "date", "content", "username"])
    assert info["validation"] == "latest"
    days = features.parse_dates(table["date"]).to_numpy()
    fit_rows, validation_rows = training.training_split(table, common.SEED, "latest")
    assert training.training_split(table, 7, "latest")[1].tolist() == validation_rows.tolist()
    assert abs(len(validation_rows) - 0.1 * (table["split"] == "train").sum()) <= 3  # copies may tip it over
    latest_copy = pd.Series(days).groupby([table["content"], table["username"]]).transform("max").to_numpy()
    assert latest_copy[fit_rows].max() <= latest_copy[validation_rows].min()  # by its latest copy
    test_rows = np.flatnonzero((table["split"] == "test").to_numpy())
    assert latest_copy[validation_rows].max() <= latest_copy[test_rows].min()
    random_slice = training.training_split(table, common.SEED, "random")[1]
    assert latest_copy[fit_rows].max() > latest_copy[random_slice].min()  # a random slice lies among them


def test_a_class_that_falls_wholly_into_the_validation_slice_is_fitted_on():
    n = 40
    slice_rows = np.random.default_rng(common.SEED).permutation(n)[:round(n * training.VALIDATION_FRACTION)]
    classes = np.zeros(n, dtype=int)
    classes[slice_rows[:2]] = 2  # both viral rows where the validation slice falls
    classes[slice_rows[2:]] = 1
    classes[-5:][~np.isin(np.arange(n - 5, n), slice_rows)] = 1
    table = pd.DataFrame({"split": "train", "popularity_class": classes, "tweet_group": np.arange(n)})
    fit_rows, validation_rows = training.training_split(table, common.SEED, "random")
    assert set(classes[fit_rows]) == {0, 1, 2}
    assert not set(slice_rows[:2]) & set(validation_rows)
    assert set(slice_rows[2:]) <= set(validation_rows)  # other classes keep their slice


def test_read_training_inputs_are_the_table_the_model_input_and_the_provenance(small_csv, workdir):
    sample(small_csv, rows=100).to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv")
    table, inputs, provenance, kept = training.read_training_inputs(tables.check_classed(), "all,-text",  # no embeddings
                                                                    ["content"], lambda chunk: len(chunk))
    info = common.read_json(common.THRESHOLDS_JSON)
    groups = ["history", "surface", "media", "time", "wording"]  # the sample has no is_reply column
    assert len(table) == 100 and list(table.columns) == training.TABLE_COLUMNS  # texts only hashed
    assert provenance == {"classed_csv_sha256": info["classed_csv_sha256"],
                          "history_stats_sha256": info["history_stats_sha256"], "thresholds": info["thresholds"],
                          "split": "random", "validation": "random", "rows": 100, "features": groups}
    assert list(inputs) == ["content"] and inputs["content"].embeddings is None and sum(kept) == 100  # every chunk kept
    assert inputs["content"].width == len(features.feature_columns(groups))
    assert np.array_equal(inputs["content"].block(np.arange(100)),
                          tables.load_classed(features.feature_columns(groups))[0].to_numpy(dtype=np.float32),
                          equal_nan=True)


# --------------------------------------------------------------------- Ctrl-C in the matrix build

# The matrix build with a KeyboardInterrupt at each block XGBoost asks for in turn, raised in the
# callback or sent as a real SIGINT: each must come out as KeyboardInterrupt, after XGBoost has
# unwound, with nothing on stderr (no "Exception ignored", no XGBoostError, no abort).
INTERRUPT_EACH_BLOCK = """
import os, signal, sys
import numpy as np
from tweetlikes import features, models, tables, training
mode = sys.argv[1]
features.BLOCK_ROWS = 50
rng = np.random.default_rng(0)
X, label = features.ModelInput(rng.normal(size=(500, 8)).astype(np.float32), None), rng.normal(size=500)
calls, stop_at, block = [0], [None], features.ModelInput.block
def counted(self, rows):
    calls[0] += 1
    if calls[0] == stop_at[0]:
        if mode == "raise":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGINT)
    return block(self, rows)
features.ModelInput.block = counted
training.quantile_matrices(training.TrainingSet(X, label, np.arange(400), np.arange(400, 500)))
total = calls[0]
for n in range(1, total + 1):
    calls[0], stop_at[0] = 0, n
    try:
        training.quantile_matrices(training.TrainingSet(X, label, np.arange(400), np.arange(400, 500)))
        print(n, "went on", flush=True)
    except KeyboardInterrupt:
        print(n, "interrupted", flush=True)
print("blocks", total)
"""


@pytest.mark.parametrize("mode", ["raise", "signal"])
def test_ctrl_c_at_any_block_of_the_matrix_build_is_a_clean_keyboard_interrupt(mode):
    done = run_python(INTERRUPT_EACH_BLOCK, mode, cwd=PROJECT_DIR)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines and lines[-1] == "blocks 38", done.stdout + done.stderr
    assert lines[:-1] == [f"{n} interrupted" for n in range(1, 39)], done.stdout + done.stderr
    assert done.stderr == ""


def test_a_matrix_build_without_ctrl_c_leaves_ctrl_c_as_it_was():
    inputs = features.ModelInput(np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32), None)
    training.quantile_matrices(training.TrainingSet(inputs, np.arange(100.0), np.arange(80), np.arange(80, 100)))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
