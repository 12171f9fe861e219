"""Stage 1: split the tweets into train/test and label each with its popularity class.

Reads  data/train_data.csv (or --input: CSV or .xlsx with content, username, likes and a
       `company` or `inferred company` column)
Writes train_data_with_classes.csv  the input rows plus `split` (train/test), `popularity_class`
                                    (0 common, 1 popular, 2 viral), `tweet_group` (copies of a
                                    tweet share it; with --split time, numbered in posting order),
                                    six history features and the signal features
       class_thresholds.json        thresholds, class counts, split settings, signal groups found,
                                    fingerprints
       history_stats.csv            per-account and per-company like statistics, mean length and
                                    first posting day (training rows)

The classes are cut at the 75th and 95th percentiles of the training rows' likes. The history
features are out of fold (no row sees its own likes; with --split time, none sees the future),
and copies of a tweet stay on one side of the split. Why, and the signals: docs/how-it-works.md
(section 1) and docs/evaluation.md (Inputs).

Usage: python 01_create_classes.py [--input PATH [--sheet NAME]] [--split random|account|company|time]
                                   [--test-fraction F] [--validation random|latest]
--test-fraction 0 keeps every row for training: the model to deploy, once a split has measured it.
--validation latest (with --split time): 03b and 04 choose on the latest training tweets.

A good run on the embedded sample prints:

    read data/train_data.csv: 5000 rows, columns ['id', 'date', 'likes', 'content', 'username', 'media', 'company']
      89 rows repeat another row's content and username: each tweet's copies stay on one side of the split
    split (random): 4000 train, 1000 test
    thresholds from training likes: common <= 232.25 < popular <= 2416.2 < viral
      common   train    3000  test     710
      popular  train     800  test     228
      viral    train     200  test      62
    signals: surface from `content`
    signals: media from `media`
    signals: time from `date`
    signals: reply off (no `is_reply` column)
    signals: wording from `content`
    wrote train_data_with_classes.csv, class_thresholds.json, history_stats.csv in 0.7s
"""
import common  # first: it makes a Ctrl-C while the rest imports one line too

import time
from typing import NamedTuple

import numpy as np
import pandas as pd

from tweetlikes import features, files, splits, tables

TEST_FRACTION = 0.2
HISTORY_FOLDS = 5
MIN_ROWS = 40  # below this the three classes and the validation slice get too thin to train on
MIN_TRAIN_ROWS_PER_CLASS = 2
# Whole groups move in one piece, so a group split lands near --test-fraction, not on it; beyond
# 5 percentage points (a quarter of the default 20%) the split is not what was asked for.
SPLIT_TOLERANCE = 0.05
# The validation slice of 03b and 04. A seeded draw by default: under --split time the latest
# training tweets as the slice predict worse, as the models then never fit the newest tweets
# (docs/evaluation.md, "Tomorrow's tweets").
VALIDATION_SLICES = ("random", "latest")


