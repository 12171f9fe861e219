"""The rows 05 predicts, as the models read them: 01's test rows, streamed from the classed CSV
with their stored embeddings, or new tweets (--input, drafts) with their history and signals
computed and their texts embedded here as 02 embedded the training rows. Beside them, what the
report and the drafts need of the training rows.
"""
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

import common
from tweetlikes import drafts, encoder, features, finetune, models, tables, text

# What is kept of the classed CSV's test rows: the texts (the training rows among them, the report's accounts),
# likes and class (the report) and the features; their other columns go straight from the file to the
# predictions, a chunk at a time (test_rows_original). Of the training rows: likes and class (the report).
TEST_RUN_COLUMNS = ["split", *tables.CONTENT_AND_NAME_COLUMNS, "likes", "popularity_class",
                    *features.feature_columns(features.FEATURE_GROUPS)]
TRAINING_COLUMNS = ["split", "content", "username", "likes", "popularity_class"]


class Request(NamedTuple):
    """What 05 is asked to predict: the tweets of `input` (a CSV or workbook, its `sheet`), or
    `drafts` (a drafts.Drafts), or neither: 01's test rows; and how new tweets are embedded."""
    input: str
    sheet: str
    drafts: object     # a drafts.Drafts
    device: str
    batch_size: int    # texts per batch when embedding new tweets
    verbose: bool      # for drafts, say how their texts were embedded


class Rows(NamedTuple):
    """The tweets to predict and what goes with them."""
    tweets: pd.DataFrame  # as the models read them, indexed by their place in `original`
    original: object      # the tweets as given, as frames indexed alike, to iterate once
    inputs: tuple         # the classifier's and the regressors' features.ModelInput
    train: pd.DataFrame   # the training rows' likes and class (the report); for drafts, names and dates too
    in_training: np.ndarray  # which tweets are training rows (same content and username)
    source: str           # where the tweets came from, in words


def rows_to_predict(request, run, client):
    """The Rows of `request` for the models of `run`; new tweets are embedded on the cluster of
    `client` when there is one."""
    if request.input is None and request.drafts is None:
        return test_rows(run.trained)
    tweets, original, inputs = new_tweets(request, run, client)
    # Drafts are compared with the training tweets' dates (--when, and how far ahead a draft goes).
    dated = request.drafts is not None and "time" in run.info["signal_groups"]
    _, train, train_keys, _, _ = classed_rows(train_columns=("likes", "popularity_class",
                                                             *(("username", "company", "date") if dated else ())))
    source = request.input or request.drafts.source
    return Rows(tweets, [original], inputs, train, np.isin(text.copy_keys(tweets), train_keys), source)


def test_rows(trained):
    """The test rows of 01's split, from one streamed pass over the classed CSV (classed_rows),
    with their stored embeddings, checked to be the ones the models were trained on; `original`:
    their columns as 01 was given them, read again a chunk at a time when it is iterated
    (test_rows_original)."""
    kinds = ("content", "combined") if text.reads_text(trained.classifier) else ()
    fingerprints, train, train_keys, rows_in_file, tweets = classed_rows(kinds, keep_test=True)
    rows = tweets.index.to_numpy()  # the test rows' places in the file: row i of `tweets` is embedding row rows[i]
    tweets = tweets.reset_index(drop=True)
    embeddings, trained_on = {}, {"content": (trained.classifier, common.CLASSIFIER),
                                  "combined": (trained.global_regressor, common.GLOBAL_REGRESSOR)}
    for kind in kinds:
        bundle, path = trained_on[kind]
        matrix, meta = tables.load_embeddings(kind, fingerprints[kind], rows_in_file)
        models.check_provenance(path, bundle["meta"], {f"embeddings_{kind}_sha256": meta["npy_sha256"],
                                                       "embedding_model": meta["model"],
                                                       "embedding_mode": meta["mode"]})
        embeddings[kind] = matrix.filename  # its path: rows are read a window of the file at a time
    if embeddings:
        tweets = text.with_text_columns(tweets, trained.classifier, embeddings["content"], rows, out_of_fold=True)
    return Rows(tweets, test_rows_original(), model_inputs(tweets, embeddings, trained.meta, rows), train,
                np.isin(text.copy_keys(tweets), train_keys), f"test rows of {common.CLASSED_CSV}")


def test_rows_original():
    """The test rows of the classed CSV less the columns 01 derives, a chunk at a time, each
    indexed by its rows' places among the test rows: the whole table never sits in memory."""
    start = 0
    for chunk in tables.classed_chunks(None):
        test = chunk[chunk["split"] == "test"].drop(columns=list(features.DERIVED_COLUMNS))
        yield test.set_axis(pd.RangeIndex(start, start + len(test)))
        start += len(test)


