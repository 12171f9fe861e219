"""MiniLM fine-tuned on what the wording adds to an account's typical likes (02 --finetune), and
its out-of-fold scores: the `finetuned` form of the text (see tweetlikes.text).

The target of a tweet is its residual (text.residuals: log1p(likes) less its account's smoothed
mean, its company's where there are no usernames), standardised. Only the top TUNED_LAYERS
transformer layers and a linear head on the normalised mean-pooled embedding are trained; the
lower layers stay frozen, so their outputs are computed once per distinct text and shared by
every model trained here, which is what makes this affordable on a CPU.

Out of fold, strictly: the training rows fall in FINETUNE_FOLDS folds (text.folds, copies of a
tweet together, seeded by 01's seed); fold k's rows are scored by a model trained on the other
folds' rows only, its residuals and their standardisation computed from those rows alone. Test
rows are scored by a model trained on every training row, whose tuned weights (14 MB: the tuned
layers and the head) are kept for new tweets (load_scorer). A seeded run gives the same bytes from
the same input on one CPU machine (CUDA's kernels may differ in the last bits).

The weights and scores are kept in CACHE, one folder per sha256 of everything they depend on, so a
rerun on unchanged input, or back on an earlier split, trains nothing and imports no torch.
"""
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

import common
from tweetlikes import encoder, features, files, pairs, tables, text

FINETUNE_FOLDS = 3  # each fold model sees 2/3 of the training rows; 5 would cost 4 + 1 models' training, not 3 + 1
TUNED_LAYERS = 2    # of MiniLM's 6: the top two train about three times as fast as all six
EPOCHS = 1          # 3 + 1 models, each seeing its rows once: minutes on 2 cores (docs/speed-and-memory.md)
BATCH_SIZE = 32     # texts per training step: the usual for fine-tuning a sentence encoder
ENCODER_LEARNING_RATE = 5e-5  # the tuned layers: pretrained weights, moved gently
HEAD_LEARNING_RATE = 1e-3     # the head starts as a ridge fit (see train): refined, not learnt from scratch
MAX_TOKENS = 128    # a tweet is at most ~100 tokens; longer texts (posts) are cut, bounding time and memory
BUCKET_BATCHES = 16  # training batches drawn together and sorted by length: each pads to similar lengths
PREDICT_BATCH = 128  # texts per batch when only scoring, no gradients
VERSION = 1  # of the training: bump it when the code changes what the settings above don't show
PROGRESS_EVERY_S = 30  # a training model prints how far it is this often
CACHE = Path("finetuned")  # not a disposable cache: 05 loads the weights of new tweets' scorer from here
RECORD = "finetuned"       # the record's key in embeddings_meta.json
WEIGHTS, SCORES, CACHE_RECORD = "weights.safetensors", "scores.npy", "record.json"  # in one key's folder
RERUN = "02_generate_embeddings.py --finetune"


def settings():
    """Everything of this module that changes the scores (the residual's smoothing included)."""
    return {"version": VERSION, "folds": FINETUNE_FOLDS, "tuned_layers": TUNED_LAYERS, "epochs": EPOCHS,
            "batch_size": BATCH_SIZE, "encoder_learning_rate": ENCODER_LEARNING_RATE,
            "head_learning_rate": HEAD_LEARNING_RATE, "max_tokens": MAX_TOKENS, "bucket_batches": BUCKET_BATCHES,
            "residual_smoothing": features.HISTORY_SMOOTHING}


class FinetuneInputs(NamedTuple):
    """What fine-tuning reads of the classed table, one entry per row."""
    texts: list            # the content, as embedded
    log_likes: np.ndarray  # log1p(likes)
    keys: np.ndarray       # pair keys: whose typical likes a residual is taken from (text.residuals)
    copy_keys: np.ndarray  # copies of a tweet share one: they fall in one fold
    is_train: np.ndarray


