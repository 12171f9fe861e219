"""tweetlikes/tables.py: reading the user's CSV or .xlsx (each problem a one-line error, the
company column under either name), cleaning likes, the texts 02 embeds and their fingerprint, and
the classed CSV, history stats and embeddings as later stages read them, refused when stale."""
import io
import json

import numpy as np
import pandas as pd
import pytest

import common
from conftest import expect_error, run, sample, write_csv
from tweetlikes import features, tables


# ------------------------------------------------------------------------------- reading input

def test_missing_empty_and_header_only_inputs(workdir):
    expect_error("input file not found: nowhere.csv", "01_create_classes", "--input", "nowhere.csv")
    write_csv(workdir / "empty.csv", "")
    expect_error("is empty", "01_create_classes", "--input", "empty.csv")
    write_csv(workdir / "header.csv", "id,likes,content,username,company\n")
    expect_error("has a header but no rows", "01_create_classes", "--input", "header.csv")


def test_missing_column_is_named_with_what_was_found(workdir):
    write_csv(workdir / "no_company.csv", "likes,content,username\n1,hi,bob\n")
    message = expect_error("lacks column(s) ['company']", "01_create_classes", "--input", "no_company.csv")
    assert "found ['likes', 'content', 'username']" in message and "inferred company" in message


def test_not_utf8_is_a_clear_error(workdir):
    write_csv(workdir / "latin1.csv", "likes,content,username,company\n1,café ñ,bob,acme\n", encoding="latin-1")
    expect_error("is not UTF-8", "01_create_classes", "--input", "latin1.csv")


def test_broken_spreadsheet_is_a_clear_error(workdir):
    write_csv(workdir / "broken.xlsx", "this is not a spreadsheet")
    expect_error("could not read broken.xlsx", "01_create_classes", "--input", "broken.xlsx")


def test_legacy_excel_is_refused_with_the_fix(workdir):
    (workdir / "old.xls").write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504))  # an OLE2 header
    expect_error("legacy Excel file (.xls), which this pipeline does not read; save it as .xlsx",
                 "01_create_classes", "--input", "old.xls")


def test_columns_equal_once_stripped_are_refused(workdir):
    write_csv(workdir / "doubled.csv", "likes,content,content ,username,company\n1,a,b,bob,acme\n")
    expect_error("more than one column named ['content']", "01_create_classes", "--input", "doubled.csv")


def test_bom_xlsx_and_inferred_company_give_the_same_classes(small_csv, workdir):
    tweets = sample(small_csv)
    tweets.loc[:9, "username"] = "NA"  # a name, not a missing value, in every format (read in lower case)
    tweets.to_csv(workdir / "plain.csv", index=False)
    write_csv(workdir / "bom.csv", (workdir / "plain.csv").read_text(), encoding="utf-8-sig")
    tweets.rename(columns={"inferred company": "company"}).to_excel(workdir / "sheet.xlsx", index=False)
    results = []
    for name in ("plain.csv", "bom.csv", "sheet.xlsx"):
        run("01_create_classes", "--input", name)
        results.append(pd.read_csv(common.CLASSED_CSV, keep_default_na=False)[
            ["id", "username", "company", "likes", "popularity_class", "split"]])
    assert (results[2]["username"].head(10) == "na").all()
    pd.testing.assert_frame_equal(results[0], results[1])
    pd.testing.assert_frame_equal(results[0], results[2])


def test_company_column_name_is_accepted(small_csv, workdir):
    tweets = pd.read_csv(small_csv, dtype=str, keep_default_na=False).rename(columns={"inferred company": "company"})
    tweets.to_csv(workdir / "renamed.csv", index=False)
    run("01_create_classes", "--input", "renamed.csv")
    classed = pd.read_csv(workdir / common.CLASSED_CSV, dtype=str, keep_default_na=False)
    assert "company" in classed.columns and "inferred company" not in classed.columns
    # The column was read as the company: its values came through, and the company history
    # features know the companies (an unread column would give every row the prior).
    assert classed["company"].tolist() == tweets["company"].str.strip().tolist()
    assert (classed["company"] != "").mean() > 0.9
    prior = json.loads((workdir / common.THRESHOLDS_JSON).read_text())["history_prior"]
    company_count = classed["company_log_count"].astype(float)
    assert (company_count > 0).mean() > 0.9
    assert (classed["company_median_log_likes"].astype(float) != pytest.approx(prior["median_log_likes"])).any()
    assert classed["company_median_log_likes"].nunique() > 1


