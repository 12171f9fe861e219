"""What 05 tells a writer about drafts (--text, --drafts): one draft with why it got its figure,
several ranked with the chance each beats the best and what differs, and when to post (--when).

Every "why" is an exact split of one prediction against another (tweetlikes.contrast): a draft
against the best draft, or a lone draft against a typical training tweet (each model input at its
median over the validation slice, recorded by 04). A group whose inputs are equal in both rows
gets exactly nothing, so a difference is never named where there is none.
"""
import difflib
import functools
from typing import NamedTuple

import numpy as np
import pandas as pd

import common
from tweetlikes import contrast, drafts, features, models, pairs, timing

SHOWN_CHARS = 48  # of a draft's text in the ranking: the row still fits a terminal with its settings
ABOUT_THE_SAME = (0.45, 0.55)  # a chance to beat #1 in here is a coin flip: said, not ranked
SLOTS_SHOWN = 3  # --when prints the best this many slots of the week, and the worst
SHOWN_PARTS = 0.005  # parts of a gap under this (in log1p, half a percent) are not printed
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Drafted(NamedTuple):
    """The drafts as the models read them, their model inputs and what the models said."""
    tweets: pd.DataFrame
    inputs: tuple  # the classifier's and the regressors' features.ModelInput
    outputs: object  # models.ModelOutputs
    predicted_log: np.ndarray  # log1p(likes) by the routing served
    ranges: list  # each draft's likes range, as text (tweetlikes.intervals.range_text)


class Settings(NamedTuple):
    """The settings of 05's command line that the advice reads."""
    routing: str
    interval: float  # the probability the likes ranges are meant to hold the actual likes with
    when: bool
    tz: object  # a zoneinfo.ZoneInfo, or None
    drafts: drafts.Drafts  # as given: the account and company as typed, whether their times were


class Advice(NamedTuple):
    """What the models say of some drafts, in input order."""
    predicted_log: np.ndarray  # log1p(likes) as served
    rank: np.ndarray           # 1 for the best
    chance: np.ndarray         # the chance to get more likes than #1 (NaN for #1, or with no chance model)
    versus_first: dict         # contrast player -> each draft's share of its log1p gap to #1
    why: dict                  # contrast player -> each draft's share of its gap to the typical tweet
    typical_log: float         # the typical tweet's log1p(likes)


def advise(served, inputs, reference, players, predicted_log, chance):
    """Advice on drafts whose model inputs are `inputs` (classifier's, regressors' arrays),
    `served(X_classifier, X_regressor)` their prediction; `chance` 04's chance model (its slope
    None where 04 fitted none). The why against the typical tweet is split for each draft."""
    order = np.argsort(-predicted_log, kind="stable")
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    best = order[0]
    first = tuple(np.repeat(X[best:best + 1], len(X), axis=0) for X in inputs)
    typical = tuple(np.asarray(reference[kind], dtype=float)[None, :] for kind in ("classifier", "regressor"))
    gap = predicted_log - predicted_log[best]
    chance_to_beat = np.where(rank == 1, np.nan, pairs.chance_to_beat(chance, gap)) if chance.get("slope") \
        else np.full(len(gap), np.nan)
    return Advice(predicted_log, rank, chance_to_beat, contrast.shapley(served, inputs, first, players),
                  contrast.shapley(served, inputs, tuple(np.repeat(t, len(gap), axis=0) for t in typical), players),
                  float(served(*typical)[0]))


def tell(settings, drafted, run, train):
    """Print the advice on drafts (tweetlikes.advice's docstring) and return it: notes on settings
    that change nothing or go beyond the training tweets, then one draft with why or several
    ranked, when to post with --when, and what training knew of the account and company."""
    meta = run.trained.meta
    columns = features.input_columns(meta["features"], meta.get("embedding_dim", 0), meta["text_form"])
    inputs = tuple(X.block(np.arange(X.rows)) for X in drafted.inputs)
    reference = run.combiner["reference"]
    if [len(reference["classifier"]), len(reference["regressor"])] != [X.shape[1] for X in inputs]:
        common.fail(f"{common.COMBINER} holds a typical tweet of another model input; rerun "
                    f"{common.maker(common.COMBINER)}")
    found = advise(functools.partial(models.served_log_likes, run.trained, run.combiner, settings.routing),
                   inputs, reference, contrast.players_of(columns), drafted.predicted_log,
                   run.combiner["pair_chance"].get(settings.routing))
    train_days = features.parse_dates(train["date"]).to_numpy() if "date" in train else np.zeros(0)
    read = models.columns_read([run.trained.classifier, *run.trained.regressors, run.trained.global_regressor], columns)
    for note in setting_notes(drafted.tweets, read, train_days, settings.drafts.dated):
        print(f"note: {note}")
    if len(drafted.tweets) == 1:
        describe_one(drafted, found, run.info["thresholds"], settings.interval)
    else:
        describe_ranked(drafted, found, run.combiner["pair_chance"][settings.routing], settings.interval)
    if settings.when:  # within an account, or a company where the training rows name no account (pairs.pair_keys)
        keys, within = pairs.pair_keys(train)
        account = drafted.tweets["username" if within == "account" else "company"].iloc[0]
        effects = timing.effects(keys, train_days, np.log1p(train["likes"]), account)
        describe_week(account, found.predicted_log[0], effects, drafted.tweets["date"].iloc[0],  # its prediction's
                      settings.tz)
    typed = {"username": settings.drafts.username, "company": settings.drafts.company}
    for line in names_lines(typed, drafted.tweets.iloc[0], run.stats, run.info["history_prior"]):
        print(line)
    return found


