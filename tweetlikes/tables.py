"""The tables the stages read: the user's CSV or .xlsx export (read_table, with its likes cleaned
and refused ones counted), and 01's classed CSV, history statistics and 02's embeddings as later
stages read them, each checked against the record of the stage that wrote it. Also the texts
that 02 embeds for each row, and their fingerprint.
"""
import csv
import hashlib
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

import common
from tweetlikes import features

# The tweet's text and the two names beside it: read as text, "" where missing, and what the
# combined embeddings embed. The company column is called `inferred company` in the Adobe data,
# `company` elsewhere.
CONTENT_AND_NAME_COLUMNS = ("content", "company", "username")
COMPANY_ALIASES = ("company", "inferred company")
COMBINED_TEMPLATE = "{content} | company: {company} | user: {username}"

# A like is one account's click: 1e10 is more than there are people on Earth, and the most-liked
# tweets ever have about 1e7. A bigger count is a broken cell, not a tweet (and 1e19 would
# overflow int64 on its way into the classed CSV).
MAX_LIKES = 1e10

# Reading the user's file. Everything as text, so ids and usernames like "007" pass through
# unchanged; only empty cells are missing ("NA" is a username).
AS_TEXT = {"dtype": str, "keep_default_na": False, "na_values": [""]}
UNNAMED = re.compile(r"Unnamed: \d+")  # what pandas names a column whose header cell is empty
# A common export habit: a delimiter at the end of every line, an empty column the header may not
# even name. It is dropped, and the receipt says so.
TRAILING_DELIMITER = "dropped the empty, unnamed last column (a trailing delimiter on every line)"
# Handles are case-insensitive on the platform, and people type them as shown (`BillBrowder`,
# `@billbrowder`): the models read every account and company name in one form, lower case without
# a leading @. 01 records the form in its thresholds record, so files of an older 01 are refused.
NAME_FORM = "NFKC, invisible characters dropped, casefold, leading @ dropped"
INVISIBLE = "[\u200b-\u200f\u2060\ufeff]"  # zero-width spaces and joiners, direction marks: pasted, never typed
NAME_COLUMNS = ("username", "company")
# The delimiters an export may use, each tried on the header: the one that finds the required
# columns is the file's (Excel writes ';' where the decimal mark is a comma).
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# How far down a header may sit under titles or notes an export puts above the table.
HEADER_SEARCH_ROWS = 20
# 05's columns: a file that has them is a predictions file, not tweets.
PREDICTION_COLUMNS = ("predicted_class", *(f"probability_{name}" for name in common.CLASS_NAMES), "predicted_likes",
                      "likes_low", "likes_high", "expected_likes")


def read_table(path, required=("content", "username", "likes"), sheet=None, notes=None):
    """Read a CSV or .xlsx export: (table, original). `table` has the company column named
    `company` and the text columns as plain stripped strings (missing -> ""); `original` is the
    file as read, every cell as text, for outputs that must give the user's columns back
    unchanged. `required` may omit `likes` for new tweets; `sheet` names a workbook's sheet.
    What the receipt should say about how the file was read (a tab-separated file, a dropped
    empty column, rows a stray quote may have swallowed) is appended to `notes`, a list."""
    path = Path(path)
    notes = [] if notes is None else notes
    if not path.is_file():
        common.fail(f"input file not found: {path}")
    if path.suffix.lower() == ".xls":
        common.fail(f"{path} is a legacy Excel file (.xls), which this pipeline does not read; "
                    "save it as .xlsx or as UTF-8 CSV")
    wanted = (*required, COMPANY_ALIASES)
    try:
        if path.suffix.lower() == ".xlsx":
            original = _read_sheet(path, sheet, wanted, notes)
        elif sheet is not None:
            common.fail(f"--sheet names a sheet of an .xlsx workbook; {path} is not one")
        else:
            original = _read_csv(path, wanted, notes)
    except pd.errors.EmptyDataError:
        common.fail(f"{path} is empty: expected a header row and tweets")
    except UnicodeDecodeError as error:
        common.fail(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                    "re-save it as UTF-8 CSV")
    except (pd.errors.ParserError, ValueError, OSError, zipfile.BadZipFile) as error:
        common.fail(f"could not read {path}: {' '.join(str(error).split())}")
    # A trailing delimiter on every line makes a last column with no name and no values.
    unnamed = [column for column in original.columns
               if UNNAMED.fullmatch(str(column)) and original[column].isna().all()]
    if unnamed:
        notes.append(TRAILING_DELIMITER if unnamed == [original.columns[-1]] else
                     f"dropped {len(unnamed)} columns with no name and no values: {unnamed}")
        original = original.drop(columns=unnamed)
    table = original.copy()
    table.columns = [str(column).strip() for column in table.columns]
    if "company" not in table.columns and "inferred company" in table.columns:
        table = table.rename(columns={"inferred company": "company"})
    missing = [c for c in (*required, "company") if c not in table.columns]
    if missing:
        common.fail(f"{path} lacks column(s) {missing}; found {list(table.columns)} "
                    f"(the company column may be named {' or '.join(map(repr, COMPANY_ALIASES))})")
    if table.empty:
        common.fail(f"{path} has a header but no rows")
    for column in CONTENT_AND_NAME_COLUMNS:
        table[column] = table[column].fillna("").astype(str).str.strip()
    return canonical_names(table).reset_index(drop=True), original.reset_index(drop=True)


