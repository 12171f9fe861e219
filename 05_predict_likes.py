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
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from tweetlikes import advice, cluster, drafts, features, files, intervals, models, report, rows, tables, text

# Texts per batch when embedding new tweets, on any device: drafts are a handful, --input a few thousand
# (--batch-size for more).
NEW_TWEETS_BATCH = 64
DEFAULT_ROUTING = "learned"  # the design the evaluation backs: see docs/evaluation.md
# Rows whose exact contributions the report averages, a seeded sample of the scored ones, unless --explain asks
# for every row's: TreeSHAP costs hundreds of predictions a row (timed in docs/speed-and-memory.md), and 4,096
# rows estimate each group's mean to about 1/64 of its spread over rows.
REPORT_EXPLAINED_ROWS = 4096
# --output may never land on one of the pipeline's own files (nor on the user's inputs).
PIPELINE_FILES = (*common.MAKERS, *report.REPORT_FILES)


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
    has_drafts = args.text is not None or args.drafts is not None
    if args.sheet is not None and args.input is None:
        common.fail("--sheet names the sheet of --input's workbook to read")
    given = [f"--{name}" for name in ("username", "company", "media", "date") if getattr(args, name)]
    given += [f"--{name}" for name in ("reply", "when", "tz") if getattr(args, name)]
    if given and not has_drafts:
        common.fail(f"{', '.join(given)} {'describes' if len(given) == 1 else 'describe'} drafts (--text or --drafts); "
                    "a file's rows carry their own")
    if (args.device != "auto" or args.batch_size) and args.input is None and not has_drafts:
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


def drafts_settings(args):
    """The drafts of --text or --drafts and the settings their advice reads (advice.Settings),
    read and checked before any work; None without drafts."""
    if args.text is None and args.drafts is None:
        return None
    tz = drafts.parse_zone(args.tz) if args.tz else None
    per_draft = drafts.read_drafts(args.drafts) if args.drafts is not None else None
    source, texts = (f"--drafts {args.drafts}", list(per_draft["content"])) if per_draft is not None else \
        ("--text", list(args.text))
    if args.when and len(texts) > 1:
        common.fail(f"--when scores one draft at every hour of the week, and {source} gives {len(texts)}: give one")
    given = drafts.Drafts(source, texts, per_draft, args.username, args.company,
                          drafts.parse_media(args.media) if args.media else "",
                          drafts.parse_date(args.date) if args.date else drafts.now(),  # --date "": now, said so
                          bool(args.date), args.reply)
    if args.when:
        drafts.check_week(given.date)
    return advice.Settings(args.routing, args.interval, args.when, tz, given)


def refuse_before_work(args, request, info, output):
    """What 01's record `info` says this run can't do, refused before the models load. With no
    --input or drafts, 05 predicts 01's test rows: after 01 --test-fraction 0 there are none.
    The predictions never land on the user's inputs (01's, --input, --drafts) or a pipeline file,
    and go to a .csv path that can be written (files.check_output)."""
    if request.input is None and request.drafts is None and not any(counts["test"] for counts in
                                                                     info["class_counts"].values()):
        common.fail(f"{common.CLASSED_CSV} has no test rows (01 --test-fraction 0 kept every row for training): "
                    "nothing to predict or score; predict new tweets with --input FILE, or drafts with --text")
    for path in (*PIPELINE_FILES, info["input"], args.input, args.drafts) if output is not None else ():
        if path is not None and same_file(output, path):
            common.fail(f"--output {output} would overwrite {path}; the pipeline never writes over "
                        "its inputs or its own files: pick another name")
    if output is not None:
        files.check_output(output)
    if args.when and "time" not in info["signal_groups"]:
        common.fail("--when reads when the training tweets went out: train on an input with a `date` column "
                    "(rerun 01_create_classes.py and the stages after it)")


def same_file(a, b):
    a, b = Path(a), Path(b)
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


class Predicted(NamedTuple):
    """What 05 says of the rows it predicts: the models' outputs, log1p(likes) by each routing, the
    served routing's likes and ranges, and each row's why_<group> where they are written (else None)."""
    outputs: models.ModelOutputs
    by_routing: dict
    served: intervals.Served
    explanation: dict = None

    def rows(self, which):
        """What is said of some rows (an index or a boolean mask)."""
        return Predicted(self.outputs.rows(which), {name: values[which] for name, values in self.by_routing.items()},
                         self.served.rows(which),
                         self.explanation and {group: values[which] for group, values in self.explanation.items()})