def about_the_same(chance):
    """Whether a chance to beat #1 is a coin flip, as shown: rounded to the percent it prints."""
    return bool(np.isfinite(chance) and ABOUT_THE_SAME[0] <= round(chance, 2) <= ABOUT_THE_SAME[1])


def output_table(predictions, advice, explain):
    """A drafts --output: each draft's number in the input and its rank, its columns and
    predictions, the chance to beat #1 and the log1p gap to #1 split by group (diff_<group>,
    adding up to the whole gap); with `explain`, the typical tweet's log1p(likes) (why_typical) and
    the gap to it (why_<group>), adding up to the prediction. A draft about the same as #1 shares
    its rank, as the table shows."""
    rows = len(advice.rank)
    parts = {f"diff_{player}": advice.versus_first.get(player, np.zeros(rows)) for player in contrast.PLAYERS}
    if explain:
        parts.update({"why_typical": np.full(rows, advice.typical_log),
                      **{f"why_{player}": advice.why.get(player, np.zeros(rows)) for player in contrast.PLAYERS}})
    best = advice.rank.min()
    rank = [best if about_the_same(chance) else rank for rank, chance in zip(advice.rank, advice.chance)]
    return pd.concat([pd.DataFrame({"draft": np.arange(1, rows + 1), "rank": rank}),
                      predictions.reset_index(drop=True),
                      pd.DataFrame({"chance_beats_first": np.round(advice.chance, 4), **parts})], axis=1)


# ---------------------------------------------------------------------------------- in words

def likes_words(likes):
    return f"{likes:,.0f} like{'' if round(likes) == 1 else 's'}"


def class_words(thresholds):
    """Each class in likes: what `viral` means here."""
    low, high = thresholds
    return [f"common (up to {likes_words(low)})", f"popular ({low:,.0f} to {likes_words(high)})",
            f"viral (over {likes_words(high)})"]


def count_words(count, noun):
    if not np.isfinite(count):
        return f"the {noun}s"
    return f"no {noun}" if count == 0 else f"{'a' if count == 1 else int(count)} {noun}{'' if count == 1 else 's'}"


def media_words(tweet):
    kinds = [count_words(tweet[column], kind.lower()) for column, kind in
             zip(features.SIGNAL_FEATURES["media"], features.MEDIA_KINDS) if tweet.get(column, 0) > 0]
    if not all(np.isfinite(tweet.get(column, 0)) for column in features.SIGNAL_FEATURES["media"]):
        return "media unreadable"
    return " and ".join(kinds) if kinds else "no media"


def moment_words(text):
    return f"{drafts.utc(text):%a %d %b %Y %H:%M} UTC"


def player_words(player, tweet):
    """A contrast player in a writer's words, with the draft's own value where it has one."""
    words = {"words": "the words", "length": f"the length ({tweet.get('surface_chars', np.nan):.0f} characters)",
             "links": count_words(tweet.get("surface_links", np.nan), "link"),
             "mentions": count_words(tweet.get("surface_mentions", np.nan), "mention"),
             "hashtags": count_words(tweet.get("surface_hashtags", np.nan), "hashtag"),
             "media": media_words(tweet), "reply": "a reply" if tweet.get("reply_is_reply") == 1 else "not a reply",
             "account": f"the account's history ({tweet['username'] or 'none'})",
             "company": f"the company's history ({tweet['company'] or 'none'})"}
    if player == "time":
        hour, day = tweet.get("time_hour", np.nan), tweet.get("time_weekday", np.nan)
        return f"posting {WEEKDAYS[int(day)]} {int(hour):02d}:00 UTC" if np.isfinite(hour) and np.isfinite(day) \
            else "the posting time"
    return words[player]


