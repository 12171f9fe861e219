"""Stage 5: predict likes. The classifier gives each tweet's class probabilities, every specialist
and the global regressor predict log1p(likes), and the routing combines them; expm1 turns that
back into likes.

Reads  train_data_with_classes.csv, class_thresholds.json, history_stats.csv (01),
       embeddings_*.npy (02), classifier_model_improved.joblib (03),
       regressor_model_class_{0,1,2}.joblib, regressor_model_global.joblib and
       routing_combiner.json (04); with --input, a CSV/.xlsx of new tweets (likes optional),
       embedded here; with --text, one new tweet, whose prediction and account history are printed
Writes final_predictions.csv         the input columns as they were, plus predicted_class, class
                                     probabilities, predicted_likes (typical) and expected_likes
                                     (mean) (--output: never onto the input or a pipeline file;
                                     with --text, written only when --output is given)
       when actual likes are known (else an earlier run's copies are removed; --text leaves them):
       metrics.json                  every figure below, with the settings that produced it
       predicted_vs_actual.png       predicted against actual likes, log-log
       confusion_matrix.png          the classifier's confusion matrix

By default it predicts the test rows of 01's split, reusing their stored embeddings. When likes
are known it prints, on the same rows, every routing beside simple alternatives: the global
median, per-account and per-company medians, the global regressor alone, and oracle routing
(the true class: the ceiling a perfect classifier would reach). Rows of --input that are
training rows (same content and username) are counted and flagged: their figures are in-sample.

Routing (--routing): `learned` (the default) is 04's combiner, a ridge regression fitted on
training rows none of the models saw; `soft` averages the specialists' log1p predictions
weighted by the class probabilities; `hard` sends a tweet to the class the classifier picks (the
original design). The probabilities are the classifier's with its class weights divided out
(see common.predict_parts); predicted_class is its class-weighted pick, as in the original design.

predicted_likes is the typical count, expm1 of the predicted log1p(likes): the best guess under
log error, a median-like figure. expected_likes is the mean, predicted_likes scaled by 04's
smearing factor: use it for totals and raw-count scoring, where a median-like guess is far low.

--cluster predicts on a Dask cluster's workers, a block of rows per task, each reading its rows
of the embeddings from the shared working directory (new tweets of --input are embedded here).

Usage: python 05_predict_likes.py [--input NEW.csv | --text "..." [--username NAME] [--company NAME]]
                                  [--routing learned|soft|hard] [--output PATH] [--cluster ADDRESS]
"""
import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import common

# Stage 2 embeds new tweets exactly as it embedded the training rows. Importing it is cheap: it
# loads torch or OpenVINO only when asked to encode.
stage2 = importlib.import_module("02_generate_embeddings")

METRICS_JSON = "metrics.json"
SCATTER_PNG = "predicted_vs_actual.png"
CONFUSION_PNG = "confusion_matrix.png"
DEFAULT_ROUTING = "learned"
# The user's files and the pipeline's own: --output may never land on one of them.
REPORT_FILES = (METRICS_JSON, SCATTER_PNG, CONFUSION_PNG)
PIPELINE_FILES = (*common.MAKERS, *REPORT_FILES)
OUTPUT_COLUMNS = ["predicted_class", *(f"probability_{name}" for name in common.CLASS_NAMES), "predicted_likes",
                  "expected_likes"]


# -------------------------------------------------------------------------------------- metrics

