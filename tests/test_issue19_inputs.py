"""Issue 19: inputs as they really come. Dates pandas can't hold, rows with more cells than the
header, a trailing comma, tabs, a stray quote, workbooks with several sheets, copies of a tweet
across the split, empty content and empty columns, Ctrl-C inside XGBoost's callbacks and while a
stage imports, and 05's report removed before its predictions.

Grouped by the file each group belongs in once the tests are by stage and by module."""
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import common
from conftest import PROJECT_DIR, run, stage
from tweetlikes import features, tables, training

create_classes = stage("01_create_classes")
STAGE_SCRIPTS = ("01_create_classes.py", "02_generate_embeddings.py", "03b_train_classifier_improved.py",
                 "04_train_regressors.py", "05_predict_likes.py")


def expect_error(match, name, *args):
    with pytest.raises(SystemExit) as stopped:
        run(name, *args)
    message = str(stopped.value.code)
    assert message.startswith("error: ") and match in message and "\n" not in message, message
    return message


def sample(small_csv, rows=100):
    """The first rows of the small sample, every cell as text."""
    return pd.read_csv(small_csv, dtype=str, keep_default_na=False).head(rows)


def read_table(path, **options):
    """tables.read_table's table and the notes it made."""
    notes = []
    table, original = tables.read_table(path, notes=notes, **options)
    return table, original, notes


def python(code, *args, cwd=None, timeout=300):
    """Run `code` in a fresh Python started as a shell starts one (Ctrl-C not ignored)."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# A real SIGINT, sent by the process to itself at the Nth block of model input that a stage reads
# (XGBoost's DataIter asks for them while it builds its QuantileDMatrix), with blocks of 32 rows so
# the small sample makes dozens of them; the stage runs as `python SCRIPT` would run it.
CTRL_C_AT_BLOCK = """
import os, runpy, signal, sys
script, nth = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, os.path.dirname(script))
from tweetlikes import features
features.BLOCK_ROWS = 32
calls, block = [0], features.ModelInput.block
def counted(self, rows):
    calls[0] += 1
    if calls[0] == nth:
        os.kill(os.getpid(), signal.SIGINT)
    return block(self, rows)
features.ModelInput.block = counted
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


# ------------------------------------------------------------------------------ -> test_features.py

def test_dates_pandas_cannot_hold_are_missing():
    days = features.parse_dates(["2020-12-12 00:47:00+00:00", "1448-01-01 00:00:00", "0001-01-01", "9999-12-31",
                                 "2262-04-12"])
    assert days.iloc[0] == pytest.approx(18608 + 47 / 1440)
    assert days.iloc[1:].isna().all()
    assert features.parse_dates(["1448-01-01 00:00:00"]).isna().all()  # alone too


def test_an_unholdable_date_is_an_unreadable_cell_counted():
    table = pd.DataFrame({"content": ["a", "b"], "username": ["u", "v"], "date": ["1448-01-01 00:00:00", "2020-01-01"]})
    stats = pd.DataFrame(columns=["kind", "key", "count", "sum_log_likes", "median_log_likes", "first_day"])
    signals, found, malformed = features.signal_features(table, stats)
    assert "time" in found and malformed["time"] == 1
    assert np.isnan(signals["time_hour"].iloc[0]) and signals["time_hour"].iloc[1] == 0


def test_blank_columns_are_those_without_a_single_value():
    table = pd.DataFrame({"media": ["", None, "  "], "date": ["", "2020-01-01", ""], "company": ["", "", ""]})
    assert features.blank_columns(table, ["media", "date", "company", "is_reply"]) == ["media", "company"]


# -------------------------------------------------------------------------------- -> test_tables.py

HEADER = "id,date,likes,content,username,media,company\n"
ROWS = [f"{i},2020-01-0{i % 9 + 1} 00:00:00,{i * 3},tweet {i},user{i % 3},,acme\n" for i in range(1, 9)]


def write(path, text):
    path.write_text(text, newline="")
    return path