def canonical_names(table):
    """`table` with its account and company names in NAME_FORM, as the models read them."""
    return table.assign(**{column: name_key(table[column]) for column in NAME_COLUMNS if column in table.columns})


def name_key(names):
    """Names (a Series of text) in NAME_FORM: `@BillBrowder`, `billbrowder`, fullwidth
    `Ｂｉｌｌｂｒｏｗｄｅｒ` and a pasted one with a zero-width space are one account."""
    folded = names.str.normalize("NFKC").str.replace(INVISIBLE, "", regex=True)
    return folded.str.strip().str.lstrip("@").str.strip().str.casefold()


def _read_sheet(path, sheet, wanted, notes):
    """One sheet of a workbook: the one named, or the only one (never a guess among several), read
    from its header row, the first that names the `wanted` columns (titles above it are said)."""
    _check_workbook(path)
    with pd.ExcelFile(path) as book:
        names = book.sheet_names
        if sheet is not None and sheet not in names:
            common.fail(f"{path} has no sheet {sheet!r}; its sheets are {names}")
        if sheet is None and len(names) > 1:
            common.fail(f"{path} has {len(names)} sheets, {names}; name the one to read with --sheet")
        sheet = sheet if sheet is not None else names[0]
        top = pd.read_excel(book, sheet_name=sheet, header=None, nrows=HEADER_SEARCH_ROWS, **AS_TEXT)
        rows = [[str(cell) for cell in row if pd.notna(cell)] for row in top.itertuples(index=False)]
        header = header_row(rows, wanted) or 0
        if header:
            notes.append(f"read from row {header + 1}, the first that names the columns (the {header} row(s) above "
                         "it skipped)")
        _refuse_doubled(path, rows[header] if rows else [])
        return pd.read_excel(book, sheet_name=sheet, header=header, **AS_TEXT)


def _check_workbook(path):
    """Refuse a file named .xlsx that is not a workbook, saying what it is and what to do."""
    if zipfile.is_zipfile(path):
        return
    start = path.read_bytes()[:4096]
    if start.startswith(bytes.fromhex("d0cf11e0a1b11ae1")):  # OLE2: Excel 97-2003 under a new name
        common.fail(f"{path} is a legacy Excel file (.xls) named .xlsx; save it as .xlsx or as UTF-8 CSV")
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(start) - 4:  # not just a character cut at the end of the sample
            common.fail(f"could not read {path}: it is not an Excel workbook; save it from Excel as .xlsx or as "
                        "UTF-8 CSV")
    common.fail(f"could not read {path}: it is text, not an Excel workbook (a CSV named .xlsx?); rename it to "
                f"{path.with_suffix('.csv').name}")


def named(row, wanted):
    """How many of the `wanted` columns (a name, or a tuple of names any of which will do) a row of
    cells names."""
    cells = {str(cell).strip() for cell in row}
    return sum(bool(cells & ({name} if isinstance(name, str) else set(name))) for name in wanted)


def header_row(rows, wanted):
    """The first of `rows` (lists of cells) that names every `wanted` column; None if none does."""
    return next((number for number, row in enumerate(rows) if named(row, wanted) == len(wanted)), None)


def _refuse_doubled(path, header):
    """A header naming a column twice (pandas would read the second as `content.1`)."""
    names = [cell.strip() for cell in header if cell.strip()]
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        common.fail(f"{path} has more than one column named {doubled} once surrounding spaces are removed "
                    f"({[cell for cell in header if cell.strip() in doubled]}); rename or drop the extra one")


