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
(see models.predict); predicted_class is its class-weighted pick, as in the original design.

predicted_likes is the typical count, expm1 of the predicted log1p(likes): the best guess under
log error, a median-like figure. expected_likes is the mean, predicted_likes scaled by 04's
smearing factor: use it for totals and raw-count scoring, where a median-like guess is far low.

--cluster predicts on a Dask cluster's workers, a block of rows per task, each reading its rows
of the embeddings from the shared working directory (new tweets of --input are embedded here).

Usage: python 05_predict_likes.py [--input NEW.csv [--sheet NAME] | --text "..." [--username NAME] [--company NAME]]
                                  [--routing learned|soft|hard] [--output PATH] [--cluster ADDRESS]

A good run on the embedded sample's test rows prints (the table abridged):

    predicting 1000 tweets from test rows of train_data_with_classes.csv
    wrote final_predictions.csv: 1000 rows, predicted_likes from learned routing

    1000 rows with known likes; errors of log1p(likes), lower is better:
                                  RMSE    MAE Spearman  raw RMSE  viral P/R   MAE by class: ...
    global median                2.671  2.291    0.000    3341.5    n/a 0.00  ...
    per-account median           1.577  1.130    0.787    3248.3    n/a 0.00  ...
    single regressor             1.353  1.021    0.855    3236.0  0.25 0.02  ...
    two-stage, learned routing   1.366  1.030    0.854    3200.0  0.42 0.08  ...
    ...
    classifier: macro-F1 0.537 (always 'common': 0.288), accuracy 0.729
    wrote metrics.json, predicted_vs_actual.png, confusion_matrix.png
    done in 4.2s

and for one draft (`--text "New Photoshop feature <hyperlink>" --username adobe --company adobe`):

    predicted likes: 94
    class probabilities: common 71.3%, popular 27.1%, viral 1.6%
    username 'adobe': seen in training, 70 tweets, median 105 likes
    company 'adobe': seen in training, 295 tweets, median 21 likes
