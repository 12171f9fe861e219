"""
Write a synthetic tweet table in the schema of the Adobe "behaviour simulation"
tweet dataset, so that a like-prediction pipeline can be built and tested
without the real data. Columns, in order:

    id, date, likes, content, username, media, inferred company

Usage:
    python data/make_synthetic_tweets.py [--rows 5000] [--seed 42] [--output data/train_data.csv]

The same --rows and --seed always give a byte-identical CSV.

Generating story
----------------
1. Who posts. About 60 brand accounts (adobe, photoshop, adobecare, nike,
   nikefootball, xboxsupport, ...) belong to 25 companies. Each tweet picks an
   account with probability proportional to the account's activity, so a few
   accounts (busy support desks, big brands) post far more than the rest.
   Dates are uniform over 2018-01-01 .. 2020-12-31, to the minute.
2. What it says. The account's kind (main, product, regional, sports, support)
   sets its mix of topics: product launch, giveaway, customer-support reply,
   event/livestream, tip/tutorial, holiday greeting, athlete highlight,
   apology/outage, meme. The topic picks a template whose slots are filled with
   the company's products and brand name and with generic fill-in words (the
   words, templates and emoji: synthetic_words.py, beside this file). Some
   tweets get an emoji, hashtags (company and topic) and a trailing link. Links
   and handles appear as `<hyperlink>` and `<mention>`, as in the real data;
   support replies start with `<mention>` and are often signed `^AB`. About 1.5%
   of tweets are reposts (exact copies of another text by the same account);
   with chance repeats of short generic texts, ~2.5% of texts are duplicates.
3. Media. The kind sets how likely a tweet carries media (support replies
   rarely do); about half of all tweets have one or two photos or a video.
4. Likes. On a log scale, likes add up from who posts and what they post:

       log_likes = account base level   (support desks 0.6-1.7, small brands ~2,
                                         nikefootball and netflix ~4.5)
                 + company effect       (e.g. tesla +0.8, nike +0.6, verizon -0.6)
                 + topic effect         (athlete +2.4, giveaway +2.2, launch +1.5,
                                         meme +1.1 ... apology -1.5, support -1.6)
                 + media bonus          (photo +0.7, video +1.2)
                 + noise                (normal, sd 1.4)
                 + rare viral boost     (0.4% of tweets, uniform +2 to +4.5)

       likes = max(0, round(expm1(log_likes)))

   A support desk's reply lands near 0-2 likes, a big brand's athlete video in
   the thousands. On 5,000 rows: ~20% zeros (mostly support replies), median
   in the tens, 95th percentile in the thousands, maximum in the hundreds of
   thousands. The per-account mean explains roughly 60% of the variance of
   log1p(likes); topic (visible in the words) and media explain much of the rest.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from synthetic_words import EMOJIS, FILLERS, FOLLOW_UPS, PRODUCTS, TEMPLATES

DEFAULT_ROWS = 5000
DEFAULT_SEED = 42
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "train_data.csv"
COLUMNS = ["id", "date", "likes", "content", "username", "media", "inferred company"]

FIRST_MINUTE = np.datetime64("2018-01-01T00:00", "m")
END_MINUTE = np.datetime64("2021-01-01T00:00", "m")  # exclusive

MAX_TWEET_CHARS = 280

NOISE_SD = 1.4
VIRAL_PROBABILITY = 0.004
VIRAL_BOOST_RANGE = (2.0, 4.5)
REPOST_SHARE = 0.015
SIGNATURE_PROBABILITY = 0.7  # support replies signed by an agent, e.g. "^JS"
EMOJI_PROBABILITY = 0.35
COMPANY_TAG_PROBABILITY = 0.25

PHOTO_BONUS = 0.7
VIDEO_BONUS = 1.2
VIDEO_SHARE_OF_MEDIA = 0.3
SECOND_PHOTO_SHARE = 0.15

# name, display name, hashtag, log-likes effect (products: synthetic_words.PRODUCTS)
COMPANIES = (
    ("adobe", "Adobe", "#Adobe", 0.0),
    ("nike", "Nike", "#Nike", 0.6),
    ("starbucks", "Starbucks", "#Starbucks", 0.1),
    ("microsoft", "Microsoft", "#Microsoft", 0.0),
    ("apple", "Apple", "#Apple", 0.4),
    ("google", "Google", "#Google", 0.2),
    ("amazon", "Amazon", "#Amazon", 0.0),
    ("samsung", "Samsung", "#Samsung", 0.1),
    ("sony", "PlayStation", "#PS5", 0.4),
    ("cocacola", "Coca-Cola", "#CocaCola", -0.1),
    ("pepsi", "Pepsi", "#Pepsi", -0.2),
    ("mcdonalds", "McDonald's", "#McDonalds", 0.2),
    ("adidas", "adidas", "#adidas", 0.3),
    ("puma", "PUMA", "#PUMA", -0.1),
    ("tesla", "Tesla", "#Tesla", 0.8),
    ("netflix", "Netflix", "#Netflix", 0.5),
    ("spotify", "Spotify", "#Spotify", 0.2),
    ("intel", "Intel", "#Intel", -0.2),
    ("dell", "Dell", "#Dell", -0.4),
    ("hp", "HP", "#HP", -0.4),
    ("nvidia", "NVIDIA", "#NVIDIA", 0.3),
    ("uber", "Uber", "#Uber", -0.3),
    ("redbull", "Red Bull", "#GivesYouWings", 0.3),
    ("airbnb", "Airbnb", "#Airbnb", -0.1),
    ("verizon", "Verizon", "#Verizon", -0.6),
)

# username, company, kind, base log-likes, activity (relative posting rate)
ACCOUNTS = (
    ("adobe", "adobe", "main", 2.95, 12),
    ("photoshop", "adobe", "product", 2.95, 10),
    ("illustrator", "adobe", "product", 2.45, 6),
    ("adobexd", "adobe", "product", 1.95, 5),
    ("adobecare", "adobe", "support", 1.30, 13),
    ("nike", "nike", "main", 4.20, 8),
    ("nikefootball", "nike", "sports", 4.45, 10),
    ("nikebasketball", "nike", "sports", 3.95, 8),
    ("nikerunning", "nike", "sports", 2.95, 6),
    ("nikesupport", "nike", "support", 1.00, 12),
    ("starbucks", "starbucks", "main", 3.45, 12),
    ("starbuckscares", "starbucks", "support", 1.10, 11),
    ("starbucksuk", "starbucks", "regional", 1.70, 6),
    ("starbucksindia", "starbucks", "regional", 1.95, 5),
    ("microsoft", "microsoft", "main", 3.20, 14),
    ("xbox", "microsoft", "product", 3.95, 16),
    ("xboxsupport", "microsoft", "support", 1.50, 18),
    ("windows", "microsoft", "product", 2.95, 8),
    ("microsoftteams", "microsoft", "product", 2.20, 7),
    ("applesupport", "apple", "support", 1.70, 18),
    ("applemusic", "apple", "product", 3.45, 10),
    ("appletv", "apple", "product", 2.95, 7),
    ("google", "google", "main", 3.70, 14),
    ("googlepixel", "google", "product", 2.70, 8),
    ("teamyoutube", "google", "support", 1.50, 12),
    ("amazon", "amazon", "main", 3.20, 10),
    ("amazonhelp", "amazon", "support", 0.80, 16),
    ("primevideo", "amazon", "product", 3.45, 12),
    ("samsungmobile", "samsung", "main", 3.45, 12),
    ("samsungus", "samsung", "regional", 2.45, 8),
    ("samsungsupport", "samsung", "support", 0.80, 6),
    ("playstation", "sony", "main", 4.20, 14),
    ("askplaystation", "sony", "support", 1.30, 11),
    ("playstationuk", "sony", "regional", 2.70, 5),
    ("cocacola", "cocacola", "main", 2.95, 6),
    ("pepsi", "pepsi", "main", 2.70, 6),
    ("mcdonalds", "mcdonalds", "main", 3.45, 10),
    ("mcdonaldsuk", "mcdonalds", "regional", 2.70, 8),
    ("adidas", "adidas", "main", 3.45, 8),
    ("adidasfootball", "adidas", "sports", 3.70, 10),
    ("adidasoriginals", "adidas", "product", 3.20, 7),
    ("puma", "puma", "main", 2.45, 6),
    ("pumafootball", "puma", "sports", 2.95, 7),
    ("tesla", "tesla", "main", 4.20, 4),
    ("netflix", "netflix", "main", 4.45, 16),
    ("netflixindia", "netflix", "regional", 3.20, 9),
    ("spotify", "spotify", "main", 3.45, 10),
    ("spotifycares", "spotify", "support", 1.30, 12),
    ("intel", "intel", "main", 2.45, 9),
    ("intelgaming", "intel", "product", 2.45, 5),
    ("dell", "dell", "main", 1.95, 8),
    ("dellcares", "dell", "support", 0.70, 7),
    ("hp", "hp", "main", 1.95, 7),
    ("hpsupport", "hp", "support", 0.70, 6),
    ("nvidia", "nvidia", "main", 3.20, 6),
    ("nvidiageforce", "nvidia", "product", 3.20, 10),
    ("uber", "uber", "main", 2.20, 5),
    ("uber_support", "uber", "support", 0.60, 10),
    ("redbull", "redbull", "main", 2.95, 8),
    ("redbullracing", "redbull", "sports", 3.70, 10),
    ("airbnb", "airbnb", "main", 2.45, 5),
    ("airbnbhelp", "airbnb", "support", 0.80, 6),
    ("verizon", "verizon", "main", 1.95, 6),
    ("verizonsupport", "verizon", "support", 0.60, 8),
)

# name, log-likes effect, probability of a trailing <hyperlink>, topic hashtags
# (support replies and apologies carry none)
TOPICS = (
    ("launch", 1.5, 0.6, ("#NewRelease", "#JustLaunched", "#ComingSoon", "#OutNow")),
    ("giveaway", 2.2, 0.3, ("#Giveaway", "#Contest", "#Win", "#Sweepstakes")),
    ("support", -1.6, 0.0, ()),
    ("event", 0.2, 0.6, ("#Live", "#LiveStream", "#SaveTheDate")),
    ("tips", -0.4, 0.4, ("#ProTip", "#Tutorial", "#TipTuesday", "#HowTo")),
    ("holiday", 0.9, 0.1, ("#HappyHolidays", "#Celebrate", "#SeasonsGreetings")),
    ("athlete", 2.4, 0.2, ("#GameDay", "#Matchday", "#NeverStop", "#Goals")),
    ("apology", -1.5, 0.3, ()),
    ("meme", 1.1, 0.05, ("#Mood", "#Relatable", "#MondayMood")),
)
TOPIC_NAMES = tuple(name for name, *_ in TOPICS)
TOPIC_TAG_PROBABILITY = 0.4

# topic mix per account kind, in TOPIC_NAMES order
KIND_TOPIC_MIX = {
    #             launch give  supp  event tips  holi  athl  apol  meme
    "main":     (0.26, 0.10, 0.06, 0.14, 0.12, 0.10, 0.00, 0.06, 0.16),
    "product":  (0.26, 0.08, 0.06, 0.12, 0.24, 0.06, 0.00, 0.05, 0.13),
    "regional": (0.20, 0.15, 0.06, 0.15, 0.10, 0.15, 0.00, 0.04, 0.15),
    "sports":   (0.12, 0.08, 0.00, 0.12, 0.05, 0.05, 0.50, 0.02, 0.06),
    "support":  (0.00, 0.00, 0.88, 0.00, 0.04, 0.00, 0.00, 0.08, 0.00),
}
KINDS = tuple(KIND_TOPIC_MIX)
KIND_MEDIA_PROBABILITY = {"main": 0.7, "product": 0.75, "regional": 0.6, "sports": 0.8, "support": 0.03}

FOLLOW_UP_PROBABILITY = 0.45
# agent initials that sign support replies
SIGNATURES = tuple(f"^{first}{second}" for first in "ABCDEFGHIJKLMNOPRSTW" for second in "ABCDEFGHIJKLMNOPRSTW")
MEDIA_KEY_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)
MEDIA_KEY_LENGTH = 15


def pick_from_groups(group, group_sizes, rng):
    """For each row, a uniform index into its group's slice of a flat array laid out group by group."""
    group_starts = np.cumsum(group_sizes) - group_sizes
    return group_starts[group] + (rng.random(len(group)) * group_sizes[group]).astype(np.int64)


