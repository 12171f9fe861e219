"""tweetlikes.finetune and 02 --finetune: the out-of-fold rule (the leak test, which must catch a
broken rule), the cache, the split forward against sentence-transformers' own encode, the scorer
of new tweets, and the records that say when the scores are stale.

The model tests run the real MiniLM on 48 short tweets of 3 accounts, one epoch in batches of 8."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import common
from conftest import run, run_python
from tweetlikes import files, finetune, models, tables, text

TINY_BATCH = 8  # 38 training rows: a few steps per model


@pytest.fixture(scope="module", autouse=True)
def tiny_settings():
    """Small batches for every test here, the pipeline fixture's runs included."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finetune, "BATCH_SIZE", TINY_BATCH)
        yield


def tiny_tweets():
    """48 short tweets of 3 accounts, whose likes differ by account."""
    rng = np.random.default_rng(0)
    words = ["launch", "sale", "photo", "question", "thanks", "event", "update", "video"]
    return pd.DataFrame([{"content": f"{words[i % 8]} {words[i * 3 % 8]} news {i}", "username": f"acct{i % 3}",
                          "company": f"co{i % 3}", "likes": int(rng.integers(0, 500) * (1 + i % 3))}
                         for i in range(48)])


def split_of(table):
    """The tiny table as 01 would hand it on: a test split of every fifth row."""
    return table.assign(split=np.where(np.arange(len(table)) % 5 == 0, "test", "train"))


def scores_of(table, seed=42):
    scores, _ = finetune.out_of_fold_scores(finetune.encoder.DEFAULT_MODEL, finetune.finetune_inputs(table), seed,
                                            "cpu")
    return scores


@pytest.mark.slow
def test_a_fold_never_sees_its_own_likes_and_the_test_catches_a_leak(monkeypatch):
    table = split_of(tiny_tweets())
    inputs = finetune.finetune_inputs(table)
    is_train = inputs.is_train
    fold = text.folds(inputs.copy_keys, is_train, finetune.FINETUNE_FOLDS, 42)
    held, other, test = fold == 0, fold == 1, ~is_train
    changed = table.assign(likes=np.where(held | test, table["likes"] * 50 + 7, table["likes"]))

    before, after = scores_of(table), scores_of(changed)
    assert not np.isnan(before).any()
    assert before[held].tobytes() == after[held].tobytes()  # trained and standardised without fold 0's likes
    assert not np.array_equal(before[other], after[other])  # fold 1's models trained on fold 0's rows
    assert not np.array_equal(before[test], after[test])

    # Broken on purpose: residuals (and so their standardisation) over every training row. The
    # same comparison must now see fold 0's scores move.
    every = np.flatnonzero(is_train)
    honest = text.residuals
    monkeypatch.setattr(text, "residuals", lambda log_likes, keys, rows:
                        honest(log_likes, keys, every)[np.searchsorted(every, rows)])
    assert scores_of(table)[held].tobytes() != scores_of(changed)[held].tobytes()


@pytest.mark.slow
def test_the_split_forward_is_the_models_own_encode():
    import torch

    texts = list(tiny_tweets()["content"][:6]) + ["a much longer one " * 40, "ok"]  # one cut at MAX_TOKENS
    base = finetune.load_base(finetune.encoder.DEFAULT_MODEL, "cpu")
    model, bert, first = base
    lower = finetune.lower_outputs(base, texts)
    with torch.no_grad():
        split = finetune.embed(bert, bert.encoder.layer[first:], lower, np.arange(len(texts))).numpy()
    assert len(lower[-2]) == finetune.MAX_TOKENS
    assert np.abs(split - model.encode(texts)).max() < 1e-6