def assign_split(table, how, test_fraction, seed, group=None, days=None):
    """'train'/'test' per row. random: rows; account/company: whole groups go to one side;
    time: the latest rows are the test rows. Copies of a tweet (`group`, for random and time:
    splits.tweet_groups, numbered in time order for time) always go to one side together: for time, the side of the
    latest copy, so no training row is posted after the cut. A test fraction of 0 keeps every row
    for training (the final model)."""
    rng = np.random.default_rng(seed)
    wanted = round(len(table) * test_fraction)
    if how == "random":
        is_test = splits.take_groups(group, rng.permutation(group.max() + 1), wanted)
    elif how == "time":
        is_test = splits.take_groups(group, np.arange(group.max() + 1)[::-1], wanted)
        if wanted:  # never between two rows posted at one time; each row at its tweet's latest copy's time
            is_test = cut_between_times(pd.Series(days).groupby(group).max().to_numpy()[group], is_test, test_fraction)
    else:
        column = "username" if how == "account" else "company"
        groups = table[column]
        if (groups == "").all():
            common.fail(f"--split {how} needs a non-empty `{column}` column; this input has none "
                        f"(try --split {'company' if how == 'account' else 'random'})")
        sizes = groups.value_counts().sort_index()
        shuffled = sizes.iloc[rng.permutation(len(sizes))]
        # Take whole groups into test until it holds the wanted share of rows.
        test_groups = shuffled.index[(shuffled.cumsum() - shuffled) < len(table) * test_fraction]
        is_test = groups.isin(test_groups).to_numpy()
        if abs(is_test.mean() - test_fraction) > SPLIT_TOLERANCE:
            common.fail(f"--split {how} holds out {is_test.mean():.0%} of rows, not the {test_fraction:.0%} "
                        f"asked (±{SPLIT_TOLERANCE:.0%} points): each {column} goes whole to one side, and "
                        f"the largest, {sizes.idxmax()!r}, holds {sizes.max() / len(table):.0%} of rows; "
                        "try another --seed or --test-fraction, or --split random")
    if is_test.all() or (test_fraction > 0 and not is_test.any()):
        common.fail(f"--split {how} left one side empty ({is_test.sum()} test rows of {len(table)})")
    return np.where(is_test, "test", "train")


def cut_between_times(times, is_test, test_fraction):
    """The time split's test rows, `is_test`, moved so that the cut falls between two posting times:
    rows posted at the very time of the cut, which file order alone would split, go whole to the
    side that keeps the test share nearest the one asked. Refused when that share is off by more
    than SPLIT_TOLERANCE (too few distinct times), and when every row has one time."""
    if np.unique(times).size == 1:
        common.fail(f"--split time needs tweets posted at different times, but all {len(times)} usable rows have "
                    f"the same `date`; use --split random (or account, company)")
    cut = times[is_test].min()
    options = [is_test | (times == cut), is_test & (times > cut)]
    options = [option for option in options if 0 < option.sum() < len(times)]
    best = min(options, key=lambda option: abs(option.mean() - test_fraction))
    if abs(best.mean() - test_fraction) > SPLIT_TOLERANCE:
        common.fail(f"--split time holds out {best.mean():.0%} of rows, not the {test_fraction:.0%} asked "
                    f"(±{SPLIT_TOLERANCE:.0%} points): {int((times == cut).sum())} rows share the posting time at the "
                    f"cut, and the input has only {np.unique(times).size} distinct times; time can't order rows "
                    "posted together: try another --test-fraction, or --split random")
    return best


def class_thresholds(train_likes):
    """The likes values at the class quantiles, from training rows only."""
    low, high = np.quantile(np.asarray(train_likes, dtype=float), common.QUANTILES)
    if not low < high:
        common.fail(f"likes are too uniform to form three classes: the {common.QUANTILES[0]:.0%} and "
                    f"{common.QUANTILES[1]:.0%} percentiles of the training likes are both {low:g}")
    return float(low), float(high)


def group_stats(table, days=None):
    """Per-account and per-company count, sum and median of log1p(likes), the first posting day
    (NaN without dates) and the mean length of the content; empty keys are skipped. This is
    history_stats.csv."""
    frame = pd.DataFrame({"log_likes": np.log1p(table["likes"].to_numpy(dtype=float)),
                          "day": np.nan if days is None else np.asarray(days, dtype=float),
                          "chars": table["content"].str.len().to_numpy(dtype=float)})
    parts = []
    for kind, column in features.HISTORY_KEYS:
        keyed = frame.assign(key=table[column].to_numpy())
        keyed = keyed[keyed["key"] != ""]
        stats = keyed.groupby("key", sort=True).agg(count=("log_likes", "count"), sum_log_likes=("log_likes", "sum"),
                                                    median_log_likes=("log_likes", "median"), first_day=("day", "min"),
                                                    mean_chars=("chars", "mean"))
        parts.append(stats.reset_index().assign(kind=kind))
    return pd.concat(parts, ignore_index=True)[features.STATS_COLUMNS]


