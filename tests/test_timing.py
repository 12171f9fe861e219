"""--when's effects (tweetlikes.timing): within-account hour effects are found where they exist,
and neither chance nor which accounts post when is passed off as one."""
import numpy as np
import pandas as pd
import pytest

from tweetlikes import timing

WEEK = pd.Series(pd.date_range("2024-01-01", periods=7 * 24, freq="h", tz="UTC"))


def tweets(seed, hour_effect, accounts=40, per_account=150, confounded=False):
    """Accounts with their own levels posting at random hours; `hour_effect(hours)` moves every
    account's log1p(likes) alike. `confounded`: the biggest accounts post mostly at 20:00."""
    rng = np.random.default_rng(seed)
    keys, days, log_likes = [], [], []
    for k in range(accounts):
        level = rng.normal(4, 1.5)
        hours = rng.integers(0, 24, per_account)
        if confounded and level > 4:
            hours = np.where(rng.random(per_account) < 0.8, 20, hours)
        day = rng.integers(19_000, 19_700, per_account) + hours / 24
        keys += [f"account{k}"] * per_account
        days.append(day)
        log_likes.append(level + hour_effect(hours) + rng.normal(0, 0.8, per_account))
    return np.array(keys, dtype=object), np.concatenate(days), np.concatenate(log_likes)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("confounded", [False, True])
def test_no_hour_is_reliably_better_where_no_account_does_better_at_any_hour(seed, confounded):
    keys, days, log_likes = tweets(seed, lambda hours: 0 * hours, confounded=confounded)
    for account in ("account0", ""):
        effect, _, best, worst, reliable = timing.advice(timing.effects(keys, days, log_likes, account), WEEK)
        assert not reliable, (account, np.exp(effect[best] - effect[worst]))


def test_a_small_within_account_effect_is_never_reported_as_a_large_one():
    few_percent = lambda hours: 0.03 * (hours >= 18)  # noqa: E731 (3% more likes in the evening)
    for seed in (1, 2, 3):
        keys, days, log_likes = tweets(seed, few_percent, confounded=True)
        effect, _, best, worst, reliable = timing.advice(timing.effects(keys, days, log_likes, "account3"), WEEK)
        assert not reliable or effect[best] - effect[worst] < 0.1


def test_a_real_within_account_hour_effect_is_found():
    evening = lambda hours: 0.5 * ((hours >= 18) & (hours <= 20))  # noqa: E731
    keys, days, log_likes = tweets(5, evening)
    found = timing.effects(keys, days, log_likes, "account7")
    effect, error, best, worst, reliable = timing.advice(found, WEEK)
    assert reliable and 18 <= WEEK[best].hour <= 20 and not 18 <= WEEK[worst].hour <= 20
    assert found.hour[18:21].mean() - np.delete(found.hour, [18, 19, 20]).mean() == pytest.approx(0.5, abs=0.15)
    assert found.tweets == 150


def test_one_accounts_own_hour_pattern_is_its_own():
    """Only account0 does better in the morning: its advice says so, another account's does not."""
    keys, days, log_likes = tweets(9, lambda hours: 0 * hours, per_account=300)
    moments = pd.to_datetime(days * 86_400, unit="s", utc=True)
    log_likes = log_likes + np.where((keys == "account0") & (moments.hour >= 6) & (moments.hour <= 8), 1.0, 0.0)
    effect, _, best, _, reliable = timing.advice(timing.effects(keys, days, log_likes, "account0"), WEEK)
    assert reliable and 6 <= WEEK[best].hour <= 8
    assert not timing.advice(timing.effects(keys, days, log_likes, "account1"), WEEK)[4]


def test_a_tweet_never_sets_its_own_baseline():
    residuals = timing.residuals(np.array(["a", "a", "a", "b", ""], dtype=object), np.array([1.0, 2.0, 3.0, 5.0, 1.0]))
    assert residuals[:3] == pytest.approx([1 - 2.5, 2 - 2.0, 3 - 1.5])
    assert np.isnan(residuals[3:]).all()  # an account's only tweet, and a tweet with no account
