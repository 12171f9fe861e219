"""Stage 5: predict likes. The classifier picks a popularity class and the matching specialist
predicts log1p(likes); expm1 turns that back into likes.

Reads  train_data_with_classes.csv, class_thresholds.json, history_stats.csv (01),
       embeddings_*.npy (02), classifier_model_improved.joblib (03),
       regressor_model_class_{0,1,2}.joblib and regressor_model_global.joblib (04);
       with --input, a CSV/.xlsx of new tweets (likes optional), embedded here; with --text,
       one new tweet, whose prediction and account history are printed
Writes final_predictions.csv         the input columns plus predicted_class, class probabilities
                                     and predicted_likes
       when actual likes are known:
       metrics.json                  every figure below, with the settings that produced it
       predicted_vs_actual.png       predicted against actual likes, log-log
       confusion_matrix.png          the classifier's confusion matrix

By default it predicts the test rows of 01's split, reusing their stored embeddings. When likes
are known it prints, on the same rows, the two-stage prediction beside simple alternatives: the
global median, per-account and per-company medians, one global regressor, soft routing (the
specialists mixed by class probability), and oracle routing (the true class: the ceiling a
perfect classifier would reach).

Routing: `hard` sends a tweet to the class the classifier picks (the original design);
`soft` averages the three specialists' log1p predictions weighted by the class probabilities.
The classifier was trained with balanced class weights, which inflate the rare classes on
purpose (that is what lifts viral recall); its probabilities are divided by those weights and
renormalised before mixing, so they estimate the real class frequencies again. The mix is in log
space because that is where the specialists were trained and are scored: with calibrated
probabilities it is the expected log1p(likes), the best guess under squared log error. Mixing
raw counts would let the viral specialist's thousands swamp every tweet. The probability_*
columns of the output are these calibrated probabilities; predicted_class is the classifier's
(class-weighted) pick, as in the original design.

Usage: python 05_predict_likes.py [--input NEW.csv | --text "..." [--username NAME] [--company NAME]]
                                  [--routing hard|soft] [--output PATH]
"""
import argparse
import importlib
import time

import numpy as np
import pandas as pd

import common

# Stage 2 embeds new tweets exactly as it embedded the training rows. Importing it is cheap: it
# loads torch or OpenVINO only when asked to encode.
stage2 = importlib.import_module("02_generate_embeddings")

METRICS_JSON = "metrics.json"
SCATTER_PNG = "predicted_vs_actual.png"
CONFUSION_PNG = "confusion_matrix.png"
DEFAULT_ROUTING = "soft"


# -------------------------------------------------------------------------------------- metrics

def regression_metrics(predicted_log, actual_likes, true_class):
    """Figures that mean something on skewed counts: errors of log1p(likes), rank correlation,
    raw RMSE for reference, and the log MAE within each true class."""
    from scipy.stats import spearmanr

    actual_log = np.log1p(actual_likes)
    error = predicted_log - actual_log
    # A constant prediction has no ranking at all: call its correlation 0, not undefined.
    spearman = 0.0 if np.ptp(predicted_log) == 0 else float(spearmanr(predicted_log, actual_log).statistic)
    return {
        "log_rmse": float(np.sqrt(np.mean(error ** 2))),
        "log_mae": float(np.mean(np.abs(error))),
        "spearman": spearman,
        "raw_rmse": float(np.sqrt(np.mean((np.expm1(predicted_log) - actual_likes) ** 2))),
        "log_mae_by_class": {name: float(np.mean(np.abs(error[true_class == k])))
                             if (true_class == k).any() else None
                             for k, name in enumerate(common.CLASS_NAMES)},
    }


def classifier_metrics(true_class, predicted_class, majority_class):
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    precision, recall, _, support = precision_recall_fscore_support(
        true_class, predicted_class, labels=[0, 1, 2], zero_division=0)
    return {
        "macro_f1": float(f1_score(true_class, predicted_class, labels=[0, 1, 2], average="macro", zero_division=0)),
        "majority_baseline_macro_f1": float(f1_score(true_class, np.full(len(true_class), majority_class),
                                                     labels=[0, 1, 2], average="macro", zero_division=0)),
        "accuracy": float(np.mean(true_class == predicted_class)),
        "per_class": {name: {"precision": float(precision[k]), "recall": float(recall[k]), "support": int(support[k])}
                      for k, name in enumerate(common.CLASS_NAMES)},
        "confusion_matrix": confusion_matrix(true_class, predicted_class, labels=[0, 1, 2]).tolist(),
    }