def finetune_inputs(table):
    return FinetuneInputs(tables.embedded_texts("content", table), np.log1p(table["likes"].to_numpy(dtype=float)),
                          pairs.pair_keys(table)[0], text.copy_keys(table), (table["split"] == "train").to_numpy())


def wanted(table, info, model):
    """What scores made now from `table` (01's `info` gives the seed) with `model` would be made
    from, and its sha256 `key`: the cache folder's name, and what a record must match."""
    texts, log_likes, keys, _, is_train = finetune_inputs(table)
    targets = hashlib.sha256(is_train.tobytes() + log_likes.tobytes() + tables.texts_fingerprint(keys).encode())
    want = {"model": model, "settings": settings(), "seed": info.get("seed"), "rows": len(table),
            "texts_sha256": tables.texts_fingerprint(texts),
            "targets_sha256": targets.hexdigest()}  # the split, likes and pair keys: the targets and who trains
    return {**want, "key": hashlib.sha256(json.dumps(want, sort_keys=True).encode()).hexdigest()}


def why_scores_stale(record, want):
    """Why `record` (of embeddings_meta.json) does not vouch for FINETUNED_SCORES as `want`
    (see wanted) asks for it, in a few words; None when it does."""
    if not isinstance(record, dict) or "key" not in record:
        return f"no record of it in {common.EMBEDDINGS_META}"
    for field, what in (("texts_sha256", "other texts"), ("targets_sha256", "another split or other likes"),
                        ("seed", "another seed"), ("model", "another model"), ("settings", "other settings")):
        if record.get(field) != want[field]:
            return f"made from {what} than {common.CLASSED_CSV} and this version hold"
    if not Path(common.FINETUNED_SCORES).exists():
        return "no file yet"
    if record.get("npy_sha256") != common.file_sha256(common.FINETUNED_SCORES):
        return f"its bytes are not those {common.EMBEDDINGS_META} records (cut short, or from another run)"
    if not weights_intact(record):
        return f"the tuned weights it records, {record.get('weights')}, are missing or damaged"
    return None


def weights_intact(record):
    """Whether the tuned weights `record` names are there with the bytes it records."""
    path = Path(record.get("weights", ""))
    return path.is_file() and common.file_sha256(path) == record.get("weights_sha256")


def load_scores(table, info):
    """(scores, None): FINETUNED_SCORES, float32 (rows,), row-aligned with the classed `table`,
    when 02 --finetune's record says they were made from this table's texts, split, likes and
    01's seed (`info`); else (None, a one-line reason naming the rerun)."""
    try:
        record = json.loads(Path(common.EMBEDDINGS_META).read_text()).get(RECORD)
    except (OSError, ValueError, AttributeError):
        record = None
    why = why_scores_stale(record, wanted(table, info, record.get("model") if isinstance(record, dict) else None))
    if why:
        return None, f"{common.FINETUNED_SCORES} can't be used: {why}; run {RERUN}"
    scores = np.load(common.FINETUNED_SCORES)
    if scores.shape != (len(table),):
        return None, f"{common.FINETUNED_SCORES} has shape {scores.shape}, not ({len(table)},); run {RERUN}"
    return scores, None


def cached_or_trained(table, want, pick_device, force=False):
    """The record of the scores and weights `want` asks for: from CACHE when a folder holds them
    intact (no torch), else trained now on the device pick_device() gives, and cached."""
    folder = CACHE / want["key"][:16]
    record = None if force else cached_record(folder, want)
    if record is not None:
        print(f"  reusing the fine-tuned model and scores in {folder} (trained in {record['seconds']:.0f}s "
              f"on {record['device']}): no training")
        return record
    started = time.perf_counter()
    device = pick_device()
    scores, trained = out_of_fold_scores(want["model"], finetune_inputs(table), want["seed"], device)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / WEIGHTS, trained)
    files.save_npy(folder / SCORES, scores)
    record = {**want, "weights": str(folder / WEIGHTS), "weights_sha256": common.file_sha256(folder / WEIGHTS),
              "npy_sha256": common.file_sha256(folder / SCORES), "device": device,
              "seconds": round(time.perf_counter() - started, 1)}
    files.save_json(folder / CACHE_RECORD, record)  # last: the folder is complete
    return record