def prior_of(likes):
    log_likes = np.log1p(np.asarray(likes, dtype=float))
    return {"mean_log_likes": float(log_likes.mean()), "median_log_likes": float(np.median(log_likes))}


class TrainingHistory(NamedTuple):
    """What a row outside the training rows looks its history up in: the training rows' group_stats
    (history_stats.csv) and their global prior (class_thresholds.json's history_prior)."""
    stats: pd.DataFrame
    prior: dict


def training_history(table, is_train, days=None):
    return TrainingHistory(group_stats(table[is_train], None if days is None else np.asarray(days)[is_train]),
                           prior_of(table["likes"][is_train]))


def history_features(table, is_train, split_how, seed, training, days=None):
    """Out-of-fold history for training rows, full-training history (`training`, a TrainingHistory)
    for test rows; with the time split, history from earlier training tweets only."""
    if split_how == "time":
        return history_before(table, is_train, days)
    train = table[is_train]
    history = pd.DataFrame(index=table.index, columns=features.HISTORY_FEATURES, dtype=float)
    history[~is_train] = features.lookup_history(table[~is_train], training.stats, training.prior)
    # Whole groups per fold, as in the split itself: copies of a tweet (random), or whole accounts
    # (or companies), so no row's history holds its own likes through a copy.
    if split_how == "random":
        keys = splits.duplicate_groups(train)
    else:
        keys = train["username" if split_how == "account" else "company"].to_numpy()
    unique_keys, key_of_row = np.unique(keys, return_inverse=True)
    fold = np.random.default_rng(seed).integers(0, HISTORY_FOLDS, size=len(unique_keys))[key_of_row]
    for k in range(HISTORY_FOLDS):
        held_out, rest = train[fold == k], train[fold != k]
        if len(held_out):
            # Counted on 4/5 of the training rows, an account's count is scaled to all of them, as
            # test rows count it: else the trees tell two accounts apart by a count test rows exceed.
            history.loc[held_out.index] = features.lookup_history(held_out, group_stats(rest), prior_of(rest["likes"]),
                                                                  len(train) / max(len(rest), 1)).to_numpy()
    return history


def expanding_stats(days, log_likes, query_days):
    """Count, sum, median and mean of `log_likes` over the entries posted strictly before each
    query day (median and mean NaN where there are none)."""
    order = np.argsort(days, kind="stable")
    days, log_likes = np.asarray(days)[order], np.asarray(log_likes)[order]
    before = np.searchsorted(days, query_days, side="left")  # entries strictly earlier
    sums = np.concatenate([[0.0], np.cumsum(log_likes)])
    medians = np.concatenate([[np.nan], pd.Series(log_likes).expanding().median().to_numpy()])
    count = before.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return count, sums[before], medians[before], sums[before] / count


def history_before(table, is_train, days):
    """History features of every row from the training tweets posted strictly before it: the
    global prior too, so that no likes from the row's future reach its features."""
    log_likes = np.log1p(table["likes"].to_numpy(dtype=float))
    days = np.asarray(days, dtype=float)
    _, _, prior_median, prior_mean = expanding_stats(days[is_train], log_likes[is_train], days)
    prior = {"mean_log_likes": prior_mean, "median_log_likes": prior_median}  # each row's, from the tweets before it
    history = {}
    for kind, column in features.HISTORY_KEYS:
        keys = table[column].to_numpy()
        count, total, median = np.zeros(len(table)), np.zeros(len(table)), np.full(len(table), np.nan)
        for key in np.unique(keys[keys != ""]):
            rows = keys == key
            sources = rows & is_train
            count[rows], total[rows], median[rows], _ = expanding_stats(days[sources], log_likes[sources], days[rows])
        history.update(features.history_columns(kind, count, total, median, prior))
    return pd.DataFrame(history, index=table.index)[features.HISTORY_FEATURES]


