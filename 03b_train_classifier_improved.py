"""Stage 3: train the XGBoost classifier that routes each tweet to a popularity class.

Reads  train_data_with_classes.csv   (from 01_create_classes.py)
       embeddings_content.npy       (from 02_generate_embeddings.py)
Writes classifier_model_improved.joblib   the model plus what it was trained on

Class imbalance (75/20/5) is countered with balanced sample weights computed from the training
rows. Early stopping watches a seeded validation slice of the training rows; the test rows are
only used for the report printed at the end.

--features seed     the original design: content embeddings only
--features history  content embeddings plus the per-account / per-company history features
                    from 01 (the default: see the README for the figures)

Usage: python 03b_train_classifier_improved.py [--features seed|history]
"""
import argparse
import time

import numpy as np

import common

N_ESTIMATORS = 1000
LEARNING_RATE = 0.05
MAX_DEPTH = 6
EARLY_STOPPING_ROUNDS = 50


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--features", choices=common.FEATURE_SETS, default=common.DEFAULT_FEATURES,
                        help="seed: content embeddings only; history: content embeddings + history features")
    parser.add_argument("--n-estimators", type=common.positive_int, default=N_ESTIMATORS, help="most boosting rounds")
    parser.add_argument("--learning-rate", type=common.positive_float, default=LEARNING_RATE)
    parser.add_argument("--max-depth", type=common.positive_int, default=MAX_DEPTH)
    parser.add_argument("--seed", type=common.non_negative_int, default=common.SEED)
    args = parser.parse_args(argv)
    common.check_writable([common.CLASSIFIER])
    started = time.perf_counter()

    table, info = common.load_classed()
    embeddings, embeddings_meta = common.load_embeddings(common.CLASSIFIER_EMBEDDINGS[args.features], table)
    from sklearn.metrics import classification_report, confusion_matrix, f1_score
    from xgboost import XGBClassifier

    X = common.feature_matrix(table, embeddings, args.features)
    y = table["popularity_class"].to_numpy()
    is_train = (table["split"] == "train").to_numpy()
    train_rows = np.flatnonzero(is_train)
    in_validation = common.validation_mask(len(train_rows), args.seed)
    fit_rows, validation_rows = train_rows[~in_validation], train_rows[in_validation]
    print(f"read {common.CLASSED_CSV} and {common.CLASSIFIER_EMBEDDINGS[args.features]} embeddings: {len(table)} rows, "
          f"{X.shape[1]} features ({args.features}); fit {len(fit_rows)}, validation {len(validation_rows)}")

    # "Balanced" weights, n / (3 * count), from the training rows; for fit and validation alike.
    class_weight = len(train_rows) / (3 * np.bincount(y[train_rows], minlength=3))
    print("class weights: " + ", ".join(f"{name} {w:.2f}" for name, w in zip(common.CLASS_NAMES, class_weight)))
    device = common.xgboost_device()
    model = XGBClassifier(objective="multi:softprob", n_estimators=args.n_estimators,
                          learning_rate=args.learning_rate, max_depth=args.max_depth, subsample=0.8,
                          colsample_bytree=0.5, tree_method="hist", device=device, random_state=args.seed,
                          early_stopping_rounds=EARLY_STOPPING_ROUNDS, eval_metric="mlogloss")
    model.fit(X[fit_rows], y[fit_rows], sample_weight=class_weight[y[fit_rows]],
              eval_set=[(X[validation_rows], y[validation_rows])],
              sample_weight_eval_set=[class_weight[y[validation_rows]]], verbose=False)
    print(f"trained on {device}: best round {model.best_iteration + 1} of {args.n_estimators}")

    test_rows = np.flatnonzero(~is_train)
    predicted = model.predict(X[test_rows])
    print(f"\ntest rows ({len(test_rows)}), never seen in training:")
    print(classification_report(y[test_rows], predicted, labels=[0, 1, 2], target_names=common.CLASS_NAMES,
                                digits=3, zero_division=0))
    print("confusion matrix (rows: true, columns: predicted)\n", confusion_matrix(y[test_rows], predicted, labels=[0, 1, 2]))
    majority = np.bincount(y[train_rows], minlength=3).argmax()
    print(f"macro-F1 {f1_score(y[test_rows], predicted, average='macro', zero_division=0):.3f} vs "
          f"{f1_score(y[test_rows], np.full(len(test_rows), majority), average='macro', zero_division=0):.3f} "
          f"always answering '{common.CLASS_NAMES[majority]}'")

    common.save_artifact(common.CLASSIFIER, model, {
        **common.training_provenance(info, embeddings_meta), "features": args.features,
        "n_features": X.shape[1], "train_rows": len(train_rows), "class_weight": class_weight.tolist(),
        "best_iteration": int(model.best_iteration), "xgboost_device": device})
    print(f"wrote {common.CLASSIFIER} in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
