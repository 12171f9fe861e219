"""tweetlikes/encoder.py: the encode loop (batched by token count, results in input order, finished
chunks saved and reused, each distinct text encoded once), the precision it picks, and the real
MiniLM through OpenVINO and torch, equal to sentence-transformers' own."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import EMBEDDING_DIM
from tweetlikes import encoder


def vector(text):
    return [len(text), sum(map(ord, text)) % 97, 1.0]


def fake_encoder(batches):
    """An Encoder that needs no model: a text's tokens are its characters, its embedding a
    function of it; every batch it runs is appended to `batches`."""
    def forward(batch):
        batches.append(list(batch))
        return np.array([vector(text) for text in batch], dtype=np.float32).reshape(len(batch), 3)
    return encoder.Encoder("fake", 64, 3, lambda texts: [len(text) for text in texts], list, forward)


def test_chunks_are_at_most_chunk_texts_and_at_least_min_chunks():
    assert encoder.chunk_length(40, 4) == 5  # 8 chunks of 5
    assert encoder.chunk_length(10, 64) == 64  # never below one batch
    assert encoder.chunk_length(10**7, 64) == encoder.CHUNK_TEXTS


def test_texts_are_batched_by_length_and_come_back_in_order(tmp_path, monkeypatch):
    texts = [f"text {'x' * (i * 7 % 23)}{i}" for i in range(40)]
    batches = []
    matrix = encoder.encode(texts, fake_encoder(batches), batch_size=4, chunk_dir=tmp_path)
    assert matrix.dtype == np.float32 and np.array_equal(matrix, np.array([vector(t) for t in texts]))
    lengths = [len(text) for batch in batches for text in batch]
    assert lengths == sorted(lengths) and max(map(len, batches)) == 4  # padded to like lengths
    parts = sorted(tmp_path.glob("part_*.npy"))
    assert len(parts) == 8  # chunk_length(40, 4) = 5
    parts[3].unlink()  # as if the run had stopped before that chunk
    batches.clear()
    again = encoder.encode(texts, fake_encoder(batches), batch_size=4, chunk_dir=tmp_path)
    assert np.array_equal(again, matrix) and sum(map(len, batches)) == 5  # only the missing chunk


def test_each_chunk_records_its_precision_and_a_mix_is_refused(tmp_path):
    texts = [f"text {'x' * (i % 5)}{i}" for i in range(40)]
    encoder.encode(texts, fake_encoder([]), batch_size=4, chunk_dir=tmp_path)
    records = sorted(tmp_path.glob("part_*.json"))
    assert len(records) == 8 and json.loads(records[0].read_text()) == {"precision": "fake", "threads": None,
                                                                        "worker": None}
    assert encoder.chunks_precision(tmp_path, "do this") == "fake"
    records[5].unlink()  # a chunk without its record (an older version's) is not finished: encoded again
    batches = []
    encoder.encode(texts, fake_encoder(batches), batch_size=4, chunk_dir=tmp_path)
    assert sum(map(len, batches)) == 5 and records[5].exists()
    # As a worker whose CPU has bfloat16 would have recorded it, beside the others' float32.
    records[2].write_text(json.dumps({"precision": "openvino-bf16", "threads": 8, "worker": "tcp://b:1"}))
    with pytest.raises(SystemExit, match=r"^error: the chunks in .* were encoded in more than one precision "
                                         r"\(7 in fake, 1 in openvino-bf16\): .*; do this$"):
        encoder.chunks_precision(tmp_path, "do this")


def test_each_distinct_text_is_encoded_once():
    batches = []
    (first, second), unique = encoder.embed_unique([["a", "bb", "a"], ["bb", "ccc", ""]], fake_encoder(batches), 2)
    assert unique == 4 and sorted(text for batch in batches for text in batch) == ["", "a", "bb", "ccc"]
    assert np.array_equal(first, [vector("a"), vector("bb"), vector("a")])
    assert np.array_equal(second, [vector("bb"), vector("ccc"), vector("")])


def test_the_precision_is_exact_unless_fast_is_asked(monkeypatch, capsys):
    assert encoder.pick_precision("cpu", False, openvino=True) == "openvino-fp32"
    assert encoder.pick_precision("cuda", False, openvino=False) == "fp32"
    assert encoder.pick_precision("cuda", True, openvino=False) == "fp16"
    monkeypatch.setattr(encoder, "cpu_has_bf16", lambda: True)
    assert encoder.pick_precision("cpu", True, openvino=True) == "openvino-bf16"
    assert encoder.pick_precision("cpu", True, openvino=False) == "bf16"
    monkeypatch.setattr(encoder, "cpu_has_bf16", lambda: False)
    capsys.readouterr()
    assert encoder.pick_precision("cpu", True, openvino=True) == "openvino-fp32"
    assert "no faster exact-enough mode found on cpu; using float32" in capsys.readouterr().out


@pytest.mark.slow
def test_a_model_openvino_cannot_take_runs_exactly_on_torch():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    minilm = encoder.load_sentence_model(encoder.DEFAULT_MODEL, "cpu")
    assert encoder.openvino_can_run(minilm)
    cls_pooled = SentenceTransformer(modules=[minilm[0], Pooling(EMBEDDING_DIM, pooling_mode="cls"),
                                              Normalize()], device="cpu")
    assert not encoder.openvino_can_run(cls_pooled)
    texts = ["Big news today! <hyperlink>", "Thanks <mention> for the support", "short"]
    ours = encoder.encode(texts, encoder.torch_encoder(cls_pooled, "fp32"), batch_size=2)
    assert np.abs(ours - cls_pooled.encode(texts)).max() < 1e-5


@pytest.mark.slow
def test_the_light_path_tokenizes_and_embeds_as_the_sentence_transformers_tokenizer(small_csv):
    """Once converted, the OpenVINO encoder tokenizes with the `tokenizers` library alone; its
    batches, and so its embeddings, are those of the sentence-transformers tokenizer it replaced."""
    texts = list(pd.read_csv(small_csv, keep_default_na=False)["content"])
    texts += ["word " * 300, "", "  padded  ", "Ünïcödé ✨ 😞 中文"]  # truncated at 256 tokens, empty, odd
    light = encoder.load_encoder(encoder.DEFAULT_MODEL, "cpu", fast=False)
    assert light.precision == "openvino-fp32"
    model = encoder.load_sentence_model(encoder.DEFAULT_MODEL, "cpu")

    def hf_prepare(batch):
        return dict(model.tokenizer(batch, padding=True, truncation=True, max_length=model.max_seq_length,
                                    return_tensors="np"))
    for batch in (texts[:64], texts[-8:]):
        ours, theirs = light.prepare(batch), hf_prepare(batch)
        assert ours.keys() == {"input_ids", "token_type_ids", "attention_mask"} <= theirs.keys()
        for name in ours:
            assert ours[name].dtype == np.int64 and np.array_equal(ours[name], theirs[name])
    assert light.count_tokens(texts) == encoder.torch_encoder(model, "fp32").count_tokens(texts)
    before = light._replace(prepare=hf_prepare)  # the encoder as it was: tokenized by transformers
    matrix = encoder.encode(texts, light, batch_size=64)
    assert np.abs(matrix - encoder.encode(texts, before, batch_size=64)).max() <= 1e-6