def value_words(player, tweet):
    """A player's value in the draft, for comparing two drafts: `43 characters`, `a video`, the
    posting time with its date (the time inputs read the date too)."""
    if player == "length":
        return f"{tweet.get('surface_chars', np.nan):.0f} characters"
    if player == "time":
        return f"posting {drafts.utc(tweet['date']):%a %Y-%m-%d %H:%M} UTC"
    return player_words(player, tweet)


def parts_words(parts, row, factors, tweets, other=None):
    """The parts of one draft's gap, largest first, as `what x1.23`; `other`: the row compared with."""
    shown = sorted((player for player in parts if abs(parts[player][row]) >= SHOWN_PARTS),
                   key=lambda player: -abs(parts[player][row]))
    words = []
    for player in shown:
        label = player_words(player, tweets.iloc[row])
        if other is not None and player not in ("words", "account", "company"):
            label = f"{value_words(player, tweets.iloc[row])} instead of {value_words(player, tweets.iloc[other])}"
        words.append(f"{label} x{factors[player]:.2f}")
    return ", ".join(words) if words else "nothing the models read differs"


def gap_factors(parts, row, predicted_log, reference_log):
    return contrast.likes_factors({player: values[row] for player, values in parts.items()},
                                  predicted_log, reference_log)


# ---------------------------------------------------------------------------------- printed

def describe_one(drafted, advice, thresholds, level):
    """One draft: its likes and their range, the classes' chances in likes, and why against the
    typical tweet."""
    tweets = drafted.tweets
    tweet = tweets.iloc[0]
    print(f"\npredicted likes: {np.expm1(advice.predicted_log[0]):.0f} ({level:.0%} range: {drafted.ranges[0]})")
    print("chance of each class: " + ", ".join(f"{words} {p:.0%}" for words, p in
                                               zip(class_words(thresholds), drafted.outputs.probabilities[0])))
    typical = np.expm1(advice.typical_log)
    factors = gap_factors(advice.why, 0, advice.predicted_log[0], advice.typical_log)
    print(f"why, against a typical training tweet ({likes_words(typical)}; each input at its median over "
          "training tweets):")
    print(f"  {parts_words(advice.why, 0, factors, tweets)}")
    print(f"  (the factors multiply {typical:,.0f} up to {np.expm1(advice.predicted_log[0]):,.0f}; "
          f"posted {moment_words(tweet['date'])}, {media_words(tweet)}, "
          f"{'a reply' if tweet.get('reply_is_reply') == 1 else 'not a reply'})")


def describe_ranked(drafted, advice, chance, level):
    """Several drafts, best first, each with its number in the input, its likes and their range,
    and what sets it apart; the chance that it beats #1 (where 04 fitted one, else why not); and
    where each differs from #1, split exactly."""
    tweets = drafted.tweets
    order = np.argsort(advice.rank)
    best = order[0]
    print(f"\n{len(tweets)} drafts, ranked by predicted likes (draft: its place in your input):")
    print(f"{'rank':>5s} {'draft':>5s} {'likes':>7s} {f'{level:.0%} range':>15s} {'beats #1':>15s}  {'media':14s} "
          f"{'posted (UTC)':16s} reply  text")
    for row in order:
        tweet, beats_first = tweets.iloc[row], advice.chance[row]
        same = about_the_same(beats_first)
        rank = f"={advice.rank[best]}" if same else str(advice.rank[row])
        beats = "" if not np.isfinite(beats_first) else "about the same" if same else f"{beats_first:.0%}"
        text = " ".join(tweet["content"].split())  # one line of the table, whatever the draft's line breaks
        text = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"
        media = media_words(tweet)
        media = media if len(media) <= 14 else media[:13] + "…"
        print(f"{rank:>5s} {row + 1:5d} {np.expm1(advice.predicted_log[row]):7,.0f} {drafted.ranges[row]:>15s} "
              f"{beats:>15s}  "
              f"{media:14s} {drafts.utc(tweet['date']):%Y-%m-%d %H:%M} "
              f"{'yes' if tweet.get('reply_is_reply') == 1 else 'no':5s}  {text}")
    if not chance.get("slope"):
        print(f"(no chance to beat #1: {chance['why']})")
    print(f"where each differs from #1 (draft {best + 1}), as factors on likes:")
    for row in order[1:]:
        factors = gap_factors(advice.versus_first, row, advice.predicted_log[row], advice.predicted_log[best])
        print(f"  draft {row + 1}: {parts_words(advice.versus_first, row, factors, tweets, best)}")