def cached_record(folder, want):
    """The record in `folder` when it is the one `want` asks for and both files have its bytes."""
    try:
        record = json.loads((folder / CACHE_RECORD).read_text())
        intact = record.get("key") == want["key"] and all(
            common.file_sha256(folder / name) == record[field]
            for name, field in ((WEIGHTS, "weights_sha256"), (SCORES, "npy_sha256")))
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    if not intact:
        print(f"  {folder} is damaged or from another version; training again")
    return record if intact else None


def copy_scores(record):
    """FINETUNED_SCORES as the same bytes as the scores cached with `record` (atomic)."""
    cached = Path(record["weights"]).with_name(SCORES)
    files.atomic_write(common.FINETUNED_SCORES, lambda tmp: shutil.copyfile(cached, tmp))


# ----------------------------------------------------------------------------------- the model

class Base(NamedTuple):
    """The sentence-transformers model, its inputs cut at MAX_TOKENS, its transformer, and where
    the tuned layers start."""
    model: object
    bert: object
    first: int


class Frozen(NamedTuple):
    """What the frozen layers give, computed once per distinct text and shared by every model
    trained on them: the lower layers' output of each text (lower_outputs) and its untuned embedding."""
    base: Base
    lower: list
    untuned: np.ndarray


def load_base(model_name, device):
    model = encoder.load_sentence_model(model_name, device)
    model.max_seq_length = MAX_TOKENS
    model.eval()
    bert = model[0].auto_model
    return Base(model, bert, len(bert.encoder.layer) - TUNED_LAYERS)


def run_layers(bert, layers, hidden, attention_mask):
    """`hidden` (batch, tokens, dim) through `layers` of `bert`, with its padding masked as
    BertModel.forward masks it."""
    mask, _ = bert._create_attention_masks(attention_mask=attention_mask, encoder_attention_mask=None,
                                           embedding_output=hidden, encoder_hidden_states=None, cache=None)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask)
    return hidden


def lower_outputs(base, texts):
    """The frozen layers' output for each text, unpadded: a list of (tokens, dim) tensors."""
    import torch
    from sentence_transformers.util import batch_to_device

    model, bert, first = base
    token_ids = model.tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]
    order = np.argsort([len(ids) for ids in token_ids], kind="stable")
    outputs = [None] * len(texts)
    progress = encoder.progress_bar(len(texts))
    with torch.no_grad():
        for start in range(0, len(texts), PREDICT_BATCH):
            batch = order[start:start + PREDICT_BATCH]
            tokens = batch_to_device(model.preprocess([texts[i] for i in batch]), model.device)
            hidden = bert.embeddings(input_ids=tokens["input_ids"], token_type_ids=tokens.get("token_type_ids"))
            hidden = run_layers(bert, bert.encoder.layer[:first], hidden, tokens["attention_mask"])
            for row, i in enumerate(batch):
                outputs[i] = hidden[row, :int(tokens["attention_mask"][row].sum())].clone()
            progress.update(len(batch))
    progress.close()
    return outputs


def embed(bert, layers, lower, indices):
    """The normalised mean-pooled embedding of the texts `indices` after the tuned `layers`, from
    their lower outputs padded to the longest of them."""
    import torch

    hidden = torch.nn.utils.rnn.pad_sequence([lower[i] for i in indices], batch_first=True)
    lengths = torch.tensor([len(lower[i]) for i in indices], device=hidden.device)
    mask = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]).long()
    hidden = run_layers(bert, layers, hidden, mask)
    weights = mask[..., None].to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9), dim=1)