def sniff_csv(path, wanted):
    """(delimiter, header cells) of a CSV: the delimiter among DELIMITERS that splits the first line
    into the `wanted` columns, or into most of them (a comma on a tie; a tab when the line has tabs
    and no commas and names none). A header below the first line is refused, naming its line (the
    lines above it are an export's titles or notes, to delete), and so is one naming a column twice."""
    with open(path, encoding="utf-8-sig", newline="") as handle:  # utf-8-sig strips a byte-order mark
        lines = [line for line, _ in zip(handle, range(HEADER_SEARCH_ROWS))]
    if not lines:
        raise pd.errors.EmptyDataError
    found = {sep: header_row([_cells(line, sep) for line in lines], wanted) for sep in DELIMITERS}
    later = sorted((line, sep) for sep, line in found.items() if line)
    if later and 0 not in found.values():
        line, sep = later[0]
        common.fail(f"{path}: the columns are named on line {line + 1}, not on the first ({DELIMITERS[sep]}-"
                    f"separated); delete the {line} line(s) above that header (an export's titles or notes)")
    sep = max(DELIMITERS, key=lambda sep: named(_cells(lines[0], sep), wanted))
    if not named(_cells(lines[0], sep), wanted):
        sep = "\t" if "\t" in lines[0] and "," not in lines[0] else ","
    _refuse_doubled(path, _cells(lines[0], sep))
    return sep, _cells(lines[0], sep)


def _read_csv(path, wanted, notes):
    """A CSV (or semicolon-, tab- or pipe-separated) file read exactly as its header says: a row with
    more cells than the header is refused, naming its line, never read as a shifted table."""
    sep, header = sniff_csv(path, wanted)
    if sep != ",":
        notes.append(f"read as {DELIMITERS[sep]}-separated (the header's columns are separated by {sep!r})")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        handle.readline()
        first_row = handle.readline()
    width = len(header)
    # A trailing delimiter on every row: one empty cell more than the header, which pandas drops.
    trailing = len(_cells(first_row, sep)) == width + 1 and _cells(first_row, sep)[-1] == ""
    try:
        # index_col=False: a row with one cell more than the header never turns the first column
        # into the index (which shifts every column by one); a cell more on a later row is a
        # ParserError, and data pandas would drop is a ParserWarning, an error here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            original = pd.read_csv(path, encoding="utf-8-sig", sep=sep, index_col=False, **AS_TEXT)
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        long_row = _first_long_row(path, sep, width, trailing)
        if long_row is None:
            raise
        common.fail(f"{path}: the row on line {long_row[0]} has {long_row[1]} cells, but the header names "
                    f"{width} columns; remove the extra cells (or quote the cell that holds a delimiter) so "
                    "that no column shifts")
    if trailing:
        notes.append(TRAILING_DELIMITER)
    notes.extend(_swallowed_rows(original, sep))
    return original


def _cells(line, sep):
    return next(csv.reader([line], delimiter=sep), [])


