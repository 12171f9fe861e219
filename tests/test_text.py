"""tweetlikes.text: the residual from the account's typical likes, folds that keep copies together,
the ridge chosen by generalised cross-validation and the principal components (checked against
scikit-learn and numpy), and the out-of-fold score, whose leak test fails when the rule is broken."""
import numpy as np
import pandas as pd
import pytest

from tweetlikes import features, text


def test_the_residual_is_taken_from_the_smoothed_account_mean_over_the_rows_given():
    log_likes = np.array([1.0, 3.0, 5.0, 100.0])
    keys = np.array(["a", "a", "", "b"], dtype=object)
    rows = np.array([0, 1, 2])  # row 3 (and its key b) is not among them
    prior = 3.0  # the mean of rows 0-2
    mean_a = (1 + 3 + features.HISTORY_SMOOTHING * prior) / (2 + features.HISTORY_SMOOTHING)
    assert text.residuals(log_likes, keys, rows) == pytest.approx([1 - mean_a, 3 - mean_a, 5 - prior])


def test_folds_keep_copies_together_and_leave_other_rows_out():
    keys = np.array([7, 7, 8, 9, 7, 10] * 20)
    is_train = np.arange(len(keys)) % 6 != 5
    fold = text.folds(keys, is_train, 3, seed=1)
    assert (fold[~is_train] == -1).all()
    for key in (7, 8, 9):
        assert len(set(fold[keys == key])) == 1
    assert np.array_equal(fold, text.folds(keys, is_train, 3, seed=1))
    copies = text.copy_keys(pd.DataFrame({"content": ["hi", "hi", "hi"], "username": ["a", "a", "b"]}))
    assert copies[0] == copies[1] != copies[2]


def test_the_ridge_is_scikit_learns_at_the_penalty_generalised_cross_validation_picks():
    from sklearn.linear_model import Ridge, RidgeCV

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    y = X[:, 0] - 2 * X[:, 1] + rng.normal(size=300)
    rows = np.arange(20, 300)  # only these rows count
    ridge = text.fit_ridge(X, rows, y[rows])
    assert ridge["alpha"] == RidgeCV(alphas=text.RIDGE_ALPHAS, gcv_mode="eigen").fit(X[rows], y[rows]).alpha_
    reference = Ridge(alpha=ridge["alpha"]).fit(X[rows], y[rows])
    assert ridge["coef"] == pytest.approx(reference.coef_, abs=1e-9)
    assert ridge["intercept"] == pytest.approx(reference.intercept_, abs=1e-9)


def test_the_projection_is_the_principal_components_of_the_rows_given():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 30)) * np.linspace(3, 0.1, 30)
    rows = np.arange(150)
    projection = text.fit_projection(X, rows)
    _, _, vt = np.linalg.svd(X[rows] - X[rows].mean(axis=0), full_matrices=False)
    for i in range(features.PROJECTION_DIMS):
        assert abs(projection["components"][:, i] @ vt[i]) == pytest.approx(1, abs=1e-8)  # the same axis


def embedded_tweets(n=240, dim=20, seed=3):
    """Rows of 4 accounts whose likes follow the first embedding column, 80% of them training rows,
    and (fit rows, validation rows) of those: every 8th training row validates."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n, dim)).astype(np.float32)
    keys = np.array(["a", "b", "c", "d"], dtype=object)[np.arange(n) % 4]
    log_likes = 3 + embeddings[:, 0] + (np.arange(n) % 4) + rng.normal(scale=0.3, size=n)
    is_train = np.arange(n) % 5 != 0
    train_rows = np.flatnonzero(is_train)
    rows = (np.setdiff1d(train_rows, train_rows[::8]), train_rows[::8])
    return embeddings, log_likes, keys, np.arange(n) % 97, is_train, rows


def wobbled(log_likes, changed_rows):
    return log_likes + np.where(changed_rows, 5.0 * np.sin(np.arange(len(log_likes))), 0)


def perturbed_fold_scores(fold_k=1):
    """Fold k's out-of-fold scores before and after the likes of its rows and of the test rows
    change, and the other training rows' scores before and after."""
    embeddings, log_likes, keys, copies, is_train, rows = embedded_tweets()
    is_fit = np.isin(np.arange(len(log_likes)), rows[0])
    in_fold = text.folds(copies, is_fit, text.SCORE_FOLDS, seed=0) == fold_k
    before = text.fit(embeddings, log_likes, keys, copies, rows, seed=0)["out_of_fold_score"]
    after = text.fit(embeddings, wobbled(log_likes, in_fold | ~is_train), keys, copies, rows, seed=0)["out_of_fold_score"]
    others = is_train & ~in_fold
    return before[in_fold], after[in_fold], before[others], after[others]


