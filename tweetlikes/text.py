"""The text as model input: its forms, fitted on the training rows, read as columns, and chosen
by 03b on the validation slice (04 and 05 use its choice). The forms' names and column names are
features.TEXT_FORMS and TEXT_COLUMNS, where the model input is laid out.

- `raw`: the 384 embedding columns (content ones for the classifier, content+company+username
  ones for the regressors), as the seed design feeds them;
- `projection`: the content embeddings' first PROJECTION_DIMS principal components over the
  training rows;
- `score`: a ridge regression of the content embeddings on what the wording adds to the account's
  typical likes (the residual below), out of fold (the validation slice from the fit rows alone);
- `finetuned`: that residual predicted by MiniLM fine-tuned on it (02 --finetune, whose model
  tweetlikes.finetune trains with this module's residuals and folds), out of fold;
- `none`: no text.

The residual of a tweet is its log1p(likes) less the smoothed mean log1p(likes) of its account
(its company's where the input has no usernames: pairs.pair_keys), the mean taken over the rows a
model is fitted on. Out of fold: the fit rows fall in folds, copies of a tweet together, and a
fold's scores come from a model fitted on the other folds, its residuals computed from those
folds alone, so no training row's score has seen its own likes or a copy's; the validation rows'
come from the model fitted on every fit row, as test and new rows get the model fitted on every
training row.

Everything here streams the embeddings a block of rows at a time (given the path of a .npy, a
window of the file at a time: features.mapped_rows): the ridge and the principal components need
only 385 x 385 sums.
"""
from typing import NamedTuple

import numpy as np
import pandas as pd

import common
from tweetlikes import features, models, pairs, training

SCORE_FOLDS = 5       # the out-of-fold ridges see 80% of the training rows, near the test rows' 100%
RIDGE_ALPHAS = np.logspace(-2, 4, 13)  # chosen per ridge by generalised cross-validation on its own rows


def residuals(log_likes, keys, rows):
    """log1p(likes) of `rows` less the mean of their key over `rows`, smoothed towards the mean of
    `rows` by features.HISTORY_SMOOTHING pseudo-posts; an empty key gets that mean."""
    target, key = log_likes[rows], keys[rows]
    prior = target.mean()
    codes, inverse = np.unique(key, return_inverse=True)
    means = (np.bincount(inverse, target) + features.HISTORY_SMOOTHING * prior) / \
        (np.bincount(inverse) + features.HISTORY_SMOOTHING)
    means[codes == ""] = prior
    return target - means[inverse]


def folds(copy_keys, is_train, n_folds, seed):
    """A fold (0..n_folds-1) for each training row, -1 for the others; the rows of one copy key
    (a hash of content and username) share a fold."""
    _, group = np.unique(copy_keys, return_inverse=True)
    fold = np.random.default_rng(seed).integers(0, n_folds, size=group.max() + 1)[group]
    return np.where(is_train, fold, -1)


def copy_keys(table):
    """One hash per row of content and username: equal for copies of a tweet."""
    return pd.util.hash_pandas_object(table[["content", "username"]], index=False).to_numpy()


def sums(embeddings, rows, target=None):
    """(count, sum of x, sum of x x^T, sum of x y) over `rows` of the embeddings, a block at a time."""
    dim = features.embedding_width(embeddings)
    total, outer, cross = np.zeros(dim), np.zeros((dim, dim)), np.zeros(dim)
    for start, block in zip(range(0, len(rows), features.BLOCK_ROWS), blocks(embeddings, rows)):
        total += block.sum(axis=0)
        outer += block.T @ block
        if target is not None:
            cross += block.T @ target[start:start + features.BLOCK_ROWS]
    return len(rows), total, outer, cross


def fit_ridge(embeddings, rows, target):
    """A ridge of `target` on the embeddings of `rows`, its penalty chosen by generalised
    cross-validation on those rows: {"coef", "intercept", "alpha"}."""
    n, total, outer, cross = sums(embeddings, rows, target)
    mean, target_mean = total / n, target.mean()
    gram = outer - n * np.outer(mean, mean)
    centred = cross - n * mean * target_mean
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = np.clip(eigenvalues, 0, None)
    projected = vectors.T @ centred
    total_squares = float(((target - target_mean) ** 2).sum())
    best = None
    for alpha in RIDGE_ALPHAS:
        shrink = 1 / (eigenvalues + alpha)
        # residual sum of squares = y'y - 2 w'b + w'Gw, with w = V diag(shrink) V'b
        rss = total_squares - np.sum(projected ** 2 * shrink * (2 - eigenvalues * shrink))
        dof = np.sum(eigenvalues * shrink)
        gcv = n * rss / max(n - dof, 1) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, alpha, vectors @ (projected * shrink))
    _, alpha, coef = best
    return {"coef": coef, "intercept": float(target_mean - mean @ coef), "alpha": float(alpha)}


