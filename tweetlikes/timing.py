"""When to post (05 --when): how an account's likes move with the hour and the weekday around its
own level, not which accounts post when.

The models' time features learn both: an account that posts on Sundays and gets many likes
makes Sunday look good to every account. Here each training tweet is measured against its own
account's level (the mean log1p(likes) of the account's *other* tweets, so a tweet never sets its
own baseline), and the hour and weekday effects are the means of those residuals:

- over all accounts, shrunk towards no effect by empirical Bayes (the spread the means would show
  by chance alone is taken out of the spread they do show), so hours that differ by noise alone
  come out level;
- for one account, its own deviation from the all-account effect, shrunk the same way: an
  account with few tweets at an hour gets the all-account effect there.

A slot's effect is its hour's plus its weekday's, with a standard error; the best and the worst
slots of the week are advice only when they differ by more than RELIABLE_Z standard errors of the
difference. All of it is in UTC: the training dates are.
"""
from typing import NamedTuple

import numpy as np
import pandas as pd

from tweetlikes import features

RELIABLE_Z = 2.0  # a best-worst gap counts beyond 2 standard errors (a 95% two-sided interval)
# The hours (or weekdays) count only where their means differ beyond chance (chi-square tests of the
# residuals over all accounts, and of the account's own deviations from them), at 2.5% for each of
# the two factors, 5% for either (Bonferroni). Picking the best and the worst of 168 slots finds a
# gap in pure noise otherwise.
CHANCE_LEVEL = 0.025
FACTORS = {"hour": 24, "weekday": 7}
# An account's own spread of effects counts once it has this many tweets per hour (or weekday) on
# average; below, its deviations are shrunk by the spread all accounts show (see effects).
OWN_PATTERN_TWEETS_PER_LEVEL = 10


class Effects(NamedTuple):
    """Hour and weekday effects on log1p(likes), each with its variance, and what they rest on."""
    hour: np.ndarray
    hour_var: np.ndarray
    weekday: np.ndarray
    weekday_var: np.ndarray
    hour_chance: float     # the chance that the hour means differ this much by chance alone
    weekday_chance: float
    tweets: int           # the account's training tweets with a date (0: the all-account effects)
    all_tweets: int       # training tweets of accounts with two or more, with a date

    def slot(self, moments):
        """(effect, standard error) of each UTC moment's hour and weekday, of those whose
        differences are beyond chance (CHANCE_LEVEL); 0 for the others."""
        effect, variance = np.zeros(len(moments)), np.zeros(len(moments))
        for level, values, var, chance in ((moments.dt.hour.to_numpy(), self.hour, self.hour_var, self.hour_chance),
                                           (moments.dt.day_of_week.to_numpy(), self.weekday, self.weekday_var,
                                            self.weekday_chance)):
            if chance < CHANCE_LEVEL:
                effect, variance = effect + values[level], variance + var[level]
        return effect, np.sqrt(variance)


def residuals(keys, log_likes):
    """Each tweet's log1p(likes) less the mean of its account's other tweets; NaN for an account's
    only tweet and for tweets with no account."""
    frame = pd.DataFrame({"key": keys, "y": log_likes})
    grouped = frame.groupby("key")["y"]
    total, count = grouped.transform("sum"), grouped.transform("count")
    with np.errstate(invalid="ignore", divide="ignore"):
        others = (total - frame["y"]) / (count - 1)
    return np.where((count > 1) & (frame["key"] != ""), frame["y"] - others, np.nan)


def level_means(values, levels, size):
    """(mean, count) of `values` at each of `size` levels (NaN where there is none)."""
    count = np.bincount(levels, minlength=size).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(levels, values, minlength=size) / count, count


def chance_alone(values, levels, size):
    """The chance that `values`' means at `size` levels differ as much as they do by chance alone:
    a chi-square test of the between-level spread against the values' own variance."""
    from scipy.special import gammaincc

    means, count = level_means(values, levels, size)
    seen = count > 0
    if seen.sum() < 2 or np.var(values) == 0:
        return 1.0
    grand = np.average(means[seen], weights=count[seen])
    statistic = np.sum(count[seen] * (means[seen] - grand) ** 2) / np.var(values)
    return float(gammaincc((seen.sum() - 1) / 2, statistic / 2))