def _first_long_row(path, sep, width, trailing):
    """(line, cells) of the first row with cells beyond the header's `width` (only an empty one
    allowed when every row has one), by the csv module: only read on the way to an error."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=sep)
            next(reader, None)
            while True:
                line = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return None
                if len(row) > width + trailing or any(row[width:]):
                    return line, len(row)
    except csv.Error:  # a cell beyond the csv module's limit: say what pandas said
        return None


def _swallowed_rows(original, sep):
    """A warning, if cells hold lines with a whole row's delimiters: a quote that opens a cell and
    never closes reads the rows after it into that cell, and they vanish from the count."""
    width = len(original.columns)
    cells, lines, first = 0, 0, None
    for column in original.columns:
        text = original[column].dropna()
        text = text[text.str.contains("\n", regex=False)]
        shaped = text.str.split("\n").map(lambda parts: sum(part.count(sep) >= width - 1 for part in parts))
        shaped = shaped[shaped > 0]
        cells, lines = cells + len(shaped), lines + int(shaped.sum())
        if len(shaped) and (first is None or shaped.index[0] < first[0]):
            first = (shaped.index[0], column)
    if not cells:
        return []
    row, column = first
    # The row's first line: the header, the rows before it, and the line breaks inside their cells.
    line = 2 + row + sum(int(original[c].iloc[:row].dropna().str.count("\n").sum()) for c in original.columns)
    return [f"warning: {cells} cell(s) hold {lines} line(s) shaped like whole rows (the first in `{column}` of the "
            f"row on line {line}): a quote that never closes may have swallowed rows; check the file's quoting"]


def made_by_pipeline(columns):
    """What a table with these columns is, if this pipeline wrote it (05's predictions, 01's classed
    CSV), so that it is never taken for the tweets it was made from; None for any other table."""
    if set(PREDICTION_COLUMNS) & set(columns):
        return "05's predictions file (it has predicted_class, predicted_likes, ...)"
    if {"split", "popularity_class", *features.HISTORY_FEATURES} <= set(columns):
        return f"01's own output (the {common.CLASSED_CSV} it writes: it has split, popularity_class, the history ...)"
    return None


def clean_likes(likes):
    """Likes as float; missing, text, negative and too large (> MAX_LIKES, or infinite) counts
    become NaN (the caller decides)."""
    numeric = pd.to_numeric(likes, errors="coerce").astype(float)
    return numeric.where((numeric >= 0) & (numeric <= MAX_LIKES))


def bad_likes(likes):
    """Why clean_likes refuses the values it refuses, counted, as "2 missing, 1 negative"."""
    numeric = pd.to_numeric(likes, errors="coerce").astype(float)
    reasons = {"missing": likes.isna(), "not a number": likes.notna() & numeric.isna(),
               "negative": numeric < 0, f"above {MAX_LIKES:.0e} or infinite": numeric > MAX_LIKES}
    return ", ".join(f"{int(rows.sum())} {reason}" for reason, rows in reasons.items() if rows.any())


def combined_texts(table):
    return [COMBINED_TEMPLATE.format(content=c, company=o, username=u)
            for c, o, u in zip(table["content"], table["company"], table["username"])]


def texts_fingerprint(texts):
    """Order-sensitive hash of a list of texts: the embeddings' link to the rows they encode."""
    return _hash_texts(hashlib.sha256(), texts).hexdigest()


def _hash_texts(digest, texts):
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest


def embedded_texts(kind, table):
    """The texts 02 encodes into embeddings_{kind}.npy, one per row of `table`."""
    return list(table["content"]) if kind == "content" else combined_texts(table)


def load_classed(columns=None):
    """The classed CSV written by 01 (only `columns` of it, when given), with its thresholds,
    checked as check_classed checks them."""
    info = check_classed()
    if columns is None:
        return _typed(_read_classed()), info
    # A chunk at a time: every cell is text until _typed converts it, and text takes far more
    # memory than the float it becomes.
    return pd.concat(classed_chunks(columns), ignore_index=True), info


def check_classed():
    """01's thresholds record, checked against the fingerprints 01 recorded of the classed CSV and
    of history_stats.csv (so a half-finished 01 run is never used)."""
    common.require([common.CLASSED_CSV, common.THRESHOLDS_JSON, common.HISTORY_CSV])
    info = common.read_json(common.THRESHOLDS_JSON)
    common.check_fields(common.THRESHOLDS_JSON, info, {
        "thresholds": lambda v: isinstance(v, list) and len(v) == 2 and all(map(common.is_number, v)),
        "history_prior": lambda v: isinstance(v, dict) and all(common.is_number(v.get(k)) for k in
                                                               ("mean_log_likes", "median_log_likes")),
        "signal_groups": lambda v: isinstance(v, list) and set(v) <= set(features.SIGNAL_FEATURES),
        "name_form": lambda v: v == NAME_FORM,
        "class_counts": lambda v: isinstance(v, dict) and all(isinstance(v.get(name), dict) and
                                                              isinstance(v[name].get("train"), int) and
                                                              isinstance(v[name].get("test"), int)
                                                              for name in common.CLASS_NAMES)})
    for path, key in ((common.CLASSED_CSV, "classed_csv_sha256"), (common.HISTORY_CSV, "history_stats_sha256")):
        if info.get(key) != common.file_sha256(path):
            common.fail(f"{path} is not the file {common.THRESHOLDS_JSON} was written with; rerun 01_create_classes.py")
    return info


# Rows of the classed CSV parsed at a time where the whole table is not needed. Every cell is a Python
# string until typed (about 60 bytes): 10,000 rows of 05's ~40 columns are ~25 MB at a time.
CHUNK_ROWS = 10_000


def classed_chunks(columns):
    """The classed CSV's `columns`, typed as load_classed types them, CHUNK_ROWS rows at a time
    (read after check_classed has checked the file)."""
    return map(_typed, _read_classed(columns, CHUNK_ROWS))


