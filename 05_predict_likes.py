"""Stage 5: predict likes. The classifier gives each tweet's class probabilities, every specialist
and the global regressor predict log1p(likes), and the routing combines them; expm1 turns that
back into likes.

Reads  the files of stages 1-4; with --input, a CSV/.xlsx of new tweets (likes optional); with
       --text (once or more) or --drafts FILE, drafts, printed with why
Writes final_predictions.csv   the input columns as they were, plus predicted_class, the calibrated
                               class probabilities, predicted_likes (typical), likes_low and
                               likes_high (the --interval range), expected_likes (mean), with
                               --explain why_<group> (--output: never onto an input or a pipeline
                               file; drafts write a file only with --output)
       when likes are known: metrics.json, predicted_vs_actual.png, confusion_matrix.png,
       calibration.png, explanations.png (else an earlier run's are removed; drafts keep them)

What the report holds, the routings, and predicted_likes against expected_likes:
docs/evaluation.md. Drafts, --when and --explain: docs/usage.md, docs/how-it-works.md (section 5).

Usage: python 05_predict_likes.py [--input NEW.csv [--sheet NAME] | --text "..." [--text "..."] | --drafts FILE]
                                  [--username NAME] [--company NAME] [--media photo,video] [--date ISO]
                                  [--reply] [--when [--tz ZONE]] [--explain] [--verbose]
                                  [--routing learned|soft|hard] [--interval 0.8] [--output PATH] [--cluster ADDRESS]

A good run on the embedded sample's test rows prints (abridged):

    predicting 1000 tweets from test rows of train_data_with_classes.csv
    text read as: score (chosen by 03b on the validation slice; log1p RMSE there none 1.537, ...)
    wrote final_predictions.csv: 1000 rows, predicted_likes from learned routing
    ...
                                  RMSE    MAE Spearman pairwise  raw RMSE  viral P/R   MAE by class: ...
    two-stage, learned routing   1.385  1.063    0.852    0.625    2477.6  0.53 0.16  ...
    likes ranges (80%, learned routing), on 1000 rows: 80% inside, width x21.1 (median of (high+1)/(low+1))
    ...

and for one draft (--text "New Photoshop feature <hyperlink>" --username adobe --company adobe):

    predicted likes: 258 (80% range: 27 to 2124)
    chance of each class: common (up to 232 likes) 48%, popular (232 to 2,416 likes) 50%, viral ...
    why, against a typical training tweet (20 likes; each input at its median over training tweets):
      the words x5.13, the length (33 characters) x1.72, posting Saturday 09:00 UTC x1.25, ...
"""
import common  # first: it makes a Ctrl-C while the rest imports one line too

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tweetlikes import advice, cluster, drafts, encoder, features, intervals, models, report, tables, text

# Texts per batch when embedding new tweets, on any device: drafts are a handful, --input a few thousand
# (--batch-size for more).
NEW_TWEETS_BATCH = 64
DEFAULT_ROUTING = "learned"  # the design the evaluation backs: see docs/evaluation.md
# Rows whose exact contributions the report averages, a seeded sample of the scored ones, unless --explain asks
# for every row's: TreeSHAP costs hundreds of predictions (60,000 test rows at 300K took ~25 min on 2 cores),
# and 4,096 rows estimate each group's mean to about 1/64 of its spread over rows.
REPORT_EXPLAINED_ROWS = 4096
# --output may never land on one of the pipeline's own files (nor on the user's inputs).
PIPELINE_FILES = (*common.MAKERS, *report.REPORT_FILES)
OUTPUT_COLUMNS = list(tables.PREDICTION_COLUMNS)  # and, with --explain, why_<group> for each explanation group
# What 05 keeps of the classed CSV's test rows: the texts (the training rows among them, the report's accounts),
# likes and class (the report) and the features; their other columns go straight from the file to the
# predictions, a chunk at a time (test_rows_original). Of the training rows: likes and class (the report).
TEST_RUN_COLUMNS = ["split", *tables.TEXT_COLUMNS, "likes", "popularity_class",
                    *features.feature_columns(features.FEATURE_GROUPS)]
TRAINING_COLUMNS = ["split", "content", "username", "likes", "popularity_class"]