def new_tweets(request, run, client):
    """The tweets of --input or the drafts as (tweets, original, model inputs). `original` is what
    the user gave, returned as it was; `tweets` is what the models read: its rows with content
    (indexed by their row in `original`), as a draft must have some."""
    if request.drafts is not None:
        original = drafts.rows_of(request.drafts)
        tweets = tables.canonical_names(original.apply(lambda column: column.str.strip()))  # as read_table reads
    else:
        tweets, original = read_new_tweets(request.input, request.sheet)
    taken = [column for column in tables.PREDICTION_COLUMNS if column in original.columns]
    if taken:
        common.fail(f"{request.input} already has column(s) {taken}, which this stage adds: if it is an earlier "
                    "run's predictions, give the tweets they were made from; else rename them")
    tweets = with_features(tweets, run, request.input)
    embeddings, classifier = {}, run.trained.classifier
    if text.reads_text(classifier):
        # The fine-tuned form scores the texts with its own tuned model: MiniLM's embeddings go unread.
        finetuned = run.trained.meta["text_form"] == "finetuned"
        embeddings = {} if finetuned else embed(tweets, request, run.trained.meta, client)
        new_scores = finetune.load_scorer(classifier["text"]["finetuned_record"], encoder.pick_device(request.device))(
            tweets["content"]) if finetuned else None
        tweets = text.with_text_columns(tweets, classifier, embeddings.get("content"), np.arange(len(tweets)),
                                        out_of_fold=False, new_scores=new_scores)
    return tweets, original, model_inputs(tweets, embeddings, run.trained.meta)


def read_new_tweets(path, sheet):
    """The tweets of --input with content, as the models read them, and the file as it was."""
    notes = []
    tweets, original = tables.read_table(path, required=("content", "username"), sheet=sheet, notes=notes)
    for note in notes:
        print(f"{path}: {note}")
    empty = tweets["content"] == ""
    if empty.all():
        common.fail(f"{path}: no row has content; there is nothing to predict from")
    if empty.any():
        print(f"{int(empty.sum())} rows have empty content: not predicted (their prediction columns are left empty)")
    return tweets[~empty], original


def with_features(tweets, run, source):
    """New tweets with their history and signal features, computed as 01 computed the training
    rows'. A user's own `split` column stays in the original; the models read 01's definition of
    each derived column."""
    tweets = tweets.drop(columns=list(features.DERIVED_COLUMNS), errors="ignore")
    tweets[features.HISTORY_FEATURES] = features.lookup_history(tweets, run.stats,
                                                                run.info["history_prior"]).to_numpy()
    signals, found, malformed = features.signal_features(tweets, run.stats)
    tweets[signals.columns] = signals.to_numpy()
    for group, count in malformed.items():
        if count:
            print(f"signals: {count} unreadable `{features.SIGNAL_SOURCE[group]}` cells left missing")
    for group in (group for group in run.trained.meta["features"] if group in features.SIGNAL_SOURCE):
        if group not in found:
            print(f"note: {source} has no `{features.SIGNAL_SOURCE[group]}` column, which the models read "
                  f"({group}): every row is predicted as if it were unknown, which moves the predictions")
    return tweets


def embed(tweets, request, meta, client):
    """Embed new tweets with the model and mode (exact or fast) the classifier (its record `meta`)
    was trained on; on the CPU when its embeddings were made by OpenVINO there, which needs no
    torch. With a cluster `client`, its workers encode them as in 02, into a folder of chunks in
    the shared working directory, gone once they are read."""
    made_on_cpu = meta.get("embedding_precision", "").startswith("openvino")
    device = "cpu" if request.device == "auto" and made_on_cpu else encoder.pick_device(request.device)
    fast = meta["embedding_mode"] == "fast"
    model = encoder.load_encoder(meta["embedding_model"], device, fast)
    texts = [list(tweets["content"]), tables.combined_texts(tweets)]
    if client is None:
        if request.verbose or request.drafts is None:
            print(f"embedding {len(tweets)} new tweets with {meta['embedding_model']} on {device}, {model.precision}")
        (content, combined), _ = encoder.embed_unique(texts, model, request.batch_size)
    else:
        with tempfile.TemporaryDirectory(prefix=".new_tweets_", dir=".") as folder:
            (content, combined), _ = encoder.embed_unique(
                texts, model, request.batch_size, Path(folder),
                encoder.cluster_encoder(client, meta["embedding_model"], device, fast))
            precision = encoder.chunks_precision(Path(folder), "rerun on workers alike in CPU and packages, or "
                                                               "without --cluster")
        print(f"embedded {len(tweets)} new tweets with {meta['embedding_model']} on the workers, {precision}")
    return {"content": content, "combined": combined}


def model_inputs(tweets, embeddings, meta, index=None):
    """The classifier's and the regressors' inputs, as the classifier's record `meta` says: content
    and combined embeddings (row i of `tweets` is their row index[i]) beside the feature columns."""
    return tuple(features.model_input(tweets, embeddings.get(kind), meta["features"], index, meta["text_form"])
                 for kind in ("content", "combined"))


def classed_rows(kinds=(), keep_test=False, train_columns=("likes", "popularity_class")):
    """One pass over the classed CSV, a chunk at a time (tables.classed_pass), keeping only what
    05 needs: each of `kinds`' texts' fingerprint, the training rows' `train_columns` and their
    text.copy_keys (64-bit hashes: which tweets are training rows, without their texts; two tweets
    share one with a chance of about 1 in 10^19 per pair); with `keep_test`, also the number of
    rows and the test rows' TEST_RUN_COLUMNS, indexed by their places in the file."""
    def keep(chunk):
        train = chunk[chunk["split"] == "train"]
        return (train[list(train_columns)], text.copy_keys(train), len(chunk),
                chunk.loc[chunk["split"] == "test", TEST_RUN_COLUMNS] if keep_test else None)
    fingerprints, kept = tables.classed_pass(
        kinds, list(dict.fromkeys([*(TEST_RUN_COLUMNS if keep_test else TRAINING_COLUMNS), *train_columns])), keep)
    train, keys, lengths, tests = zip(*kept)
    return (fingerprints, pd.concat(train, ignore_index=True), np.concatenate(keys), sum(lengths),
            pd.concat(tests) if keep_test else None)
