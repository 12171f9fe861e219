"""Stage 2: embed every tweet with all-MiniLM-L6-v2 (384 dims), twice: its content alone, and its
content combined with company and username.

Reads  train_data_with_classes.csv   (from 01_create_classes.py)
Writes embeddings_content.npy       float32 (rows, 384), row i = content of CSV row i
       embeddings_combined.npy      float32 (rows, 384), row i = tables.COMBINED_TEMPLATE of row i
       embeddings_meta.json         what each file was computed from: model, mode and precision,
                                    template, a fingerprint of the texts; later stages check it
       text_finetuned.npy           with --finetune: float32 (rows,), the fine-tuned model's
                                    out-of-fold score of each row, its weights in finetuned/

A rerun on unchanged texts reuses the files without loading the model; an interrupted run resumes
from the chunks in .embeddings_cache/. On a CPU the model runs compiled by OpenVINO, in float32
(--fast: bfloat16, or float16 on CUDA). How it works: docs/how-it-works.md (sections 2 and 3);
the timings: docs/speed-and-memory.md; --cluster: docs/cluster.md.

Usage: python 02_generate_embeddings.py [--model PATH_OR_ID] [--device auto|cpu|cuda|mps] [--fast]
                                        [--cluster ADDRESS] [--finetune]

A good first run on the embedded sample prints (a rerun on unchanged texts: "embeddings are up
to date ...; nothing to do"):

    read train_data_with_classes.csv: 5000 rows
      computing embeddings_content.npy: no file yet
      computing embeddings_combined.npy: no file yet
    model all-MiniLM-L6-v2 on cpu, openvino-fp32, batch 64, max 256 tokens
      encoding: 1024 of 9793 texts (10%) in 5s
      ...
    encoded 9793 distinct texts for 10000 rows in 88.3s (111 texts/s)
    wrote embeddings_content.npy (5000, 384)
    wrote embeddings_combined.npy (5000, 384)
    wrote embeddings_meta.json in 89.2s

With --finetune it goes on to train and writes text_finetuned.npy and finetuned/<key>/
weights.safetensors (a rerun on unchanged input: "fine-tuned scores are up to date ...; nothing
to do"). Its receipt and timings: docs/speed-and-memory.md (Fine-tuning).
"""
import common  # first: it makes a Ctrl-C while the rest imports one line too

import contextlib
import functools
import hashlib
import json
import shutil
import time
from pathlib import Path

from tweetlikes import cluster, encoder, files, finetune, tables

# Texts per batch, by device (--batch-size overrides): past these, no device got faster.
BATCH_SIZE = {"cpu": 64, "mps": 128, "cuda": 1024}
CACHE_DIR = Path(".embeddings_cache")  # the lock, and the finished chunks of an interrupted encode
PATHS = {"content": common.EMBEDDINGS_CONTENT, "combined": common.EMBEDDINGS_COMBINED}


@contextlib.contextmanager
def folder_lock():
    """One run of this script at a time in a folder: a second would write the same files. The
    kernel drops the lock when the process ends, however it ends."""
    import fcntl

    try:
        CACHE_DIR.mkdir(exist_ok=True)
        handle = open(CACHE_DIR / "lock", "w")
    except OSError as error:
        common.fail(f"can't write {CACHE_DIR / 'lock'} in this folder: {error.strerror}")
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            common.fail(f"another 02_generate_embeddings.py is running in this folder (it holds "
                        f"{CACHE_DIR / 'lock'}); wait for it to finish")
        yield


