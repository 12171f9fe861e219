"""tweetlikes/models.py: model bundles (the booster's own bytes beside its provenance, checked on
loading: stale, swapped, damaged or older bundles are refused in one line), the five models'
outputs on some rows (class weights divided out of the probabilities), and the routings."""
import shutil

import numpy as np
import pytest

import common
from conftest import expect_error
from tweetlikes import models


def outputs_of(n, seed=0):
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(3), size=n)
    return models.ModelOutputs(probabilities, rng.integers(0, 3, size=n), rng.normal(size=(n, 3)), rng.normal(size=n),
                               probabilities)


@pytest.fixture(scope="module")
def bundles():
    """A tiny classifier (early-stopped), three specialists and a global regressor, as bundles."""
    import xgboost

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int) + (X[:, 1] + rng.normal(size=300) > 1.5)  # unsure: noisy
    options = dict(n_estimators=40, max_depth=2, learning_rate=0.5, tree_method="hist", random_state=0)
    classifier = xgboost.XGBClassifier(objective="multi:softprob", early_stopping_rounds=2, **options)
    classifier.fit(X[:250], y[:250], eval_set=[(X[250:], y[250:])], verbose=False)
    meta = {"classed_csv_sha256": "abc", "class_weight": [0.5, 1.0, 6.0]}
    regressors = [models.artifact(xgboost.XGBRegressor(**options).fit(X, X[:, column]), {"popularity_class": k})
                  for column, k in enumerate((0, 1, 2, None))]
    return X, classifier, models.artifact(classifier, meta), regressors


def test_the_outputs_of_some_rows_and_of_blocks_joined():
    outputs = outputs_of(6)
    mask = np.array([True, False, True, True, False, False])
    some = outputs.rows(mask)
    assert isinstance(some, models.ModelOutputs) and len(some.global_log) == 3
    assert np.array_equal(some.specialist_log, outputs.specialist_log[mask])
    joined = models.ModelOutputs.concatenate([outputs.rows(slice(0, 2)), outputs.rows(slice(2, 6))])
    for mine, theirs in zip(joined, outputs):
        assert np.array_equal(mine, theirs)


def test_the_routings_known_answers():
    outputs = models.ModelOutputs(probabilities=np.array([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]]),
                                  predicted_class=np.array([1, 0]),
                                  specialist_log=np.array([[1.0, 2.0, 4.0], [3.0, 5.0, 7.0]]),
                                  global_log=np.array([2.0, 6.0]),
                                  uncalibrated=np.array([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]]))
    assert len(models.COMBINER_INPUTS) == models.combiner_inputs(outputs).shape[1] == 8
    assert models.combiner_inputs(outputs)[0].tolist() == [-1, 0, 2, -0.5, 0, 0.5, 0.25, 0.25]
    combiner = {"coefficients": [1.0, 0, 0, 0, 0, 0, 0, 2.0], "intercept": 0.5}
    routed = models.routed_log_likes(outputs, combiner)
    assert routed["hard"].tolist() == [2.0, 3.0]  # the predicted class's specialist
    assert routed["soft"].tolist() == [0.5 + 0.5 + 1.0, 7.0]  # probability-weighted
    assert routed["learned"].tolist() == [2.0 - 1.0 + 0.5 + 0.5, 6.0 - 3.0 + 2.0 + 0.5]  # global, corrected
    assert set(routed) == set(models.ROUTINGS)


def test_predict_divides_the_class_weights_out_of_the_probabilities(bundles):
    X, classifier, classifier_bundle, regressors = bundles
    outputs = models.predict(models.Trained(classifier_bundle, regressors[:3], regressors[3]), X, X[:, :5])
    weighted = classifier.predict_proba(X)
    unweighted = weighted / np.array([0.5, 1.0, 6.0])
    assert np.allclose(outputs.probabilities, unweighted / unweighted.sum(axis=1, keepdims=True), atol=1e-6)
    assert np.array_equal(outputs.predicted_class, weighted.argmax(axis=1))  # the class-weighted pick
    assert (outputs.probabilities.argmax(axis=1) != outputs.predicted_class).any()  # the weights did matter
    for k in range(3):
        assert np.allclose(outputs.specialist_log[:, k], models.load_booster(regressors[k]).inplace_predict(X))
    assert outputs.global_log.shape == (len(X),) and outputs.global_log.dtype == float


def test_a_bundle_holds_the_kept_rounds_and_is_checked_on_loading(bundles, workdir):
    import xgboost

    _, classifier, classifier_bundle, regressors = bundles
    booster = xgboost.Booster(model_file=bytearray(classifier_bundle["model"]))
    assert booster.num_boosted_rounds() == classifier.best_iteration + 1 < 40  # cut where early stopping kept it
    path = common.REGRESSOR.format(k=1)
    models.save_artifact(path, regressors[1])
    assert models.load_artifact(path, {"popularity_class": 1}) == regressors[1]
    with pytest.raises(SystemExit, match=f"^error: {path} is stale: it was made with popularity_class=1, but the "
                                         "current files have 2; rerun 04_train_regressors.py$"):
        models.load_artifact(path, {"popularity_class": 2})
    models.save_artifact(common.CLASSIFIER, regressors[0])  # a regressor where the classifier belongs
    with pytest.raises(SystemExit, match=f"{common.CLASSIFIER} has no valid `class_weight`"):
        models.load_classifier({})


@pytest.mark.slow
def test_a_model_saved_by_an_older_version_names_the_script_to_rerun(pipeline_copy):
    """Bundles hold the booster's own bytes; an older bundle held the pickled sklearn model."""
    import joblib

    path = pipeline_copy / common.REGRESSOR.format(k=2)
    bundle = joblib.load(path)
    joblib.dump({**bundle, "model": {"pickled": "estimator"}}, path)
    message = expect_error(f"rerun {common.MAKERS[path.name]}", "05_predict_likes")
    assert message.startswith(f"error: {path.name} is not an artifact of this version")


@pytest.mark.slow
def test_swapped_or_misplaced_models_are_refused(pipeline_copy):
    first, second = (pipeline_copy / common.REGRESSOR.format(k=k) for k in (0, 1))
    first_bytes = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(first_bytes)
    expect_error(f"{first.name} is stale: it was made with popularity_class=1", "05_predict_likes")
    shutil.copy(pipeline_copy / common.GLOBAL_REGRESSOR, pipeline_copy / common.CLASSIFIER)
    expect_error(f"{common.CLASSIFIER} has no valid `class_weight`", "04_train_regressors")


@pytest.mark.slow
def test_a_damaged_booster_names_the_script_to_rerun(pipeline_copy):
    import joblib

    path = pipeline_copy / common.REGRESSOR.format(k=1)
    bundle = joblib.load(path)
    joblib.dump({**bundle, "model": bundle["model"][:-100] + bytes(100)}, path)
    message = expect_error(f"rerun {common.MAKERS[path.name]}", "05_predict_likes", "--text", "hello")
    assert message.startswith(f"error: {path.name} is damaged") and "\n" not in message
