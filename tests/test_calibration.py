"""tweetlikes/calibration.py: every calibration gives probabilities, the chosen one repairs
probabilities that are too sure or biased, and leaves calibrated ones nearly alone."""
import numpy as np

from tweetlikes import calibration

def test_calibrated_probabilities_are_probabilities():
    rng = np.random.default_rng(1)
    raw = rng.dirichlet([1, 1, 1], size=300)
    for method, fitter in calibration.FITTERS.items():
        calibrated = calibration.apply(fitter(raw, rng.integers(0, 3, 300)), raw)
        assert calibrated.shape == raw.shape and np.allclose(calibrated.sum(axis=1), 1), method
        assert (calibrated > 0).all() and (calibrated < 1).all(), method


def test_calibration_repairs_probabilities_that_are_too_sure_and_biased():
    rng = np.random.default_rng(2)
    true = rng.dirichlet([2, 1, 0.3], size=4000)
    classes = np.array([rng.choice(3, p=p) for p in true])
    skewed = true ** 3 * np.array([1.0, 1.0, 0.3])  # overconfident, and the rare class under-predicted
    skewed /= skewed.sum(axis=1, keepdims=True)
    fitted = calibration.fit(skewed[:2000], classes[:2000], seed=0)
    assert fitted["method"] != "none"
    after = calibration.apply(fitted, skewed[2000:])
    assert calibration.log_loss(after, classes[2000:]) < calibration.log_loss(skewed[2000:], classes[2000:])
    before_ece = calibration.class_figures(skewed[2000:], classes[2000:])["viral"]["ece"]
    assert calibration.class_figures(after, classes[2000:])["viral"]["ece"] < before_ece


def test_well_calibrated_probabilities_are_left_nearly_alone():
    rng = np.random.default_rng(3)
    true = rng.dirichlet([2, 1, 0.5], size=3000)
    classes = np.array([rng.choice(3, p=p) for p in true])
    fitted = calibration.fit(true, classes, seed=0)
    assert np.abs(calibration.apply(fitted, true) - true).mean() < 0.03