def describe_week(account, predicted_log, found, start, tz):
    """When to post: the slots of the week from `start` where the account's own likes run highest
    and lowest, only where that is beyond the uncertainty (tweetlikes.timing)."""
    moments = pd.Series(pd.date_range(drafts.utc(start).ceil("h"), periods=7 * 24, freq="h"))
    effect, error, best, worst, reliable = timing.advice(found, moments)
    whose = f"{account}'s own {found.tweets:,} training tweets" if found.tweets else \
        f"all {found.all_tweets:,} training tweets of accounts with two or more (no history of this one)"
    print(f"\nwhen to post: how the likes of {whose} move with the hour and the day, around the account's usual")
    if not reliable:
        spread = np.exp(effect[best] - effect[worst])
        print("  no hour or day is reliably better in this data: " + (
            f"the best and the worst slot of the week differ by x{spread:.2f}, within the uncertainty "
            f"(x{np.exp(timing.RELIABLE_Z * np.hypot(error[best], error[worst])):.2f})" if spread > 1.005 else
            "the hours and days differ no more than chance would make them"))
        return
    at_date = found.slot(pd.Series([drafts.utc(start)]))[0][0]
    order = np.argsort(-effect, kind="stable")
    for label, rows in (("best", order[:SLOTS_SHOWN]), ("worst", order[-1:])):
        for row in rows:
            local = f" ({moments[row].tz_convert(tz):%H:%M %Z})" if tz else ""
            likes = max(0.0, np.expm1(predicted_log + effect[row] - at_date))
            print(f"  {label:5s} {moments[row]:%A %H:00} UTC{local}: about {likes_words(likes)}, "
                  f"x{np.exp(effect[row]):.2f} the account's usual (give or take x{np.exp(2 * error[row]):.2f})")


def names_lines(given, tweet, stats, prior):
    """What training knew of the drafts' account and company, as typed and as read; an unseen
    name gets the nearest training names."""
    lines = []
    for kind, column in features.HISTORY_KEYS:
        name, typed = tweet[column], given.get(column, "")
        if not name:
            lines.append(f"{column}: none given, so the drafts get a typical {column}'s history")
            continue
        shown = repr(typed) + (f" (read as {name!r})" if name != typed else "")
        found = features.key_stats(stats, kind, pd.Series([name])).iloc[0]
        if found["count"] > 0:
            lines.append(f"{column} {shown}: seen in training, {int(found['count'])} tweets, "
                         f"median {likes_words(np.expm1(found['median_log_likes']))}")
            continue
        known = stats.loc[stats["kind"] == kind, "key"].astype(str).tolist()
        near = difflib.get_close_matches(name, known, n=3, cutoff=0.7)
        lines.append(f"{column} {shown}: not seen in training" + (f" (did you mean {', '.join(near)}?)" if near else "")
                     + f"; every draft gets a typical {column}'s history (median "
                       f"{likes_words(np.expm1(prior['median_log_likes']))})")
    return lines


def setting_notes(tweets, read_columns, train_days, date_given):
    """Notes on settings that change nothing (the models never split on that input) or that
    reach beyond the training tweets (a date far past the last one)."""
    notes = []
    for column, kind in zip(features.SIGNAL_FEATURES["media"], features.MEDIA_KINDS):
        if column in tweets and (tweets[column] > 0).any() and column not in read_columns:
            notes.append(f"the models never use {kind.lower()}s (their training tweets had none, or they told "
                         f"nothing): a draft's {kind.lower()} changes nothing")
    if "reply_is_reply" in tweets and (tweets["reply_is_reply"] == 1).any() and "reply_is_reply" not in read_columns:
        notes.append("the models never use whether a tweet is a reply: a draft's reply setting (--reply, or "
                     "is_reply) changes nothing")
    days = features.parse_dates(tweets["date"])
    train_days = train_days[np.isfinite(train_days)]
    if len(train_days) and "time_hour" in read_columns:
        first, last = train_days.min(), train_days.max()
        span = max(last - first, 1.0)
        for beyond, years, edge, side in ((days > last + span, days.max() - last, last, "after the last"),
                                          (days < first - span, first - days.min(), first, "before the first")):
            if beyond.any():
                edge_date = pd.Timestamp(edge * features.SECONDS_PER_DAY, unit="s")
                notes.append(f"{'a draft goes' if beyond.sum() == 1 else 'drafts go'} out {years / 365.25:.1f} years "
                             f"{side} training tweet ({edge_date:%Y-%m-%d}), further than the training tweets span: "
                             "the time inputs are extrapolated")
    if not date_given and "time_hour" in read_columns:
        notes.append("posting time: now (set --date to choose another)")
    return notes
