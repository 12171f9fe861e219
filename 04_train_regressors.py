"""Stage 4: train one XGBoost regressor per popularity class (the "specialists"), plus one global
regressor on all training rows as a baseline for 05's report.

Reads  train_data_with_classes.csv        (from 01_create_classes.py)
       embeddings_combined.npy            (from 02_generate_embeddings.py)
Writes regressor_model_class_{0,1,2}.joblib   specialist k, trained only on training rows of class k
       regressor_model_global.joblib          one regressor for all classes (baseline)

The target is log1p(likes): likes span six orders of magnitude, and squared error on raw counts
would let a handful of viral tweets decide everything. Early stopping watches a seeded
validation slice of the training rows (the same slice as 03).

--features seed     the original design: content+company+username embeddings
--features history  the same plus the per-account / per-company history features from 01

Usage: python 04_train_regressors.py [--features seed|history]
"""
import argparse
import time

import numpy as np

import common

N_ESTIMATORS = 1000
LEARNING_RATE = 0.05
MAX_DEPTH = 6
EARLY_STOPPING_ROUNDS = 50
MIN_VALIDATION_ROWS = 10  # fewer than this and early stopping would chase noise
ROUNDS_WITHOUT_VALIDATION = 200


def fit_regressor(X, target, fit_rows, validation_rows, args, device):
    """XGBoost on log1p(likes); early-stopped when the validation slice is big enough to trust."""
    from xgboost import XGBRegressor

    early = len(validation_rows) >= MIN_VALIDATION_ROWS
    model = XGBRegressor(n_estimators=args.n_estimators if early else ROUNDS_WITHOUT_VALIDATION,
                         learning_rate=args.learning_rate, max_depth=args.max_depth, subsample=0.8,
                         colsample_bytree=0.5, tree_method="hist", device=device, random_state=args.seed,
                         early_stopping_rounds=EARLY_STOPPING_ROUNDS if early else None)
    if early:
        model.fit(X[fit_rows], target[fit_rows], eval_set=[(X[validation_rows], target[validation_rows])],
                  verbose=False)
    else:
        all_rows = np.concatenate([fit_rows, validation_rows])
        model.fit(X[all_rows], target[all_rows], verbose=False)
    return model


def rmse(predicted, actual):
    return float(np.sqrt(np.mean((predicted - actual) ** 2))) if len(actual) else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--features", choices=common.FEATURE_SETS, default=common.DEFAULT_FEATURES,
                        help="seed: combined embeddings; history: combined embeddings + history features")
    parser.add_argument("--n-estimators", type=common.positive_int, default=N_ESTIMATORS, help="most boosting rounds")
    parser.add_argument("--learning-rate", type=common.positive_float, default=LEARNING_RATE)
    parser.add_argument("--max-depth", type=common.positive_int, default=MAX_DEPTH)
    parser.add_argument("--seed", type=common.non_negative_int, default=common.SEED)
    args = parser.parse_args(argv)
    common.check_writable([*(common.REGRESSOR.format(k=k) for k in range(3)), common.GLOBAL_REGRESSOR])
    started = time.perf_counter()

    table, info = common.load_classed()
    embeddings, embeddings_meta = common.load_embeddings("combined", table)
    X = common.feature_matrix(table, embeddings, args.features)
    target = np.log1p(table["likes"].to_numpy())
    classes = table["popularity_class"].to_numpy()
    is_train = (table["split"] == "train").to_numpy()
    train_rows = np.flatnonzero(is_train)
    in_validation = common.validation_mask(len(train_rows), args.seed)
    print(f"read {common.CLASSED_CSV} and combined embeddings: {len(table)} rows, "
          f"{X.shape[1]} features ({args.features})")
    device = common.xgboost_device()
    provenance = {**common.training_provenance(info, embeddings_meta), "features": args.features,
                  "n_features": X.shape[1], "target": "log1p(likes)"}

    print(f"training on {device}; log1p(likes) RMSE, each beside its own training median:")
    print(f"  {'model':10s} {'train rows':>10s} {'rounds':>6s} {'validation':>10s} {'test':>6s} {'median':>7s}")
    for k, name in [*enumerate(common.CLASS_NAMES), (None, "global")]:
        in_class = np.ones(len(table), dtype=bool) if k is None else classes == k
        fit_rows = train_rows[~in_validation & in_class[train_rows]]
        validation_rows = train_rows[in_validation & in_class[train_rows]]
        test_rows = np.flatnonzero(~is_train & in_class)
        model = fit_regressor(X, target, fit_rows, validation_rows, args, device)
        rounds = model.best_iteration + 1 if model.early_stopping_rounds else ROUNDS_WITHOUT_VALIDATION
        median = np.median(target[np.concatenate([fit_rows, validation_rows])])
        print(f"  {name:10s} {len(fit_rows) + len(validation_rows):10d} {rounds:6d} "
              f"{rmse(model.predict(X[validation_rows]), target[validation_rows]):10.3f} "
              f"{rmse(model.predict(X[test_rows]), target[test_rows]):6.3f} "
              f"{rmse(np.full(len(test_rows), median), target[test_rows]):7.3f}")
        path = common.GLOBAL_REGRESSOR if k is None else common.REGRESSOR.format(k=k)
        common.save_artifact(path, model, {**provenance, "popularity_class": k, "rounds": int(rounds),
                                           "train_rows": len(fit_rows) + len(validation_rows)})
    print(f"wrote {', '.join(common.REGRESSOR.format(k=k) for k in range(3))}, {common.GLOBAL_REGRESSOR} "
          f"in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