def test_likes_are_cleaned_and_the_refused_ones_counted():
    likes = pd.Series(["3", "lots", "-1", None, "1e11", "inf", "2.5", "0"], dtype=object)
    cleaned = tables.clean_likes(likes)
    assert cleaned.fillna(-1).tolist() == [3.0, -1, -1, -1, -1, -1, 2.5, 0.0]
    assert tables.bad_likes(likes) == "1 missing, 1 not a number, 1 negative, 2 above 1e+10 or infinite"
    assert tables.clean_likes(pd.Series([str(tables.MAX_LIKES)])).tolist() == [tables.MAX_LIKES]


# ---------------------------------------------------------------------------- texts and tables

def test_combined_texts_and_their_fingerprint():
    table = pd.DataFrame({"content": ["Hi there", ""], "company": ["acme", ""], "username": ["bob", "amy"]})
    assert tables.combined_texts(table) == ["Hi there | company: acme | user: bob", " | company:  | user: amy"]
    assert tables.embedded_texts("content", table) == ["Hi there", ""]
    assert tables.embedded_texts("combined", table) == tables.combined_texts(table)
    fingerprint = tables.texts_fingerprint
    assert fingerprint(["a", "b"]) == fingerprint(["a", "b"]) != fingerprint(["b", "a"])  # order matters
    assert fingerprint(["ab"]) != fingerprint(["a", "b"]) != fingerprint(["a", "b", ""])  # texts are delimited


def test_the_classed_csv_streamed_in_chunks_is_the_classed_csv(small_csv, workdir, monkeypatch):
    sample(small_csv, rows=100).to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv")
    table, info = tables.load_classed()
    assert info["rows"] == len(table) == 100 and table["popularity_class"].dtype == int
    assert table["likes"].dtype == float and table["company"].map(type).eq(str).all()
    monkeypatch.setattr(tables, "CHUNK_ROWS", 7)  # 15 chunks, the last one short
    columns = ["split", "likes", *features.HISTORY_FEATURES]
    chunked, _ = tables.load_classed(columns)
    pd.testing.assert_frame_equal(chunked[columns], table[columns])  # in the file's column order
    assert tables.classed_fingerprints(["content", "combined"]) == {
        kind: tables.texts_fingerprint(tables.embedded_texts(kind, table)) for kind in ("content", "combined")}


# ------------------------------------------------------------------------- stale and edited

@pytest.mark.slow
def test_edited_classed_csv_is_caught(pipeline_copy):
    table = pd.read_csv(common.CLASSED_CSV, dtype=str, keep_default_na=False)
    table.loc[0, "split"] = "test" if table.loc[0, "split"] == "train" else "train"
    table.to_csv(common.CLASSED_CSV, index=False)
    expect_error("rerun 01_create_classes.py", "03b_train_classifier_improved")


@pytest.mark.slow
def test_new_texts_make_embeddings_stale(small_csv, pipeline_copy):
    tweets = pd.read_csv(small_csv, keep_default_na=False)
    tweets.loc[5, "content"] = "an edited tweet"
    tweets.to_csv("edited.csv", index=False)
    run("01_create_classes", "--input", "edited.csv")
    expect_error("rerun 02_generate_embeddings.py", "03b_train_classifier_improved")
    expect_error("rerun 02_generate_embeddings.py", "04_train_regressors")


@pytest.mark.slow
def test_history_stats_of_another_run_of_01_are_refused(small_csv, pipeline_copy, workdir):
    before = (pipeline_copy / common.HISTORY_CSV).read_bytes()
    run("01_create_classes", "--input", small_csv, "--seed", "7")
    (pipeline_copy / common.HISTORY_CSV).write_bytes(before)  # as if 01 had died before its last write
    expect_error(f"{common.HISTORY_CSV} is not the file {common.THRESHOLDS_JSON} was written with", "05_predict_likes")


