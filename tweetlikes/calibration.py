"""Class probabilities that are probabilities: the classifier's, with its class weights divided
out, recalibrated on the validation slice (training rows that no model was fitted on), and the
figures that say how well any probabilities are calibrated.

04 fits one of CALIBRATIONS, the one with the lowest cross-validated log loss on the validation
slice (`none` among them, so calibrating never loses there), and saves it with the combiner; 05
applies it before routing, so the learned routing is fitted on and applied to the same
probabilities. The calibration is plain numbers in JSON: no pickles.
"""
import numpy as np

import common

CALIBRATIONS = ("none", "temperature", "vector", "sigmoid", "isotonic")
CALIBRATION_FOLDS = 5   # cross-validation on the validation slice, to choose among CALIBRATIONS
RELIABILITY_BINS = 10   # equal-width bins of predicted probability, for the ECE and the diagram
EPSILON = 1e-6          # probabilities are kept in [EPSILON, 1 - EPSILON]: a log loss stays finite


def fit(probabilities, classes, seed):
    """The calibration of CALIBRATIONS with the lowest cross-validated log loss on these rows,
    refitted on all of them, as a JSON-ready dict (with every candidate's log loss)."""
    folds = np.random.default_rng(seed).permutation(len(classes)) % CALIBRATION_FOLDS
    losses = {}
    for method in CALIBRATIONS:
        held_out = np.empty_like(probabilities)
        for k in range(CALIBRATION_FOLDS):
            rows = folds == k
            held_out[rows] = apply(FITTERS[method](probabilities[~rows], classes[~rows]), probabilities[rows])
        losses[method] = log_loss(held_out, classes)
    best = min(CALIBRATIONS, key=losses.get)
    return {**FITTERS[best](probabilities, classes), "cross_validated_log_loss": losses,
            "fitted_rows": int(len(classes))}


def apply(calibration, probabilities):
    """Calibrated probabilities, rows summing to 1."""
    p = np.clip(np.asarray(probabilities, dtype=float), EPSILON, 1 - EPSILON)
    method = calibration["method"]
    if method == "none":
        out = p
    elif method in ("temperature", "vector"):
        logits = np.log(p) / calibration["temperature"] + np.asarray(calibration["bias"])
        out = np.exp(logits - logits.max(axis=1, keepdims=True))
    elif method == "sigmoid":
        out = np.column_stack([_sigmoid(a * _logit(p[:, k]) + b) for k, (a, b) in enumerate(calibration["platt"])])
    else:  # isotonic: a step function per class, kept as its breakpoints
        out = np.column_stack([np.interp(p[:, k], x, y) for k, (x, y) in enumerate(calibration["steps"])])
    out = np.clip(out, EPSILON, None)
    return out / out.sum(axis=1, keepdims=True)


def valid(calibration):
    """Whether a stored calibration is one apply() can use (as 04 writes it: 05 refuses an edited
    one): a known method with a finite number in every place it reads, a positive temperature,
    and isotonic steps in order."""
    n = len(common.CLASS_NAMES)

    def numbers(values, length):
        return isinstance(values, list) and len(values) == length and all(map(common.is_number, values))

    def steps(step):
        return (isinstance(step, list) and len(step) == 2 and isinstance(step[0], list) and len(step[0]) > 0
                and numbers(step[0], len(step[0])) and numbers(step[1], len(step[0])) and all(np.diff(step[0]) >= 0))
    if not isinstance(calibration, dict):
        return False
    method = calibration.get("method")
    if method in ("temperature", "vector"):
        return (common.is_number(calibration.get("temperature")) and calibration["temperature"] > 0
                and numbers(calibration.get("bias"), n))
    if method == "sigmoid":
        return isinstance(calibration.get("platt"), list) and len(calibration["platt"]) == n and \
            all(numbers(pair, 2) for pair in calibration["platt"])
    if method == "isotonic":
        return isinstance(calibration.get("steps"), list) and len(calibration["steps"]) == n and \
            all(map(steps, calibration["steps"]))
    return method == "none"


