"""Benchmark (not part of the test suite): how often --when names a best hour where accounts have
none (false alarms), and how often it finds one that every account has (power), on synthetic
accounts (test_timing.tweets: accounts with their own levels, noise sd 0.8 in log1p(likes),
half of the seeds with the bigger accounts posting mostly at 20:00).

Usage: python tools/bench_timing.py [--seeds 30]
"""
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]
import common  # noqa: E402
from test_timing import WEEK, tweets  # noqa: E402
from tweetlikes import timing  # noqa: E402


def named(keys, days, log_likes, account):
    """(whether a best slot is named, its hour)."""
    _, _, best, _, reliable = timing.advice(timing.effects(keys, days, log_likes, account), WEEK)
    return reliable, WEEK[best].hour


def main(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args(argv)
    alarms = [named(*tweets(seed, lambda hours: 0 * hours, accounts=20, per_account=size, confounded=seed % 2 == 0),
                    account)[0]
              for seed in range(args.seeds) for size in (60, 150, 300, 600) for account in ("account0", "account1", "")]
    print(f"no effect: a best slot named for {np.mean(alarms):.1%} of {len(alarms)} accounts (20 accounts of "
          "60-600 tweets a seed; the account's own, another's, and an unseen one's)")
    for effect in (0.1, 0.3, 0.5):
        found = [(lambda r: r[0] and 18 <= r[1] <= 20)(named(*tweets(seed, lambda h: effect * ((h >= 18) & (h <= 20)),
                                                                      accounts=20, per_account=150), account))
                 for seed in range(args.seeds // 2) for account in ("account0", "")]
        print(f"+{effect} log1p(likes) at 18-20 UTC for every account: found for {np.mean(found):.0%} of {len(found)}")


if __name__ == "__main__":
    main()