@pytest.mark.slow
def test_embeddings_copied_from_another_run_are_refused(pipeline_copy):
    """Same shape, other vectors: alone they don't match 02's record; with a record forged to
    match, they are not the files the models were trained on."""
    content = np.load(common.EMBEDDINGS_CONTENT)
    foreign = np.roll(content, 1, axis=0)  # another run's rows, same shape and dtype
    np.save(common.EMBEDDINGS_CONTENT, foreign)
    expect_error(f"{common.EMBEDDINGS_CONTENT} is not the file {common.EMBEDDINGS_META} records", "05_predict_likes")
    expect_error(f"{common.EMBEDDINGS_CONTENT} is not the file {common.EMBEDDINGS_META} records",
                 "03b_train_classifier_improved")
    meta = json.loads(open(common.EMBEDDINGS_META).read())
    meta["content"]["npy_sha256"] = common.file_sha256(common.EMBEDDINGS_CONTENT)
    open(common.EMBEDDINGS_META, "w").write(json.dumps(meta))
    expect_error(f"{common.CLASSIFIER} is stale: it was made with embeddings_content_sha256=", "05_predict_likes")


# ---------------------------------------------------------------------- as the header says

HEADER = "id,date,likes,content,username,media,company\n"
ROWS = [f"{i},2020-01-0{i % 9 + 1} 00:00:00,{i * 3},tweet {i},user{i % 3},,acme\n" for i in range(1, 9)]


def read_with_notes(path, **options):
    """tables.read_table's table and original, and the notes it made for the receipt."""
    notes = []
    table, original = tables.read_table(path, notes=notes, **options)
    return table, original, notes


@pytest.mark.parametrize("bad_row", [0, 2])
def test_a_row_with_more_cells_than_the_header_is_refused_naming_its_line(workdir, bad_row):
    rows = list(ROWS)
    rows[bad_row] = rows[bad_row].replace("\n", ",extra\n")
    write_csv(workdir / "extra.csv", HEADER + "".join(rows))
    with pytest.raises(SystemExit) as stopped:
        tables.read_table(workdir / "extra.csv")
    message = str(stopped.value.code)
    assert f"the row on line {bad_row + 2} has 8 cells, but the header names 7 columns" in message, message
    assert "\n" not in message


def test_the_line_named_counts_the_lines_of_multi_line_cells(workdir):
    rows = ['1,d,3,"line one\nline two",u,,acme\n', *ROWS[1:3], ROWS[3].replace("\n", ",x\n")]
    write_csv(workdir / "extra.csv", HEADER + "".join(rows))
    with pytest.raises(SystemExit, match="the row on line 6 has 8 cells"):
        tables.read_table(workdir / "extra.csv")


@pytest.mark.parametrize("header_too", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_trailing_comma_on_every_row_is_dropped_and_said(workdir, header_too, newline):
    header = HEADER.replace("\n", ",\n") if header_too else HEADER
    text = header + "".join(row.replace("\n", ",\n") for row in ROWS)
    write_csv(workdir / "trailing.csv", text.replace("\n", newline))
    write_csv(workdir / "plain.csv", HEADER + "".join(ROWS))
    table, original, notes = read_with_notes(workdir / "trailing.csv")
    expected, expected_original, _ = read_with_notes(workdir / "plain.csv")
    pd.testing.assert_frame_equal(table, expected)
    pd.testing.assert_frame_equal(original, expected_original)
    assert original["id"].tolist() == [str(i) for i in range(1, 9)]  # not taken for the index
    assert notes == [tables.TRAILING_DELIMITER]


@pytest.mark.parametrize("sep, name", [("\t", "tab"), (";", "semicolon"), ("|", "pipe")])
def test_a_file_of_another_delimiter_is_read_as_such_and_said(workdir, sep, name):
    # As a tester found it: a semicolon-separated file was read as one column, refused for a row "of 2 cells".
    rows = [row.replace("tweet", "a tweet, this one") for row in ROWS]  # commas inside the cells too
    write_csv(workdir / "other.csv", (HEADER + "".join(rows)).replace(",", sep).replace(f"a tweet{sep} this one",
                                                                                        "a tweet, this one"))
    table, _, notes = read_with_notes(workdir / "other.csv")
    assert table["content"].tolist() == [f"a tweet, this one {i}" for i in range(1, 9)]
    assert table["likes"].tolist() == pd.read_csv(io.StringIO(HEADER + "".join(ROWS)), dtype=str)["likes"].tolist()
    assert notes == [f"read as {name}-separated (the header's columns are separated by {sep!r})"]


def test_a_header_below_titles_is_found(workdir):
    # As a tester found it: a workbook whose header is on row 4 was read as columns 'Unnamed: 0', ....
    frame = pd.read_csv(io.StringIO(HEADER + "".join(ROWS)), dtype=str)
    with pd.ExcelWriter(workdir / "titled.xlsx") as writer:
        pd.DataFrame([["Tweets, March"], [None], ["exported by the team"]]).to_excel(writer, index=False,
                                                                                     header=False)
        frame.to_excel(writer, index=False, startrow=3)
    table, original, notes = read_with_notes(workdir / "titled.xlsx")
    pd.testing.assert_frame_equal(original, frame)
    assert notes == ["read from row 4, the first that names the columns (the 3 row(s) above it skipped)"]
    # A CSV says where its header is, in one line: the lines above it are to delete.
    write_csv(workdir / "titled.csv", "Tweets, March\n\n" + HEADER.replace(",", ";") + "".join(ROWS))
    with pytest.raises(SystemExit, match="titled.csv: the columns are named on line 3, not on the first "
                                         "\\(semicolon-separated\\); delete the 2 line\\(s\\) above that header"):
        tables.read_table(workdir / "titled.csv")


def test_a_column_named_twice_is_refused_not_read_as_a_copy(workdir):
    # pandas reads the second `content` as `content.1`, and the first alone would be used.
    write_csv(workdir / "twice.csv", "likes,content,username,company,content\n1,a,bob,acme,b\n")
    with pytest.raises(SystemExit, match=r"has more than one column named \['content'\]"):
        tables.read_table(workdir / "twice.csv")


def test_a_csv_named_xlsx_says_to_rename_it(workdir):
    # As a tester found it: "Excel file format cannot be determined, you must specify an engine manually".
    write_csv(workdir / "tweets.xlsx", HEADER + "".join(ROWS))
    with pytest.raises(SystemExit, match="could not read tweets.xlsx: it is text, not an Excel workbook \\(a CSV "
                                         "named .xlsx\\?\\); rename it to tweets.csv"):
        tables.read_table("tweets.xlsx")
    (workdir / "old.xlsx").write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504))
    with pytest.raises(SystemExit, match="old.xlsx is a legacy Excel file \\(.xls\\) named .xlsx"):
        tables.read_table("old.xlsx")
    (workdir / "binary.xlsx").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SystemExit, match="binary.xlsx: it is not an Excel workbook; save it from Excel"):
        tables.read_table("binary.xlsx")


