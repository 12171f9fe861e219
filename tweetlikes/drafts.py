"""Drafts from the terminal (05 --text, --drafts): the rows they become, and what 05 prints of
them: one draft with why it got its figure, several ranked with the chance each beats the best,
or one draft at every hour of the week (--when).

A draft is more than its words: its media (`--media photo,video`), when it goes out (`--date`,
now by default) and whether it is a reply (`--reply`) feed the same signal groups as a tweet of
the training file, in the same columns (media as Adobe's `[Photo(...)]` lists).
"""
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

import common
from tweetlikes import features, intervals, pairs

MEDIA_NAMES = {kind.lower(): kind for kind in features.MEDIA_KINDS}  # --media words, Adobe's names
DRAFT_COLUMNS = ("content", "media", "date", "is_reply")  # what a --drafts CSV may carry per draft
SLOTS_SHOWN = 3  # --when prints the best this many hours of the week, and the worst
SHOWN_CHARS = 60  # of a draft's text in the ranking


def parse_media(text, source="--media"):
    """`--media photo,video` as the media cell of Adobe's exports, `[Photo(), Video()]`."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MEDIA_NAMES]
    if unknown:
        common.fail(f"{source}: unknown kind(s) {unknown}; use a comma list of {', '.join(MEDIA_NAMES)}")
    return "[" + ", ".join(f"{MEDIA_NAMES[name]}()" for name in names) + "]"


def parse_date(text, source="--date"):
    """A draft's time as ISO 8601 text, refused in one line unless the signals can read it."""
    if np.isnan(features.parse_dates([text]).iloc[0]):
        common.fail(f"{source} {text!r}: expected an ISO 8601 time between the years 1677 and 2262, e.g. "
                    "2026-12-01T18:30:00Z (UTC unless it says)")
    return text


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_drafts(path):
    """The drafts of --drafts FILE: a .csv with a `content` column (and, per draft, any of
    DRAFT_COLUMNS), or any other text file with one draft per non-empty line."""
    path = Path(path)
    if not path.is_file():
        common.fail(f"--drafts {path}: {'it is a folder' if path.is_dir() else 'file not found'}")
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            if "content" not in table.columns:
                common.fail(f"--drafts {path} has no `content` column; found {list(table.columns)}")
            extra = [column for column in table.columns if column not in DRAFT_COLUMNS]
            if extra:
                common.fail(f"--drafts {path}: column(s) {extra} are not draft settings; a draft file may carry "
                            f"{', '.join(DRAFT_COLUMNS)} (the account and company are --username and --company)")
            empty = table["content"].str.strip() == ""
            if empty.any():
                print(f"--drafts {path}: {int(empty.sum())} rows with empty content left out")
            table = table[~empty]
        else:
            lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
            table = pd.DataFrame({"content": [line for line in lines if line]})
    except UnicodeDecodeError as error:
        common.fail(f"--drafts {path} is not UTF-8 text ({error.reason} at byte {error.start})")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        common.fail(f"--drafts {path} could not be read: {error}")
    if table.empty:
        common.fail(f"--drafts {path} holds no draft")
    return table.reset_index(drop=True)


def parse_reply(text):
    """A --drafts `is_reply` cell, checked as the reply signal reads it."""
    if text.lower() not in features.TRUE_WORDS | features.FALSE_WORDS:
        common.fail(f"--drafts is_reply {text!r}: expected one of true/false, yes/no, 1/0")
    return text


# How a --drafts CSV cell is read: media as words (photo,video) or Adobe's [Photo(...)] list.
CELL_PARSERS = {"media": lambda cell: cell if cell.startswith("[") else parse_media(cell, "--drafts media"),
                "date": lambda cell: parse_date(cell, "--drafts date"), "is_reply": parse_reply}


def draft_rows(texts, username, company, media, date, reply, per_draft=None):
    """The drafts as input rows, each with the account, company, media, time and reply flag given
    on the command line unless `per_draft` (a --drafts CSV) carries its own."""
    rows = pd.DataFrame({"content": list(texts), "username": username, "company": company,
                         "media": media, "date": date, "is_reply": "true" if reply else "false"})
    for column in DRAFT_COLUMNS[1:]:
        if per_draft is not None and column in per_draft.columns:
            given = per_draft[column].str.strip().map(lambda cell: CELL_PARSERS[column](cell) if cell else "")
            rows[column] = np.where(given != "", given, rows[column])
    return rows


def rows_of(args, classifier):
    """The drafts of --text or --drafts as input rows (for --when, the one draft at every hour of
    the week)."""
    per_draft = args.draft_table  # read_drafts(args.drafts), read before any work
    texts = per_draft["content"] if per_draft is not None else args.text
    rows = draft_rows(texts, args.username, args.company, args.media, args.date, args.reply, per_draft)
    for group, given in (("media", args.media or "media" in getattr(per_draft, "columns", ())),
                         ("reply", args.reply or "is_reply" in getattr(per_draft, "columns", ()))):
        if given and group not in classifier["meta"]["features"]:
            print(f"note: the models do not read the {group} signal (their training input had no "
                  f"`{features.SIGNAL_SOURCE[group]}` values), so the drafts' {group} changes nothing")
    if not args.when:
        return rows
    if "time" not in classifier["meta"]["features"]:
        common.fail("--when needs models that read the posting time: train them on an input with a `date` column "
                    "(rerun 01_create_classes.py and the stages after it)")
    return week_of(rows.iloc[0].to_dict(), args.date)


