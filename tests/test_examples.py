"""The examples run (in --smoke mode), on one backend to save CI time."""
import importlib.util
import os

import numpy as np
import pytest

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
EXAMPLES_BACKEND = "jax"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_backend():
    import keras

    if keras.backend.backend() != EXAMPLES_BACKEND:
        pytest.skip(f"the examples are smoke-tested on {EXAMPLES_BACKEND} only, to save CI time")


def _run(name, tmp_path):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES_DIR, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(["--smoke", "--out", str(tmp_path)])


def test_tabular_breast_cancer(tmp_path, capsys):
    res = _run("tabular_breast_cancer", tmp_path)
    assert len(res["cv_scores"]) == 2 and np.all(res["cv_scores"] > 0.6)  # well above the 63% majority class
    assert res["test_accuracy"] > 0.6
    assert "CV accuracy" in capsys.readouterr().out


def test_digits_cnn(tmp_path):
    res = _run("digits_cnn", tmp_path)
    assert 1e-4 <= res["learning_rate"] <= 1e-2
    assert res["accuracy"] > 0.2  # 2 epochs on 256 images: clearly above chance (0.1)
    assert os.path.isfile(res["report"])
    for f in ("runlog.jsonl", "findings.json", "predictions.npz"):
        assert os.path.exists(os.path.join(res["run_dir"], f))


def test_sequence_clipping(tmp_path):
    res = _run("sequence_clipping", tmp_path)
    assert res["padding"]["status"] in ("passed", "warning")
    assert res["padding"]["evidence"]  # the padding check saw the integer sequences
    assert 10 <= res["maxlen"] <= 60
    assert res["grad_norms"] and all(np.isfinite(res["grad_norms"]))  # clipping optimizer recorded norms
    assert os.path.isfile(os.path.join(res["run_dir"], "report.html"))


def test_transfer_learning(tmp_path):
    res = _run("transfer_learning", tmp_path)
    lrs = sorted(res["learning_rates"])
    assert len(lrs) == 2 and lrs[1] == pytest.approx(10 * lrs[0], rel=1e-3)  # layer-wise rates, ratio kept
    assert 0 <= res["head_only"] <= 1 and 0 <= res["fine_tuned"] <= 1


def test_tuning_search(tmp_path):
    res = _run("tuning_search", tmp_path)
    assert len(res["trials"]) >= 4  # two stages of two trials
    assert 0 < res["best_score"] <= 1 and res["test_accuracy"] > 0.1