def predictions(original, rows, predicted):
    """The user's columns as given, then the class, its probabilities, both like counts and the
    range for the `rows` predicted (empty for the others), and with an explanation its
    why_<group> columns."""
    served, log_likes, outputs = predicted.served, predicted.by_routing[predicted.served.routing], predicted.outputs
    added = pd.DataFrame({"predicted_class": pd.array(outputs.predicted_class, dtype="Int64"),
                          **{f"probability_{name}": outputs.probabilities[:, k].round(4)
                             for k, name in enumerate(common.CLASS_NAMES)},
                          "predicted_likes": models.likes(log_likes),
                          "likes_low": served.likes_low, "likes_high": served.likes_high,
                          "expected_likes": np.clip(np.exp(log_likes) * served.smearing - 1, 0, None).round(1),
                          **{f"why_{group}": values.round(4)
                             for group, values in (predicted.explanation or {}).items()}},
                         index=rows)
    return original.join(added)


def write_predictions(path, original, rows, predicted):
    """predictions(...) of each frame of `original` (indexed as `rows`, which `predicted`
    follows), written one after another; returns the rows written."""
    written = 0

    def write(tmp):
        nonlocal written
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            for number, part in enumerate(original):
                mine = rows.isin(part.index)
                predictions(part, rows[mine], predicted.rows(mine)).to_csv(handle, index=False, header=number == 0)
                written += len(part)
    files.atomic_write(path, write)
    return written


def predict_all(client, trained, X_classifier, X_regressor):
    """The models' outputs for every row of the model inputs, on the cluster of `client` or here,
    a block of rows at a time."""
    if client is not None:
        return cluster.cluster_predict(client, trained, X_classifier, X_regressor)
    return models.ModelOutputs.concatenate([models.predict(trained, X_classifier.block(rows), X_regressor.block(rows))
                                            for rows in X_classifier.blocks(np.arange(X_classifier.rows))])


def advise_drafts(args, settings, to_predict, predicted, run):
    """The drafts' advice, printed (tweetlikes.advice), and with --output one row per draft: its
    number and rank, the predictions, the chance to beat #1 and the gap to #1 by group (diff_),
    with --explain the gap to the typical tweet by group (why_)."""
    served = predicted.served
    drafted = advice.Drafted(to_predict.tweets, to_predict.inputs, predicted.outputs,
                             predicted.by_routing[served.routing],
                             [intervals.range_text(low, high)
                              for low, high in zip(served.likes_low, served.likes_high)])
    found = advice.tell(settings, drafted, run, to_predict.train)
    if args.output is not None:
        table = advice.output_table(predictions(to_predict.original[0], to_predict.tweets.index, predicted), found,
                                    args.explain)
        files.save_csv(args.output, table)
        print(f"wrote {args.output}: {len(table)} draft{'s' if len(table) > 1 else ''}, predicted_likes from "
              f"{served.routing} routing")


def known_likes(tweets, in_training, are_drafts):
    """Which rows can be scored (usable likes), said with why the others can't, and a warning
    when some are training rows: a tweet the models trained on scores far better than a new one."""
    likes = tables.clean_likes(tweets.get("likes", pd.Series(np.nan, tweets.index)))
    known = likes.notna().to_numpy()
    if "likes" not in tweets.columns:
        if not are_drafts:
            print("no likes column: predicted, nothing to score")
    elif not known.all():
        print(f"{(~known).sum()} rows have no usable likes ({tables.bad_likes(tweets['likes'])}): "
              "predicted but not scored")
    in_sample = int((in_training & known).sum())
    if in_training.any() and are_drafts:
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
    groups = features.explanation_groups(trained.meta["features"], trained.meta.get("embedding_dim", 0),
                                         trained.meta["text_form"])
    started, blocks, every_block = time.perf_counter(), [], X_regressor.blocks(rows)
    for number, block in enumerate(every_block, 1):  # exact contributions are slow on many rows: say how far
        blocks.append(models.explain(trained.global_regressor, X_regressor.block(block), groups,
                                     by_routing[routing][block], outputs.rows(block)))
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