def week_of(draft, start):
    """One draft at every hour of the week from the first whole hour at or after `start` (ISO
    text): 168 rows, `date` set."""
    first = pd.Timestamp(start)
    first = (first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")).ceil("h")
    return pd.DataFrame([{**draft, "date": (first + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")}
                         for h in range(7 * 24)])


# ------------------------------------------------------------------------------ what is printed

def factors(explanation, row):
    """One row's explanation as factors on likes, largest effect first: exp of each group's
    contribution to log1p(likes), without the base."""
    effects = {group: values[row] for group, values in explanation.items() if group != "base"}
    return sorted(effects.items(), key=lambda item: -abs(item[1]))


def history_lines(tweet, stats, prior):
    """What the history features knew of a draft's account and company."""
    lines = []
    for kind, column in features.HISTORY_KEYS:
        found = features.key_stats(stats, kind, pd.Series([tweet[column]])).iloc[0]
        if found["count"] == 0:
            name = repr(tweet[column]) if tweet[column] else "(none)"
            lines.append(f"{column} {name}: unseen in training; its history features are the global prior "
                         f"(median {np.expm1(prior['median_log_likes']):.0f} likes)")
        else:
            lines.append(f"{column} {tweet[column]!r}: seen in training, {int(found['count'])} tweets, "
                         f"median {np.expm1(found['median_log_likes']):.0f} likes")
    return lines


def describe(args, tweets, output, outputs, by_routing, explanation, combiner, stats, info):
    """What the terminal shows for drafts: one with why, several ranked, or one across the week."""
    likes = output["predicted_likes"].to_numpy()
    ranges = [intervals.range_text(low, high) for low, high in zip(output["likes_low"], output["likes_high"])]
    if len(tweets) == 1 or args.when:
        describe_one(f"{likes[0]:.0f} ({args.interval:.0%} range: {ranges[0]})", outputs.probabilities[0],
                     explanation, history_lines(tweets.iloc[0], stats, info["history_prior"]))
    if args.when:
        describe_week(tweets, likes)
    elif len(tweets) > 1:
        chance = {"within": combiner["pair_chance"]["within"], **combiner["pair_chance"][args.routing]}
        describe_ranked(tweets, likes, ranges, by_routing[args.routing], explanation, chance)


def describe_one(predicted_likes, probabilities, explanation, history_lines):
    """One draft: its likes, class probabilities, why (as factors on likes), and what training
    knew of its account and company."""
    print(f"\npredicted likes: {predicted_likes}")
    print("class probabilities: " + ", ".join(f"{name} {p:.1%}" for name, p in zip(common.CLASS_NAMES, probabilities)))
    print(f"why: a typical tweet gets {np.expm1(explanation['base'][0]):.0f}; then "
          + ", ".join(f"{group.replace('_', ' ')} x{np.exp(effect):.2f}" for group, effect in factors(explanation, 0)))
    wording = [group for group in features.CONTENT_GROUPS if group in explanation]
    if wording:
        print(f"the wording moved it x{np.exp(sum(explanation[group][0] for group in wording)):.2f} "
              f"({' and '.join(wording)}: what rewording changes; the rest is who posts, when and with what)")
    for line in history_lines:
        print(line)


def describe_ranked(drafts, predicted_likes, ranges, predicted_log, explanation, chance):
    """Several drafts, best first: predicted likes and their range, the chance each beats the best
    one (where 04 fitted one, else why not), and the explanation groups where each differs most
    from the best."""
    order = np.argsort(-predicted_log, kind="stable")
    best = order[0]
    print(f"\n{len(drafts)} drafts by {drafts['username'].iloc[0] or '(no account)'}, ranked "
          + (f"(chance to beat #1: from same-{chance['within']} pairs of training tweets):" if chance["slope"] else
             f"without a chance to beat #1 ({chance['why']}):"))
    print(f"{'rank':>4s} {'likes':>7s} {'range':>13s} {'beats #1':>8s}  draft")
    for rank, row in enumerate(order, 1):
        beats = "" if row == best or not chance["slope"] else \
            f"{pairs.chance_to_beat(chance, predicted_log[row] - predicted_log[best]):.0%}"
        text = drafts["content"].iloc[row]
        shown = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"
        print(f"{rank:4d} {predicted_likes[row]:7.0f} {ranges[row]:>13s} {beats:>8s}  {shown}")
    print("where each differs from #1 (factor on likes):")
    for rank, row in enumerate(order[1:], 2):
        gaps = {group: values[row] - values[best] for group, values in explanation.items() if group != "base"}
        shown = [f"{group.replace('_', ' ')} x{np.exp(gap):.2f}" for group, gap in
                 sorted(gaps.items(), key=lambda item: -abs(item[1])) if abs(gap) >= 0.005]
        print(f"  #{rank}: " + (", ".join(shown) if shown else "no difference the models see"))


def describe_week(week, predicted_likes):
    """The best SLOTS_SHOWN hours of the week and the worst, plainly labelled for what they are."""
    moments = pd.to_datetime(week["date"], utc=True)
    order = np.argsort(-predicted_likes, kind="stable")
    print(f"\nwhen to post ({moments.iloc[0]:%Y-%m-%d %H:%M} to {moments.iloc[-1]:%Y-%m-%d %H:%M} UTC): "
          "this is what the training tweets' likes correlate with, not a promise")
    for label, rows in (("best", order[:SLOTS_SHOWN]), ("worst", order[-1:])):
        for row in rows:
            print(f"  {label:5s} {moments.iloc[row]:%A %H:00} UTC: {predicted_likes[row]:.0f} likes")