def pick_repost_sources(account, n_accounts, rng):
    """Choose ~REPOST_SHARE of rows to repost an original (non-repost) row of the same account."""
    is_repost = rng.random(len(account)) < REPOST_SHARE
    originals = np.flatnonzero(~is_repost)
    originals = originals[np.argsort(account[originals], kind="stable")]
    originals_per_account = np.bincount(account[originals], minlength=n_accounts)
    reposts = np.flatnonzero(is_repost & (originals_per_account[account] > 0))
    return reposts, originals[pick_from_groups(account[reposts], originals_per_account, rng)]


def maybe_pick(probability, n, choices, rng):
    """Per row, an index in range(choices) with the given probability, else -1 (nothing)."""
    return np.where(rng.random(n) < probability, rng.integers(0, choices, n), -1)


def maybe_pick_from_groups(probability, group, group_sizes, rng):
    """Like pick_from_groups, but -1 (nothing) for rows that skip it or whose group is empty."""
    chosen = (rng.random(len(group)) < probability) & (group_sizes[group] > 0)
    return np.where(chosen, pick_from_groups(group, group_sizes, rng), -1)


def draw_text_choices(account_kind, company, rng):
    """Every random choice that decides a tweet's text, as one array per choice."""
    n = len(company)
    topic = np.empty(n, dtype=np.int64)
    for kind_index, kind in enumerate(KINDS):
        rows = np.flatnonzero(account_kind == kind_index)
        topic[rows] = rng.choice(len(TOPICS), size=len(rows), p=KIND_TOPIC_MIX[kind])

    templates_per_topic = np.array([len(TEMPLATES[name]) for name in TOPIC_NAMES])
    follow_ups_per_topic = np.array([len(FOLLOW_UPS[name]) for name in TOPIC_NAMES])
    tags_per_topic = np.array([len(tags) for *_, tags in TOPICS])
    link_probability = np.array([link for _, _, link, _ in TOPICS])
    products_per_company = np.array([len(PRODUCTS[name]) for name, *_ in COMPANIES])
    is_support = topic == TOPIC_NAMES.index("support")
    return {
        "topic": topic,
        "template": pick_from_groups(topic, templates_per_topic, rng),
        "follow_up": maybe_pick_from_groups(FOLLOW_UP_PROBABILITY, topic, follow_ups_per_topic, rng),
        "product": pick_from_groups(company, products_per_company, rng),
        "fillers": {slot: rng.integers(0, len(words), n) for slot, words in FILLERS.items()},
        "signature": np.where(is_support, maybe_pick(SIGNATURE_PROBABILITY, n, len(SIGNATURES), rng), -1),
        "emoji": maybe_pick(EMOJI_PROBABILITY, n, len(EMOJIS), rng),
        "topic_tag": maybe_pick_from_groups(TOPIC_TAG_PROBABILITY, topic, tags_per_topic, rng),
        # support replies carry no hashtags
        "company_tag": (rng.random(n) < COMPANY_TAG_PROBABILITY) & ~is_support,
        "link": rng.random(n) < link_probability[topic],
    }