def regression_metrics(predicted_log, actual_likes, true_class, viral_log_threshold):
    """Figures that mean something on skewed counts: errors of log1p(likes), rank correlation,
    raw RMSE for reference, the log MAE within each true class, and how well the prediction
    finds the viral tweets (precision and recall of predicting above the viral threshold)."""
    from scipy.stats import spearmanr

    actual_log = np.log1p(actual_likes)
    error = predicted_log - actual_log
    # A constant prediction has no ranking at all: call its correlation 0, not undefined.
    spearman = 0.0 if np.ptp(predicted_log) == 0 else float(spearmanr(predicted_log, actual_log).statistic)
    predicted_viral, viral = predicted_log > viral_log_threshold, true_class == 2
    return {
        "log_rmse": float(np.sqrt(np.mean(error ** 2))),
        "log_mae": float(np.mean(np.abs(error))),
        "spearman": spearman,
        "raw_rmse": float(np.sqrt(np.mean((np.expm1(predicted_log) - actual_likes) ** 2))),
        "log_mae_by_class": {name: float(np.mean(np.abs(error[true_class == k])))
                             if (true_class == k).any() else None
                             for k, name in enumerate(common.CLASS_NAMES)},
        "viral_precision": float(np.mean(viral[predicted_viral])) if predicted_viral.any() else None,
        "viral_recall": float(np.mean(predicted_viral[viral])) if viral.any() else None,
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


def load_models(info):
    """Classifier, regressors and combiner, checked against the current classed CSV and history
    stats, and against each other: one run of 04, made after the current classifier."""
    expect = {"classed_csv_sha256": info["classed_csv_sha256"], "history_stats_sha256": info["history_stats_sha256"]}
    classifier = common.load_classifier(expect)
    features = classifier["meta"]["features"]
    common.require([common.COMBINER])
    combiner = common.read_json(common.COMBINER)
    common.check_fields(common.COMBINER, combiner, {
        "coefficients": lambda v: isinstance(v, list) and len(v) == len(common.COMBINER_INPUTS)
                                  and all(map(common.is_number, v)),
        "intercept": common.is_number,
        "smearing": lambda v: isinstance(v, dict) and all(common.is_number(v.get(r)) for r in common.ROUTINGS)})
    regressor_expect = {**expect, "features": features, "run_id": combiner.get("run_id"),
                        **{key: classifier["meta"].get(key) for key in ("embedding_model", "embedding_mode")}}
    # Each file must hold its own class's specialist: swapped files would load and mispredict.
    regressors = [common.load_artifact(common.REGRESSOR.format(k=k), {**regressor_expect, "popularity_class": k})
                  for k in range(3)]
    global_regressor = common.load_artifact(common.GLOBAL_REGRESSOR, {**regressor_expect, "popularity_class": None})
    common.check_provenance(common.COMBINER, combiner, {"classifier_sha256": common.file_sha256(common.CLASSIFIER)})
    return classifier, regressors, global_regressor, combiner


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


def training_rows(tweets):
    """The classed CSV's training rows, their likes and class (for the report), and which of
    `tweets` are among them (same content and username). One pass, a chunk at a time: the texts
    of a big training set never sit whole in memory."""
    wanted = pd.MultiIndex.from_frame(tweets[["content", "username"]])
    found, kept = np.zeros(len(tweets), dtype=bool), []
    for chunk in common.classed_chunks(["split", "content", "username", "likes", "popularity_class"]):
        train = chunk[chunk["split"] == "train"]
        found |= wanted.isin(pd.MultiIndex.from_frame(train[["content", "username"]]))
        kept.append(train[["likes", "popularity_class"]])
    return pd.concat(kept, ignore_index=True), found


def draft_table(args):
    """The one tweet of --text as (table, original), normalised as common.read_table normalises a file."""
    original = pd.DataFrame({"content": [args.text], "username": [args.username], "company": [args.company]})
    return original.apply(lambda column: column.str.strip()), original


def describe_draft(tweet, probabilities, predicted_likes, stats, prior):
    """What the terminal shows for --text: the prediction and what the history features knew."""
    print(f"\npredicted likes: {predicted_likes:.0f}")
    print("class probabilities: " + ", ".join(f"{name} {p:.1%}" for name, p in zip(common.CLASS_NAMES, probabilities)))
    for kind, column in (("user", "username"), ("company", "company")):
        found = common.key_stats(stats, kind, pd.Series([tweet[column]])).iloc[0]
        if found["count"] == 0:
            print(f"{column} {repr(tweet[column]) if tweet[column] else '(none)'}: unseen in training; its history features are "
                  f"the global prior (median {np.expm1(prior['median_log_likes']):.0f} likes)")
        else:
            print(f"{column} {tweet[column]!r}: seen in training, {int(found['count'])} tweets, "
                  f"median {np.expm1(found['median_log_likes']):.0f} likes")


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


def report(tweets, actual, train, stats, info, parts, routes, routing, smearing):
    """Side-by-side figures on the rows whose likes are known; returns the metrics dict."""
    true_class = common.assign_classes(actual, info["thresholds"])
    # What knowing the class alone is worth: each row gets its true class's training median. Set
    # beside oracle routing, it shows how much of that ceiling is the specialists' skill.
    class_median = np.log1p(train["likes"]).groupby(train["popularity_class"]).median()
    global_median = info["history_prior"]["median_log_likes"]
    methods = {
        "global median": np.full(len(tweets), global_median),
        "per-account median": common.key_stats(stats, "user", tweets["username"])["median_log_likes"]
                                    .fillna(global_median).to_numpy(),
        "per-company median": common.key_stats(stats, "company", tweets["company"])["median_log_likes"]
                                    .fillna(global_median).to_numpy(),
        "single regressor": parts["global"],
        **{f"two-stage, {name} routing": routes[name] for name in common.ROUTINGS},
        "two-stage, oracle routing": parts["specialist_log"][np.arange(len(tweets)), true_class],
        "oracle class median": class_median.reindex(true_class).to_numpy(),
    }
    viral_log = float(np.log1p(info["thresholds"][1]))
    scores = {name: regression_metrics(predicted, actual, true_class, viral_log) for name, predicted in methods.items()}
    train_counts = [info["class_counts"][name]["train"] for name in common.CLASS_NAMES]
    majority = int(np.argmax(train_counts))
    classification = classifier_metrics(true_class, parts["predicted_class"], majority)
    typical, mean = np.expm1(routes[routing]), np.exp(routes[routing]) * smearing - 1
    likes_scale = {"actual_total": float(actual.sum()),
                   **{name: {"raw_rmse": float(np.sqrt(np.mean((values - actual) ** 2))), "total": float(values.sum())}
                      for name, values in (("predicted_likes", typical), ("expected_likes", mean))}}

    print(f"\n{len(tweets)} rows with known likes; errors of log1p(likes), lower is better:")
    print(f"{'':27s} {'RMSE':>6s} {'MAE':>6s} {'Spearman':>8s} {'raw RMSE':>9s}  viral P/R   MAE by class: "
          + " ".join(f"{name:>7s}" for name in common.CLASS_NAMES))
    for name, score in scores.items():
        by_class = " ".join("    n/a" if v is None else f"{v:7.3f}" for v in score["log_mae_by_class"].values())
        viral = " ".join("  n/a" if v is None else f"{v:.2f}" for v in (score["viral_precision"], score["viral_recall"]))
        print(f"{name:27s} {score['log_rmse']:6.3f} {score['log_mae']:6.3f} {score['spearman']:8.3f} "
              f"{score['raw_rmse']:9.1f}  {viral:9s}  {'':12s}{by_class}")
    print(f"\nraw counts ({routing} routing): predicted_likes RMSE {likes_scale['predicted_likes']['raw_rmse']:.1f}, "
          f"total {likes_scale['predicted_likes']['total']:.0f}; expected_likes RMSE "
          f"{likes_scale['expected_likes']['raw_rmse']:.1f}, total {likes_scale['expected_likes']['total']:.0f}; "
          f"actual total {likes_scale['actual_total']:.0f}")
    print(f"classifier: macro-F1 {classification['macro_f1']:.3f} (always '{common.CLASS_NAMES[majority]}': "
          f"{classification['majority_baseline_macro_f1']:.3f}), accuracy {classification['accuracy']:.3f}")
    for name, figures in classification["per_class"].items():
        print(f"  {name:8s} precision {figures['precision']:.3f}  recall {figures['recall']:.3f}  "
              f"({figures['support']} rows)")
    print("  confusion (rows true, columns predicted):", classification["confusion_matrix"])
    return {"regression": scores, "likes_scale": likes_scale, "classifier": classification}


def same_file(a, b):
    a, b = Path(a), Path(b)
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", default=None,
                        help="CSV/.xlsx of new tweets to predict (default: the test rows of 01's split)")
    source.add_argument("--text", default=None, help="one new tweet to predict, from the terminal")
    parser.add_argument("--username", default="", help="the account posting --text")
    parser.add_argument("--company", default="", help="the company of --text")
    parser.add_argument("--routing", choices=common.ROUTINGS, default=DEFAULT_ROUTING,
                        help="which prediction fills predicted_likes; the report shows all")
    parser.add_argument("--output", default=None,
                        help=f"where to write the predictions (default: {common.PREDICTIONS}; with --text, "
                             "nothing is written unless this is given)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="for embedding new tweets (--input, --text)")
    parser.add_argument("--batch-size", type=common.positive_int, default=None,
                        help="for embedding new tweets (--input, --text)")
    parser.add_argument("--no-plots", action="store_true", help="skip the two PNG plots")
    common.add_cluster_argument(parser)
    args = parser.parse_args(argv)
    if (args.username or args.company) and args.text is None:
        common.fail("--username and --company describe --text; a file's rows carry their own")
    if (args.device != "auto" or args.batch_size) and args.input is None and args.text is None:
        common.fail("--device and --batch-size are for embedding new tweets (--input or --text); "
                    "the test rows' embeddings are already made")
    if args.text is not None:
        for name in ("text", "username", "company"):
            try:
                getattr(args, name).encode("utf-8")
            except UnicodeEncodeError:  # bytes the terminal's encoding could not decode
                common.fail(f"--{name} is not valid UTF-8 text")
        if not args.text.strip():
            common.fail("--text is empty")
    if args.output is None and args.text is None:
        args.output = common.PREDICTIONS
    # The report (metrics.json and the plots) describes final_predictions.csv: a draft from the
    # terminal leaves it as it is, unless it writes over final_predictions.csv itself.
    replaces_report = args.text is None or (args.output is not None and same_file(args.output, common.PREDICTIONS))
    started = time.perf_counter()

    common.check_writable([path for path in (args.output, *(REPORT_FILES if replaces_report else ()))
                           if path is not None])
    new_tweets = args.input is not None or args.text is not None
    # New tweets read the classed CSV later, in one streamed pass (training_rows): a draft stays
    # quick and small however big training was.
    table, info = (None, common.check_classed()) if new_tweets else common.load_classed()
    for path in (*PIPELINE_FILES, info["input"], args.input):
        if path is not None and args.output is not None and same_file(args.output, path):
            common.fail(f"--output {args.output} would overwrite {path}; the pipeline never writes over "
                        "its inputs or its own files: pick another name")
    stats = common.load_history_stats()
    classifier, regressors, global_regressor, combiner = load_models(info)
    features = classifier["meta"]["features"]
    derived = ["split", "popularity_class", *common.feature_columns(common.FEATURE_GROUPS)]
    if not new_tweets:
        rows = np.flatnonzero((table["split"] == "test").to_numpy())
        tweets, train = table.iloc[rows].reset_index(drop=True), table[table["split"] == "train"]
        original = tweets.drop(columns=derived)
        in_training = np.zeros(len(tweets), dtype=bool)  # held out by 01's split
        embeddings = {}
        if "text" in features:
            for kind in ("content", "combined"):
                matrix, meta = common.load_embeddings(kind, table)
                common.check_provenance(common.CLASSIFIER if kind == "content" else common.GLOBAL_REGRESSOR,
                                        (classifier if kind == "content" else global_regressor)["meta"],
                                        {f"embeddings_{kind}_sha256": meta["npy_sha256"],
                                         "embedding_model": meta["model"], "embedding_mode": meta["mode"]})
                embeddings[kind] = matrix  # row i of `tweets` is its row rows[i]
        source = f"test rows of {common.CLASSED_CSV}"
    else:
        # `original` is what the user gave, returned as it was; `tweets` is what the models read.
        tweets, original = (draft_table(args) if args.text is not None
                            else common.read_table(args.input, required=("content", "username")))
        taken = [column for column in OUTPUT_COLUMNS if column in original.columns]
        if taken:
            common.fail(f"{args.input} already has column(s) {taken}, which this stage adds; rename them")
        train, in_training = training_rows(tweets)
        tweets = tweets.drop(columns=derived, errors="ignore")  # a user's own `split` stays in `original`
        tweets[common.HISTORY_FEATURES] = common.lookup_history(tweets, stats, info["history_prior"]).to_numpy()
        signals, _, malformed = common.signal_features(tweets, stats)
        tweets[signals.columns] = signals.to_numpy()
        for group, count in malformed.items():
            if count:
                print(f"signals: {count} unreadable `{common.SIGNAL_SOURCE[group]}` cells left missing")
        embeddings = embed_new_tweets(tweets, classifier, args) if "text" in features else {}
        source = args.input or "--text"
    print(f"predicting {len(tweets)} tweets from {source}{' on the cluster' if args.cluster else ''}")

    index = None if new_tweets else rows
    X_classifier, X_regressor = (common.features(tweets, embeddings.get(kind), features, index)
                                 for kind in ("content", "combined"))
    with common.cluster(args.cluster) as client:
        on_cluster = common.cluster_record(args.cluster, client)
        if client:
            parts = common.cluster_predict_parts(client, (classifier, regressors, global_regressor),
                                                 X_classifier, X_regressor)
        else:
            every_row = np.arange(len(tweets))
            parts = common.predict_parts(classifier, regressors, global_regressor, X_classifier.block(every_row),
                                         X_regressor.block(every_row))
    routes = common.route(parts, combiner)
    smearing = combiner["smearing"][args.routing]

    output = original.copy()
    output["predicted_class"] = parts["predicted_class"]
    for k, name in enumerate(common.CLASS_NAMES):
        output[f"probability_{name}"] = parts["probabilities"][:, k].round(4)
    output["predicted_likes"] = np.clip(np.expm1(routes[args.routing]), 0, None).round(1)
    output["expected_likes"] = np.clip(np.exp(routes[args.routing]) * smearing - 1, 0, None).round(1)
    if args.output is not None:
        common.save_csv(args.output, output)
        print(f"wrote {args.output}: {len(output)} rows, predicted_likes from {args.routing} routing")
    if args.text is not None:
        describe_draft(tweets.iloc[0], parts["probabilities"][0], output["predicted_likes"].iloc[0],
                       stats, info["history_prior"])

    likes = common.clean_likes(tweets.get("likes", pd.Series(np.nan, tweets.index)))
    known = likes.notna().to_numpy()
    if "likes" not in tweets.columns:
        if args.text is None:
            print("no likes column: predicted, nothing to score")
    elif not known.all():
        print(f"{(~known).sum()} rows have no usable likes ({common.bad_likes(tweets['likes'])}): "
              "predicted but not scored")
    # A tweet the models trained on scores far better than a new one: never let that pass unseen.
    in_sample = int((in_training & known).sum())
    if in_training.any() and args.text is not None:
        print(f"warning: this draft is a training row of {common.CLASSED_CSV} (same content and username): "
              "the models have seen it, so its prediction flatters them", file=sys.stderr)
    elif in_training.any():
        print(f"warning: {in_training.sum()} of {len(tweets)} rows are training rows of {common.CLASSED_CSV} "
              f"(same content and username); {in_sample} of them are scored, so the figures are "
              "partly in-sample and flatter the model", file=sys.stderr)
    written = []
    if known.any():
        actual = likes.to_numpy()[known]
        subset = {key: value[known] for key, value in parts.items()}
        metrics = report(tweets[known].reset_index(drop=True), actual, train, stats, info, subset,
                         {name: value[known] for name, value in routes.items()}, args.routing, smearing)
        metrics["settings"] = {
            "source": str(source), "rows_scored": int(known.sum()), "in_sample_rows": in_sample,
            "routing": args.routing, "features": features, "split": info["split"], "thresholds": info["thresholds"],
            "train_rows": classifier["meta"]["train_rows"], "embedding_model": classifier["meta"].get("embedding_model"),
            "embedding_mode": classifier["meta"].get("embedding_mode"),
            "classifier": {"settings": classifier["meta"]["settings"], "rounds": classifier["meta"]["best_iteration"] + 1},
            "regressors": {"settings": global_regressor["meta"]["settings"],
                           "rounds": [r["meta"]["rounds"] for r in [*regressors, global_regressor]]},
            "combiner": {key: combiner[key] for key in ("inputs", "coefficients", "intercept", "alpha", "smearing",
                                                        "fitted_rows", "run_id")},
            **on_cluster,
        }
        common.save_json(METRICS_JSON, metrics)
        written.append(METRICS_JSON)
        if not args.no_plots:
            save_plots(actual, output["predicted_likes"].to_numpy()[known],
                       metrics["classifier"]["confusion_matrix"], args.routing)
            written += [SCATTER_PNG, CONFUSION_PNG]
        print(f"wrote {', '.join(written)}" + (f" ({in_sample} in-sample rows)" if in_sample else ""))
    # The evaluation files describe one prediction run: an older one's would pass for this one's.
    stale = [path for path in REPORT_FILES if replaces_report and path not in written and Path(path).exists()]
    for path in stale:
        Path(path).unlink()
    if stale:
        print(f"removed {', '.join(stale)} of an earlier run: they do not describe these predictions")
    print(f"done in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