@pytest.mark.parametrize("bad_row", [0, 2])
def test_a_row_with_more_cells_than_the_header_is_refused_naming_its_line(workdir, bad_row):
    rows = list(ROWS)
    rows[bad_row] = rows[bad_row].replace("\n", ",extra\n")
    write(workdir / "extra.csv", HEADER + "".join(rows))
    with pytest.raises(SystemExit) as stopped:
        tables.read_table(workdir / "extra.csv")
    message = str(stopped.value.code)
    assert f"the row on line {bad_row + 2} has 8 cells, but the header names 7 columns" in message, message
    assert "\n" not in message


def test_the_line_named_counts_the_lines_of_multi_line_cells(workdir):
    rows = ['1,d,3,"line one\nline two",u,,acme\n', *ROWS[1:3], ROWS[3].replace("\n", ",x\n")]
    write(workdir / "extra.csv", HEADER + "".join(rows))
    with pytest.raises(SystemExit, match="the row on line 6 has 8 cells"):
        tables.read_table(workdir / "extra.csv")


@pytest.mark.parametrize("header_too", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_trailing_comma_on_every_row_is_dropped_and_said(workdir, header_too, newline):
    header = HEADER.replace("\n", ",\n") if header_too else HEADER
    text = header + "".join(row.replace("\n", ",\n") for row in ROWS)
    write(workdir / "trailing.csv", text.replace("\n", newline))
    write(workdir / "plain.csv", HEADER + "".join(ROWS))
    table, original, notes = read_table(workdir / "trailing.csv")
    expected, expected_original, _ = read_table(workdir / "plain.csv")
    pd.testing.assert_frame_equal(table, expected)
    pd.testing.assert_frame_equal(original, expected_original)
    assert original["id"].tolist() == [str(i) for i in range(1, 9)]  # not taken for the index
    assert notes == [tables.TRAILING_DELIMITER]


def test_a_tab_separated_file_is_read_as_such_and_said(workdir):
    write(workdir / "tabs.tsv", (HEADER + "".join(ROWS)).replace(",", "\t"))
    table, _, notes = read_table(workdir / "tabs.tsv")
    assert table["content"].tolist() == [f"tweet {i}" for i in range(1, 9)]
    assert notes == ["read as tab-separated (the header has tabs and no commas)"]


def test_a_stray_quote_that_swallows_rows_is_warned_about(workdir):
    rows = list(ROWS)
    rows[2] = rows[2].replace("tweet 3", '"tweet 3')  # opens a quoted cell ...
    rows[6] = rows[6].replace("tweet 7", 'tweet 7"')  # ... that closes four rows later
    write(workdir / "quote.csv", HEADER + "".join(rows))
    table, _, notes = read_table(workdir / "quote.csv")
    assert len(table) == 4  # rows 4 to 7 went into row 3's content
    assert len(notes) == 1 and notes[0].startswith("warning: 1 cell(s) hold 3 line(s) shaped like whole rows")
    assert "`content` of the row on line 4" in notes[0]
    write(workdir / "multi_line.csv", HEADER + '1,d,3,"a tweet,\nover two lines",u,,acme\n' + "".join(ROWS))
    assert read_table(workdir / "multi_line.csv")[2] == []  # a multi-line tweet is no warning


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
    write(workdir / "plain.csv", HEADER + "".join(ROWS))
    with pytest.raises(SystemExit, match="--sheet names a sheet of an .xlsx workbook"):
        tables.read_table(workdir / "plain.csv", sheet="march")


# ----------------------------------------------------------------------- -> test_01_create_classes.py

def tweets_with_copies(n=300, copies=100, seed=0):
    """n distinct tweets, then `copies` of them again (same content and username, other likes)."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"content": [f"tweet {i}" for i in range(n)], "username": [f"user{i % 7}" for i in range(n)],
                          "company": [f"co{i % 3}" for i in range(n)], "likes": rng.integers(0, 10_000, size=n),
                          "date": [(pd.Timestamp("2021-01-01") + pd.Timedelta(hours=int(h))).isoformat()
                                   for h in rng.permutation(n)]})
    again = table.sample(copies, random_state=seed).assign(likes=rng.integers(0, 10_000, size=copies))
    # a repost comes later
    again["date"] = [(pd.Timestamp(d) + pd.Timedelta(days=int(k))).isoformat()
                     for d, k in zip(again["date"], rng.integers(0, 30, size=copies))]
    return pd.concat([table, again], ignore_index=True)


@pytest.mark.parametrize("how", ["random", "time"])
def test_copies_of_a_tweet_land_on_one_side_of_the_split(how):
    table = tweets_with_copies()
    days = features.parse_dates(table["date"]).to_numpy()
    for seed in range(5):
        split = pd.Series(create_classes.assign_split(table, how, 0.2, seed, days))
        assert (split.groupby([table["content"], table["username"]]).nunique() == 1).all(), seed
        assert abs((split == "test").mean() - 0.2) < 0.02
    if how == "time":  # no training row is posted after the latest copy of any test tweet
        latest_test = pd.Series(days).groupby(create_classes.duplicate_groups(table)).transform("max")
        assert days[(split == "train").to_numpy()].max() <= latest_test[(split == "test").to_numpy()].min()


@pytest.mark.parametrize("how", ["random", "time"])
def test_a_split_without_copies_is_the_same_as_before(how):
    table = tweets_with_copies(copies=0)
    days = features.parse_dates(table["date"]).to_numpy()
    is_test = np.zeros(len(table), dtype=bool)
    if how == "random":  # the split of the code before copies were grouped
        is_test[np.random.default_rng(42).permutation(len(table))[:60]] = True
    else:
        is_test[np.argsort(days, kind="stable")[len(table) - 60:]] = True
    assert (create_classes.assign_split(table, how, 0.2, 42, days) == np.where(is_test, "test", "train")).all()


def test_no_row_history_holds_its_own_likes_through_a_copy():
    # 100 accounts of two tweets each, the second a copy of the first: out of fold, a row may see
    # neither, so every account's history is empty.
    table = pd.DataFrame({"content": [f"tweet {i // 2}" for i in range(200)],
                          "username": [f"user{i // 2}" for i in range(200)], "company": "",
                          "likes": np.arange(200, dtype=float)})
    history = create_classes.history_features(table, np.ones(200, dtype=bool), "random", 42)
    assert (history["user_log_count"] == 0).all()


def test_01_counts_copies_in_its_receipt_and_record(workdir, capsys):
    tweets_with_copies().to_csv("copies.csv", index=False)
    run("01_create_classes", "--input", "copies.csv")
    assert "100 rows repeat another row's content and username" in capsys.readouterr().out
    assert json.loads((workdir / common.THRESHOLDS_JSON).read_text())["duplicate_rows"] == 100
    classed = pd.read_csv(common.CLASSED_CSV, dtype=str, keep_default_na=False)
    assert (classed.groupby(["content", "username"])["split"].nunique() == 1).all()


def test_01_counts_a_date_pandas_cannot_hold(small_csv, workdir, capsys):
    tweets = sample(small_csv)
    tweets.loc[3, "date"] = "1448-01-01 00:00:00"
    tweets.to_csv("old.csv", index=False)
    run("01_create_classes", "--input", "old.csv")
    assert "time from `date`, 1 unreadable cells left missing" in capsys.readouterr().out
    assert json.loads((workdir / common.THRESHOLDS_JSON).read_text())["malformed_cells"]["time"] == 1
    run("01_create_classes", "--input", "old.csv", "--split", "time")
    assert "refused 1 rows whose date is missing or unreadable" in capsys.readouterr().out


def test_01_reads_a_trailing_comma_as_the_header_says(small_csv, workdir, capsys):
    tweets = sample(small_csv)
    tweets.assign(content=tweets["content"].str.replace("\n", " ")).to_csv("plain.csv", index=False)
    write(workdir / "trailing.csv", (workdir / "plain.csv").read_text().replace("\n", ",\n"))
    run("01_create_classes", "--input", "plain.csv")
    expected = (workdir / common.CLASSED_CSV).read_bytes()
    capsys.readouterr()
    run("01_create_classes", "--input", "trailing.csv")
    assert tables.TRAILING_DELIMITER in capsys.readouterr().out
    assert (workdir / common.CLASSED_CSV).read_bytes() == expected


def test_01_refuses_an_extra_cell_on_the_first_row(workdir):
    lines = (HEADER + "".join(ROWS)).split("\n")
    lines[1] += ",oops"
    write(workdir / "shifted.csv", "\n".join(lines))
    expect_error("the row on line 2 has 8 cells, but the header names 7 columns", "01_create_classes",
                 "--input", "shifted.csv")


def test_01_warns_about_a_stray_quote(workdir, capsys):
    tweets_with_copies(copies=0).to_csv("plain.csv", index=False)
    lines = (workdir / "plain.csv").read_text().split("\n")
    lines[10] = lines[10].replace("tweet 9,", '"tweet 9,')  # a quote opens a cell ...
    lines[15] = lines[15].replace("tweet 14,", 'tweet 14",')  # ... and closes five lines later
    write(workdir / "quote.csv", "\n".join(lines))
    run("01_create_classes", "--input", "quote.csv")
    out = capsys.readouterr().out
    assert "read quote.csv: 295 rows" in out
    assert "warning: 1 cell(s) hold 5 line(s) shaped like whole rows" in out
    assert "a quote that never closes may have swallowed rows" in out


def test_01_reads_the_sheet_named(small_csv, workdir, capsys):
    tweets = sample(small_csv, 200)
    with pd.ExcelWriter(workdir / "two.xlsx") as writer:
        tweets.head(150).to_excel(writer, sheet_name="first", index=False)
        tweets.tail(50).to_excel(writer, sheet_name="second", index=False)
    expect_error("has 2 sheets, ['first', 'second']; name the one to read with --sheet", "01_create_classes",
                 "--input", "two.xlsx")
    run("01_create_classes", "--input", "two.xlsx", "--sheet", "second")
    assert "read two.xlsx (sheet 'second'): 50 rows" in capsys.readouterr().out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert info["rows"] == 50 and info["sheet"] == "second"


def test_01_refuses_and_counts_rows_with_empty_content(small_csv, workdir, capsys):
    tweets = sample(small_csv)
    tweets.loc[[4, 9], "content"] = ["", "   "]
    tweets.to_csv("empty.csv", index=False)
    run("01_create_classes", "--input", "empty.csv")
    assert "refused 2 rows with empty content" in capsys.readouterr().out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert info["refused_rows"] == 2 and info["rows"] == len(tweets) - 2
    assert (pd.read_csv(common.CLASSED_CSV, dtype=str, keep_default_na=False)["content"] != "").all()


def test_01_turns_an_empty_column_off_and_says_so(small_csv, workdir, capsys):
    sample(small_csv).assign(media="", **{"inferred company": ""}).to_csv("blank.csv", index=False)
    run("01_create_classes", "--input", "blank.csv")
    out = capsys.readouterr().out
    assert "signals: media off (`media` has no values)" in out
    assert "history: `company` has no values, so every row's company history is the global prior" in out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert "media" not in info["signal_groups"] and info["blank_columns"] == ["company", "media"]
    assert pd.read_csv(common.CLASSED_CSV)[features.SIGNAL_FEATURES["media"]].isna().all().all()


# -------------------------------------------------------------------- -> test_05_predict_likes.py

def test_the_test_runs_in_sample_rows_are_counted_as_for_new_tweets(workdir, monkeypatch):
    # The split of the code before copies were grouped, which let them straddle it: 05 counts the
    # test rows with a copy among the training rows, as it counts --input's.
    monkeypatch.setattr(create_classes, "duplicate_groups", lambda table: np.arange(len(table)))
    tweets_with_copies().to_csv("copies.csv", index=False)
    run("01_create_classes", "--input", "copies.csv")
    for name in ("03b_train_classifier_improved", "04_train_regressors"):
        run(name, "--features", "all,-text")
    run("05_predict_likes", "--no-plots")
    classed = pd.read_csv(common.CLASSED_CSV, dtype=str, keep_default_na=False)
    keys = classed["content"] + "\0" + classed["username"]
    expected = int(keys[classed["split"] == "test"].isin(keys[classed["split"] == "train"]).sum())
    assert expected > 0
    assert json.loads((workdir / "metrics.json").read_text())["settings"]["in_sample_rows"] == expected


@pytest.mark.slow
def test_a_run_stopped_while_plotting_leaves_no_plot_of_the_previous_run(pipeline_copy, monkeypatch):
    assert (pipeline_copy / "predicted_vs_actual.png").exists() and (pipeline_copy / "confusion_matrix.png").exists()
    before = (pipeline_copy / common.PREDICTIONS).read_bytes()

    def stopped(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(stage("05_predict_likes").report, "save_plots", stopped)
    (pipeline_copy / "new.csv").write_text("content,username,company,likes\nhello there,bob,acme,5\nnew post,amy,acme,7\n")
    with pytest.raises(KeyboardInterrupt):
        run("05_predict_likes", "--input", "new.csv")
    assert (pipeline_copy / common.PREDICTIONS).read_bytes() != before  # the new predictions ...
    assert not list(pipeline_copy.glob("*.png"))  # ... beside no plot of the previous run


@pytest.mark.slow
def test_05_input_reads_rows_as_the_header_says(pipeline_copy, small_csv, capsys):
    tweets = sample(small_csv, 12)
    tweets["content"] = tweets["content"].str.replace("\n", " ")
    tweets.loc[2, "date"] = "1448-01-01 00:00:00"  # a date pandas cannot hold
    tweets.loc[5, "content"] = ""  # nothing to predict from
    tweets.to_csv("plain.csv", index=False)
    write(pipeline_copy / "new.csv", (pipeline_copy / "plain.csv").read_text().replace("\n", ",\n"))
    run("05_predict_likes", "--input", "new.csv", "--output", "out.csv", "--no-plots")
    out = capsys.readouterr().out
    assert f"new.csv: {tables.TRAILING_DELIMITER}" in out
    assert "1 rows have empty content: not predicted" in out
    assert "signals: 1 unreadable `date` cells left missing" in out
    predictions = pd.read_csv("out.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(predictions[tweets.columns], tweets)  # ids, texts and all: not shifted
    assert (predictions.loc[5, "predicted_class":] == "").all()
    assert (predictions.drop(index=5)["predicted_likes"] != "").all()
    assert json.loads((pipeline_copy / "metrics.json").read_text())["settings"]["rows_scored"] == 11


@pytest.mark.slow
def test_05_input_refuses_a_row_with_an_extra_cell_and_guessing_a_sheet(pipeline_copy, small_csv):
    write(pipeline_copy / "shifted.csv", HEADER + ROWS[0].replace("\n", ",oops\n") + "".join(ROWS[1:]))
    expect_error("the row on line 2 has 8 cells", "05_predict_likes", "--input", "shifted.csv", "--output", "o.csv")
    tweets = sample(small_csv, 12)
    with pd.ExcelWriter(pipeline_copy / "two.xlsx") as writer:
        tweets.head(8).to_excel(writer, sheet_name="a", index=False)
        tweets.tail(4).to_excel(writer, sheet_name="b", index=False)
    expect_error("has 2 sheets", "05_predict_likes", "--input", "two.xlsx", "--output", "o.csv")
    expect_error("--sheet names the sheet of --input's workbook", "05_predict_likes", "--sheet", "b")
    run("05_predict_likes", "--input", "two.xlsx", "--sheet", "b", "--output", "o.csv", "--no-plots")
    assert len(pd.read_csv("o.csv")) == 4


# --------------------------------------------------------------------------- -> test_training.py

# The matrix build with a KeyboardInterrupt at each block XGBoost asks for in turn, raised in the
# callback or sent as a real SIGINT: each must come out as KeyboardInterrupt, after XGBoost has
# unwound, with nothing on stderr (no "Exception ignored", no XGBoostError, no abort).
INTERRUPT_EACH_BLOCK = """
import os, signal, sys
import numpy as np
from tweetlikes import features, training
mode = sys.argv[1]
features.BLOCK_ROWS = 50
rng = np.random.default_rng(0)
X, label = features.ModelInput(rng.normal(size=(500, 8)).astype(np.float32), None), rng.normal(size=500)
calls, stop_at, block = [0], [None], features.ModelInput.block
def counted(self, rows):
    calls[0] += 1
    if calls[0] == stop_at[0]:
        if mode == "raise":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGINT)
    return block(self, rows)