def signal_variance(deviation, noise_var, weights):
    """How much of the deviations' spread is more than noise (method of moments, never below 0)."""
    seen = np.isfinite(deviation) & np.isfinite(noise_var) & (weights > 0)
    if seen.sum() < 2:
        return 0.0
    return max(0.0, float(np.average(deviation[seen] ** 2 - noise_var[seen], weights=weights[seen])))


def shrink(deviation, noise_var, signal_var):
    """Empirical Bayes: each deviation shrunk towards 0 by how much of it noise could explain;
    returns (shrunk deviations, their posterior variances). Levels without data get 0 and the
    prior's variance."""
    seen = np.isfinite(deviation) & np.isfinite(noise_var)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(seen, signal_var / (signal_var + noise_var), 0.0)
        weight = np.nan_to_num(weight)  # no signal and no noise: nothing to say
    return np.where(seen, weight * np.nan_to_num(deviation), 0.0), np.where(seen, weight * np.nan_to_num(noise_var),
                                                                             signal_var)


def effects(keys, days, log_likes, account):
    """Effects for `account` (canonical name; "" or unseen: the all-account effects) from the
    training tweets' account keys, posting days (days since 1970, UTC) and log1p(likes).

    Each account's deviation from the all-account effect at a level is shrunk by the spread such
    deviations show across all accounts beyond their noise: estimated from every account at
    once, so a small account's few tweets per hour never make a pattern of their own."""
    keys = np.asarray(keys, dtype=object)
    days, log_likes = np.asarray(days, dtype=float), np.asarray(log_likes, dtype=float)
    dated = np.isfinite(days)
    r = residuals(keys[dated], log_likes[dated])
    usable = np.isfinite(r)
    keys, r = keys[dated][usable], r[usable]
    moments = pd.to_datetime(days[dated][usable] * features.SECONDS_PER_DAY, unit="s", utc=True)
    noise = float(np.var(r)) if len(r) > 1 else np.nan
    names, account_of = np.unique(keys, return_inverse=True) if len(keys) else (np.array([]), np.zeros(0, int))
    mine = np.flatnonzero(names == account)
    found = {}
    own_rows = account_of == mine[0] if len(mine) else np.zeros(len(r), dtype=bool)
    for factor, size in FACTORS.items():
        level = getattr(moments, "hour" if factor == "hour" else "day_of_week").to_numpy()
        means, count = level_means(r, level, size)
        with np.errstate(divide="ignore"):
            noise_var = noise / count
        centre = np.average(means[count > 0], weights=count[count > 0]) if count.any() else 0.0
        effect, variance = shrink(means - centre, noise_var, signal_variance(means - centre, noise_var, count))
        # Beyond chance over all accounts, or in this account's own deviations from them (either of two tests).
        found[f"{factor}_chance"] = min(1.0, 2 * min(
            chance_alone(r, level, size), chance_alone(r[own_rows] - effect[level[own_rows]], level[own_rows], size)))
        cell_means, cell_count = level_means(r, account_of * size + level, len(names) * size)
        deviation = cell_means - centre - np.tile(effect, len(names))
        with np.errstate(divide="ignore"):
            cell_noise = noise / cell_count
        if len(mine):
            cells = slice(mine[0] * size, (mine[0] + 1) * size)
            spread = signal_variance(deviation, cell_noise, cell_count)
            if cell_count[cells].sum() >= OWN_PATTERN_TWEETS_PER_LEVEL * size:  # enough to show a pattern of its own
                spread = max(spread, signal_variance(deviation[cells], cell_noise[cells], cell_count[cells]))
            own, own_var = shrink(deviation[cells], cell_noise[cells], spread)
            effect, variance = effect + own, variance + own_var
        found[factor], found[f"{factor}_var"] = effect - np.average(effect), variance
    return Effects(found["hour"], found["hour_var"], found["weekday"], found["weekday_var"], found["hour_chance"],
                   found["weekday_chance"], int(own_rows.sum()) if len(mine) else 0, int(len(r)))


def advice(found, moments):
    """The week's slots (UTC moments) ranked by their effect: (effects, standard errors, best
    slot, worst slot, whether the best beats the worst beyond RELIABLE_Z standard errors)."""
    effect, error = found.slot(moments)
    best, worst = int(np.argmax(effect)), int(np.argmin(effect))
    gap_error = np.hypot(error[best], error[worst])
    reliable = bool(effect[best] - effect[worst] > RELIABLE_Z * gap_error) and gap_error > 0
    return effect, error, best, worst, bool(reliable)