def test_a_stray_quote_that_swallows_rows_is_warned_about(workdir):
    rows = list(ROWS)
    rows[2] = rows[2].replace("tweet 3", '"tweet 3')  # opens a quoted cell ...
    rows[6] = rows[6].replace("tweet 7", 'tweet 7"')  # ... that closes four rows later
    write_csv(workdir / "quote.csv", HEADER + "".join(rows))
    table, _, notes = read_with_notes(workdir / "quote.csv")
    assert len(table) == 4  # rows 4 to 7 went into row 3's content
    assert len(notes) == 1 and notes[0].startswith("warning: 1 cell(s) hold 3 line(s) shaped like whole rows")
    assert "`content` of the row on line 4" in notes[0]
    write_csv(workdir / "multi_line.csv", HEADER + '1,d,3,"a tweet,\nover two lines",u,,acme\n' + "".join(ROWS))
    assert read_with_notes(workdir / "multi_line.csv")[2] == []  # a multi-line tweet is no warning


def test_a_workbook_with_several_sheets_needs_one_named(workdir):
    frame = pd.read_csv(io.StringIO(HEADER + "".join(ROWS)), dtype=str)
    with pd.ExcelWriter(workdir / "two.xlsx") as writer:
        frame.to_excel(writer, sheet_name="march", index=False)
        frame.head(3).to_excel(writer, sheet_name="april", index=False)
    frame.to_excel(workdir / "one.xlsx", index=False)
    with pytest.raises(SystemExit, match=r"has 2 sheets, \['march', 'april'\]; name the one to read with --sheet"):
        tables.read_table(workdir / "two.xlsx")
    assert len(tables.read_table(workdir / "two.xlsx", sheet="april")[0]) == 3
    assert len(tables.read_table(workdir / "two.xlsx", sheet="march")[0]) == 8
    with pytest.raises(SystemExit, match=r"has no sheet 'may'; its sheets are \['march', 'april'\]"):
        tables.read_table(workdir / "two.xlsx", sheet="may")
    assert len(tables.read_table(workdir / "one.xlsx")[0]) == 8  # one sheet: no need to name it
    write_csv(workdir / "plain.csv", HEADER + "".join(ROWS))
    with pytest.raises(SystemExit, match="--sheet names a sheet of an .xlsx workbook"):
        tables.read_table(workdir / "plain.csv", sheet="march")