def parse_arguments(argv):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--input", default=str(common.DEFAULT_INPUT), help="CSV or .xlsx of tweets")
    parser.add_argument("--sheet", default=None, help="the sheet to read of an .xlsx with several")
    parser.add_argument("--split", choices=("random", "account", "company", "time"), default="random",
                        help="random rows; whole accounts / companies held out; or the latest tweets by date")
    parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION,
                        help="share of rows held out; 0 keeps every row for training: the final model, once a "
                             "split has measured it")
    parser.add_argument("--seed", type=common.non_negative_int, default=common.SEED,
                        help="seed for the split and history folds")
    parser.add_argument("--validation", choices=VALIDATION_SLICES, default="random",
                        help="the slice of training tweets 03b and 04 choose and early-stop on: a seeded draw, or "
                             "(with --split time) the latest ones, which calibrate better and predict worse")
    args = parser.parse_args(argv)
    if args.validation == "latest" and args.split != "time":
        common.fail("--validation latest takes the latest training tweets: it needs --split time")
    if not 0 <= args.test_fraction < 1:
        common.fail(f"--test-fraction must be at least 0 and below 1, got {args.test_fraction}")
    return args


def read_usable_rows(args):
    """The input's rows with usable likes and content (and, for --split time, a usable date),
    their posting days, and the counts of refused and duplicate rows (each reason printed)."""
    notes = []
    table, _ = tables.read_table(args.input, sheet=args.sheet, notes=notes)
    made_by = tables.made_by_pipeline(table.columns)
    if made_by:
        common.fail(f"{args.input} is {made_by}, not tweets to learn from: give the original input, the "
                    "tweets it was made from")
    clash = [column for column in features.DERIVED_COLUMNS if column in table.columns]
    if clash:
        common.fail(f"{args.input} already has column(s) {clash}, which this stage derives and would "
                    "overwrite; rename them")
    print(f"read {args.input}{'' if args.sheet is None else f' (sheet {args.sheet!r})'}: {len(table)} rows, "
          f"columns {list(table.columns)}")
    for note in notes:
        print(f"  {note}")
    likes = tables.clean_likes(table["likes"])
    days = features.parse_dates(table["date"]) if "date" in table.columns else pd.Series(np.nan, index=table.index)
    # One bad cell in a large export should not sink the run, but it must not pass unseen.
    refusals = [(f"whose likes are unusable: {tables.bad_likes(table['likes'])}", likes.isna()),
                ("with empty content (nothing to embed or predict from)", table["content"] == "")]
    if args.split == "time":
        if "date" not in table.columns:
            common.fail("--split time needs a `date` column; this input has none (try --split random)")
        refusals.append(("whose date is missing or unreadable (--split time orders by date)", days.isna()))
    usable = pd.Series(True, index=table.index)
    for reason, refused in refusals:
        if (usable & refused).any():
            print(f"  refused {int((usable & refused).sum())} rows {reason}")
        usable &= ~refused
    table = table.assign(likes=likes)[usable].reset_index(drop=True)
    if len(table) < MIN_ROWS:
        common.fail(f"only {len(table)} usable rows; at least {MIN_ROWS} are needed to train three classes")
    duplicates = int(table.duplicated(["content", "username"]).sum())
    if duplicates:
        print(f"  {duplicates} rows repeat another row's content and username: each tweet's copies stay on one "
              "side of the split")
    return table, days[usable].reset_index(drop=True), {"refused_rows": int((~usable).sum()),
                                                         "duplicate_rows": duplicates}