def copy_rows(choices, targets, sources):
    """Make the text choices of `targets` equal to those of `sources` (reposts)."""
    for values in choices.values():
        if isinstance(values, dict):
            copy_rows(values, targets, sources)
        else:
            values[targets] = values[sources]


def as_objects(words):
    """Object array of strings, so that `+` concatenates element-wise."""
    return np.array(words, dtype=object)


def optional_part(picks, words):
    """' ' + words[pick] where a pick was made (>= 0), else ''."""
    return np.where(picks >= 0, " " + as_objects(words)[np.maximum(picks, 0)], "")


def render_text(choices, company):
    """Fill templates (plus follow-up) with the drawn words; append signature, emoji, hashtags, link."""
    flat_templates = as_objects([template for name in TOPIC_NAMES for template in TEMPLATES[name]])
    flat_follow_ups = [sentence for name in TOPIC_NAMES for sentence in FOLLOW_UPS[name]]
    flat_products = as_objects([product for name, *_ in COMPANIES for product in PRODUCTS[name]])
    company_tags = as_objects([tag for _, _, tag, *_ in COMPANIES])[company]
    slots = {
        "brand": as_objects([display for _, display, *_ in COMPANIES])[company],
        "tag": company_tags,
        "product": flat_products[choices["product"]],
        **{slot: as_objects(FILLERS[slot])[picks] for slot, picks in choices["fillers"].items()},
    }
    slot_names = list(slots)
    full_templates = flat_templates[choices["template"]] + optional_part(choices["follow_up"], flat_follow_ups)
    bodies = as_objects([template.format_map(dict(zip(slot_names, values)))
                         for template, *values in zip(full_templates, *slots.values())])
    flat_topic_tags = [tag for *_, tags in TOPICS for tag in tags]
    texts = (bodies + optional_part(choices["signature"], SIGNATURES) + optional_part(choices["emoji"], EMOJIS)
             + optional_part(choices["topic_tag"], flat_topic_tags)
             + np.where(choices["company_tag"], " " + company_tags, "")
             + np.where(choices["link"], " <hyperlink>", ""))
    # A long template with every extra can pass Twitter's limit; cut those few at a word boundary.
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    for row in np.flatnonzero(lengths > MAX_TWEET_CHARS):
        texts[row] = texts[row][: MAX_TWEET_CHARS + 1].rsplit(" ", 1)[0]
    return texts