def fit_projection(embeddings, rows):
    """The first features.PROJECTION_DIMS principal components of the embeddings of `rows`."""
    n, total, outer, _ = sums(embeddings, rows)
    mean = total / n
    eigenvalues, vectors = np.linalg.eigh(outer / n - np.outer(mean, mean))
    return {"mean": mean, "components": vectors[:, ::-1][:, :features.PROJECTION_DIMS]}


def fit(embeddings, log_likes, keys, copy_keys_of_rows, rows, seed):
    """Everything the score and projection forms need, fitted on the training rows, `rows` = (fit
    rows, validation rows): the ridge on all of them (for test and new rows), the out-of-fold
    scores of the training rows, and the principal components. The validation rows stand to the
    fit rows as the test rows stand to the training rows: their scores come from a ridge on the fit
    rows alone, and the fit rows' folds hold no validation row, so no fit row's score has seen a
    validation row's likes and 03b's choice of form on the validation slice is a choice made on
    unseen rows. `embeddings` are the content ones, row-aligned with the other arrays."""
    fit_rows, validation_rows = rows
    train_rows = np.sort(np.concatenate([fit_rows, validation_rows]))
    is_fit = np.zeros(len(log_likes), dtype=bool)
    is_fit[fit_rows] = True
    fold = folds(copy_keys_of_rows, is_fit, SCORE_FOLDS, seed)
    out_of_fold = np.full(len(log_likes), np.nan)
    for fitted_on, scored in [*((np.flatnonzero(is_fit & (fold != k)), np.flatnonzero(fold == k))
                                for k in range(SCORE_FOLDS)), (fit_rows, validation_rows)]:
        if len(scored) and len(fitted_on) > 1:
            ridge = fit_ridge(embeddings, fitted_on, residuals(log_likes, keys, fitted_on))
            out_of_fold[scored] = score_rows(ridge, embeddings, scored)
    ridge = fit_ridge(embeddings, train_rows, residuals(log_likes, keys, train_rows))
    return {"ridge": ridge, "projection": fit_projection(embeddings, train_rows),
            "out_of_fold_score": out_of_fold.astype(np.float32), "folds": SCORE_FOLDS, "seed": seed}


def blocks(embeddings, rows):
    """The embeddings (an array, or a .npy path read a window at a time) of `rows` as float64, a
    block at a time."""
    for start in range(0, len(rows), features.BLOCK_ROWS):
        part = rows[start:start + features.BLOCK_ROWS]
        yield np.asarray(features.mapped_rows(embeddings, part) if isinstance(embeddings, str) else embeddings[part],
                         dtype=np.float64)


def score_rows(ridge, embeddings, rows):
    return np.concatenate([block @ ridge["coef"] + ridge["intercept"] for block in blocks(embeddings, rows)]
                          or [np.zeros(0)])


# -------------------------------------------- reading: the form's columns, as the models read them


def columns(form, fitted, embeddings, rows, new_scores=None, out_of_fold=True):
    """The table columns of `form` for `rows` of `embeddings` (content ones). Rows of the classed
    CSV (`out_of_fold`): the training rows' out-of-fold scores, the ridge on every training row
    elsewhere, and 02 --finetune's scores that `fitted` carries; new rows: the ridge's, and the
    fine-tuned model's `new_scores`."""
    if form == "score":
        values = score_rows(fitted["ridge"], embeddings, rows)
        if out_of_fold:
            held_out = fitted["out_of_fold_score"][rows]
            values = np.where(np.isnan(held_out), values, held_out)
        values = values[:, None]
    elif form == "projection":
        projection = fitted["projection"]
        values = np.concatenate([(block - projection["mean"]) @ projection["components"]
                                 for block in blocks(embeddings, rows)]
                                or [np.zeros((0, features.PROJECTION_DIMS))])
    elif form == "finetuned":
        values = np.asarray(fitted["finetuned"][rows] if out_of_fold else new_scores, dtype=np.float64)[:, None]
    else:
        values = np.zeros((len(rows), 0))
    return pd.DataFrame(values.astype(np.float32), columns=features.TEXT_COLUMNS[form])


def with_text_columns(tweets, classifier, content, rows, out_of_fold, new_scores=None):
    """`tweets` with the columns of the classifier's text form (columns) for `rows` of the
    `content` embeddings, for the forms that have columns; new tweets (not `out_of_fold`) in the
    fine-tuned form take `new_scores`, 02 --finetune's model's (finetune.load_scorer)."""
    form = classifier["meta"]["text_form"]
    if not features.TEXT_COLUMNS[form]:
        return tweets
    return tweets.join(columns(form, classifier["text"], content, rows, new_scores, out_of_fold).set_axis(tweets.index))