"""
import common  # first: it makes a Ctrl-C while the rest imports one line too

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tweetlikes import cluster, encoder, features, models, report, tables

DEFAULT_ROUTING = "learned"  # the design the evaluation backs: see docs/evaluation.md
# --output may never land on one of the pipeline's own files (nor on the user's inputs).
PIPELINE_FILES = (*common.MAKERS, *report.REPORT_FILES)
OUTPUT_COLUMNS = ["predicted_class", *(f"probability_{name}" for name in common.CLASS_NAMES), "predicted_likes",
                  "expected_likes"]


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", default=None,
                        help="CSV/.xlsx of new tweets to predict (default: the test rows of 01's split)")
    source.add_argument("--text", default=None, help="one new tweet to predict, from the terminal")
    parser.add_argument("--sheet", default=None, help="the sheet to read of an --input workbook with several")
    parser.add_argument("--username", default="", help="the account posting --text")
    parser.add_argument("--company", default="", help="the company of --text")
    parser.add_argument("--routing", choices=models.ROUTINGS, default=DEFAULT_ROUTING,
                        help="which prediction fills predicted_likes; the report shows all")
    parser.add_argument("--output", default=None,
                        help=f"where to write the predictions (default: {common.PREDICTIONS}; with --text, "
                             "nothing is written unless this is given)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="for embedding new tweets (--input, --text)")
    parser.add_argument("--batch-size", type=common.positive_int, default=None,
                        help="for embedding new tweets (--input, --text)")
    parser.add_argument("--no-plots", action="store_true", help="skip the two PNG plots")
    cluster.add_cluster_argument(parser)
    args = parser.parse_args(argv)
    if args.sheet is not None and args.input is None:
        common.fail("--sheet names the sheet of --input's workbook to read")
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
    return args


def same_file(a, b):
    a, b = Path(a), Path(b)
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def load_models(info):
    """Classifier, regressors and combiner, checked against the current classed CSV and history
    stats, and against each other: one run of 04, made after the current classifier."""
    expect = {"classed_csv_sha256": info["classed_csv_sha256"], "history_stats_sha256": info["history_stats_sha256"]}
    classifier = models.load_classifier(expect)
    common.require([common.COMBINER])
    combiner = common.read_json(common.COMBINER)
    common.check_fields(common.COMBINER, combiner, {
        "coefficients": lambda v: isinstance(v, list) and len(v) == len(models.COMBINER_INPUTS)
        and all(map(common.is_number, v)),
        "intercept": common.is_number,
        "smearing": lambda v: isinstance(v, dict) and all(common.is_number(v.get(r)) for r in models.ROUTINGS)})
    regressor_expect = {**expect, "features": classifier["meta"]["features"], "run_id": combiner.get("run_id"),
                        **{key: classifier["meta"].get(key) for key in ("embedding_model", "embedding_mode")}}
    # Each file must hold its own class's specialist: swapped files would load and mispredict.
    regressors = [models.load_artifact(common.REGRESSOR.format(k=k), {**regressor_expect, "popularity_class": k})
                  for k in common.CLASS_LABELS]
    global_regressor = models.load_artifact(common.GLOBAL_REGRESSOR, {**regressor_expect, "popularity_class": None})
    models.check_provenance(common.COMBINER, combiner, {"classifier_sha256": common.file_sha256(common.CLASSIFIER)})
    return classifier, regressors, global_regressor, combiner


def test_rows_input(table, classifier, global_regressor):
    """The test rows of 01's split as (tweets, original, model inputs): their stored embeddings,
    checked to be the ones the models were trained on."""
    rows = np.flatnonzero((table["split"] == "test").to_numpy())
    tweets = table.iloc[rows].reset_index(drop=True)
    embeddings = {}
    if "text" in classifier["meta"]["features"]:
        for kind, bundle, path in (("content", classifier, common.CLASSIFIER),
                                   ("combined", global_regressor, common.GLOBAL_REGRESSOR)):
            matrix, meta = tables.load_embeddings(kind, table)
            models.check_provenance(path, bundle["meta"], {f"embeddings_{kind}_sha256": meta["npy_sha256"],
                                                           "embedding_model": meta["model"],
                                                           "embedding_mode": meta["mode"]})
            embeddings[kind] = matrix  # row i of `tweets` is its row rows[i]
    return tweets, tweets.drop(columns=list(features.DERIVED_COLUMNS)), model_inputs(tweets, embeddings, classifier,
                                                                                     rows)


def new_tweets_input(args, stats, info, classifier):
    """The tweets of --input or --text as (tweets, original, model inputs), with their history and
    signals computed here and their texts embedded as 02 embedded the training rows. `original`
    is what the user gave, returned as it was; `tweets` is what the models read: its rows with
    content (indexed by their row in `original`), as --text must have some."""
    if args.text is not None:
        original = pd.DataFrame({"content": [args.text], "username": [args.username], "company": [args.company]})
        tweets = original.apply(lambda column: column.str.strip())  # as tables.read_table normalises a file
    else:
        notes = []
        tweets, original = tables.read_table(args.input, required=("content", "username"), sheet=args.sheet,
                                             notes=notes)
        for note in notes:
            print(f"{args.input}: {note}")
        empty = tweets["content"] == ""
        if empty.all():
            common.fail(f"{args.input}: no row has content; there is nothing to predict from")
        if empty.any():
            print(f"{int(empty.sum())} rows have empty content: not predicted (their prediction columns are left "
                  "empty)")
        tweets = tweets[~empty]
    taken = [column for column in OUTPUT_COLUMNS if column in original.columns]
    if taken:
        common.fail(f"{args.input} already has column(s) {taken}, which this stage adds; rename them")
    # A user's own `split` column stays in `original`; the models read 01's definition of each.
    tweets = tweets.drop(columns=list(features.DERIVED_COLUMNS), errors="ignore")
    tweets[features.HISTORY_FEATURES] = features.lookup_history(tweets, stats, info["history_prior"]).to_numpy()
    signals, _, malformed = features.signal_features(tweets, stats)
    tweets[signals.columns] = signals.to_numpy()
    for group, count in malformed.items():
        if count:
            print(f"signals: {count} unreadable `{features.SIGNAL_SOURCE[group]}` cells left missing")
    embeddings = embed_new_tweets(tweets, classifier, args) if "text" in classifier["meta"]["features"] else {}
    return tweets, original, model_inputs(tweets, embeddings, classifier)


def embed_new_tweets(tweets, classifier, args):
    """Embed new tweets with the model and mode (exact or fast) the classifier was trained on; on
    the CPU when its embeddings were made by OpenVINO there, which needs no torch."""
    meta = classifier["meta"]
    made_on_cpu = meta.get("embedding_precision", "").startswith("openvino")
    device = "cpu" if args.device == "auto" and made_on_cpu else common.pick_device(args.device)
    model = encoder.load_encoder(meta["embedding_model"], device, meta["embedding_mode"] == "fast")
    batch_size = args.batch_size or encoder.BATCH_SIZE[device]
    print(f"embedding {len(tweets)} new tweets with {meta['embedding_model']} on {device}, {model.precision}")
    (content, combined), _ = encoder.embed_unique([list(tweets["content"]), tables.combined_texts(tweets)],
                                                  model, batch_size)
    return {"content": content, "combined": combined}


def model_inputs(tweets, embeddings, classifier, index=None):
    """The classifier's and the regressors' inputs: content and combined embeddings (row i of
    `tweets` is their row index[i]) beside the feature columns."""
    groups = classifier["meta"]["features"]
    return tuple(features.model_input(tweets, embeddings.get(kind), groups, index) for kind in ("content", "combined"))


def seen_in(tweets, rows):
    """Which of `tweets` are among `rows` (the same content and username): training rows, whose
    figures are in-sample."""
    def keys(table):
        return pd.MultiIndex.from_frame(table[["content", "username"]])
    return keys(tweets).isin(keys(rows))


def training_rows(tweets):
    """The classed CSV's training rows, their likes and class (for the report), and which of
    `tweets` are among them (seen_in). One pass, a chunk at a time: the texts of a big training
    set never sit whole in memory."""
    found, kept = np.zeros(len(tweets), dtype=bool), []
    for chunk in tables.classed_chunks(["split", "content", "username", "likes", "popularity_class"]):
        train = chunk[chunk["split"] == "train"]
        found |= seen_in(tweets, train)
        kept.append(train[["likes", "popularity_class"]])
    return pd.concat(kept, ignore_index=True), found


def rows_to_predict(args, table, stats, info, trained):
    """The tweets to predict, as given and as the models read them, their model inputs, the
    training rows (for the report), which tweets are among them, and where the tweets came from."""
    classifier, _, global_regressor = trained
    if args.input is None and args.text is None:
        tweets, original, inputs = test_rows_input(table, classifier, global_regressor)
        train = table[table["split"] == "train"]
        return tweets, original, inputs, train, seen_in(tweets, train), f"test rows of {common.CLASSED_CSV}"
    tweets, original, inputs = new_tweets_input(args, stats, info, classifier)
    return (tweets, original, inputs, *training_rows(tweets), args.input or "--text")


def predictions(original, rows, outputs, by_routing, routing, smearing):
    """The user's columns as given, then the class, its probabilities and both like counts for
    the `rows` predicted (empty for the others)."""
    added = pd.DataFrame({"predicted_class": pd.array(outputs.predicted_class, dtype="Int64"),
                          **{f"probability_{name}": outputs.probabilities[:, k].round(4)
                             for k, name in enumerate(common.CLASS_NAMES)},
                          "predicted_likes": np.clip(np.expm1(by_routing[routing]), 0, None).round(1),
                          "expected_likes": np.clip(np.exp(by_routing[routing]) * smearing - 1, 0, None).round(1)},
                         index=rows)
    return original.join(added)


def describe_draft(tweet, probabilities, predicted_likes, stats, prior):
    """What the terminal shows for --text: the prediction and what the history features knew."""
    print(f"\npredicted likes: {predicted_likes:.0f}")
    print("class probabilities: " + ", ".join(f"{name} {p:.1%}" for name, p in zip(common.CLASS_NAMES, probabilities)))
    for kind, column in features.HISTORY_KEYS:
        found = features.key_stats(stats, kind, pd.Series([tweet[column]])).iloc[0]
        if found["count"] == 0:
            print(f"{column} {repr(tweet[column]) if tweet[column] else '(none)'}: unseen in training; its history "
                  f"features are the global prior (median {np.expm1(prior['median_log_likes']):.0f} likes)")
        else:
            print(f"{column} {tweet[column]!r}: seen in training, {int(found['count'])} tweets, "
                  f"median {np.expm1(found['median_log_likes']):.0f} likes")


def known_likes(tweets, in_training, args):
    """Which rows can be scored (usable likes), said with why the others can't, and a warning
    when some are training rows: a tweet the models trained on scores far better than a new one."""
    likes = tables.clean_likes(tweets.get("likes", pd.Series(np.nan, tweets.index)))
    known = likes.notna().to_numpy()
    if "likes" not in tweets.columns:
        if args.text is None:
            print("no likes column: predicted, nothing to score")
    elif not known.all():
        print(f"{(~known).sum()} rows have no usable likes ({tables.bad_likes(tweets['likes'])}): "
              "predicted but not scored")
    in_sample = int((in_training & known).sum())
    if in_training.any() and args.text is not None:
        print(f"warning: this draft is a training row of {common.CLASSED_CSV} (same content and username): "
              "the models have seen it, so its prediction flatters them", file=sys.stderr)
    elif in_training.any():
        print(f"warning: {in_training.sum()} of {len(tweets)} rows are training rows of {common.CLASSED_CSV} "
              f"(same content and username); {in_sample} of them are scored, so the figures are "
              "partly in-sample and flatter the model", file=sys.stderr)
    return likes.to_numpy(), known, in_sample


def write_report(scored, train, stats, info, trained, combiner, args, settings):
    """metrics.json (the figures, with the settings that produced them) and the plots; returns
    the files written."""
    classifier, regressors, global_regressor = trained
    metrics = report.evaluate(scored, train, stats, info, args.routing, combiner["smearing"][args.routing])
    metrics["settings"] = {
        **settings, "routing": args.routing, "features": classifier["meta"]["features"], "split": info["split"],
        "thresholds": info["thresholds"], "train_rows": classifier["meta"]["train_rows"],
        "embedding_model": classifier["meta"].get("embedding_model"),
        "embedding_mode": classifier["meta"].get("embedding_mode"),
        "classifier": {"settings": classifier["meta"]["settings"], "rounds": classifier["meta"]["best_iteration"] + 1},
        "regressors": {"settings": global_regressor["meta"]["settings"],
                       "rounds": [r["meta"]["rounds"] for r in [*regressors, global_regressor]]},
        "combiner": {key: combiner[key] for key in ("inputs", "coefficients", "intercept", "alpha", "smearing",
                                                    "fitted_rows", "run_id")},
    }
    common.save_json(report.METRICS_JSON, metrics)
    if args.no_plots:
        return [report.METRICS_JSON]
    predicted = np.clip(np.expm1(scored.by_routing[args.routing]), 0, None).round(1)
    report.save_plots(scored.actual, predicted, metrics["classifier"]["confusion_matrix"], args.routing)
    return list(report.REPORT_FILES)


def remove_report():
    """Remove an earlier run's report before this run writes its predictions: stopped at any
    point, a run leaves no report that describes other predictions. Returns the files removed."""
    removed = [path for path in report.REPORT_FILES if Path(path).exists()]
    for path in removed:
        Path(path).unlink()
    return removed


def main(argv=None):
    args = parse_arguments(argv)
    # The report describes final_predictions.csv: a draft from the terminal leaves it as it is,
    # unless it writes over final_predictions.csv itself.
    replaces_report = args.text is None or (args.output is not None and same_file(args.output, common.PREDICTIONS))
    common.check_writable([path for path in (args.output, *(report.REPORT_FILES if replaces_report else ()))
                           if path is not None])
    started = time.perf_counter()

    # 1. The checked record of 01, the history and the models. New tweets read the classed CSV
    #    later, in one streamed pass (training_rows): a draft stays quick and small.
    new_tweets = args.input is not None or args.text is not None
    table, info = (None, tables.check_classed()) if new_tweets else tables.load_classed()
    for path in (*PIPELINE_FILES, info["input"], args.input):
        if path is not None and args.output is not None and same_file(args.output, path):
            common.fail(f"--output {args.output} would overwrite {path}; the pipeline never writes over "
                        "its inputs or its own files: pick another name")
    stats = tables.load_history_stats()
    classifier, regressors, global_regressor, combiner = load_models(info)
    trained = (classifier, regressors, global_regressor)

    # 2. The rows to predict and their model inputs.
    tweets, original, (X_classifier, X_regressor), train, in_training, source = rows_to_predict(
        args, table, stats, info, trained)
    print(f"predicting {len(tweets)} tweets from {source}{' on the cluster' if args.cluster else ''}")

    # 3. Predict, here or on the cluster, and route.
    with cluster.cluster(args.cluster) as client:
        on_cluster = cluster.cluster_record(args.cluster, client)
        every_row = np.arange(len(tweets))
        outputs = cluster.cluster_predict(client, trained, X_classifier, X_regressor) if client else \
            models.predict(*trained, X_classifier.block(every_row), X_regressor.block(every_row))
    by_routing = models.routed_log_likes(outputs, combiner)

    # 4. The predictions file (with --text, only when asked) and the draft's receipt; an earlier
    #    run's report goes first, so it never outlives its predictions.
    output = predictions(original, tweets.index, outputs, by_routing, args.routing, combiner["smearing"][args.routing])
    removed = remove_report() if replaces_report else []
    if args.output is not None:
        common.save_csv(args.output, output)
        print(f"wrote {args.output}: {len(output)} rows, predicted_likes from {args.routing} routing")
    if args.text is not None:
        describe_draft(tweets.iloc[0], outputs.probabilities[0], output["predicted_likes"].iloc[0],
                       stats, info["history_prior"])

    # 5. Where likes are known, the report.
    likes, known, in_sample = known_likes(tweets, in_training, args)
    written = []
    if known.any():
        scored = report.Scored(tweets[known].reset_index(drop=True), likes[known], outputs.rows(known),
                               {name: values[known] for name, values in by_routing.items()})
        written = write_report(scored, train, stats, info, trained, combiner, args,
                               {"source": str(source), "rows_scored": int(known.sum()), "in_sample_rows": in_sample,
                                **on_cluster})
        print(f"wrote {', '.join(written)}" + (f" ({in_sample} in-sample rows)" if in_sample else ""))
    stale = [path for path in removed if path not in written]
    if stale:
        print(f"removed {', '.join(stale)} of an earlier run: they do not describe these predictions")
    print(f"done in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