def _read_classed(columns=None, chunk_rows=None):
    """The classed CSV's `columns` (all by default), every cell as text (empty -> missing); with
    `chunk_rows`, an iterator of frames of that many rows."""
    try:
        return pd.read_csv(common.CLASSED_CSV, usecols=columns, chunksize=chunk_rows, dtype=str, keep_default_na=False,
                           na_values=[""])
    except ValueError as error:  # a column missing: the file matches its record, but an older 01 wrote it
        common.fail(f"{common.CLASSED_CSV} is not what this version of 01_create_classes.py writes ({error}); rerun it")


def _typed(table):
    """The classed CSV's cells as 02-05 use them: texts with "" for missing, likes and the feature
    columns as float, the class as int; for the columns `table` has."""
    numbers = ["likes", *features.feature_columns(features.FEATURE_GROUPS)]
    for column in table.columns:
        if column in CONTENT_AND_NAME_COLUMNS:
            table[column] = table[column].fillna("")
        elif column in ("popularity_class", "tweet_group"):
            table[column] = table[column].astype(int)
        elif column in numbers:
            table[column] = table[column].astype(float)
    return table


def classed_fingerprints(kinds):
    """texts_fingerprint of each kind's embedded_texts over the classed CSV, as load_embeddings
    checks them, read CHUNK_ROWS rows at a time: the texts are most of the file, and 03b and 04
    need them for nothing else."""
    return classed_pass(kinds, [], lambda chunk: None)[0]


def classed_pass(kinds, columns, keep):
    """One pass over the classed CSV's texts and `columns`, CHUNK_ROWS rows at a time (each chunk
    indexed by its rows' places in the file): the fingerprint of each of `kinds`' texts (as
    classed_fingerprints) and keep(chunk) of every chunk, so no column is held whole unless kept."""
    digests, kept = {kind: hashlib.sha256() for kind in kinds}, []
    for chunk in classed_chunks(list(dict.fromkeys([*CONTENT_AND_NAME_COLUMNS, *columns]))):
        for kind, digest in digests.items():
            _hash_texts(digest, embedded_texts(kind, chunk))
        kept.append(keep(chunk))
    return {kind: digest.hexdigest() for kind, digest in digests.items()}, kept


def load_history_stats():
    """history_stats.csv (01): per-key count, sum and median of log1p(likes), first posting day,
    mean content length."""
    stats = pd.read_csv(common.HISTORY_CSV, dtype={"key": str}, keep_default_na=False, na_values={"first_day": [""]})
    if list(stats.columns) != features.STATS_COLUMNS:
        common.fail(f"{common.HISTORY_CSV} has columns {list(stats.columns)}, not this version's "
                    f"{features.STATS_COLUMNS}; rerun {common.maker(common.HISTORY_CSV)}")
    return stats


def load_embeddings(kind, texts_sha256, rows):
    """Memory-map embeddings_{kind}.npy and check that it is the file 02 recorded (its sha256) and
    encodes exactly the texts of the classed CSV, of which `texts_sha256` is the fingerprint
    (classed_fingerprints), one row for each of its `rows` rows."""
    path = common.EMBEDDINGS_CONTENT if kind == "content" else common.EMBEDDINGS_COMBINED
    common.require([path, common.EMBEDDINGS_META])
    meta = common.read_json(common.EMBEDDINGS_META).get(kind, {})
    if not {"texts_sha256", "npy_sha256", "model", "mode", "precision", "dim"} <= meta.keys():
        common.fail(f"{common.EMBEDDINGS_META} lacks a complete record of {path} (an older or damaged file); "
                    "rerun 02_generate_embeddings.py")
    if meta["texts_sha256"] != texts_sha256:
        common.fail(f"{path} was made from other texts than {common.CLASSED_CSV} holds now; "
                    "rerun 02_generate_embeddings.py")
    if meta["npy_sha256"] != common.file_sha256(path):
        common.fail(f"{path} is not the file {common.EMBEDDINGS_META} records (copied from another run, or cut short); "
                    "rerun 02_generate_embeddings.py")
    try:
        matrix = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as error:  # a truncated or overwritten file
        common.fail(f"{path} is damaged ({error}); rerun 02_generate_embeddings.py")
    if matrix.shape != (rows, meta["dim"]):
        common.fail(f"{path} has shape {matrix.shape}, expected ({rows}, {meta['dim']}); "
                    "rerun 02_generate_embeddings.py")
    return matrix, meta