def text_form_inputs(inputs, groups, form, text_model):
    """The model input of each embedding kind with the text in `form`: `inputs` themselves for the
    raw embeddings, else the form's columns (columns, out of fold for training rows; the
    fine-tuned scores from `text_model`) before the inputs' own feature columns, and no embeddings
    (the order of features.feature_columns)."""
    if form == "raw" or "text" not in groups:
        return inputs
    content = inputs["content"]  # its embeddings' path, read a window at a time; every kind has the same columns
    values = columns(form, text_model, content.embeddings if form in ("score", "projection") else None,
                     np.arange(content.rows)).to_numpy(dtype=np.float32)
    values = values if content.columns is None else np.hstack([values, content.columns])
    return {kind: features.ModelInput(None, values) for kind in inputs}


def reads_text(classifier):
    """Whether the models read the text, and so its embeddings: `text` among the features, in a
    form other than none."""
    return "text" in classifier["meta"]["features"] and classifier["meta"]["text_form"] != "none"


def text_form_line(meta):
    """How the models read the text, and why: 03b's choice, with each form's validation error."""
    if "text" not in meta["features"]:
        return "text: not read (trained with --features without text)"
    scores = meta.get("text_form_scores") or {}
    why = ("chosen by 03b on the validation slice; log1p RMSE there " +
           ", ".join(f"{form} {score['validation_log_rmse']:.3f}" for form, score in scores.items())) \
        if scores else "set by 03b --text-form"
    return f"text read as: {meta['text_form']} ({why})"


# ------------------------------------------------------------------------- choosing the form (03b)


class TextRows(NamedTuple):
    """What the choice of text form reads of the training rows (03b reads them in its one pass)."""
    log_likes: np.ndarray  # log1p(likes) of every row
    keys: np.ndarray       # the key of each row's pairs, and its copy key (text.row_keys)
    copies: np.ndarray
    finetuned: object      # 02 --finetune's scores of every row, or None where they are not to be tried
    finetuned_record: dict  # with them, 02's record of the tuned weights (finetune.RECORD), which new tweets need


def choose_form(requested, inputs, groups, text_rows, rows, trainer):
    """The form of the text (features.TEXT_FORMS) whose global regressor, fitted on the fit rows,
    errs least in log1p(likes) on the validation slice, `none` among them, so the text is used
    only in a form that pays on these training rows; with the fitted text model (fit) and
    each form's validation RMSE. `requested` is --text-form, `rows` (fit rows, validation rows).
    (Not pairwise accuracy: two training rows of one account hold out-of-fold history from
    different folds, which orders them backwards, so it would mislead.)"""
    if text_rows is None:
        return "none", None, {}
    log_likes, finetuned = text_rows.log_likes, text_rows.finetuned
    text_model = fit(inputs["content"].embeddings, log_likes, text_rows.keys, text_rows.copies, rows,
                          trainer.settings["seed"])
    candidates = [form for form in features.TEXT_FORMS if form != "finetuned" or finetuned is not None] \
        if requested == "auto" else [requested]
    if tuple(groups) == ("text",):  # --features seed, the original design: the raw embeddings alone
        candidates = ["raw"] if requested == "auto" else candidates
        if candidates == ["none"]:
            common.fail("--text-form none with --features seed leaves no input for the models")
    scores = {}
    if len(candidates) > 1:
        fit_rows, validation_rows = rows
        print(f"text form, by its global regressor's log1p RMSE on the {len(validation_rows)} validation rows:")
        for form in candidates:
            X = text_form_inputs(inputs, groups, form, {**text_model, "finetuned": finetuned})["combined"]
            model = training.train_xgboost(trainer, "regressor",
                                           training.TrainingSet(X, log_likes, fit_rows, validation_rows))
            error = models.rmse(training.predict_rows(model.predict, X, validation_rows), log_likes[validation_rows])
            scores[form] = {"validation_log_rmse": error, "columns": X.width}
            print(f"  {form:10s} {error:.3f}  ({X.width} columns)")
    chosen = min(candidates, key=lambda form: scores[form]["validation_log_rmse"]) if scores else candidates[0]
    if chosen == "finetuned":  # the scores travel with the classifier, and the record of the weights new tweets need
        text_model.update(finetuned=finetuned, finetuned_record=text_rows.finetuned_record)
    return chosen, text_model, scores


def row_keys(parts):
    """For every row of the classed CSV, from (copy_keys, accounts_of) of each chunk in order, as
    it streams past: the key of its pairs (pairs.pair_keys: the account, or the company without
    usernames) and its copy key (copy_keys)."""
    keys, _ = pairs.pair_keys(accounts([part for _, part in parts]))
    return keys, np.concatenate([hashes for hashes, _ in parts])


def accounts_of(chunk):
    """A chunk of the classed CSV's username and company as categoricals: its rows share one string
    per account (300K rows hold ~5 MB, not ~60), for accounts to join."""
    return {column: pd.Categorical(chunk[column]) for column in ("username", "company")}


def accounts(parts):
    """The username and company of every row, as text, from accounts_of of each chunk in order."""
    shared = {column: pd.api.types.union_categoricals([part[column] for part in parts])
              for column in ("username", "company")}
    return pd.DataFrame({column: np.asarray(values.categories, dtype=object)[values.codes]
                         for column, values in shared.items()}, dtype=object)