def write_report(scored, train, run, record, no_plots):
    """metrics.json (the figures, with `record` and the settings of the models that produced
    them) and the plots; returns the files written."""
    meta, trained, combiner, routing = run.trained.meta, run.trained, run.combiner, scored.served.routing
    metrics = report.evaluate(scored, train, run.stats, run.info, routing, combiner)
    metrics["settings"] = {
        **record, "routing": routing, "interval": scored.served.level, "features": meta["features"],
        "split": run.info["split"], "thresholds": run.info["thresholds"], "train_rows": meta["train_rows"],
        "embedding_model": meta.get("embedding_model"), "embedding_mode": meta.get("embedding_mode"),
        "text_form": meta["text_form"], "text_form_scores": meta["text_form_scores"],
        "classifier": {"settings": meta["settings"], "rounds": meta["best_iteration"] + 1},
        "regressors": {"settings": trained.global_regressor["meta"]["settings"],
                       "rounds": [r["meta"]["rounds"] for r in [*trained.regressors, trained.global_regressor]]},
        "combiner": {key: combiner.get(key) for key in ("inputs", "coefficients", "intercept", "alpha", "smearing",
                                                    "pair_chance", "fitted_rows", "run_id")},
    }
    files.save_json(report.METRICS_JSON, metrics)
    if no_plots:
        return [report.METRICS_JSON]
    report.save_plots(scored.actual, models.likes(scored.by_routing[routing]),
                      metrics["classifier"]["confusion_matrix"], routing)
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
    settings = drafts_settings(args)
    are_drafts = settings is not None
    request = rows.Request(args.input, args.sheet, settings and settings.drafts, args.device,
                           args.batch_size or NEW_TWEETS_BATCH, args.verbose)
    output = args.output if args.output is not None or are_drafts else common.PREDICTIONS
    # The report describes final_predictions.csv: drafts from the terminal leave it as it is,
    # unless they write over final_predictions.csv itself.
    replaces_report = not are_drafts or (output is not None and same_file(output, common.PREDICTIONS))
    files.check_writable([path for path in (output, *(report.REPORT_FILES if replaces_report else ()))
                           if path is not None])
    started = time.perf_counter()

    # 1. The checked record of 01, the history and the models (the classed CSV is streamed later).
    info = tables.check_classed()
    refuse_before_work(args, request, info, output)
    run = models.load_run(info, tables.load_history_stats())

    # 2. The rows to predict and their model inputs (new tweets embedded here or on the cluster).
    with cluster.cluster(args.cluster) as client:
        to_predict = rows.rows_to_predict(request, run, client)
        tweets, (X_classifier, X_regressor) = to_predict.tweets, to_predict.inputs
        if args.verbose or not are_drafts:
            print(f"predicting {len(tweets)} tweets from {to_predict.source}"
                  f"{' on the cluster' if args.cluster else ''}\n" + text.text_form_line(run.trained.meta))
        likes, known, in_sample = known_likes(tweets, to_predict.in_training, are_drafts)

        # 3. Predict, here or on the cluster; calibrate, route, and say why where it is asked or reported.
        on_cluster = cluster.cluster_record(args.cluster, client)
        outputs = models.calibrated(predict_all(client, run.trained, X_classifier, X_regressor), run.combiner)
    by_routing = models.routed_log_likes(outputs, run.combiner)
    explained = np.arange(len(tweets)) if args.explain and not are_drafts else report_sample(known)
    explanation = explain(run.trained, X_regressor, by_routing, outputs, args.routing, explained) \
        if len(explained) else None
    predicted = Predicted(outputs, by_routing, intervals.served(run.combiner, args.routing, args.interval, by_routing,
                                                                outputs, tweets))

    # 4. The predictions file (for drafts, only when asked) and the drafts' advice; an earlier
    #    run's report goes first, so it never outlives its predictions.
    removed = remove_report() if replaces_report else []
    if are_drafts:
        advise_drafts(args, settings, to_predict, predicted, run)
    elif output is not None:
        rows_written = write_predictions(output, to_predict.original, tweets.index,
                                         predicted._replace(explanation=explanation if args.explain else None))
        print(f"wrote {output}: {rows_written} rows, predicted_likes from {args.routing} routing")

    # 5. Where likes are known, the report.
    written = []
    if known.any():
        scored = report.Scored(tweets[known].reset_index(drop=True), likes[known], outputs.rows(known),
                               predicted.rows(known).by_routing,
                               {group: values[known[explained]] for group, values in explanation.items()},
                               predicted.served.rows(known))
        written = write_report(scored, to_predict.train, run, {"source": str(to_predict.source), "rows_scored": int(
            known.sum()), "in_sample_rows": in_sample, **on_cluster}, args.no_plots)
        print(f"wrote {', '.join(written)}" + (f" ({in_sample} in-sample rows)" if in_sample else ""))
    say_removed([path for path in removed if path not in written])
    print(f"done in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