def train(frozen, text_of_row, target, seed, label):
    """A copy of the tuned layers and a linear head, trained to predict the standardised `target`
    of each training row from its text's lower outputs (`text_of_row` indexes the texts of
    `frozen`, a Frozen). The head starts as the ridge of the target on the untuned embeddings of
    these rows (text.fit_ridge): one epoch then refines a fitted model rather than moving a head
    from zero. Returns {"tuned": ModuleDict(layers, head), "mean", "std"}: the target's scaling,
    from these rows."""
    import copy

    import torch

    (model, bert, first), lower, untuned = frozen
    torch.manual_seed(seed)
    mean, std = float(target.mean()), float(target.std()) or 1.0
    scaled = torch.tensor((target - mean) / std, dtype=torch.float32, device=model.device)
    tuned = torch.nn.ModuleDict({"layers": copy.deepcopy(bert.encoder.layer[first:]),
                                 "head": torch.nn.Linear(bert.config.hidden_size, 1)}).to(model.device)
    ridge = text.fit_ridge(untuned[text_of_row], np.arange(len(text_of_row)), (target - mean) / std)
    with torch.no_grad():
        tuned["head"].weight.copy_(torch.tensor(ridge["coef"][None, :], dtype=torch.float32))
        tuned["head"].bias.fill_(ridge["intercept"])
    optimizer = torch.optim.AdamW([{"params": tuned["layers"].parameters(), "lr": ENCODER_LEARNING_RATE},
                                   {"params": tuned["head"].parameters(), "lr": HEAD_LEARNING_RATE}])
    tuned.train()
    rng = np.random.default_rng(seed)
    lengths = np.array([len(lower[i]) for i in text_of_row])
    started = reported = time.perf_counter()
    done, total = 0, EPOCHS * len(text_of_row)
    for _ in range(EPOCHS):
        for batch in training_batches(lengths, rng):
            prediction = tuned["head"](embed(bert, tuned["layers"], lower, text_of_row[batch])).squeeze(1)
            loss = torch.nn.functional.mse_loss(prediction, scaled[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += len(batch)
            if time.perf_counter() - reported >= PROGRESS_EVERY_S:
                reported = time.perf_counter()
                print(f"    {label}: {done} of {total} texts in {reported - started:.0f}s", flush=True)
    tuned.eval()
    seconds = time.perf_counter() - started
    print(f"  {label}: trained on {len(text_of_row)} rows in {seconds:.1f}s ({total / seconds:.0f} texts/s)",
          flush=True)
    return {"tuned": tuned, "mean": mean, "std": std}


def training_batches(lengths, rng):
    """One epoch of row batches, in a seeded random order: BUCKET_BATCHES batches' worth of rows at
    a time are sorted by length and cut into batches, so each pads little; the batches shuffled."""
    order = rng.permutation(len(lengths))
    span = BATCH_SIZE * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), span):
        bucket = order[start:start + span]
        bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
        batches += [bucket[i:i + BATCH_SIZE] for i in range(0, len(bucket), BATCH_SIZE)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pooled(bert, layers, lower, text_indices):
    """embed() of the texts `text_indices`, PREDICT_BATCH at a time by length, without gradients:
    float32 (texts, dim)."""
    import torch

    order = np.argsort([len(lower[i]) for i in text_indices], kind="stable")
    embeddings = np.empty((len(text_indices), bert.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(order), PREDICT_BATCH):
            batch = order[start:start + PREDICT_BATCH]
            embeddings[batch] = embed(bert, layers, lower, text_indices[batch]).cpu().numpy()
    return embeddings


def predict(base, trained, lower, text_indices):
    """The trained model's scores (in the target's units) of the texts `text_indices`, float32."""
    head = trained["tuned"]["head"]
    embeddings = pooled(base.bert, trained["tuned"]["layers"], lower, text_indices)
    scaled = embeddings.astype(np.float64) @ head.weight.detach().cpu().double().numpy()[0] + head.bias.item()
    return (scaled * trained["std"] + trained["mean"]).astype(np.float32)


def out_of_fold_scores(model_name, inputs, seed, device):
    """Scores of every row of `inputs` (FinetuneInputs; float32, NaN for a training row whose fold
    had no other rows to learn from): fold k's training rows by a model trained on the other
    folds' rows, with residuals computed from those rows alone; the other rows by the model
    trained on every training row, which is returned beside them."""
    started = time.perf_counter()
    base = load_base(model_name, device)
    text_of_row, unique = pd.factorize(pd.Series(inputs.texts, dtype=object))
    print(f"fine-tuning {model_name} (top {TUNED_LAYERS} of {base.first + TUNED_LAYERS} layers) on {device}: "
          f"{FINETUNE_FOLDS} folds and all training rows, {EPOCHS} epoch(s), batch {BATCH_SIZE}, "
          f"max {MAX_TOKENS} tokens", flush=True)
    lower = lower_outputs(base, list(unique))
    frozen = Frozen(base, lower, pooled(base.bert, base.bert.encoder.layer[base.first:], lower, np.arange(len(unique))))
    print(f"  frozen layers: {len(unique)} distinct texts in {common.seconds_since(started)}", flush=True)
    is_train = inputs.is_train
    fold = text.folds(inputs.copy_keys, is_train, FINETUNE_FOLDS, seed)
    scores = np.full(len(inputs.texts), np.nan, dtype=np.float32)
    models = [(f"fold {k + 1} of {FINETUNE_FOLDS}", is_train & (fold != k), fold == k) for k in range(FINETUNE_FOLDS)]
    for index, (label, fitted, scored) in enumerate([*models, ("all training rows", is_train, ~is_train)]):
        fitted_on, scored = np.flatnonzero(fitted), np.flatnonzero(scored)
        if index < FINETUNE_FOLDS and not (len(scored) and len(fitted_on)):
            continue  # a fold with nothing to score or nothing to learn from: its rows stay NaN
        trained = train(frozen, text_of_row[fitted_on], text.residuals(inputs.log_likes, inputs.keys, fitted_on),
                        seed + index, label)
        scores[scored] = predict(base, trained, lower, text_of_row[scored])
    return scores, trained


def save_weights(path, trained):
    """The tuned layers and head (safetensors: loading it runs no code) with the target's scaling."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in trained["tuned"].state_dict().items()}
    files.atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={
        "target_mean": repr(trained["mean"]), "target_std": repr(trained["std"])}))


def load_scorer(record, device):
    """A function texts -> float32 scores by the model trained on every training row that
    `record` (02 --finetune's, in embeddings_meta.json) describes, for new tweets. A weights file
    that is missing or not the one recorded is a one-line error naming the rerun."""
    if not weights_intact(record):
        common.fail(f"the fine-tuned weights {record.get('weights')} are missing or damaged (not the file "
                    f"{common.EMBEDDINGS_META} records); rerun {RERUN}")
    import copy

    import torch
    from safetensors import safe_open

    base = load_base(record["model"], device)
    model, bert, first = base
    with safe_open(record["weights"], framework="pt") as weights:
        state = {name: weights.get_tensor(name) for name in weights.keys()}
        scaling = weights.metadata()
    tuned = torch.nn.ModuleDict({"layers": copy.deepcopy(bert.encoder.layer[first:]),
                                 "head": torch.nn.Linear(bert.config.hidden_size, 1)})
    tuned.load_state_dict(state)
    trained = {"tuned": tuned.to(model.device).eval(), "mean": float(scaling["target_mean"]),
               "std": float(scaling["target_std"])}

    def score(texts):
        text_of_row, unique = pd.factorize(pd.Series(list(texts), dtype=object))
        return predict(base, trained, lower_outputs(base, list(unique)), text_of_row)
    return score