@pytest.fixture(scope="module")
def finetuned_dir(tmp_path_factory):
    """A folder where 01 and 02 --finetune ran on the tiny tweets; tests only read from it."""
    folder = tmp_path_factory.mktemp("finetuned")
    tiny_tweets().to_csv(folder / "tweets.csv", index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        run("01_create_classes", "--input", "tweets.csv")
        run("02_generate_embeddings", "--finetune")
    return folder


@pytest.fixture
def finetuned_copy(finetuned_dir, workdir):
    shutil.copytree(finetuned_dir, workdir, dirs_exist_ok=True)
    return workdir


def meta():
    return json.loads(Path(common.EMBEDDINGS_META).read_text())


@pytest.mark.slow
def test_a_rerun_reuses_the_cache_without_training(finetuned_copy, capsys, monkeypatch):
    scores, record = Path(common.FINETUNED_SCORES).read_bytes(), meta()[finetune.RECORD]

    def no_training(*args):
        raise AssertionError("trained although nothing changed")
    monkeypatch.setattr(finetune, "out_of_fold_scores", no_training)
    capsys.readouterr()
    run("02_generate_embeddings", "--finetune")
    assert "fine-tuned scores are up to date" in capsys.readouterr().out

    Path(common.FINETUNED_SCORES).unlink()  # as after another split and back: only the cache holds them
    run("02_generate_embeddings", "--finetune")
    assert "no training" in capsys.readouterr().out
    assert Path(common.FINETUNED_SCORES).read_bytes() == scores and meta()[finetune.RECORD] == record

    # A fresh process that finds everything up to date never imports torch.
    done = run_python("import runpy, sys; project = sys.argv[1]; sys.path.insert(0, project); "
                      f"from tweetlikes import finetune; finetune.BATCH_SIZE = {TINY_BATCH}; "
                      "sys.argv = ['02', '--finetune']; "
                      "runpy.run_path(project + '/02_generate_embeddings.py', run_name='__main__'); "
                      "print('torch' in sys.modules)", common.PROJECT_DIR, cwd=finetuned_copy)
    assert done.returncode == 0 and done.stdout.split()[-1] == "False", done.stdout + done.stderr

    with monkeypatch.context() as patch:  # 02 without --finetune, recomputing an embedding, keeps the record
        patch.setattr(finetune.tables, "COMBINED_TEMPLATE", "{username}: {content}")
        run("02_generate_embeddings")
    assert meta()[finetune.RECORD] == record


@pytest.mark.slow
def test_the_scorer_gives_the_test_rows_their_written_scores(finetuned_dir, monkeypatch):
    monkeypatch.chdir(finetuned_dir)
    table = pd.read_csv(common.CLASSED_CSV, keep_default_na=False)
    written = np.load(common.FINETUNED_SCORES)
    score = finetune.load_scorer(meta()[finetune.RECORD], "cpu")
    test, train = (table["split"] == "test").to_numpy(), (table["split"] == "train").to_numpy()
    assert np.abs(score(table["content"][test]) - written[test]).max() < 1e-5
    # the training rows' scores are out of fold: not those of the model trained on all of them
    assert np.abs(score(table["content"][train]) - written[train]).max() > 1e-4


@pytest.mark.slow
def test_damaged_weights_are_one_line_naming_the_rerun(finetuned_copy, capsys):
    record = meta()[finetune.RECORD]
    weights = Path(record["weights"])
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(SystemExit) as stopped:
        finetune.load_scorer(record, "cpu")
    message = str(stopped.value.code)
    assert message.startswith("error: ") and "\n" not in message and "02_generate_embeddings.py --finetune" in message
    table = pd.read_csv(common.CLASSED_CSV, keep_default_na=False)
    assert "missing or damaged" in finetune.load_scores(table, {"seed": 42})[1]


# ---------------------------------------------------------------------- records, without the model

def write_record(table, info, scores):
    """An FINETUNED_SCORES file and its record, as 02 --finetune writes them, for `table`."""
    Path("weights.safetensors").write_bytes(b"stand-in")
    files.save_npy(common.FINETUNED_SCORES, scores)
    record = {**finetune.wanted(table, info, "all-MiniLM-L6-v2"), "weights": "weights.safetensors",
              "weights_sha256": common.file_sha256("weights.safetensors"),
              "npy_sha256": common.file_sha256(common.FINETUNED_SCORES)}
    files.save_json(common.EMBEDDINGS_META, {finetune.RECORD: record})


def test_scores_are_used_only_while_the_record_matches(workdir):
    table, info = split_of(tiny_tweets()), {"seed": 42}
    assert "no record" in finetune.load_scores(table, info)[1]
    scores = np.arange(len(table), dtype=np.float32)
    write_record(table, info, scores)
    loaded, why = finetune.load_scores(table, info)
    assert why is None and loaded.tobytes() == scores.tobytes()

    stale = {"likes": table.assign(likes=table["likes"].where(table.index != 3, 99_999)),
             "split": table.assign(split=np.where(table.index == 0, "train", table["split"])),
             "account": table.assign(username=table["username"].where(table.index != 5, "someone")),
             "text": table.assign(content=table["content"].where(table.index != 5, "new words"))}
    for what, changed in stale.items():
        loaded, why = finetune.load_scores(changed, info)
        assert loaded is None and why.endswith("run 02_generate_embeddings.py --finetune"), what
    assert "another seed" in finetune.load_scores(table, {"seed": 7})[1]

    files.save_npy(common.FINETUNED_SCORES, scores + 1)  # replaced by another run's file
    assert "bytes" in finetune.load_scores(table, info)[1]



@pytest.mark.slow
def test_the_fine_tuned_form_runs_through_03b_04_and_05(finetuned_copy, capsys):
    """03b --text-form finetuned trains on 02 --finetune's scores and carries them; 05 gives test
    rows those scores and scores new tweets with the model tuned on every training row."""
    for name, *args in (("03b_train_classifier_improved", "--text-form", "finetuned"), ("04_train_regressors",),
                        ("05_predict_likes", "--no-plots")):
        run(name, *args)
    assert "text read as: finetuned (set by 03b --text-form)" in capsys.readouterr().out
    classifier = models.load_artifact(common.CLASSIFIER, {})
    assert classifier["meta"]["text_form"] == "finetuned"
    written = np.load(common.FINETUNED_SCORES)
    assert np.array_equal(classifier["text"]["finetuned"], written)
    table, _ = tables.load_classed()
    test_rows = np.flatnonzero(table["split"] == "test")
    tweets = table.iloc[test_rows].reset_index(drop=True)
    as_test_rows = text.with_text_columns(tweets, classifier, None, test_rows, out_of_fold=True)
    assert np.array_equal(as_test_rows["text_finetuned"], written[test_rows])
    new_scores = finetune.load_scorer(classifier["text"]["finetuned_record"], "cpu")(tweets["content"])
    as_new = text.with_text_columns(tweets, classifier, None, np.arange(len(tweets)), False, new_scores)
    assert as_new["text_finetuned"].to_numpy() == pytest.approx(written[test_rows], abs=1e-5)