def parse_arguments(argv):
    parser = common.argument_parser(__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", default=None,
                        help="CSV/.xlsx of new tweets to predict (default: the test rows of 01's split)")
    source.add_argument("--text", action="append", default=None,
                        help="a draft to predict, from the terminal; give it several times to rank several drafts")
    source.add_argument("--drafts", default=None, metavar="FILE",
                        help="drafts to rank: one per line, or a .csv with `content` and any of media, date, is_reply")
    parser.add_argument("--sheet", default=None, help="the sheet to read of an --input workbook with several")
    draft = parser.add_argument_group("drafts (--text, --drafts)", "what every draft shares unless a --drafts CSV "
                                      "column says otherwise")
    draft.add_argument("--username", default="", help="the account posting the drafts")
    draft.add_argument("--company", default="", help="the company of the drafts")
    draft.add_argument("--media", default="", help="what the drafts carry: a comma list of photo, video, gif")
    draft.add_argument("--date", default=None, help="when they go out, ISO 8601, UTC unless it says (default: now)")
    draft.add_argument("--reply", action="store_true", help="the drafts are replies")
    draft.add_argument("--when", action="store_true",
                       help="when to post in the week from --date: the hours and days where the account's own "
                            "training tweets got more likes than its usual, where that is beyond chance")
    draft.add_argument("--tz", default=None, help="with --when, also show the slots in this time zone "
                                                  "(an IANA name such as Europe/Berlin)")
    parser.add_argument("--routing", choices=models.ROUTINGS, default=DEFAULT_ROUTING,
                        help="which prediction fills predicted_likes; the report shows all")
    parser.add_argument("--interval", type=float, choices=intervals.LEVELS, default=intervals.DEFAULT_LEVEL,
                        help="the probability that likes_low to likes_high holds the actual likes")
    parser.add_argument("--explain", action="store_true",
                        help="add why_<group> columns: each feature group's contribution to log1p(likes), with "
                             "why_base and why_routing, summing to the prediction (drafts always print theirs)")
    parser.add_argument("--output", default=None,
                        help=f"where to write the predictions (default: {common.PREDICTIONS}; for drafts, "
                             "nothing is written unless this is given: one row per draft)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="for embedding new tweets (--input, drafts)")
    parser.add_argument("--batch-size", type=common.positive_int, default=None,
                        help="for embedding new tweets (--input, drafts)")
    parser.add_argument("--no-plots", action="store_true", help="skip the report's PNG plots")
    parser.add_argument("--verbose", action="store_true",
                        help="for drafts, also say how the text was read and embedded (the models' internals)")
    cluster.add_cluster_argument(parser)
    parser.epilog = ("The chance that a draft beats the best one comes from a logistic model of the predicted gap, "
                     "fitted by 04 on pairs of tweets by the same account in the validation slice: training rows "
                     "that no model was trained on.")
    args = parser.parse_args(argv)
    check_arguments(args)
    return args


def check_arguments(args):
    """Settings that argparse can't check alone, refused before any work."""
    args.has_drafts = args.text is not None or args.drafts is not None
    if args.sheet is not None and args.input is None:
        common.fail("--sheet names the sheet of --input's workbook to read")
    given = [f"--{name}" for name in ("username", "company", "media", "date") if getattr(args, name)]
    given += [f"--{name}" for name in ("reply", "when", "tz") if getattr(args, name)]
    if given and not args.has_drafts:
        common.fail(f"{', '.join(given)} {'describes' if len(given) == 1 else 'describe'} drafts (--text or --drafts); "
                    "a file's rows carry their own")
    if (args.device != "auto" or args.batch_size) and args.input is None and not args.has_drafts:
        common.fail("--device and --batch-size are for embedding new tweets (--input or drafts); "
                    "the test rows' embeddings are already made")
    for name, value in [("text", text) for text in args.text or []] + [(n, getattr(args, n)) for n in
                                                                       ("username", "company")]:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # bytes the terminal's encoding could not decode
            common.fail(f"--{name} is not valid UTF-8 text")
    if any(not text.strip() for text in args.text or []):
        common.fail("--text is empty")
    if args.tz is not None and not args.when:
        common.fail("--tz shows --when's slots in a time zone: give --when too")
    args.tz = drafts.parse_zone(args.tz) if args.tz else None
    args.draft_table = drafts.read_drafts(args.drafts) if args.drafts is not None else None
    count, given = (len(args.draft_table), f"--drafts {args.drafts}") if args.drafts is not None else \
        (len(args.text or ()), "--text")
    if args.when and count > 1:
        common.fail(f"--when scores one draft at every hour of the week, and {given} gives {count}: give one")
    args.media = drafts.parse_media(args.media) if args.media else ""
    args.given_date = args.date or None  # --date "" is now, as no --date, and said so
    args.date = drafts.parse_date(args.date) if args.date else drafts.now()
    if args.when:
        drafts.check_week(args.date)
    if args.output is None and not args.has_drafts:
        args.output = common.PREDICTIONS


def refuse_output_onto_inputs(args, info):
    """--output never lands on the user's inputs (01's, --input, --drafts) or a pipeline file, and
    is a .csv path that can be written (common.check_output)."""
    if args.output is None:
        return
    for path in (*PIPELINE_FILES, info["input"], args.input, args.drafts):
        if path is not None and same_file(args.output, path):
            common.fail(f"--output {args.output} would overwrite {path}; the pipeline never writes over "
                        "its inputs or its own files: pick another name")
    common.check_output(args.output)


def refuse_no_test_rows(args, info):
    """With no --input or drafts, 05 predicts 01's test rows: after 01 --test-fraction 0 there are
    none, and it says so before writing anything."""
    if args.input is None and not args.has_drafts and not any(counts["test"] for counts in
                                                              info["class_counts"].values()):
        common.fail(f"{common.CLASSED_CSV} has no test rows (01 --test-fraction 0 kept every row for training): "
                    "nothing to predict or score; predict new tweets with --input FILE, or drafts with --text")


def same_file(a, b):
    a, b = Path(a), Path(b)
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def test_rows_input(classifier, global_regressor):
    """The test rows of 01's split as (tweets, original, model inputs, training rows, which tweets
    are among them), from one streamed pass over the classed CSV (classed_rows): their stored
    embeddings, checked to be the ones the models were trained on; `original` their columns as 01
    was given them, read again a chunk at a time when it is iterated (test_rows_original)."""
    kinds = ("content", "combined") if text.reads_text(classifier) else ()
    fingerprints, train, train_keys, rows_in_file, tweets = classed_rows(kinds, keep_test=True)
    rows = tweets.index.to_numpy()  # the test rows' places in the file: row i of `tweets` is embedding row rows[i]
    tweets = tweets.reset_index(drop=True)
    embeddings, trained_on = {}, {"content": (classifier, common.CLASSIFIER),
                                  "combined": (global_regressor, common.GLOBAL_REGRESSOR)}
    for kind in kinds:
        bundle, path = trained_on[kind]
        matrix, meta = tables.load_embeddings(kind, fingerprints[kind], rows_in_file)
        models.check_provenance(path, bundle["meta"], {f"embeddings_{kind}_sha256": meta["npy_sha256"],
                                                       "embedding_model": meta["model"],
                                                       "embedding_mode": meta["mode"]})
        embeddings[kind] = matrix.filename  # its path: rows are read a window of the file at a time
    if embeddings:
        tweets = models.with_text_columns(tweets, classifier, embeddings["content"], rows, out_of_fold=True)
    return (tweets, test_rows_original(), model_inputs(tweets, embeddings, classifier, rows), train,
            np.isin(text.copy_keys(tweets), train_keys))


def test_rows_original():
    """The test rows of the classed CSV less the columns 01 derives, a chunk at a time, each
    indexed by its rows' places among the test rows: the whole table never sits in memory."""
    start = 0
    for chunk in tables.classed_chunks(None):
        test = chunk[chunk["split"] == "test"].drop(columns=list(features.DERIVED_COLUMNS))
        yield test.set_axis(pd.RangeIndex(start, start + len(test)))
        start += len(test)


def new_tweets_input(args, stats, info, classifier, client):
    """The tweets of --input or --text as (tweets, original, model inputs), with their history and
    signals computed here and their texts embedded as 02 embedded the training rows. `original`
    is what the user gave, returned as it was; `tweets` is what the models read: its rows with
    content (indexed by their row in `original`), as a draft must have some."""
    if args.has_drafts:
        original = drafts.rows_of(args)
        tweets = tables.canonical_names(original.apply(lambda column: column.str.strip()))  # as read_table reads
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
        common.fail(f"{args.input} already has column(s) {taken}, which this stage adds: if it is an earlier run's "
                    "predictions, give the tweets they were made from; else rename them")
    # A user's own `split` column stays in `original`; the models read 01's definition of each.
    tweets = tweets.drop(columns=list(features.DERIVED_COLUMNS), errors="ignore")
    tweets[features.HISTORY_FEATURES] = features.lookup_history(tweets, stats, info["history_prior"]).to_numpy()
    signals, found, malformed = features.signal_features(tweets, stats)
    tweets[signals.columns] = signals.to_numpy()
    for group, count in malformed.items():
        if count:
            print(f"signals: {count} unreadable `{features.SIGNAL_SOURCE[group]}` cells left missing")
    for group in (group for group in classifier["meta"]["features"] if group in features.SIGNAL_SOURCE):
        if group not in found:
            print(f"note: {args.input} has no `{features.SIGNAL_SOURCE[group]}` column, which the models read "
                  f"({group}): every row is predicted as if it were unknown, which moves the predictions")
    embeddings = {}
    if text.reads_text(classifier):
        # The fine-tuned form scores the texts with its own tuned model: MiniLM's embeddings go unread.
        embeddings = {} if classifier["meta"]["text_form"] == "finetuned" else \
            embed_new_tweets(tweets, classifier, args, client)
        tweets = models.with_text_columns(tweets, classifier, embeddings.get("content"), np.arange(len(tweets)),
                                          out_of_fold=False, device=args.device)
    return tweets, original, model_inputs(tweets, embeddings, classifier)


def embed_new_tweets(tweets, classifier, args, client):
    """Embed new tweets with the model and mode (exact or fast) the classifier was trained on; on
    the CPU when its embeddings were made by OpenVINO there, which needs no torch. With a cluster
    `client`, its workers encode them as in 02, into a folder of chunks in the shared working
    directory, gone once they are read."""
    meta = classifier["meta"]
    made_on_cpu = meta.get("embedding_precision", "").startswith("openvino")
    device = "cpu" if args.device == "auto" and made_on_cpu else encoder.pick_device(args.device)
    fast = meta["embedding_mode"] == "fast"
    model = encoder.load_encoder(meta["embedding_model"], device, fast)
    batch_size = args.batch_size or NEW_TWEETS_BATCH
    texts = [list(tweets["content"]), tables.combined_texts(tweets)]
    if client is None:
        if args.verbose or not args.has_drafts:
            print(f"embedding {len(tweets)} new tweets with {meta['embedding_model']} on {device}, {model.precision}")
        (content, combined), _ = encoder.embed_unique(texts, model, batch_size)
    else:
        with tempfile.TemporaryDirectory(prefix=".new_tweets_", dir=".") as folder:
            (content, combined), _ = encoder.embed_unique(
                texts, model, batch_size, Path(folder),
                encoder.cluster_encoder(client, meta["embedding_model"], device, fast))
            precision = encoder.chunks_precision(Path(folder), "rerun on workers alike in CPU and packages, or "
                                                               "without --cluster")
        print(f"embedded {len(tweets)} new tweets with {meta['embedding_model']} on the workers, {precision}")
    return {"content": content, "combined": combined}


def model_inputs(tweets, embeddings, classifier, index=None):
    """The classifier's and the regressors' inputs: content and combined embeddings (row i of
    `tweets` is their row index[i]) beside the feature columns."""
    groups, form = classifier["meta"]["features"], classifier["meta"]["text_form"]
    return tuple(features.model_input(tweets, embeddings.get(kind), groups, index, form)
                 for kind in ("content", "combined"))


def classed_rows(kinds=(), keep_test=False, train_columns=("likes", "popularity_class")):
    """One pass over the classed CSV, a chunk at a time (tables.classed_pass), keeping only what
    05 needs: each of `kinds`' texts' fingerprint, the training rows' likes and class (the report)
    and their text.copy_keys (64-bit hashes: which tweets are training rows, without their texts;
    two tweets share one with a chance of about 1 in 10^19 per pair); with `keep_test`, also the number of rows and the test rows'
    TEST_RUN_COLUMNS, indexed by their places in the file. `train_columns`: what is kept of the
    training rows."""
    def keep(chunk):
        train = chunk[chunk["split"] == "train"]
        return (train[list(train_columns)], text.copy_keys(train), len(chunk),
                chunk.loc[chunk["split"] == "test", TEST_RUN_COLUMNS] if keep_test else None)
    fingerprints, kept = tables.classed_pass(
        kinds, list(dict.fromkeys([*(TEST_RUN_COLUMNS if keep_test else TRAINING_COLUMNS), *train_columns])), keep)
    train, keys, lengths, tests = zip(*kept)
    return (fingerprints, pd.concat(train, ignore_index=True), np.concatenate(keys), sum(lengths),
            pd.concat(tests) if keep_test else None)


def rows_to_predict(args, stats, info, trained, client):
    """The tweets to predict, as the models read them and as given (frames of them, indexed as the
    tweets are, to iterate once), their model inputs, the training rows (for the report), which
    tweets are among them, and where the tweets came from; new tweets are embedded on the cluster
    of `client` when there is one."""
    classifier, _, global_regressor = trained
    if args.when and "time" not in info["signal_groups"]:
        common.fail("--when reads when the training tweets went out: train on an input with a `date` column "
                    "(rerun 01_create_classes.py and the stages after it)")
    if args.input is None and not args.has_drafts:
        return (*test_rows_input(classifier, global_regressor), f"test rows of {common.CLASSED_CSV}")
    tweets, original, inputs = new_tweets_input(args, stats, info, classifier, client)
    # Drafts are compared with the training tweets' dates (--when, and how far ahead a draft goes).
    dated = args.has_drafts and "time" in info["signal_groups"]
    _, train, train_keys, _, _ = classed_rows(train_columns=("likes", "popularity_class",
                                                             *(("username", "company", "date") if dated else ())))
    source = args.input or (f"--drafts {args.drafts}" if args.drafts else "--text")
    return tweets, [original], inputs, train, np.isin(text.copy_keys(tweets), train_keys), source


def predictions(original, rows, outputs, by_routing, served, explanation=None):
    """The user's columns as given, then the class, its probabilities, both like counts and the
    range (`served`: an intervals.Served of the routing) for the `rows` predicted (empty for the
    others), and with an explanation its why_<group> columns."""
    routing, smearing = served.routing, served.smearing
    added = pd.DataFrame({"predicted_class": pd.array(outputs.predicted_class, dtype="Int64"),
                          **{f"probability_{name}": outputs.probabilities[:, k].round(4)
                             for k, name in enumerate(common.CLASS_NAMES)},
                          "predicted_likes": np.clip(np.expm1(by_routing[routing]), 0, None).round(1),
                          "likes_low": served.likes_low, "likes_high": served.likes_high,
                          "expected_likes": np.clip(np.exp(by_routing[routing]) * smearing - 1, 0, None).round(1),
                          **{f"why_{group}": values.round(4) for group, values in (explanation or {}).items()}},
                         index=rows)
    return original.join(added)


def write_predictions(path, original, rows, outputs, by_routing, served, explanation=None):
    """predictions(...) of each frame of `original` (indexed as `rows`, which the other arguments
    follow), written one after another; returns the rows written."""
    written = 0

    def write(tmp):
        nonlocal written
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            for number, part in enumerate(original):
                mine = rows.isin(part.index)
                predictions(part, rows[mine], outputs.rows(mine), {name: values[mine] for name, values in
                                                                   by_routing.items()}, served.rows(mine),
                            explanation and {group: values[mine] for group, values in explanation.items()}
                            ).to_csv(handle, index=False, header=number == 0)
                written += len(part)
    common.atomic_write(path, write)
    return written


def predict_all(client, trained, X_classifier, X_regressor):
    """The models' outputs for every row of the model inputs, on the cluster of `client` or here,
    a block of rows at a time."""
    if client is not None:
        return cluster.cluster_predict(client, trained, X_classifier, X_regressor)
    return models.ModelOutputs.concatenate([models.predict(*trained, X_classifier.block(rows), X_regressor.block(rows))
                                            for rows in X_classifier.blocks(np.arange(X_classifier.rows))])


def advise_drafts(args, drafted, loaded, train, output):
    """The drafts' advice, printed (tweetlikes.advice), and with --output one row per draft: its
    number and rank, the predictions, the chance to beat #1 and the gap to #1 by group (diff_),
    with --explain the gap to the typical tweet by group (why_)."""
    dated = args.given_date is not None or (args.draft_table is not None and "date" in args.draft_table
                                            and args.draft_table["date"].str.strip().ne("").all())
    ranges = [intervals.range_text(low, high) for low, high in zip(output["likes_low"], output["likes_high"])]
    found = advice.tell(advice.Settings(args.routing, args.interval, args.date, dated, args.when, args.tz,
                                        {"username": args.username, "company": args.company}),
                        drafted._replace(ranges=ranges), loaded, train)
    if args.output is not None:
        table = advice.output_table(output, found, args.explain)
        common.save_csv(args.output, table)
        print(f"wrote {args.output}: {len(table)} draft{'s' if len(table) > 1 else ''}, predicted_likes from "
              f"{args.routing} routing")


def known_likes(tweets, in_training, args):
    """Which rows can be scored (usable likes), said with why the others can't, and a warning
    when some are training rows: a tweet the models trained on scores far better than a new one."""
    likes = tables.clean_likes(tweets.get("likes", pd.Series(np.nan, tweets.index)))
    known = likes.notna().to_numpy()
    if "likes" not in tweets.columns:
        if not args.has_drafts:
            print("no likes column: predicted, nothing to score")
    elif not known.all():
        print(f"{(~known).sum()} rows have no usable likes ({tables.bad_likes(tweets['likes'])}): "
              "predicted but not scored")
    in_sample = int((in_training & known).sum())
    if in_training.any() and args.has_drafts:
        print(f"warning: a draft is a training row of {common.CLASSED_CSV} (same content and username): "
              "the models have seen it, so its prediction flatters them", file=sys.stderr)
    elif in_training.any():
        print(f"warning: {in_training.sum()} of {len(tweets)} rows are training rows of {common.CLASSED_CSV} "
              "(same content and username); " + (f"{in_sample} of them are scored, so the figures are partly "
                                                 "in-sample and flatter the model" if in_sample else
                                                 "the models have seen them, so their predictions flatter them"),
              file=sys.stderr)
    return likes.to_numpy(), known, in_sample


def explain(trained, X_regressor, by_routing, outputs, routing, rows):
    """models.explain for `rows` (indices of the rows predicted), over the columns the global
    regressor reads, a block of rows at a time (each row's contributions are its own)."""
    classifier, _, global_regressor = trained
    groups = features.explanation_groups(classifier["meta"]["features"], classifier["meta"].get("embedding_dim", 0),
                                         classifier["meta"]["text_form"])
    started, blocks, every_block = time.perf_counter(), [], X_regressor.blocks(rows)
    for number, block in enumerate(every_block, 1):  # exact contributions are slow on many rows: say how far
        blocks.append(models.explain(global_regressor, X_regressor.block(block), groups, by_routing[routing][block],
                                     outputs.rows(block)))
        if len(every_block) > 1:
            print(f"  explained {min(number * features.BLOCK_ROWS, len(rows))} of {len(rows)} rows in "
                  f"{common.seconds_since(started)}", flush=True)
    return {group: np.concatenate([block[group] for block in blocks]) for group in blocks[0]}


def report_sample(known):
    """The scored rows whose contributions the report averages: all of them, or a seeded sample of
    REPORT_EXPLAINED_ROWS."""
    rows = np.flatnonzero(known)
    return rows if len(rows) <= REPORT_EXPLAINED_ROWS else \
        np.sort(np.random.default_rng(0).choice(rows, REPORT_EXPLAINED_ROWS, replace=False))


def write_report(scored, train, stats, info, trained, combiner, args, settings):
    """metrics.json (the figures, with the settings that produced them) and the plots; returns
    the files written."""
    classifier, regressors, global_regressor = trained
    metrics = report.evaluate(scored, train, stats, info, args.routing, combiner)
    metrics["settings"] = {
        **settings, "routing": args.routing, "interval": args.interval, "features": classifier["meta"]["features"], "split": info["split"],
        "thresholds": info["thresholds"], "train_rows": classifier["meta"]["train_rows"],
        "embedding_model": classifier["meta"].get("embedding_model"),
        "embedding_mode": classifier["meta"].get("embedding_mode"), "text_form": classifier["meta"]["text_form"],
        "text_form_scores": classifier["meta"]["text_form_scores"],
        "classifier": {"settings": classifier["meta"]["settings"], "rounds": classifier["meta"]["best_iteration"] + 1},
        "regressors": {"settings": global_regressor["meta"]["settings"],
                       "rounds": [r["meta"]["rounds"] for r in [*regressors, global_regressor]]},
        "combiner": {key: combiner.get(key) for key in ("inputs", "coefficients", "intercept", "alpha", "smearing",
                                                    "pair_chance", "fitted_rows", "run_id")},
    }
    common.save_json(report.METRICS_JSON, metrics)
    if args.no_plots:
        return [report.METRICS_JSON]
    predicted = np.clip(np.expm1(scored.by_routing[args.routing]), 0, None).round(1)
    report.save_plots(scored.actual, predicted, metrics["classifier"]["confusion_matrix"], args.routing)
    report.save_diagnostics(metrics["calibration"], metrics["explanation"]["mean_abs_log1p"])
    return list(report.REPORT_FILES)


def remove_report():
    """Remove an earlier run's report before this run writes its predictions: stopped at any
    point, a run leaves no report that describes other predictions. Returns the files removed."""
    removed = [path for path in report.REPORT_FILES if Path(path).exists()]
    for path in removed:
        Path(path).unlink()
    return removed


def say_removed(stale):
    if stale:
        print(f"removed {', '.join(stale)} of an earlier run: they do not describe these predictions")


def main(argv=None):
    args = parse_arguments(argv)
    # The report describes final_predictions.csv: drafts from the terminal leave it as it is,
    # unless they write over final_predictions.csv itself.
    replaces_report = not args.has_drafts or (args.output is not None and same_file(args.output, common.PREDICTIONS))
    common.check_writable([path for path in (args.output, *(report.REPORT_FILES if replaces_report else ()))
                           if path is not None])
    started = time.perf_counter()

    # 1. The checked record of 01, the history and the models (the classed CSV is streamed later).
    info = tables.check_classed()
    refuse_no_test_rows(args, info)
    refuse_output_onto_inputs(args, info)
    stats = tables.load_history_stats()
    *trained, combiner = models.load_run(info)  # the classifier, the specialists, the global regressor

    # 2. The rows to predict and their model inputs (new tweets embedded here or on the cluster).
    with cluster.cluster(args.cluster) as client:
        tweets, original, (X_classifier, X_regressor), train, in_training, source = rows_to_predict(
            args, stats, info, trained, client)
        if args.verbose or not args.has_drafts:
            print(f"predicting {len(tweets)} tweets from {source}{' on the cluster' if args.cluster else ''}\n"
                  + text.text_form_line(trained[0]["meta"]))
        likes, known, in_sample = known_likes(tweets, in_training, args)

        # 3. Predict, here or on the cluster; calibrate, route, and say why where it is asked or reported.
        on_cluster = cluster.cluster_record(args.cluster, client)
        outputs = predict_all(client, trained, X_classifier, X_regressor)
    outputs = models.calibrated(outputs, combiner)
    by_routing = models.routed_log_likes(outputs, combiner)
    explained = np.arange(len(tweets)) if args.explain and not args.has_drafts else report_sample(known)
    explanation = explain(trained, X_regressor, by_routing, outputs, args.routing, explained) \
        if len(explained) else None

    # 4. The predictions file (for drafts, only when asked) and the drafts' receipt; an earlier
    #    run's report goes first, so it never outlives its predictions.
    served = intervals.served(combiner, args.routing, args.interval, by_routing, outputs, tweets)
    removed = remove_report() if replaces_report else []
    if args.has_drafts:  # drafts' `original` is one frame
        advise_drafts(args, advice.Drafted(tweets, (X_classifier, X_regressor), outputs, by_routing[args.routing], []),
                      advice.Loaded(info, stats, tuple(trained), combiner), train,
                      predictions(original[0], tweets.index, outputs, by_routing, served))
    elif args.output is not None:
        rows_written = write_predictions(args.output, original, tweets.index, outputs, by_routing, served,
                                         explanation if args.explain else None)
        print(f"wrote {args.output}: {rows_written} rows, predicted_likes from {args.routing} routing")

    # 5. Where likes are known, the report.
    written = []
    if known.any():
        scored = report.Scored(tweets[known].reset_index(drop=True), likes[known], outputs.rows(known),
                               {name: values[known] for name, values in by_routing.items()},
                               {group: values[known[explained]] for group, values in explanation.items()},
                               served.rows(known))
        written = write_report(scored, train, stats, info, trained, combiner, args,
                               {"source": str(source), "rows_scored": int(known.sum()), "in_sample_rows": in_sample,
                                **on_cluster})
        print(f"wrote {', '.join(written)}" + (f" ({in_sample} in-sample rows)" if in_sample else ""))
    say_removed([path for path in removed if path not in written])
    print(f"done in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