features.ModelInput.block = counted
training.quantile_matrices(X, label, None, np.arange(400), np.arange(400, 500))
total = calls[0]
for n in range(1, total + 1):
    calls[0], stop_at[0] = 0, n
    try:
        training.quantile_matrices(X, label, None, np.arange(400), np.arange(400, 500))
        print(n, "went on", flush=True)
    except KeyboardInterrupt:
        print(n, "interrupted", flush=True)
print("blocks", total)
"""


@pytest.mark.parametrize("mode", ["raise", "signal"])
def test_ctrl_c_at_any_block_of_the_matrix_build_is_a_clean_keyboard_interrupt(mode):
    done = python(INTERRUPT_EACH_BLOCK, mode, cwd=PROJECT_DIR)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines and lines[-1] == "blocks 38", done.stdout + done.stderr
    assert lines[:-1] == [f"{n} interrupted" for n in range(1, 39)], done.stdout + done.stderr
    assert done.stderr == ""


def test_a_matrix_build_without_ctrl_c_leaves_ctrl_c_as_it_was():
    inputs = features.ModelInput(np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32), None)
    training.quantile_matrices(inputs, np.arange(100.0), None, np.arange(80), np.arange(80, 100))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -------------------------------------------------------------- -> test_03b_train_classifier.py and
#                                                                   test_04_train_regressors.py

@pytest.mark.slow
@pytest.mark.parametrize("script, blocks", [("03b_train_classifier_improved.py", (1, 9, 10, 19, 20)),
                                            ("04_train_regressors.py", (2, 30, 70))])
def test_ctrl_c_anywhere_in_the_matrix_build_is_one_line_and_keeps_the_files(pipeline_copy, script, blocks):
    before = {path.name: path.read_bytes() for path in pipeline_copy.iterdir() if path.is_file()}
    for nth in blocks:
        done = python(CTRL_C_AT_BLOCK, PROJECT_DIR / script, nth, cwd=pipeline_copy)
        assert done.returncode == 130, (nth, done.stderr)
        assert done.stderr.strip() == f"error: interrupted; rerun {script} to resume or redo it", (nth, done.stderr)
    assert {path.name: path.read_bytes() for path in pipeline_copy.iterdir() if path.is_file()} == before


# ------------------------------------------------------------------------------ -> test_common.py

# Ctrl-C while the stage imports pandas: the SIGINT is sent as the import starts.
CTRL_C_WHILE_IMPORTING = """
import os, runpy, signal, sys
script = sys.argv[1]
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, Interrupt())
sys.path.insert(0, os.path.dirname(script))
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize("script", STAGE_SCRIPTS)
def test_ctrl_c_while_a_stage_imports_is_one_line(script, workdir):
    done = python(CTRL_C_WHILE_IMPORTING, PROJECT_DIR / script, cwd=workdir, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == f"error: interrupted; rerun {script} to resume or redo it"


def test_importing_common_leaves_ctrl_c_alone():
    # This process imported common without being a stage: Ctrl-C is still Python's (pytest's).
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert os.environ.get("PYTEST_CURRENT_TEST")
