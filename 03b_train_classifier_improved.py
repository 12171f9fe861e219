"""Stage 3: train the XGBoost classifier that routes each tweet to a popularity class.

Reads  train_data_with_classes.csv   (from 01_create_classes.py)
       embeddings_content.npy       (from 02_generate_embeddings.py; not with --features all,-text)
Writes classifier_model_improved.joblib   the model plus what it was trained on and with

Class imbalance (75/20/5) is countered with balanced sample weights computed from the training
rows. Early stopping watches a seeded validation slice of the training rows; the test rows are
only used for the report printed at the end.

--features all      content embeddings, the history features and every signal 01 found (default)
--features seed     the original design: content embeddings only
--help lists the groups; 04 must be run with the same --features.

The feature matrix is never built whole: XGBoost bins it a block of rows at a time from the
memory-mapped embeddings. --cluster trains on a Dask cluster's workers instead (xgboost.dask), with
the same settings, weights, validation slice and early stopping; the model file is the same kind.

Usage: python 03b_train_classifier_improved.py [--features all|seed|history|GROUP,...] [--cluster ADDRESS]
"""
import time

import numpy as np

import common


def main(argv=None):
    args = common.parse_training_arguments(__doc__, argv)
    common.check_writable([common.CLASSIFIER])
    started = time.perf_counter()

    table, info, groups, inputs, provenance = common.training_inputs(args, ["content"])
    from sklearn.metrics import classification_report, confusion_matrix, f1_score

    X = inputs["content"]
    y = table["popularity_class"].to_numpy()
    fit_rows, validation_rows = common.training_split(table, args.seed)
    train_rows = np.sort(np.concatenate([fit_rows, validation_rows]))
    print(f"fit {len(fit_rows)} rows, validation {len(validation_rows)}")

    # "Balanced" weights, n / (3 * count), from the training rows; for fit and validation alike.
    class_weight = len(train_rows) / (3 * np.bincount(y[train_rows], minlength=3))
    print("class weights: " + ", ".join(f"{name} {w:.2f}" for name, w in zip(common.CLASS_NAMES, class_weight)))
    device = common.xgboost_device()
    settings = common.training_settings(args)
    with common.cluster(args.cluster) as client:
        model = common.train_xgboost("classifier", settings, device, X, y, fit_rows, validation_rows,
                                     weight=class_weight[y], client=client)
        on_cluster = common.cluster_record(args.cluster, client)
    print(f"trained on {device}{' on the cluster' if client else ''}: best round {model.best_iteration + 1} "
          f"of {args.n_estimators}")

    test_rows = np.flatnonzero((table["split"] == "test").to_numpy())
    predicted = common.predict_rows(model.predict, X, test_rows)
    print(f"\ntest rows ({len(test_rows)}), never seen in training:")
    print(classification_report(y[test_rows], predicted, labels=[0, 1, 2], target_names=common.CLASS_NAMES,
                                digits=3, zero_division=0))
    print("confusion matrix (rows: true, columns: predicted)\n", confusion_matrix(y[test_rows], predicted, labels=[0, 1, 2]))
    majority = np.bincount(y[train_rows], minlength=3).argmax()
    print(f"macro-F1 {f1_score(y[test_rows], predicted, labels=[0, 1, 2], average='macro', zero_division=0):.3f} vs "
          f"{f1_score(y[test_rows], np.full(len(test_rows), majority), labels=[0, 1, 2], average='macro', zero_division=0):.3f} "
          f"always answering '{common.CLASS_NAMES[majority]}'")

    common.save_artifact(common.CLASSIFIER, common.artifact(model, {
        **provenance, "settings": settings, "n_features": X.width, "train_rows": len(train_rows),
        "class_weight": class_weight.tolist(), "best_iteration": int(model.best_iteration), "xgboost_device": device,
        **on_cluster}))
    print(f"wrote {common.CLASSIFIER} in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
