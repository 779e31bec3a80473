"""Diagnosis rules on hand-made run logs: each fires on its pattern and stays quiet on healthy runs.

No Keras: the logs are built from the record schema in kerasrecipe/runlog.py.
"""
import io
import math

import numpy as np
import pytest

from kerasrecipe.diagnose import LIVE_RULES, RULES, diagnose_run, print_findings, prior_loss
from kerasrecipe.diagnose.finding import Finding
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.runlog import RunLog


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Overrides conftest's Keras reset: these rules are pure Python, the tests never touch Keras."""
    yield

SPE = 20      # steps per epoch
PROBES = 4    # probes per epoch


def layers_meta(acts):
    return [{"name": f"d{i}", "class": "Dense", "activation": a, "units": 10 if i == len(acts) - 1 else 32}
            for i, a in enumerate(acts)]


def make_log(train, val=None, *, acts=("relu", "relu", "softmax"), loss="sparse_categorical_crossentropy",
             num_classes=10, lr=1e-3, layer_fn=None, batch_fn=None, grad_fn=None, seed=0, meta_extra=None,
             batches=True):
    """A run log: per-epoch losses, per-batch losses around them, probes of every layer.

    layer_fn(epoch, probe, i, act) -> dict overriding a layer record's fields (act sub-dict merged).
    """
    rng = np.random.default_rng(seed)
    log = RunLog()
    meta = {"model": {"name": "m", "params": 1000, "trainable_params": 1000, "layers": layers_meta(acts)},
            "loss": loss, "task": "classification", "num_classes": num_classes, "from_logits": False,
            "num_samples": SPE * 32, "steps_per_epoch": SPE, "epochs": len(train), "has_validation": val is not None,
            "backend": "jax"}
    meta.update(meta_extra or {})
    log.log("meta", **meta)
    lrs = lr if isinstance(lr, (list, tuple, np.ndarray)) else [lr] * len(train)
    step = 0
    for e, tl in enumerate(train):
        nxt = train[e + 1] if e + 1 < len(train) else tl
        for b in range(SPE):
            if batches:
                level = tl + (nxt - tl) * (b / SPE - 0.5)
                bl = batch_fn(e, b, level, rng) if batch_fn else level * float(np.exp(rng.normal(0, 0.1)))
                log.log("batch", epoch=e, step=step, loss=bl, lr=lrs[e])
            if b % (SPE // PROBES) == 0:
                for i, a in enumerate(acts):
                    rec = {"layer": f"d{i}", "index": i, "class": "Dense", "activation": a,
                           "act": {"count": 2048, "mean": 0.4, "std": 0.6, "min": 0.0 if a == "relu" else -0.8,
                                   "max": 3.0, "zero_frac": 0.55 if a == "relu" else 0.0,
                                   "sat_frac": 0.02 if a in ("tanh", "sigmoid") else 0.0, "nan": 0, "inf": 0},
                           "grad_norm": 0.2 * float(np.exp(rng.normal(0, 0.2))), "weight_norm": 4.0,
                           "update_ratio": 2e-3 * float(np.exp(rng.normal(0, 0.2))) if step > 0 else None}
                    if layer_fn:
                        upd = layer_fn(e, b // (SPE // PROBES), i, a) or {}
                        act = dict(rec["act"], **upd.pop("act", {}))
                        rec.update(upd)
                        rec["act"] = act
                    log.log("layer", epoch=e, step=step, **rec)
                g = grad_fn(e, step, rng) if grad_fn else 0.5 * float(np.exp(rng.normal(0, 0.3)))
                log.log("grad", epoch=e, step=step, global_norm=g, clipped=False)
            step += 1
        logs = {"loss": float(tl)}
        if val is not None:
            logs["val_loss"] = float(val[e])
        log.log("epoch", epoch=e, step=step, logs=logs, lr=lrs[e])
    return log


def healthy_curves(n=15, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    e = np.arange(n)
    train = 0.08 + 1.6 * np.exp(-0.5 * e)
    val = 0.15 + 1.5 * np.exp(-0.45 * e)
    return (train * np.exp(rng.normal(0, noise, n))).tolist(), (val * np.exp(rng.normal(0, noise, n))).tolist()


def tags(findings, min_rank=1):
    return [f.tag for f in findings if f.rank >= min_rank]


def problems(findings):
    return [str(f) for f in findings if f.severity in ("warning", "error")]


# --------------------------------------------------------------------------- healthy runs stay quiet

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_run_has_no_warning(seed):
    tr, va = healthy_curves(seed=seed)
    fs = diagnose_run(make_log(tr, va, seed=seed))
    assert problems(fs) == []
    assert any(f.tag == "learning" and f.severity == "info" for f in fs)


def test_healthy_tanh_sigmoid_and_deep_relu_are_quiet():
    tr, va = healthy_curves()
    assert problems(diagnose_run(make_log(tr, va, acts=("tanh", "tanh", "sigmoid", "softmax")))) == []
    # eight ReLU layers with equal relative gradients: no vanishing
    assert problems(diagnose_run(make_log(tr, va, acts=("relu",) * 8 + ("softmax",)))) == []


def test_healthy_without_validation_says_so_as_info():
    tr, _ = healthy_curves()
    fs = diagnose_run(make_log(tr, None))
    assert problems(fs) == []
    info = [f for f in fs if f.tag == "no_validation"]
    assert len(info) == 1 and info[0].severity == "info" and "validation" in info[0].symptom


def test_healthy_converged_run_with_plateau_halving_and_tiny_late_updates():
    tr, va = healthy_curves(n=30)
    lrs = [1e-3] * 12 + [5e-4] * 4 + [2.5e-4] * 4 + [1.25e-4] * 4 + [6.25e-5] * 6

    def lf(e, p, i, a):  # updates shrink with the decayed LR, ending far below 1e-5
        return {"update_ratio": 2e-3 if e < 12 else 2e-3 * 10 ** (-(e - 11) / 3)}

    assert problems(diagnose_run(make_log(tr, va, lr=lrs, layer_fn=lf))) == []


def test_healthy_heavy_tailed_batch_noise_near_convergence_is_not_oscillation():
    tr, va = healthy_curves(n=20)

    def bf(e, b, level, rng):  # a misclassified sample now and then: rare 5x spikes
        return level * (5.0 if rng.random() < 0.05 else float(np.exp(rng.normal(0, 0.3))))

    assert "oscillating_loss" not in tags(diagnose_run(make_log(tr, va, batch_fn=bf)))


# --------------------------------------------------------------------------- NaN / Inf

def test_nan_event_names_layer_and_step():
    tr, va = healthy_curves(n=3)
    log = make_log(tr, va)
    log.log("event", epoch=2, step=55, event="nan", where="activation", layer="d1",
            message="activations of d1 went non-finite")
    fs = diagnose_run(log)
    assert fs[0].tag == "nan" and fs[0].severity == "error"
    assert fs[0].layer == "d1" and fs[0].step == 55 and "d1" in fs[0].symptom and "55" in fs[0].symptom


def test_nan_from_probe_at_first_layer_points_at_input_data():
    tr, va = healthy_curves(n=3)

    def lf(e, p, i, a):
        return {"act": {"nan": 12}} if (e, p) >= (1, 2) else None

    f = diagnose_run(make_log(tr, va, layer_fn=lf))[0]
    assert f.tag == "nan" and f.layer == "d0" and f.epoch == 1
    assert any("input data" in c for c in f.causes)


def test_nan_only_in_loss_points_at_log0():
    tr = [1.0, 0.8, float("nan")]
    f = diagnose_run(make_log(tr, [1.1, 0.9, float("nan")], batches=False))[0]
    assert f.tag == "nan" and f.epoch == 2 and f.evidence["where"] == "loss"
    assert any("log(0)" in c for c in f.causes)


def test_nan_after_gradient_growth_mentions_exploding():
    tr = [1.0, 0.9, 0.8, float("inf")]
    log = make_log(tr, None, grad_fn=lambda e, s, rng: 0.5 * 10 ** (s / 10))
    f = diagnose_run(log)[0]
    assert f.tag == "nan" and "exploding" in " ".join(f.causes)


# --------------------------------------------------------------------------- dead ReLU

def test_dead_relu_fires_within_two_probes_and_names_layer():
    tr, va = healthy_curves(n=6)

    def lf(e, p, i, a):
        return {"act": {"zero_frac": 1.0, "max": 0.0}, "grad_norm": 0.0} if i == 1 else None

    fs = diagnose_run(make_log(tr, va, layer_fn=lf))
    f = [f for f in fs if f.tag == "dead_relu"][0]
    assert f.severity == "error" and f.layer == "d1" and f.epoch == 0 and f.step == 0
    assert "100" in f.symptom
    # an exact zero gradient is a cut, not vanishing
    assert "vanishing_gradients" not in tags(fs)


def test_mostly_dead_relu_is_warning_and_transient_is_quiet():
    tr, va = healthy_curves(n=6)
    fs = diagnose_run(make_log(tr, va, layer_fn=lambda e, p, i, a: {"act": {"zero_frac": 0.97}} if i == 0 else None))
    assert [(f.tag, f.severity) for f in fs if f.tag == "dead_relu"] == [("dead_relu", "warning")]
    # dead on one probe only, then alive again: quiet
    once = diagnose_run(make_log(tr, va, layer_fn=lambda e, p, i, a: {"act": {"zero_frac": 1.0, "max": 0.0}}
                                 if (i == 0 and (e, p) == (2, 1)) else None))
    assert "dead_relu" not in tags(once)


def test_dead_relu_uses_measured_dead_fraction_when_present():
    tr, va = healthy_curves(n=4)
    fs = diagnose_run(make_log(tr, va, layer_fn=lambda e, p, i, a: {"act": {"zero_frac": 0.8, "dead_frac": 0.6}}
                               if i == 0 else None))
    assert [f.severity for f in fs if f.tag == "dead_relu"] == ["warning"]


# --------------------------------------------------------------------------- saturation

def test_saturated_tanh_hidden_layer_fires():
    tr, va = healthy_curves(n=5)
    fs = diagnose_run(make_log(tr, va, acts=("tanh", "tanh", "softmax"),
                               layer_fn=lambda e, p, i, a: {"act": {"sat_frac": 0.93}} if i == 0 else None))
    f = [f for f in fs if f.tag == "saturation"][0]
    assert f.layer == "d0" and f.severity == "error" and f.epoch == 0 and "93" in f.symptom


def test_saturated_output_sigmoid_is_not_a_problem():
    tr, va = healthy_curves(n=5)
    fs = diagnose_run(make_log(tr, va, acts=("relu", "sigmoid"), loss="binary_crossentropy", num_classes=1,
                               layer_fn=lambda e, p, i, a: {"act": {"sat_frac": 0.95}} if i == 1 else None))
    assert "saturation" not in tags(fs)


# --------------------------------------------------------------------------- gradients

def test_vanishing_gradients_in_deep_sigmoid_stack():
    tr = [2.30, 2.29, 2.29, 2.28, 2.28]
    acts = ("sigmoid",) * 10 + ("softmax",)
    fs = diagnose_run(make_log(tr, None, acts=acts, layer_fn=lambda e, p, i, a: {"grad_norm": 0.5 * 0.25 ** (10 - i)}))
    f = [f for f in fs if f.tag == "vanishing_gradients"][0]
    assert f.layer == "d0" and f.evidence["ratio"] < 1e-3 and f.epoch == 0
    assert "orders of magnitude" in f.symptom


def test_exploding_gradients_by_size_and_growth():
    tr = [1.0, 0.95, 0.97, 0.99, 1.0]
    fs = diagnose_run(make_log(tr, None, layer_fn=lambda e, p, i, a: {"grad_norm": 800.0} if i == 0 else None))
    assert "exploding_gradients" in tags(fs)
    fs = diagnose_run(make_log(tr, None, grad_fn=lambda e, s, rng: 0.5 * 10 ** (s / 25)))
    f = [f for f in fs if f.tag == "exploding_gradients"][0]
    assert f.evidence["growth"] >= 100


def test_one_gradient_spike_is_not_explosion():
    tr, va = healthy_curves()
    fs = diagnose_run(make_log(tr, va, grad_fn=lambda e, s, rng: 50.0 if s == 100 else 0.5))
    assert "exploding_gradients" not in tags(fs)


# --------------------------------------------------------------------------- stuck at the prior (C10)

def test_prior_values():
    assert prior_loss([{"kind": "meta", "loss": "sparse_categorical_crossentropy", "num_classes": 10}])[0] == \
        pytest.approx(math.log(10))
    assert prior_loss([{"kind": "meta", "loss": "binary_crossentropy", "num_classes": 1}])[0] == pytest.approx(math.log(2))
    h = prior_loss([{"kind": "meta", "loss": "binary_crossentropy", "class_prior": [0.95, 0.05]}])[0]
    assert h == pytest.approx(-(0.95 * math.log(0.95) + 0.05 * math.log(0.05)))
    assert prior_loss([{"kind": "meta", "loss": "mse"}])[0] is None
    assert prior_loss([{"kind": "meta", "loss": "mse", "target_var": 4.0}])[0] == 4.0


def test_stuck_at_prior_ten_classes():
    tr = [2.6, 2.31, 2.303, 2.302, 2.303, 2.302]
    fs = diagnose_run(make_log(tr, [2.31] * 6))
    assert fs[0].tag == "stuck_at_prior" and fs[0].severity == "error"
    assert "2.3" in fs[0].symptom and fs[0].epoch == 1
    assert "stuck" not in tags(fs)  # the generic G1 'stuck' defers to the specific C10 finding


def test_stuck_at_imbalanced_prior_entropy():
    h = -(0.95 * math.log(0.95) + 0.05 * math.log(0.05))
    fs = diagnose_run(make_log([0.25, h * 1.01, h, h, h], None, loss="binary_crossentropy", num_classes=1,
                               acts=("relu", "sigmoid"), meta_extra={"class_prior": [0.95, 0.05]}))
    assert fs[0].tag == "stuck_at_prior"


def test_weighted_loss_prior_scales_with_the_mean_weight():
    meta = {"class_counts": [300.0, 300.0, 300.0], "loss_weight_mean": 3.0, "loss_weighted": True}
    h = 3 * math.log(3)
    assert prior_loss([{"kind": "meta", "loss": "sparse_categorical_crossentropy", **meta}])[0] == pytest.approx(h)
    fs = diagnose_run(make_log([h * 1.2, h * 1.01, h, h * 1.005, h], [math.log(3)] * 5, num_classes=3,
                               meta_extra=meta))
    assert "stuck_at_prior" in tags(fs) and "lr_too_high" not in tags(fs)


def test_val_never_below_prior_while_train_memorises():
    tr = [2.3, 2.2, 2.0, 1.7, 1.4, 1.1]
    fs = diagnose_run(make_log(tr, [2.31, 2.33, 2.38, 2.45, 2.55, 2.7]))
    assert fs[0].tag == "stuck_at_prior" and "validation" in fs[0].symptom


def test_learning_classifier_is_not_stuck_at_prior():
    tr, va = healthy_curves()
    assert "stuck_at_prior" not in tags(diagnose_run(make_log(tr, va)))


# --------------------------------------------------------------------------- oscillation

def test_oscillating_batch_losses():
    tr = [1.2, 1.1, 1.15, 1.1, 1.12, 1.1]

    def bf(e, b, level, rng):  # the iterate bounces: several batches up, several down
        return level * (1 + 0.8 * math.sin(2 * math.pi * (e * SPE + b) / 9)) * float(np.exp(rng.normal(0, 0.05)))

    f = [f for f in diagnose_run(make_log(tr, None, batch_fn=bf)) if f.tag == "oscillating_loss"][0]
    assert f.evidence["jumps"] >= 3 and f.severity == "warning"


def test_oscillating_epoch_losses_without_batches():
    tr = [1.0, 1.3, 0.9, 1.25, 0.95, 1.3, 0.9]
    assert "oscillating_loss" in tags(diagnose_run(make_log(tr, None, batches=False)))


# --------------------------------------------------------------------------- slow convergence / LR

def test_slow_convergence_linear_decrease():
    tr = [2.30 - 0.02 * i for i in range(8)]
    fs = diagnose_run(make_log(tr, [t + 0.01 for t in tr], layer_fn=lambda e, p, i, a: {"update_ratio": 5e-5}))
    f = [f for f in fs if f.tag == "slow_convergence"][0]
    assert f.evidence["halving_epochs"] > 10


def test_update_ratio_too_high_and_too_low():
    tr, va = healthy_curves()
    hi = diagnose_run(make_log(tr, va, layer_fn=lambda e, p, i, a: {"update_ratio": 0.3}))
    assert "lr_too_high" in tags(hi)
    lo = diagnose_run(make_log(tr, va, layer_fn=lambda e, p, i, a: {"update_ratio": 3e-7}))
    assert "lr_too_low" in tags(lo)


def test_warmup_is_not_lr_too_low():
    tr, va = healthy_curves()
    fs = diagnose_run(make_log(tr, va, layer_fn=lambda e, p, i, a: {"update_ratio": 1e-7 if e < 2 else 2e-3}))
    assert problems(fs) == []


def test_lr_decayed_too_early():
    lrs = [1e-3 * 0.2 ** e for e in range(10)]
    tr = [2.0, 1.6, 1.3, 1.1, 1.08, 1.075, 1.073, 1.072, 1.072, 1.071]
    f = [f for f in diagnose_run(make_log(tr, None, lr=lrs)) if f.tag == "lr_decayed_too_early"][0]
    assert f.epoch == 3 and f.severity == "warning"


# --------------------------------------------------------------------------- G1 curve patterns

def _curve(train, val):
    fs = diagnose_run(make_log(train, val, batches=False), rules=["curves"])
    return [(f.tag, f.severity) for f in fs]


def test_curve_learning():
    tr, va = healthy_curves(n=8)
    assert _curve(tr, va) == [("learning", "info")]


def test_curve_overfitting_with_start_epoch():
    tr = [1.5, 0.9, 0.6, 0.4, 0.25, 0.15, 0.1, 0.06, 0.04, 0.03]
    va = [1.5, 1.0, 0.8, 0.78, 0.85, 0.95, 1.05, 1.15, 1.25, 1.35]
    fs = diagnose_run(make_log(tr, va, batches=False), rules=["curves"])
    assert [(f.tag, f.severity) for f in fs] == [("overfitting", "warning")]
    assert fs[0].epoch == 3 and "epoch 4" in fs[0].symptom  # (index 3: Keras shows "Epoch 4/10")


def test_curve_mild_overfitting_is_info():
    tr = [1.5, 0.9, 0.6, 0.4, 0.3, 0.25, 0.2, 0.17]
    va = [1.5, 1.0, 0.8, 0.7, 0.72, 0.75, 0.78, 0.8]
    assert _curve(tr, va) == [("overfitting", "info")]


def test_curve_underfitting_validation_never_improves():
    tr = [1.0, 0.8, 0.6, 0.45, 0.35, 0.3, 0.27]
    va = [1.2, 1.21, 1.2, 1.22, 1.21, 1.2, 1.22]
    assert _curve(tr, va) == [("underfitting", "warning")]


def test_curve_underfitting_plateau_high():
    tr = [2.0, 1.6, 1.5, 1.48, 1.47, 1.47, 1.47, 1.46]
    va = [2.0, 1.65, 1.55, 1.52, 1.51, 1.51, 1.5, 1.5]
    assert _curve(tr, va) == [("underfitting", "warning")]


def test_curve_stuck():
    tr = [0.52, 0.51, 0.515, 0.51, 0.512, 0.51]   # regression-like: no prior known
    fs = diagnose_run(make_log(tr, [0.6, 0.61, 0.6, 0.6, 0.61, 0.6], loss="mse", batches=False), rules=["curves"])
    assert [(f.tag, f.severity) for f in fs] == [("stuck", "warning")]


def test_curve_train_rising_and_data_problem():
    tr = [1.0, 0.8, 0.7, 0.75, 0.85, 0.95, 1.1]
    assert _curve(tr, [1.0, 0.85, 0.8, 0.85, 0.95, 1.05, 1.2]) == [("train_rising", "warning")]
    assert _curve(tr, [1.0, 0.9, 0.85, 0.8, 0.76, 0.72, 0.68]) == [("data_problem", "warning")]


# --------------------------------------------------------------------------- API

def test_live_runs_only_live_rules_and_registry_is_complete():
    assert set(LIVE_RULES) < set(RULES) and "curves" not in LIVE_RULES
    tr = [1.5, 0.9, 0.6, 0.4, 0.25, 0.15, 0.1, 0.06, 0.04, 0.03]
    va = [1.5, 1.0, 0.8, 0.78, 0.85, 0.95, 1.05, 1.15, 1.25, 1.35]
    log = make_log(tr, va)
    assert "overfitting" in tags(diagnose_run(log)) and "overfitting" not in tags(diagnose_run(log, live=True), 0)
    for name, rule in RULES.items():
        out = rule(log)
        assert isinstance(out, list) and all(isinstance(f, Finding) for f in out), name


def test_diagnose_run_inputs(tmp_path):
    log = RunLog(str(tmp_path / "run"))
    log.log("meta", loss="sparse_categorical_crossentropy", num_classes=10)
    for e in range(4):
        log.log("epoch", epoch=e, logs={"loss": 2.302})
    assert tags(diagnose_run(str(tmp_path / "run"))) == ["stuck_at_prior"]
    assert tags(diagnose_run(list(log.records))) == ["stuck_at_prior"]
    assert diagnose_run(RunLog()) == []
    with pytest.raises(InputTypeError):
        diagnose_run(42)
    with pytest.raises(ConfigError):
        diagnose_run(log, rules=["nope"])


def test_findings_sorted_and_printed():
    from rich.console import Console

    tr = [1.5, 0.9, 0.6, 0.4, 0.25, 0.15, 0.1, 0.06, 0.04, float("nan")]
    va = [1.5, 1.0, 0.8, 0.78, 0.85, 0.95, 1.05, 1.15, 1.25, float("nan")]
    fs = diagnose_run(make_log(tr, va))
    assert [f.rank for f in fs] == sorted((f.rank for f in fs), reverse=True) and fs[0].tag == "nan"
    buf = io.StringIO()
    n = print_findings(fs + [Finding("x", "info", "an info").to_dict()], console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert n == len(fs) + 1 and "nan" in text and text.index("error") < text.index("info")
    buf = io.StringIO()
    assert print_findings([], console=Console(file=buf)) == 0 and "no findings" in buf.getvalue()
    with pytest.raises(ConfigError):
        print_findings(fs, console=Console(file=io.StringIO()), min_severity="fatal")


def test_every_finding_has_numbers_causes_fix_and_tips():
    cases = [
        make_log([2.302] * 5, None),
        make_log(*healthy_curves(), layer_fn=lambda e, p, i, a: {"update_ratio": 0.3}),
        make_log(*healthy_curves(), layer_fn=lambda e, p, i, a: {"act": {"zero_frac": 1.0, "max": 0.0}} if i == 0 else None),
    ]
    for log in cases:
        for f in diagnose_run(log):
            if f.severity == "info":
                continue
            assert any(ch.isdigit() for ch in f.symptom) and f.causes and f.fixes and f.tips and f.evidence, f


# --------------------------------------------------------------------------- causes before symptoms

def test_cause_is_ranked_before_the_symptom_it_explains():
    from kerasrecipe.diagnose import rank_findings

    acts = ("sigmoid",) * 10 + ("softmax",)
    tr = [2.303, 2.302, 2.302, 2.303, 2.302]
    fs = diagnose_run(make_log(tr, None, acts=acts, layer_fn=lambda e, p, i, a: {"grad_norm": 0.5 * 0.3 ** (10 - i)}))
    assert [f.tag for f in fs][:2] == ["vanishing_gradients", "stuck_at_prior"]
    assert fs[0].severity == "error" and fs[0].evidence["raised_from"] == "warning"
    assert fs[1].evidence["explained_by"] == ["vanishing_gradients"]
    # a preflight cause (no epoch) ranks ahead of a run symptom of the same severity
    pre = Finding("preflight.targets", "warning", "labels", tag="label_mismatch")
    sym = Finding("curves", "warning", "stuck", tag="stuck", epoch=0)
    assert [f.tag for f in rank_findings([sym, pre])] == ["label_mismatch", "stuck"]


def test_negative_cross_entropy_means_labels_out_of_range():
    fs = diagnose_run(make_log([0.5, -0.3, -1.5, -3.0], None, loss="binary_crossentropy", acts=("relu", "sigmoid"),
                               num_classes=1))
    assert fs[0].tag == "label_mismatch" and fs[0].severity == "error" and fs[0].epoch == 1


def test_loss_at_the_prior_is_one_finding_and_findings_keep_causes_first(tmp_path):
    """stuck_at_prior says what "stuck"/"underfitting" would, with the right fix: they are left out.
    The end-of-fit findings (findings.json, the console table) keep the ranked order, causes before
    the symptoms they explain; brackets in messages print as written."""
    import io

    from rich.console import Console

    fs = diagnose_run(make_log([2.3027, 2.3026, 2.3026, 2.3026, 2.3026, 2.3026], [2.3027] * 6))
    assert "stuck_at_prior" in tags(fs) and not {"stuck", "underfitting"} & set(tags(fs))
    acts = ("sigmoid",) * 10 + ("softmax",)
    ranked = diagnose_run(make_log([2.303, 2.302, 2.302, 2.303, 2.302], None, acts=acts,
                                   layer_fn=lambda e, p, i, a: {"grad_norm": 0.5 * 0.3 ** (10 - i)}))
    buf = io.StringIO()
    print_findings(ranked + [Finding("x", "error", "values z[i] and w[b] differ")],
                   console=Console(file=buf, width=250))
    out = buf.getvalue()
    assert out.index("vanishing_gradients") < out.index("stuck_at_prior") and "z[i] and w[b]" in out


def test_output_activation_against_from_logits_is_checked_from_the_run_log():
    """A softmax output with a from_logits=True loss (squashed twice: the loss stalls) is named as
    the cause, ahead of the underfitting it produces; a linear output with a probability loss too;
    the healthy pairs are silent."""
    stalled = [2.30, 1.90, 1.70, 1.62, 1.58, 1.56, 1.55, 1.55, 1.54, 1.54]
    fs = diagnose_run(make_log(stalled, [x + 0.02 for x in stalled], meta_extra={"from_logits": True}))
    assert fs[0].tag == "wrong_loss" and fs[0].rule == "output_vs_loss" and "applied twice" in fs[0].symptom
    lin = diagnose_run(make_log(stalled, None, acts=("relu", "linear"), meta_extra={"from_logits": False}))
    assert "wrong_loss" in tags(lin)
    tr, va = healthy_curves()
    assert "wrong_loss" not in tags(diagnose_run(make_log(tr, va, acts=("relu", "linear"),
                                                          meta_extra={"from_logits": True})))
    assert "wrong_loss" not in tags(diagnose_run(make_log(tr, va)))


def test_gradients_exactly_zero_from_the_start_are_named_not_blamed_on_the_learning_rate():
    """A sigmoid output saturated to exactly 1 by unnormalised inputs: every gradient is 0, the loss
    never moves. That is zero_gradients (normalise the inputs), not "a divergent step, lower the LR";
    a perfect fit (loss 0) with zero gradients is no finding."""
    flat = [8.05] * 6
    fs = diagnose_run(make_log(flat, None, loss="binary_crossentropy", acts=("relu", "sigmoid"), num_classes=1,
                               meta_extra={"class_counts": [50, 50]}, grad_fn=lambda e, s, rng: 0.0,
                               layer_fn=lambda e, p, i, a: {"grad_norm": 0.0, "update_ratio": 0.0}))
    assert fs[0].rule == "zero_gradients" and fs[0].severity == "error" and "normalise the inputs" in fs[0].fixes[0]
    assert "lr_too_high" not in tags(fs)
    perfect = diagnose_run(make_log([0.5, 0.0, 0.0, 0.0], None, grad_fn=lambda e, s, rng: 0.0))
    assert "zero_gradients" not in [f.rule for f in perfect]


def test_float32_rounding_of_near_zero_batch_losses_is_not_a_negative_cross_entropy():
    """Batch losses rebuilt from Keras's float32 running means of a near-zero loss read a few
    -1e-6 late in an epoch (seen on digits, SGD, batch 8): no label_mismatch; a clearly negative
    batch loss still is one."""
    tr = [0.3, 0.02, 0.004, 0.002]
    noisy = diagnose_run(make_log(tr, None, batch_fn=lambda e, b, lvl, rng: -3.4e-6 if e >= 2 and b % 3 == 0 else lvl))
    assert "label_mismatch" not in tags(noisy)
    bad = diagnose_run(make_log(tr, None, batch_fn=lambda e, b, lvl, rng: -0.2 if e >= 2 and b % 3 == 0 else lvl))
    assert "label_mismatch" in tags(bad)


def test_sigmoid_saturated_at_both_limits_is_counted_from_the_histogram():
    """A sigmoid layer with 45% of outputs near 0 and 45% near 1 (mean ~0.5: Markov's bound sees
    nothing, |a| >= 0.99 sees 45%) is 90% saturated: counted from the probe's log2 histogram."""
    from kerasrecipe.kernels._hist import N_LOG_BINS, N_MAG

    hist = [0] * N_LOG_BINS
    hist[N_MAG + 1 + 10] = 450       # |a| in [2^-10, 2^-9): near 0
    hist[N_MAG + 1 + 19] = 100       # [2^-1, 1): the middle
    hist[N_MAG + 1 + 19] += 450      # and the 45% at >= 0.99 are in the same power of two
    tr, va = healthy_curves(n=5)
    fs = diagnose_run(make_log(tr, va, acts=("sigmoid", "sigmoid", "softmax"), layer_fn=lambda e, p, i, a: (
        {"act": {"mean": 0.5, "sat_frac": 0.45, "hist": hist}} if i == 0 else None)))
    sat = [f for f in fs if f.tag == "saturation"]
    assert sat and sat[0].severity == "error" and "near 0 or 1" in sat[0].symptom
    assert sat[0].evidence["layers"]["d0"]["sat_frac"] == pytest.approx(0.9)


def test_sigmoid_saturated_at_zero_is_seen_through_its_mean():
    tr, va = healthy_curves(n=5)
    fs = diagnose_run(make_log(tr, va, acts=("sigmoid", "sigmoid", "softmax"),
                               layer_fn=lambda e, p, i, a: {"act": {"mean": 0.001, "sat_frac": 0.0}} if i == 0 else None))
    assert "saturation" in tags(fs)


def test_clipped_exploding_gradients_are_info():
    tr, va = healthy_curves()
    log = make_log(tr, va, layer_fn=lambda e, p, i, a: {"grad_norm": 800.0} if i == 0 else None)
    log.log("grad", epoch=14, step=299, global_norm=900.0, clipped=True, source="optimizer")
    f = [f for f in diagnose_run(log) if f.tag == "exploding_gradients"][0]
    assert f.severity == "info" and "clipping" in f.symptom


def test_imbalanced_prior_from_class_counts():
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert prior_loss([{"kind": "meta", "loss": "binary_crossentropy", "class_counts": [900, 100]}])[0] == \
        pytest.approx(h)


def test_barely_moving_loss_is_not_slow_convergence():
    tr = [2.3027, 2.3024, 2.3023, 2.3022, 2.3020, 2.3019]
    assert "slow_convergence" not in tags(diagnose_run(make_log(tr, None)))


def test_slow_but_healthy_steps_is_a_hard_problem_not_slow_convergence():
    tr = [2.30 - 0.02 * i for i in range(8)]
    assert "slow_convergence" not in tags(diagnose_run(make_log(tr, [t + 0.01 for t in tr])))  # ratio 2e-3


def test_val_variant_needs_train_below_the_prior():
    h = -(0.98 * math.log(0.98) + 0.02 * math.log(0.02))
    fs = diagnose_run(make_log([0.72, 0.67, 0.63, 0.60, 0.58], [0.78, 0.70, 0.66, 0.64, 0.60], loss="binary_crossentropy",
                               acts=("relu", "sigmoid"), num_classes=1, meta_extra={"class_counts": [980, 20]}))
    assert h < 0.1 and "stuck_at_prior" not in tags(fs)


def test_one_catastrophic_step_is_lr_too_high():
    tr = [14.2, 14.5, 14.5, 14.5]

    def lf(e, p, i, a):  # the first step rewrote the weights 30x their size, then nothing moved
        return {"update_ratio": 30.0 if (e, p) == (0, 0) else 0.0, "grad_norm": 0.0 if (e, p) != (0, 0) else 5.0}

    fs = diagnose_run(make_log(tr, [14.3] * 4, layer_fn=lf))
    assert fs[0].tag == "lr_too_high" and {"above_prior", "update_ratio"} <= {f.rule for f in fs}


def test_loss_at_or_below_prior_is_not_above_prior():
    assert "above_prior" not in [f.rule for f in diagnose_run(make_log([2.6, 2.31, 2.302, 2.302], None))]


def test_run_cause_ranks_before_preflight_symptom_of_same_severity():
    from kerasrecipe.diagnose import rank_findings

    pre = Finding("preflight.zero_baseline", "error", "no better than zeroed inputs", tag="no_better_than_baseline")
    cause = Finding("saturation", "error", "saturated", tag="saturation", epoch=0)
    info = Finding("curves", "info", "learning", tag="learning", epoch=0)
    assert [f.tag for f in rank_findings([info, pre, cause])] == ["saturation", "no_better_than_baseline", "learning"]


def test_astronomically_negative_cross_entropy_is_divergence():
    fs = diagnose_run(make_log([-1.05e6, -2e6, -2e6], None))
    assert fs[0].tag == "nan" and fs[0].rule == "loss_domain" and "overflow" in fs[0].symptom


def test_class_weighted_training_loss_has_the_weighted_prior_and_no_val_never_improved():
    """Balanced class weights on 2% positives: the training loss's prior is log 2 (the weighted
    class distribution), and an unweighted validation loss that does not fall is no underfitting."""
    from kerasrecipe.callbacks._context import class_counts

    counts = [980, 20]
    labels = np.array([0] * 980 + [1] * 20)
    w = class_counts(labels, 2, class_weight={0: 0.5 / 0.98, 1: 0.5 / 0.02})
    assert w == pytest.approx([500.0, 500.0])
    sw = np.where(np.arange(1000) < 980, 1.0, 49.0)
    assert class_counts(labels, 2, sample_weight=sw) == pytest.approx([980, 980])
    assert class_counts(labels, 2) == counts                             # unweighted: the plain counts
    assert class_counts(labels, 2, sample_weight=np.ones(3)) == counts   # weights that do not fit: ignored
    tr, va = [0.72, 0.67, 0.63, 0.60, 0.58], [0.62, 0.62, 0.63, 0.63, 0.63]
    plain = make_log(tr, va, loss="binary_crossentropy", num_classes=2, meta_extra={"class_counts": counts})
    weighted = make_log(tr, va, loss="binary_crossentropy", num_classes=2,
                        meta_extra={"class_counts": w, "loss_weighted": True})
    assert prior_loss(weighted)[0] == pytest.approx(math.log(2))
    def alarms(log):
        return {f.rule if f.rule == "above_prior" else f.tag for f in diagnose_run(log)
                if f.severity in ("warning", "error")}

    assert alarms(plain) >= {"above_prior", "underfitting"}     # read as unweighted: two false alarms
    assert not alarms(weighted) & {"above_prior", "underfitting"}


def test_val_never_improved_ignores_the_first_epochs_running_mean():
    """Epoch 0's training loss averages the untrained model's batches; a run that learned in its
    first epoch (val already low at its end) and then holds is not 'validation never improved'."""
    fs = diagnose_run(make_log([0.1954, 0.0581, 0.0539], [0.107, 0.2738, 0.1116], loss="binary_crossentropy",
                               num_classes=2))
    assert "underfitting" not in tags(fs)