def _fit_none(probabilities, classes):
    return {"method": "none"}


def _fit_scaling(probabilities, classes, with_bias):
    """Temperature scaling of the log-probabilities (and, for `vector`, a bias per class), by
    maximum likelihood."""
    from scipy.optimize import minimize

    log_p = np.log(np.clip(probabilities, EPSILON, 1 - EPSILON))
    n_classes = probabilities.shape[1]

    def loss(params):
        logits = log_p * np.exp(-params[0]) + (np.r_[0.0, params[1:]] if with_bias else 0.0)
        logits -= logits.max(axis=1, keepdims=True)
        return -np.mean(logits[np.arange(len(classes)), classes] - np.log(np.exp(logits).sum(axis=1)))

    start = np.zeros(n_classes if with_bias else 1)
    params = minimize(loss, start, method="L-BFGS-B").x
    bias = np.r_[0.0, params[1:]] if with_bias else np.zeros(n_classes)
    return {"method": "vector" if with_bias else "temperature", "temperature": float(np.exp(params[0])),
            "bias": bias.tolist()}


def _fit_sigmoid(probabilities, classes):
    """Platt scaling per class, one against the rest, on the logit of its probability."""
    from sklearn.linear_model import LogisticRegression

    platt = []
    for k in range(probabilities.shape[1]):
        x = _logit(np.clip(probabilities[:, k], EPSILON, 1 - EPSILON))[:, None]
        target = classes == k
        if target.all() or not target.any():
            platt.append((1.0, 0.0))
            continue
        model = LogisticRegression(C=1e6).fit(x, target)
        platt.append((float(model.coef_[0, 0]), float(model.intercept_[0])))
    return {"method": "sigmoid", "platt": platt}


def _fit_isotonic(probabilities, classes):
    from sklearn.isotonic import IsotonicRegression

    steps = []
    for k in range(probabilities.shape[1]):
        model = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(probabilities[:, k], classes == k)
        steps.append((model.X_thresholds_.tolist(), model.y_thresholds_.tolist()))
    return {"method": "isotonic", "steps": steps}


FITTERS = {"none": _fit_none, "temperature": lambda p, c: _fit_scaling(p, c, with_bias=False),
           "vector": lambda p, c: _fit_scaling(p, c, with_bias=True), "sigmoid": _fit_sigmoid,
           "isotonic": _fit_isotonic}


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))  # 1 / (1 + exp(-x)), without overflowing for large -x


# ------------------------------------------------------------------------------------ figures

def log_loss(probabilities, classes):
    """Mean negative log-likelihood of the true classes."""
    p = np.clip(probabilities[np.arange(len(classes)), classes], EPSILON, 1)
    return float(-np.mean(np.log(p)))


def class_figures(probabilities, classes):
    """Per class, one against the rest: Brier score, log loss, expected calibration error (the
    row-weighted gap between mean probability and observed share over RELIABILITY_BINS bins), the
    mean probability beside the observed share; and the reliability curve (per bin: mean
    probability, observed share, rows)."""
    figures = {}
    edges = np.linspace(0, 1, RELIABILITY_BINS + 1)
    for k, name in enumerate(common.CLASS_NAMES):
        p, observed = probabilities[:, k], (classes == k).astype(float)
        clipped = np.clip(p, EPSILON, 1 - EPSILON)
        bins = np.clip(np.digitize(p, edges[1:-1]), 0, RELIABILITY_BINS - 1)
        curve = [(float(p[bins == b].mean()), float(observed[bins == b].mean()), int((bins == b).sum()))
                 for b in range(RELIABILITY_BINS) if (bins == b).any()]
        figures[name] = {
            "brier": float(np.mean((p - observed) ** 2)),
            "log_loss": float(-np.mean(observed * np.log(clipped) + (1 - observed) * np.log(1 - clipped))),
            "ece": float(sum(rows * abs(mean_p - share) for mean_p, share, rows in curve) / len(p)),
            "mean_probability": float(p.mean()), "share": float(observed.mean()), "reliability": curve}
    return figures