def group_median_log(train, column, query, fallback):
    """Median log1p(likes) of each key over training rows; unseen or empty keys get `fallback`."""
    medians = np.log1p(train["likes"]).groupby(train[column]).median()
    keys = query[column].where(query[column] != "")
    return keys.map(medians).fillna(fallback).to_numpy(dtype=float)


# ----------------------------------------------------------------------------------- prediction

def load_models(info, embeddings_meta=None):
    """Classifier and regressors, checked against the current classed CSV, against each other,
    and (when predicting stored rows) against the current embeddings."""
    expect = {"classed_csv_sha256": info["classed_csv_sha256"]}
    classifier = common.load_artifact(common.CLASSIFIER, expect)
    features = classifier["meta"]["features"]
    same_embedder = {key: classifier["meta"].get(key) for key in ("embedding_model", "embedding_mode")}
    regressor_expect = {**expect, "features": features, **same_embedder}
    if embeddings_meta is not None:
        regressor_expect["embeddings_sha256"] = embeddings_meta["combined"]["texts_sha256"]
        common.check_provenance(common.CLASSIFIER, classifier["meta"], {
            "embedding_model": embeddings_meta["content"]["model"],
            "embedding_mode": embeddings_meta["content"]["mode"],
            "embeddings_sha256": embeddings_meta[common.CLASSIFIER_EMBEDDINGS[features]]["texts_sha256"]})
    regressors = [common.load_artifact(common.REGRESSOR.format(k=k), regressor_expect) for k in range(3)]
    global_regressor = common.load_artifact(common.GLOBAL_REGRESSOR, regressor_expect)
    return classifier, regressors, global_regressor


def predict(classifier, regressors, global_regressor, X_classifier, X_regressor):
    weighted = classifier["model"].predict_proba(X_classifier)
    probabilities = weighted / np.asarray(classifier["meta"]["class_weight"])  # undo the class weights
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predicted_class = weighted.argmax(axis=1)
    specialist_log = np.column_stack([np.asarray(r["model"].predict(X_regressor), dtype=float) for r in regressors])
    return {
        "probabilities": probabilities,
        "predicted_class": predicted_class,
        "specialist_log": specialist_log,
        "hard": specialist_log[np.arange(len(specialist_log)), predicted_class],
        "soft": (probabilities * specialist_log).sum(axis=1),
        "global": np.asarray(global_regressor["model"].predict(X_regressor), dtype=float),
    }


def embed_new_tweets(table, classifier, args):
    """Embed new tweets with the model and mode (exact or fast) the classifier was trained on; on
    the CPU when its embeddings were made by OpenVINO there, which needs no torch."""
    meta = classifier["meta"]
    made_on_cpu = meta.get("embedding_precision", "").startswith("openvino")
    device = "cpu" if args.device == "auto" and made_on_cpu else common.pick_device(args.device)
    encoder = stage2.load_encoder(meta["embedding_model"], device, meta["embedding_mode"] == "fast")
    batch_size = args.batch_size or stage2.BATCH_SIZE[device]
    print(f"embedding {len(table)} new tweets with {meta['embedding_model']} on {device}, {encoder.precision}")
    (content, combined), _ = stage2.embed_unique([list(table["content"]), common.combined_texts(table)],
                                                 encoder, batch_size)
    return {"content": content, "combined": combined}


def draft_table(args):
    """The one tweet of --text as a table, normalised as common.read_table normalises a file."""
    return pd.DataFrame({"content": [args.text], "username": [args.username], "company": [args.company]}
                        ).apply(lambda column: column.str.strip())


def describe_draft(tweet, probabilities, predicted_likes, stats, prior):
    """What the terminal shows for --text: the prediction and what the history features knew."""
    print(f"\npredicted likes: {predicted_likes:.0f}")
    print("class probabilities: " + ", ".join(f"{name} {p:.1%}" for name, p in zip(common.CLASS_NAMES, probabilities)))
    for kind, column in (("user", "username"), ("company", "company")):
        row = stats[(stats["kind"] == kind) & (stats["key"] == tweet[column])] if tweet[column] else stats[:0]
        if row.empty:
            print(f"{column} {tweet[column] or '(none)'!r}: unseen in training; its history features are "
                  f"the global prior (median {np.expm1(prior['median_log_likes']):.0f} likes)")
        else:
            print(f"{column} {tweet[column]!r}: seen in training, {int(row['count'].iloc[0])} tweets, "
                  f"median {np.expm1(row['median_log_likes'].iloc[0]):.0f} likes")