def test_no_training_row_scores_with_its_own_likes():
    fold_before, fold_after, others_before, others_after = perturbed_fold_scores()
    assert fold_before.tobytes() == fold_after.tobytes()  # fitted without fold 1's likes
    assert not np.allclose(others_before, others_after)  # the other folds' ridges did see them


def test_the_leak_test_fails_when_the_out_of_fold_rule_is_broken(monkeypatch):
    """Residuals taken over every training row (the account means then hold the held-out fold's
    likes) is the subtle way to break the rule; the test above must then fail."""
    all_training_rows = embedded_tweets()[4]
    residuals = text.residuals
    monkeypatch.setattr(text, "residuals", lambda log_likes, keys, rows:
                        residuals(log_likes, keys, np.flatnonzero(all_training_rows))[np.searchsorted(
                            np.flatnonzero(all_training_rows), rows)])
    fold_before, fold_after, _, _ = perturbed_fold_scores()
    assert fold_before.tobytes() != fold_after.tobytes()


def test_no_fit_row_nor_validation_row_scores_with_a_validation_rows_likes():
    """The validation slice stands to the fit rows as the test rows to the training rows: the fit
    rows' folds and the validation rows' ridge never see its likes, so 03b's choice of text form
    on the slice is made on rows no score was fitted on."""
    embeddings, log_likes, keys, copies, is_train, rows = embedded_tweets()
    training_rows = np.sort(np.concatenate(rows))
    before = text.fit(embeddings, log_likes, keys, copies, rows, seed=0)
    validation = np.isin(np.arange(len(log_likes)), rows[1])
    after = text.fit(embeddings, wobbled(log_likes, validation | ~is_train), keys, copies, rows, seed=0)
    assert before["out_of_fold_score"][training_rows].tobytes() == after["out_of_fold_score"][training_rows].tobytes()
    assert not np.isnan(before["out_of_fold_score"][training_rows]).any()
    assert before["ridge"]["coef"].tobytes() != after["ridge"]["coef"].tobytes()  # the test rows' ridge sees the slice


def test_columns_are_out_of_fold_for_training_rows_and_the_full_ridge_elsewhere():
    embeddings, log_likes, keys, copies, is_train, rows = embedded_tweets()
    fitted = text.fit(embeddings, log_likes, keys, copies, rows, seed=0)
    rows = np.arange(len(embeddings))
    score = text.columns("score", fitted, embeddings, rows)["text_score"].to_numpy()
    assert np.array_equal(score[is_train], fitted["out_of_fold_score"][is_train])
    full = text.score_rows(fitted["ridge"], embeddings, rows).astype(np.float32)
    assert np.array_equal(score[~is_train], full[~is_train])
    assert np.array_equal(text.columns("score", fitted, embeddings, rows, out_of_fold=False)["text_score"], full)
    # The score carries what it was fitted on: the first column, within account.
    assert np.corrcoef(score[~is_train], embeddings[~is_train, 0])[0, 1] > 0.9
    projection = text.columns("projection", fitted, embeddings, rows[:5])
    assert list(projection.columns) == features.TEXT_COLUMNS["projection"] and len(projection) == 5
    assert text.columns("none", fitted, embeddings, rows).shape == (len(rows), 0)