def read_meta():
    """The record of the last run, or {} (all recomputed) if there is none or it is unreadable."""
    try:
        meta = json.loads(Path(common.EMBEDDINGS_META).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        print(f"  {common.EMBEDDINGS_META} is unreadable; recomputing")
        return {}
    return meta


def why_embeddings_stale(path, wanted, recorded):
    """Why the file at `path` can't be reused, or None if it holds exactly what `wanted` asks for:
    its record matches and its bytes are the ones recorded when it was written."""
    if not Path(path).exists():
        return "no file yet"
    if not recorded:
        return f"no record of it in {common.EMBEDDINGS_META}"
    if {key: recorded.get(key) for key in wanted} != wanted:
        return "made from other texts, template, model or mode"
    if recorded.get("npy_sha256") != common.file_sha256(path):
        return f"its bytes are not those {common.EMBEDDINGS_META} records (truncated, or from another run)"
    return None


def parse_arguments(argv):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--model", default=encoder.DEFAULT_MODEL,
                        help="sentence-transformers model: the packaged default, a local folder or a hub id")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="auto picks CUDA, then Apple MPS, then CPU")
    parser.add_argument("--fast", action="store_true",
                        help="instead of exact float32: bfloat16 on a CPU that has it (OpenVINO, else "
                             "torch), float16 on CUDA")
    parser.add_argument("--batch-size", type=common.positive_int, default=None,
                        help="texts per batch (default: by device)")
    parser.add_argument("--force", action="store_true", help="recompute even if the files are up to date")
    parser.add_argument("--finetune", action="store_true",
                        help=f"also fine-tune the model's top layers on each tweet's residual from its account's "
                             f"typical likes, out of fold, and write its scores to {common.FINETUNED_SCORES}")
    cluster.add_cluster_argument(parser)
    return parser.parse_args(argv)


