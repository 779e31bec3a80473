"""A hand-made run directory with every record kind the report draws (no training needed)."""
import math
import os

import numpy as np

from kerasrecipe.config import RecipeConfig
from kerasrecipe.diagnose.finding import Finding
from kerasrecipe.io import atomic_write_json
from kerasrecipe.runlog import RunLog


def make_run_dir(path, *, with_predictions=True, with_hist=True, images=True):
    rng = np.random.default_rng(0)
    os.makedirs(path, exist_ok=True)
    atomic_write_json(os.path.join(path, "config.json"), RecipeConfig(clipnorm=5.0).to_dict())
    atomic_write_json(os.path.join(path, "env.json"), {"time": "2026-11-27T01:00:00", "backend": "jax",
                                                        "keras": "3.x", "kernels": {"native": True, "path": "cpu"}})
    log = RunLog(path)
    layers = [("conv", "ConvBNReLU", "relu"), ("res", "ResidualBlock", "relu"), ("dense", "Dense", "softmax")]
    lrs = np.geomspace(1e-6, 1.0, 60)
    losses = 2.3 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 3) * 2)) + np.where(lrs > 0.1, (lrs * 30) ** 2, 0)
    log.log("preflight", ok=False, counts={"passed": 2, "failed": 1}, elapsed=1.25, time_budget=30,
            rows=[{"name": "initial_loss", "title": "Initial loss", "tips": ["C1"], "status": "passed",
                   "summary": "2.31 vs -log(1/10)=2.30", "issues": [], "seconds": 0.2},
                  {"name": "overfit_batch", "title": "Overfit one batch", "tips": ["C4"], "status": "failed",
                   "summary": "loss 1.2 after 50 steps", "issues": [{"tag": "cannot_overfit", "severity": "error",
                   "message": "cannot overfit 8 samples <b>", "fix": "lower the LR"}], "seconds": 1.0},
                  {"name": "leakage", "title": "Leakage", "tips": ["B2"], "status": "skipped",
                   "reason": "no validation data", "issues": [], "seconds": 0.0}])
    log.log("lr_find", lrs=lrs.tolist(), losses=losses.tolist(), smoothed=losses.tolist(), suggestion=1e-3)
    log.log("meta", model={"name": "digits_cnn", "params": 12345, "trainable_params": 12000,
                           "layers": [{"name": n, "class": c, "activation": a, "units": None} for n, c, a in layers]},
            loss="sparse_categorical_crossentropy", task="classification", num_classes=10, from_logits=False,
            num_samples=1000, steps_per_epoch=10, epochs=6, has_validation=True, backend="jax")
    step = 0
    for epoch in range(6):
        for b in range(10):
            log.log("batch", epoch=epoch, step=step, loss=2.0 * math.exp(-0.05 * step) + 0.05 * rng.random(),
                    lr=1e-3, flush=False)
            if b % 5 == 0:
                for i, (n, c, a) in enumerate(layers):
                    act = {"count": 640, "mean": 0.3 + 0.01 * step, "std": 0.5, "min": 0.0, "max": 3.0,
                           "zero_frac": 0.2 + 0.1 * i + 0.005 * step, "sat_frac": 0.0 if a == "relu" else 0.1,
                           "nan": 0, "inf": 0}
                    if with_hist:
                        h = np.zeros(65, dtype=int)
                        h[32] = 100
                        h[40 + i + epoch: 55 + i] = rng.integers(1, 50, size=len(h[40 + i + epoch: 55 + i]))
                        act["hist"] = h.tolist()
                    log.log("layer", epoch=epoch, step=step, layer=n, index=i, activation=a, act=act,
                            grad_norm=0.1 / (1 + step), weight_norm=3.0, update_ratio=1e-3 * (1 + i), flush=False,
                            **{"class": c})
                log.log("grad", epoch=epoch, step=step, global_norm=1.0 + rng.random() * 6, clipped=False,
                        source="probe", flush=False)
            step += 1
        log.log("epoch", epoch=epoch, step=step - 1, lr=1e-3 if epoch < 4 else 5e-4,
                logs={"loss": 2.0 * math.exp(-0.5 * epoch), "val_loss": 2.1 * math.exp(-0.4 * epoch) + 0.02 * epoch,
                      "accuracy": 0.3 + 0.1 * epoch, "val_accuracy": 0.28 + 0.1 * epoch})
    log.log("event", epoch=4, step=45, event="note", message="plateau: lr halved to 5e-4")
    findings = [Finding("overfitting", "warning", "val_loss rose for 2 epochs while loss fell",
                        evidence={"epoch": 5}, causes=["too little data"], fixes=["add dropout <script>"],
                        tips=["G1", "F2"], epoch=5),
                Finding("dead_relu", "error", "42% of conv's units never fire", layer="conv",
                        fixes=["He init, lower LR"], tips=["G3"])]
    atomic_write_json(os.path.join(path, "findings.json"), [f.to_dict() for f in findings])
    atomic_write_json(os.path.join(path, "cv.json"), {"n_folds": 3, "task": "classification",
                                                      "scores": {"loss": [0.3, 0.35, 0.28], "accuracy": [0.9, 0.88, 0.93]},
                                                      "summary": "accuracy 0.903 ± 0.02"})
    if with_predictions:
        from kerasrecipe.report import save_predictions

        n = 120
        y = rng.integers(0, 10, size=n)
        logits = rng.normal(size=(n, 10)) + 3 * np.eye(10)[y]
        x = rng.random((n, 8, 8, 1)) if images else rng.random((n, 5))
        save_predictions(path, y, logits, from_logits=True, x=x, k=12)
    return path