def random_media_keys(n, rng):
    """Twitter-like 15-character media keys, e.g. 'EpIe6QzW8AA8o_x'."""
    key_bytes = MEDIA_KEY_ALPHABET[rng.integers(0, len(MEDIA_KEY_ALPHABET), size=(n, MEDIA_KEY_LENGTH))]
    return np.char.decode(key_bytes.view(f"S{MEDIA_KEY_LENGTH}").ravel(), "ascii").tolist()


def photo(key):
    """One snscrape-style Photo entry."""
    return (f"Photo(previewUrl='https://pbs.twimg.com/media/{key}?format=jpg&name=small', "
            f"fullUrl='https://pbs.twimg.com/media/{key}?format=jpg&name=large')")


def video(key, upload_id, seconds):
    """One snscrape-style Video entry; views stay None so media carries no hidden copy of likes."""
    return (f"Video(thumbnailUrl='https://pbs.twimg.com/ext_tw_video_thumb/{upload_id}/pu/img/{key}.jpg', "
            f"variants=[VideoVariant(contentType='video/mp4', "
            f"url='https://video.twimg.com/ext_tw_video/{upload_id}/pu/vid/1280x720/{key}.mp4?tag=10', "
            f"bitrate=2176000)], duration={seconds:.1f}, views=None)")