def chunk_folder(args, precision, batch_size, fingerprints):
    """Where this encode keeps its finished chunks: one folder per model, mode and precision (on a
    cluster, the workers' may differ from this one's: the chunks record theirs), batching and
    texts, so a rerun resumes only the same work."""
    key = hashlib.sha256("|".join([args.model, "fast" if args.fast else "exact", precision, str(batch_size),
                                   f"{encoder.CHUNK_TEXTS}/{encoder.MIN_CHUNKS}", *fingerprints]).encode())
    folder = CACHE_DIR / key.hexdigest()[:16]
    if folder.exists():
        print(f"  resuming from {len(list(folder.glob('part_*.npy')))} finished chunks in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_embeddings(matrices, wanted, old_meta, extra):
    """Write each new matrix and, last, the record of every file. A file's record is dropped
    before the file is replaced and comes back, with the new file's hash, once all are written: a
    run stopped in between leaves no record vouching for its files."""
    meta = {kind: old_meta[kind] for kind in (*PATHS, finetune.RECORD) if kind in old_meta}
    records = {}
    for kind, matrix in matrices.items():
        if meta.pop(kind, None) is not None:
            files.save_json(common.EMBEDDINGS_META, meta)
        files.save_npy(PATHS[kind], matrix)
        records[kind] = {**wanted[kind], **extra, "dim": int(matrix.shape[1]),
                         "npy_sha256": common.file_sha256(PATHS[kind])}
        print(f"wrote {PATHS[kind]} {matrix.shape}")
    files.save_json(common.EMBEDDINGS_META, {**meta, **records})


def main(argv=None):
    args = parse_arguments(argv)
    files.check_writable([*PATHS.values(), common.EMBEDDINGS_META,
                           *([common.FINETUNED_SCORES] if args.finetune else [])])
    with folder_lock():  # Ctrl-C: common.run says so; finished chunks stay for the rerun
        table, info = generate(args)
        if args.finetune:
            save_finetuned(args, table, info)


def generate(args):
    """The embeddings, computed where their files are stale; returns the classed table and 01's record."""
    started = time.perf_counter()

    # 1. The texts of every row, and which files no longer hold them: decided before importing
    #    torch, since that import alone takes seconds.
    table, info = tables.load_classed()
    if args.finetune:  # its folds' seed, checked before any work
        common.check_fields(common.THRESHOLDS_JSON, info, {"seed": lambda v: isinstance(v, int)})
    texts = {kind: tables.embedded_texts(kind, table) for kind in PATHS}
    print(f"read {common.CLASSED_CSV}: {len(table)} rows")
    old_meta = read_meta()
    mode = "fast" if args.fast else "exact"
    wanted = {kind: {"texts_sha256": tables.texts_fingerprint(texts[kind]), "rows": len(table),
                     "model": args.model, "mode": mode,
                     "template": tables.COMBINED_TEMPLATE if kind == "combined" else "{content}"}
              for kind in PATHS}
    reasons = {kind: "--force" if args.force else
               why_embeddings_stale(PATHS[kind], wanted[kind], old_meta.get(kind, {}))
               for kind in PATHS}
    stale = [kind for kind in PATHS if reasons[kind]]
    if not stale:
        print(f"embeddings are up to date ({args.model}, {mode}); nothing to do "
              f"in {common.seconds_since(started)} (--force recomputes)")
        return table, info
    for kind in stale:
        print(f"  computing {PATHS[kind]}: {reasons[kind]}")

    # 2. The encoder, and the folder of finished chunks to resume from.
    device = encoder.pick_device(args.device)
    batch_size = args.batch_size or BATCH_SIZE[device]
    model = encoder.load_encoder(args.model, device, args.fast)
    print(f"model {args.model} on {device}, {model.precision}, batch {batch_size}, max {model.max_length} tokens")
    chunk_dir = chunk_folder(args, model.precision, batch_size, [wanted[kind]["texts_sha256"] for kind in stale])

    # 3. Encode each distinct text once, here or on the cluster's workers.
    encode_started = time.perf_counter()
    with cluster.cluster(args.cluster) as client:
        on_cluster = None if client is None else encoder.cluster_encoder(client, args.model, device, args.fast)
        matrices, n_unique = encoder.embed_unique([texts[kind] for kind in stale], model, batch_size, chunk_dir,
                                                  on_cluster)
        on_cluster_record = cluster.cluster_record(args.cluster, client)
    precision = encoder.chunks_precision(chunk_dir, f"remove {chunk_dir} and rerun on workers alike in CPU and "
                                                    "packages, or without --fast (float32 on every CPU)")
    encode_seconds = time.perf_counter() - encode_started
    print(f"encoded {n_unique} distinct texts for {len(stale) * len(table)} rows in {encode_seconds:.1f}s "
          f"({n_unique / encode_seconds:.0f} texts/s)" + (f" on the workers, {precision}" if client else ""))

    # 4. The files, their records last; the chunks are no longer needed.
    save_embeddings(dict(zip(stale, matrices)), wanted, old_meta,
                    {"precision": precision, "device": device, **on_cluster_record})
    shutil.rmtree(chunk_dir)
    print(f"wrote {common.EMBEDDINGS_META} in {common.seconds_since(started)}")
    return table, info


def save_finetuned(args, table, info):
    """The fine-tuned model's scores (see tweetlikes.finetune), trained or taken from its cache
    only when the record does not vouch for the file there; its record replaces the old one last,
    as save_embeddings replaces theirs."""
    started = time.perf_counter()
    meta = read_meta()
    want = finetune.wanted(table, info, args.model)
    why = "--force" if args.force else finetune.why_scores_stale(meta.get(finetune.RECORD), want)
    if why is None:
        print(f"fine-tuned scores are up to date ({common.FINETUNED_SCORES}); nothing to do "
              f"in {common.seconds_since(started)} (--force retrains)")
        return
    print(f"  computing {common.FINETUNED_SCORES}: {why}")
    record = finetune.cached_or_trained(table, want, functools.partial(encoder.pick_device, args.device), args.force)
    if meta.pop(finetune.RECORD, None) is not None:
        files.save_json(common.EMBEDDINGS_META, meta)
    finetune.copy_scores(record)
    print(f"wrote {common.FINETUNED_SCORES} ({len(table)},) and {record['weights']} "
          f"({Path(record['weights']).stat().st_size / 1e6:.1f} MB)")
    files.save_json(common.EMBEDDINGS_META, {**meta, finetune.RECORD: record})
    print(f"wrote {common.EMBEDDINGS_META} in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
