"""Drafts from the terminal (05 --text, --drafts): the settings they carry and the rows they
become (what 05 says of them is tweetlikes.advice).

A draft is more than its words: its media (`--media photo,video`), when it goes out (`--date`,
now by default) and whether it is a reply (`--reply`) feed the same signal groups as a tweet of
the training file, in the same columns (media as Adobe's `[Photo(...)]` lists).
"""
import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

import common
from tweetlikes import features, tables

MEDIA_NAMES = {kind.lower(): kind for kind in features.MEDIA_KINDS}  # --media words, Adobe's names
DRAFT_COLUMNS = ("content", "media", "date", "is_reply")  # what a --drafts CSV may carry per draft


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


def parse_zone(name):
    """--tz as a time zone, refused in one line unless the system's zone database knows it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        common.fail(f"--tz {name!r}: not a time zone this system knows; use an IANA name such as Europe/Berlin")


def utc(text):
    """A draft's time (ISO text, UTC unless it says) as a UTC timestamp."""
    moment = pd.Timestamp(text)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def check_week(start):
    """Refuse a --when week from `start` (ISO text, as parse_date checked it) that runs past the last
    date the signals can read: those hours would be scored as if their time were unknown."""
    first = utc(start)
    if first > features.DATE_RANGE[1] - timedelta(days=7):
        last = f"{features.DATE_RANGE[1]:%Y-%m-%d %H:%M}"
        common.fail(f"--when scores the week from --date {start}, which runs past {last}, the last time the models "
                    "can read; give an earlier --date")


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_drafts(path):
    """The drafts of --drafts FILE: a CSV with a `content` column (and, per draft, any of
    DRAFT_COLUMNS), whatever its suffix, or any other text file with one draft per non-empty line."""
    path = Path(path)
    if not path.is_file():
        common.fail(f"--drafts {path}: {'it is a folder' if path.is_dir() else 'file not found'}")
    try:
        if path.suffix.lower() == ".csv" or has_draft_header(path):
            sep, _ = tables.sniff_csv(path, ("content",))  # its delimiter; a column named twice refused
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
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


def has_draft_header(path):
    """Whether the file's first line is a drafts CSV header: `content` and other DRAFT_COLUMNS,
    separated by any of the delimiters an input may use (tables.DELIMITERS)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        line = handle.readline()
    headers = [{cell.strip() for cell in next(csv.reader([line], delimiter=sep), [])} for sep in tables.DELIMITERS]
    return any("content" in cells and cells <= set(DRAFT_COLUMNS) for cells in headers)


def parse_reply(text):
    """A --drafts `is_reply` cell, checked as the reply signal reads it."""
    if text.lower() not in features.TRUE_WORDS | features.FALSE_WORDS:
        common.fail(f"--drafts is_reply {text!r}: expected one of true/false, yes/no, 1/0")
    return text


# How a --drafts CSV cell is read: media as words (photo,video) or Adobe's [Photo(...)] list.
CELL_PARSERS = {"media": lambda cell: cell if cell.startswith("[") else parse_media(cell, "--drafts media"),
                "date": lambda cell: parse_date(cell, "--drafts date"), "is_reply": parse_reply}


class Drafts(NamedTuple):
    """Drafts as 05's command line gives them: each one's text, a --drafts CSV's own columns, and
    what they all share unless that CSV says otherwise."""
    source: str        # how they were given: "--text" or "--drafts FILE"
    texts: list
    per_draft: object  # the --drafts CSV (read_drafts), or None
    username: str
    company: str
    media: str         # Adobe's form, "[Photo()]" (parse_media), or ""
    date: str          # ISO 8601 (parse_date): now unless given
    date_given: bool
    reply: bool

    @property
    def dated(self):
        """Whether every draft's time was given, on the command line or in its own cell."""
        return self.date_given or (self.per_draft is not None and "date" in self.per_draft
                                   and self.per_draft["date"].str.strip().ne("").all())


def rows_of(drafts):
    """The drafts as input rows, each with the account, company, media, time and reply flag given
    on the command line unless its --drafts CSV row carries its own."""
    rows = pd.DataFrame({"content": list(drafts.texts), "username": drafts.username, "company": drafts.company,
                         "media": drafts.media, "date": drafts.date, "is_reply": "true" if drafts.reply else "false"})
    for column in DRAFT_COLUMNS[1:]:
        if drafts.per_draft is not None and column in drafts.per_draft.columns:
            given = drafts.per_draft[column].str.strip().map(lambda cell: CELL_PARSERS[column](cell) if cell else "")
            rows[column] = np.where(given != "", given, rows[column])
    return rows