def draw_media(account_kind, rng):
    """Media kind per row (0 none, 1 photo, 2 video) and the snscrape-style media string."""
    n = len(account_kind)
    media_probability = np.array([KIND_MEDIA_PROBABILITY[kind] for kind in KINDS])[account_kind]
    has_media = rng.random(n) < media_probability
    is_video = rng.random(n) < VIDEO_SHARE_OF_MEDIA
    media_kind = np.where(has_media, np.where(is_video, 2, 1), 0)

    second_photo = rng.random(n) < SECOND_PHOTO_SHARE
    first_keys = random_media_keys(n, rng)
    second_keys = random_media_keys(n, rng)
    upload_ids = rng.integers(950_000_000_000_000_000, 1_344_000_000_000_000_000, n).tolist()
    seconds = np.round(rng.uniform(5, 140, n), 1).tolist()

    media = [""] * n
    for row in np.flatnonzero(media_kind == 1).tolist():
        photos = [photo(first_keys[row])] + ([photo(second_keys[row])] if second_photo[row] else [])
        media[row] = "[" + ", ".join(photos) + "]"
    for row in np.flatnonzero(media_kind == 2).tolist():
        media[row] = "[" + video(first_keys[row], upload_ids[row], seconds[row]) + "]"
    return media_kind, media