def print_receipt(record):
    """The split, classes and signal groups that `record` (class_thresholds.json) holds."""
    counts, blank, malformed = record["class_counts"], record["blank_columns"], record["malformed_cells"]
    train, test = (sum(count[side] for count in counts.values()) for side in ("train", "test"))
    print(f"split ({record['split']}): {train} train, {test} test"
          + (" (--test-fraction 0: every row trains the final model; 05 predicts new tweets with --input or "
             "--text)" if not test else ""))
    low, high = record["thresholds"]
    print(f"thresholds from training likes: common <= {low:g} < popular <= {high:g} < viral")
    for name, count in counts.items():
        print(f"  {name:8s} train {count['train']:7d}  test {count['test']:7d}")
    for kind, column in features.HISTORY_KEYS:
        if column in blank:
            print(f"history: `{column}` has no values, so every row's {kind} history is the global prior")
    for group, source in features.SIGNAL_SOURCE.items():
        if group not in record["signal_groups"]:
            why = f"`{source}` has no values" if source in blank else f"no `{source}` column"
            print(f"signals: {group} off ({why})")
        elif malformed[group]:
            print(f"signals: {group} from `{source}`, {malformed[group]} unreadable cells left missing")
        else:
            print(f"signals: {group} from `{source}`")


def main(argv=None):
    args = parse_arguments(argv)
    files.check_writable([common.CLASSED_CSV, common.THRESHOLDS_JSON, common.HISTORY_CSV])
    started = time.perf_counter()

    # 1. The rows, less those whose likes or content (or date, for --split time) can't be used.
    table, days, row_counts = read_usable_rows(args)

    # 2. Split, then the class thresholds from the training rows alone.
    group = splits.tweet_groups(table, days.to_numpy() if args.split == "time" else None)
    split = assign_split(table, args.split, args.test_fraction, args.seed, group, days.to_numpy())
    is_train = split == "train"
    thresholds = class_thresholds(table["likes"][is_train])
    classes = common.assign_classes(table["likes"], thresholds)
    train_counts = np.bincount(classes[is_train], minlength=len(common.CLASS_NAMES))
    if train_counts.min() < MIN_TRAIN_ROWS_PER_CLASS:
        common.fail(f"training rows per class {train_counts.tolist()}: each class needs at least "
                    f"{MIN_TRAIN_ROWS_PER_CLASS}; use more rows")

    # 3. History (out of fold for training rows) and the signals.
    table["split"] = split
    table["popularity_class"] = classes
    table["tweet_group"] = group  # copies together, in time order for --split time: the validation slice's groups
    training = training_history(table, is_train, days.to_numpy())
    table[features.HISTORY_FEATURES] = history_features(table, is_train, args.split, args.seed, training,
                                                        days.to_numpy()).to_numpy()
    # A column without a single value says nothing: its group is off, as for a missing column.
    blank = features.blank_columns(table, [column for _, column in features.HISTORY_KEYS] +
                                   list(features.SIGNAL_SOURCE.values()))
    signals, found, malformed = features.signal_features(
        table.drop(columns=[column for column in blank if column in features.SIGNAL_SOURCE.values()]), training.stats)
    table[signals.columns] = signals.to_numpy()

    # 4. Write the history and the classed CSV, then the record that vouches for both, last.
    files.save_csv(common.HISTORY_CSV, training.stats)
    whole_counts = (table["likes"] % 1 == 0).all()
    files.save_csv(common.CLASSED_CSV, table.assign(likes=table["likes"].astype("int64")) if whole_counts else table)
    counts = {name: {"train": int(((classes == k) & is_train).sum()), "test": int(((classes == k) & ~is_train).sum())}
              for k, name in enumerate(common.CLASS_NAMES)}
    record = {
        "input": str(args.input), "sheet": args.sheet, "rows": len(table), **row_counts,
        "split": args.split, "test_fraction": args.test_fraction, "seed": args.seed, "validation": args.validation,
        "quantiles": list(common.QUANTILES), "thresholds": list(thresholds),
        "class_counts": counts, "history_prior": training.prior,
        "signal_groups": found, "malformed_cells": malformed, "blank_columns": blank, "name_form": tables.NAME_FORM,
        "classed_csv_sha256": common.file_sha256(common.CLASSED_CSV),
        "history_stats_sha256": common.file_sha256(common.HISTORY_CSV),
    }
    files.save_json(common.THRESHOLDS_JSON, record)

    print_receipt(record)
    print(f"wrote {common.CLASSED_CSV}, {common.THRESHOLDS_JSON}, {common.HISTORY_CSV} "
          f"in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