def save_plots(actual_likes, predicted_likes, confusion, routing):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.scatter(actual_likes + 1, predicted_likes + 1, s=6, alpha=0.4)
    top = max(actual_likes.max(), predicted_likes.max()) + 1
    axes.plot([1, top], [1, top], color="grey", linewidth=1, label="perfect")
    axes.set(xscale="log", yscale="log", xlabel="actual likes + 1", ylabel="predicted likes + 1",
             title=f"Test tweets: predicted vs actual ({routing} routing)")
    axes.legend()
    figure.tight_layout()
    common.atomic_write(SCATTER_PNG, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(4.8, 4.2))
    confusion = np.asarray(confusion)
    axes.imshow(confusion, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        axes.text(j, i, str(count), ha="center", va="center",
                  color="white" if count > confusion.max() / 2 else "black")
    axes.set(xticks=range(3), yticks=range(3), xticklabels=common.CLASS_NAMES, yticklabels=common.CLASS_NAMES,
             xlabel="predicted class", ylabel="true class", title="Classifier confusion matrix")
    figure.tight_layout()
    common.atomic_write(CONFUSION_PNG, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def report(table, train, info, predictions, routing):
    """Side-by-side figures on the rows whose likes are known; returns the metrics dict."""
    actual = table["likes"].to_numpy(dtype=float)
    true_class = common.assign_classes(actual, info["thresholds"])
    global_median = float(np.median(np.log1p(train["likes"])))
    methods = {
        "global median": np.full(len(table), global_median),
        "per-account median": group_median_log(train, "username", table, global_median),
        "per-company median": group_median_log(train, "company", table, global_median),
        "single regressor": predictions["global"],
        "two-stage, hard routing": predictions["hard"],
        "two-stage, soft routing": predictions["soft"],
        "two-stage, oracle routing": predictions["specialist_log"][np.arange(len(table)), true_class],
    }
    scores = {name: regression_metrics(predicted, actual, true_class) for name, predicted in methods.items()}
    majority = int(np.bincount(train["popularity_class"], minlength=3).argmax())
    classification = classifier_metrics(true_class, predictions["predicted_class"], majority)

    print(f"\n{len(table)} rows with known likes; errors of log1p(likes), lower is better:")
    header = f"{'':27s} {'RMSE':>6s} {'MAE':>6s} {'Spearman':>8s} {'raw RMSE':>9s}   MAE by class: " + \
             " ".join(f"{name:>7s}" for name in common.CLASS_NAMES)
    print(header)
    for name, score in scores.items():
        by_class = " ".join("    n/a" if v is None else f"{v:7.3f}" for v in score["log_mae_by_class"].values())
        print(f"{name:27s} {score['log_rmse']:6.3f} {score['log_mae']:6.3f} {score['spearman']:8.3f} "
              f"{score['raw_rmse']:9.1f}   {'':14s}{by_class}")
    print(f"\nclassifier: macro-F1 {classification['macro_f1']:.3f} (always '{common.CLASS_NAMES[majority]}': "
          f"{classification['majority_baseline_macro_f1']:.3f}), accuracy {classification['accuracy']:.3f}")
    for name, figures in classification["per_class"].items():
        print(f"  {name:8s} precision {figures['precision']:.3f}  recall {figures['recall']:.3f}  "
              f"({figures['support']} rows)")
    print("  confusion (rows true, columns predicted):", classification["confusion_matrix"])
    return {"regression": scores, "classifier": classification}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", default=None,
                        help="CSV/.xlsx of new tweets to predict (default: the test rows of 01's split)")
    source.add_argument("--text", default=None, help="one new tweet to predict, from the terminal")
    parser.add_argument("--username", default="", help="the account posting --text")
    parser.add_argument("--company", default="", help="the company of --text")
    parser.add_argument("--routing", choices=("hard", "soft"), default=DEFAULT_ROUTING,
                        help="which prediction fills predicted_likes; the report shows both")
    parser.add_argument("--output", default=common.PREDICTIONS, help="where to write the predictions")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="for embedding new tweets (--input)")
    parser.add_argument("--batch-size", type=stage2.positive_int, default=None,
                        help="for embedding new tweets (--input, --text)")
    parser.add_argument("--no-plots", action="store_true", help="skip the two PNG plots")
    args = parser.parse_args(argv)
    if (args.username or args.company) and args.text is None:
        common.fail("--username and --company describe --text; a file's rows carry their own")
    started = time.perf_counter()

    table, info = common.load_classed()
    train = table[table["split"] == "train"]
    if args.input is None and args.text is None:
        rows = np.flatnonzero((table["split"] == "test").to_numpy())
        embeddings, embeddings_meta = {}, {}
        for kind in ("content", "combined"):
            matrix, embeddings_meta[kind] = common.load_embeddings(kind, table)
            embeddings[kind] = matrix[rows]
        classifier, regressors, global_regressor = load_models(info, embeddings_meta)
        tweets = table.iloc[rows].reset_index(drop=True)
        source = f"test rows of {common.CLASSED_CSV}"
    else:
        common.require([common.HISTORY_CSV])
        classifier, regressors, global_regressor = load_models(info)
        tweets = (draft_table(args) if args.text is not None
                  else common.read_table(args.input, required=("content", "username")))
        if "likes" in tweets.columns:
            tweets["likes"] = common.clean_likes(tweets["likes"])
        stats = pd.read_csv(common.HISTORY_CSV, dtype={"key": str}, keep_default_na=False)
        tweets[common.HISTORY_FEATURES] = common.lookup_history(tweets, stats, info["history_prior"]).to_numpy()
        embeddings = embed_new_tweets(tweets, classifier, args)
        source = args.input or "--text"
    print(f"predicting {len(tweets)} tweets from {source}")

    features = classifier["meta"]["features"]
    X_classifier = common.feature_matrix(tweets, embeddings[common.CLASSIFIER_EMBEDDINGS[features]], features)
    X_regressor = common.feature_matrix(tweets, embeddings["combined"], features)
    predictions = predict(classifier, regressors, global_regressor, X_classifier, X_regressor)
    chosen_log = predictions[args.routing]

    output = tweets.drop(columns=common.HISTORY_FEATURES + ["split"], errors="ignore")
    output["predicted_class"] = predictions["predicted_class"]
    for k, name in enumerate(common.CLASS_NAMES):
        output[f"probability_{name}"] = predictions["probabilities"][:, k].round(4)
    output["predicted_likes"] = np.clip(np.expm1(chosen_log), 0, None).round(1)
    common.save_csv(args.output, output)
    print(f"wrote {args.output}: {len(output)} rows, predicted_likes from {args.routing} routing")
    if args.text is not None:
        describe_draft(tweets.iloc[0], predictions["probabilities"][0], output["predicted_likes"].iloc[0],
                       stats, info["history_prior"])

    known = tweets["likes"].notna().to_numpy() if "likes" in tweets.columns else np.zeros(len(tweets), bool)
    if known.any():
        subset = {key: value[known] for key, value in predictions.items()}
        metrics = report(tweets[known].reset_index(drop=True), train, info, subset, args.routing)
        metrics["settings"] = {
            "source": str(source), "rows_scored": int(known.sum()), "routing": args.routing,
            "features": features, "split": info["split"], "thresholds": info["thresholds"],
            "train_rows": int(len(train)), "embedding_model": classifier["meta"]["embedding_model"],
            "embedding_mode": classifier["meta"]["embedding_mode"],
            "classifier_rounds": classifier["meta"]["best_iteration"] + 1,
            "regressor_rounds": [r["meta"]["rounds"] for r in regressors],
        }
        common.save_json(METRICS_JSON, metrics)
        written = [METRICS_JSON]
        if not args.no_plots:
            save_plots(tweets["likes"].to_numpy(dtype=float)[known], output["predicted_likes"].to_numpy()[known],
                       metrics["classifier"]["confusion_matrix"], args.routing)
            written += [SCATTER_PNG, CONFUSION_PNG]
        print(f"wrote {', '.join(written)}")
    print(f"done in {common.seconds_since(started)}")


if __name__ == "__main__":
    main()
