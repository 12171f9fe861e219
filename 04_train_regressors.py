"""Stage 4: train one XGBoost regressor per popularity class (the "specialists") and one global
regressor on all training rows, then learn how to combine them with the classifier.

Reads  train_data_with_classes.csv        (from 01_create_classes.py)
       embeddings_combined.npy, embeddings_content.npy   (from 02_generate_embeddings.py;
                                          not with --features all,-text)
       classifier_model_improved.joblib   (from 03b_train_classifier_improved.py)
Writes regressor_model_class_{0,1,2}.joblib   specialist k, trained only on training rows of class k
       regressor_model_global.joblib          one regressor for all classes
       routing_combiner.json                  the learned routing: a ridge correction of the global
                                              regressor from the specialists and the classifier's
                                              probabilities, with its fitting record

The target is log1p(likes): likes span six orders of magnitude, and squared error on raw counts
would let a handful of viral tweets decide everything. Early stopping watches a seeded
validation slice of the training rows (the same slice as 03). The combiner is fitted on that
slice: training rows that none of the models was fitted on, so it learns how far to trust each
one on tweets it has not seen. It also records the smearing factor, mean(exp(residual)) on that
slice, which turns the typical prediction into an expected count (05's expected_likes).

As in 03, the feature matrices are never built whole (XGBoost bins them a block of rows at a time
from the memory-mapped embeddings), and --cluster trains the regressors on a Dask cluster's
workers; the combiner, a small ridge on the validation slice, is fitted here either way.

Usage: python 04_train_regressors.py [--features all|seed|history|GROUP,...] [--cluster ADDRESS]
"""
import time
import uuid

import numpy as np

import common

MIN_VALIDATION_ROWS = 10  # fewer than this and early stopping would chase noise
ROUNDS_WITHOUT_VALIDATION = 200
RIDGE_ALPHAS = np.logspace(-3, 3, 13)  # chosen by leave-one-out on the validation slice


def fit_regressor(X, target, fit_rows, validation_rows, settings, device, client):
    """XGBoost on log1p(likes); early-stopped when the validation slice is big enough to trust.
    Returns the model and its number of trees."""
    if len(validation_rows) < MIN_VALIDATION_ROWS:
        model = common.train_xgboost("regressor", settings, device, X, target, np.concatenate([fit_rows, validation_rows]),
                                     rounds=ROUNDS_WITHOUT_VALIDATION, client=client)
        return model, ROUNDS_WITHOUT_VALIDATION
    model = common.train_xgboost("regressor", settings, device, X, target, fit_rows, validation_rows, client=client)
    return model, model.best_iteration + 1


def fit_combiner(parts, target):
    """Ridge regression of the global regressor's residual on common.combiner_inputs, on
    standardised inputs with the penalty chosen by leave-one-out; returned as plain coefficients
    on the raw inputs."""
    from sklearn.linear_model import RidgeCV

    inputs = common.combiner_inputs(parts)
    mean, scale = inputs.mean(axis=0), inputs.std(axis=0)
    scale[scale == 0] = 1
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit((inputs - mean) / scale, target - parts["global"])
    coefficients = ridge.coef_ / scale
    return {"inputs": common.COMBINER_INPUTS, "coefficients": coefficients.tolist(),
            "intercept": float(ridge.intercept_ - mean @ coefficients), "alpha": float(ridge.alpha_)}


def rmse(predicted, actual):
    return float(np.sqrt(np.mean((predicted - actual) ** 2))) if len(actual) else float("nan")


def main(argv=None):
    args = common.parse_training_arguments(__doc__, argv)
    common.check_writable([*(common.REGRESSOR.format(k=k) for k in range(3)), common.GLOBAL_REGRESSOR,
                           common.COMBINER])
    started = time.perf_counter()

    table, info, groups, inputs, provenance = common.training_inputs(args, ["combined", "content"])
    classifier = common.load_classifier({key: provenance[key] for key in provenance
                                                          if key != "embeddings_combined_sha256"})
    X = inputs["combined"]
    target = np.log1p(table["likes"].to_numpy())
    classes = table["popularity_class"].to_numpy()
    is_test = (table["split"] == "test").to_numpy()
    fit_rows, validation_rows = common.training_split(table, args.seed)
    device = common.xgboost_device()
    settings = common.training_settings(args)
    run_id = uuid.uuid4().hex[:12]  # ties the four regressors and the combiner of this run together
    provenance = {**provenance, "settings": settings, "n_features": X.width, "target": "log1p(likes)",
                  "run_id": run_id}

    print(f"training on {device}{' on the cluster' if args.cluster else ''}; log1p(likes) RMSE, "
          "each beside its own training median:")
    print(f"  {'model':10s} {'train rows':>10s} {'rounds':>6s} {'validation':>10s} {'test':>6s} {'median':>7s}")
    models = {}
    with common.cluster(args.cluster) as client:
        on_cluster = common.cluster_record(args.cluster, client)
        for k, name in [*enumerate(common.CLASS_NAMES), (None, "global")]:
            in_class = np.ones(len(table), dtype=bool) if k is None else classes == k
            fit, validation, test_rows = fit_rows[in_class[fit_rows]], validation_rows[in_class[validation_rows]], \
                np.flatnonzero(is_test & in_class)
            model, rounds = fit_regressor(X, target, fit, validation, settings, device, client)
            median = np.median(target[np.concatenate([fit, validation])])
            print(f"  {name:10s} {len(fit) + len(validation):10d} {rounds:6d} "
                  f"{rmse(common.predict_rows(model.predict, X, validation), target[validation]):10.3f} "
                  f"{rmse(common.predict_rows(model.predict, X, test_rows), target[test_rows]):6.3f} "
                  f"{rmse(np.full(len(test_rows), median), target[test_rows]):7.3f}")
            models[name] = common.artifact(model, {**provenance, "popularity_class": k, "rounds": int(rounds),
                                                   "train_rows": len(fit) + len(validation), **on_cluster})

    parts = common.predict_parts(classifier, [models[name] for name in common.CLASS_NAMES], models["global"],
                                 inputs["content"].block(validation_rows), X.block(validation_rows))
    combiner = fit_combiner(parts, target[validation_rows])
    routed = common.route(parts, combiner)
    # Smearing (Duan 1983): E[1 + likes] = exp(predicted log1p) * mean(exp(residual)), per routing.
    combiner.update({"smearing": {name: float(np.mean(np.exp(target[validation_rows] - predicted)))
                                  for name, predicted in routed.items()}, "fitted_rows": len(validation_rows),
                     "validation_log_rmse": {name: rmse(predicted, target[validation_rows]) for name, predicted
                                             in [("global", parts["global"]), *routed.items()]},
                     "classifier_sha256": common.file_sha256(common.CLASSIFIER), **provenance, **on_cluster})
    print(f"combiner fitted on the {len(validation_rows)} validation rows (ridge alpha {combiner['alpha']:g}); "
          "log1p RMSE there: " + ", ".join(f"{name} {value:.3f}" for name, value in combiner["validation_log_rmse"].items()))

    for k, name in [*enumerate(common.CLASS_NAMES), (None, "global")]:
        path = common.GLOBAL_REGRESSOR if k is None else common.REGRESSOR.format(k=k)
        common.save_artifact(path, models[name])
    common.save_json(common.COMBINER, combiner)
    print(f"wrote {', '.join(common.REGRESSOR.format(k=k) for k in range(3))}, {common.GLOBAL_REGRESSOR}, "
          f"{common.COMBINER} in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