def draw_likes(account, company, topic, media_kind, rng):
    """Likes from the generating story in the module docstring."""
    n = len(account)
    account_base = np.array([base for *_, base, _ in ACCOUNTS])
    company_effect = np.array([effect for *_, effect in COMPANIES])
    topic_effect = np.array([effect for _, effect, *_ in TOPICS])
    media_bonus = np.array([0.0, PHOTO_BONUS, VIDEO_BONUS])
    went_viral = rng.random(n) < VIRAL_PROBABILITY
    log_likes = (account_base[account] + company_effect[company] + topic_effect[topic] + media_bonus[media_kind]
                 + rng.normal(0.0, NOISE_SD, n) + np.where(went_viral, rng.uniform(*VIRAL_BOOST_RANGE, n), 0.0))
    return np.clip(np.round(np.expm1(log_likes)), 0, None).astype(np.int64)


def make_tweets(n_rows, seed):
    """The whole table as a DataFrame with COLUMNS, fully determined by n_rows and seed."""
    rng = np.random.default_rng(seed)
    company_index = {name: i for i, (name, *_) in enumerate(COMPANIES)}
    kind_index = {kind: i for i, kind in enumerate(KINDS)}
    account_company = np.array([company_index[company] for _, company, *_ in ACCOUNTS])
    account_kind_of = np.array([kind_index[kind] for _, _, kind, *_ in ACCOUNTS])
    activity = np.array([rate for *_, rate in ACCOUNTS], dtype=float)

    account = rng.choice(len(ACCOUNTS), size=n_rows, p=activity / activity.sum())
    company = account_company[account]
    account_kind = account_kind_of[account]
    minutes = rng.integers(0, (END_MINUTE - FIRST_MINUTE).astype(np.int64), n_rows)
    dates = np.char.replace(np.datetime_as_string(FIRST_MINUTE + minutes, unit="s"), "T", " ")

    choices = draw_text_choices(account_kind, company, rng)
    copy_rows(choices, *pick_repost_sources(account, len(ACCOUNTS), rng))
    content = render_text(choices, company)
    media_kind, media = draw_media(account_kind, rng)
    likes = draw_likes(account, company, choices["topic"], media_kind, rng)

    usernames = np.array([username for username, *_ in ACCOUNTS], dtype=object)
    company_names = np.array([name for name, *_ in COMPANIES], dtype=object)
    return pd.DataFrame(dict(zip(COLUMNS, [np.arange(1, n_rows + 1), dates, likes, content, usernames[account],
                                           media, company_names[company]])))


def write_csv_atomically(frame, output):
    """Write next to the target, then rename, so readers never see half a file."""
    output.parent.mkdir(parents=True, exist_ok=True)
    # A plain open (not mkstemp) so the file gets the usual umask permissions, not 0600.
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as file:
            frame.to_csv(file, index=False, lineterminator="\n")
        os.replace(temporary, output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a deterministic synthetic brand-tweet CSV.")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"number of tweets (default {DEFAULT_ROWS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="CSV path (default: train_data.csv next to this script)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")

    started = time.perf_counter()
    tweets = make_tweets(args.rows, args.seed)
    write_csv_atomically(tweets, args.output)
    likes = tweets["likes"]
    median, p75, p95 = (int(likes.quantile(q, interpolation="nearest")) for q in (0.5, 0.75, 0.95))
    print(f"wrote {args.output}: {len(tweets)} rows, likes median {median} p75 {p75} p95 {p95} "
          f"max {likes.max()}, zeros {(likes == 0).mean():.1%}, {time.perf_counter() - started:.2f}s")


if __name__ == "__main__":
    main()
