"""`kerasrecipe demo`: the whole recipe end to end on scikit-learn's digits, with a report.

    seed -> preflight -> LR range test -> train a small CNN of recipe layers with
    callbacks=kerasrecipe.default() -> diagnosis -> (unless quick) 5-fold cross-validation
    -> run directory with predictions.npz and report.html

`run_demo(...)` does it from Python; `kerasrecipe demo` (kerasrecipe/cli.py) from a shell.
`fault=` plants one known problem so the diagnosis has something to catch:

    "lr"      a learning rate far too high (Adam at 3.0)               -> lr_too_high, exploding, ...
    "labels"  labels shuffled (inputs no longer paired with labels)    -> stuck_at_prior, ...
    "init"    the stem's ReLU bias (BatchNorm beta) starts at -10       -> dead_relu, ...

The run directory is `<out>/demo-<backend>[-break-<fault>]-<time>` and holds what
`kerasrecipe.default()` writes (config.json, env.json, runlog.jsonl, findings.json, history,
checkpoints), `predictions.npz` (kerasrecipe/report/predictions.py), `cv/` (the folds and
`cv.json`, unless quick) and `report.html`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from kerasrecipe.errors import ConfigError

FAULTS: Dict[str, tuple] = {
    # fault -> finding tags that count as "caught"
    "lr": ("lr_too_high", "exploding_gradients", "nan", "oscillating_loss", "train_rising", "stuck_at_prior",
           "dead_relu", "stuck"),
    "labels": ("stuck_at_prior", "data_problem", "no_better_than_baseline", "stuck", "underfitting",
               "label_mismatch", "cannot_overfit", "overfitting"),
    "init": ("dead_relu", "vanishing_gradients", "stuck_at_prior", "stuck"),
}
BAD_LR = 3.0          # "lr": Adam at 3.0 (the tuned range is ~1e-3)
BAD_BIAS = -10.0      # "init": BatchNorm output ~N(0, 1), so relu(x - 10) is 0 everywhere
LR_RANGE = (1e-4, 1e-2)  # the suggestion is clamped into this range (a guard, said when used)


@dataclass
class DemoResult:
    run_dir: str
    report: str
    findings: List = field(default_factory=list)
    fault: Optional[str] = None
    caught_by: List[str] = field(default_factory=list)
    learning_rate: Optional[float] = None
    val_accuracy: Optional[float] = None
    cv_summary: Optional[str] = None
    seconds: Dict[str, float] = field(default_factory=dict)

    @property
    def caught(self) -> Optional[bool]:
        """For a planted fault: did a finding with a matching tag come up? (None without a fault)"""
        return None if self.fault is None else bool(self.caught_by)


def load_digits_images(seed: int = 42, val_fraction: float = 0.2, batch_size: int = 32):
    """Digits as (n, 8, 8, 1) float32 in [0, 1] (B3: /16), split stratified into train/val (B2).

    The training split is rounded to a whole number of batches (1440 = 45 x 32 of the 1797
    images, validation 357): a partial last batch is one more compiled train step on JAX (~4 s
    here) for nothing."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype("float32") / 16.0)[..., None]
    y = d.target.astype("int32")
    n_train = max(batch_size, int(round(len(x) * (1 - val_fraction) / batch_size)) * batch_size)
    return train_test_split(x, y, test_size=len(x) - n_train, stratify=y, random_state=seed)


def build_model(learning_rate: float = 1e-3, *, num_classes: int = 10, stem_bias: float = 0.0, width: int = 16):
    """A small CNN of recipe layers (E1-E6): ConvBNReLU stem, two residual blocks (the second
    projects to 2x the width at stride 2), a factorized 3x3 convolution, global pooling, a
    Highway layer and a softmax head; compiled with Adam."""
    import keras

    from kerasrecipe.layers import ConvBNReLU, FactorizedConv, Highway, ResidualBlock

    inputs = keras.Input((8, 8, 1), name="digit")
    x = ConvBNReLU(width, name="stem", bias_initializer=keras.initializers.Constant(stem_bias))(inputs)
    x = ResidualBlock(width, name="res1")(x)
    x = ResidualBlock(2 * width, strides=2, name="res2")(x)
    x = FactorizedConv(2 * width, n=3, name="factorized")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = Highway(name="highway")(x)
    # C1: a head with small weights starts at the uniform guess, loss -log(1/10) = 2.30 (Glorot's
    # default here gives ~4: an overconfident start that preflight rightly warns about)
    head_init = keras.initializers.VarianceScaling(0.1, mode="fan_avg", distribution="uniform")
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier", kernel_initializer=head_init)(x)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _console(console):
    if console is not None:
        return console
    from rich.console import Console

    return Console()


def run_demo(*, quick: bool = False, out: str = "runs", epochs: Optional[int] = None, fault: Optional[str] = None,
             seed: int = 42, cv_folds: int = 5, console=None, verbose: int = 1) -> DemoResult:
    """Run the demo (see the module docstring); returns a DemoResult. Keras must already use the
    wanted backend (the CLI's --backend sets KERAS_BACKEND before keras is imported).

    Args:
        quick: fewer epochs, a shorter LR sweep and preflight, no cross-validation (< 1 minute).
        out: parent directory of the run directory.
        epochs: training epochs (default 30, quick 8); early stopping may end sooner.
        fault: None, "lr", "labels" or "init" (see FAULTS).
        seed: the one seed (A2).
        cv_folds: folds of the cross-validation (B5: 5).
        console: a rich Console (default: a new one on stdout).
        verbose: 0 quiet (files only), 1 progress and tables.
    """
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"fault={fault!r} is invalid: expected one of {sorted(FAULTS)} or None")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0):
        raise ConfigError(f"epochs={epochs!r} is invalid: expected an integer > 0")
    if not isinstance(cv_folds, int) or cv_folds < 2:
        raise ConfigError(f"cv_folds={cv_folds!r} is invalid: expected an integer >= 2")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"out={os.fspath(out)!r} is a file, not a directory: give the folder to create the run in")
    import keras
    import numpy as np
    from rich.markup import escape

    import kerasrecipe as kr
    from kerasrecipe.config import RecipeConfig
    from kerasrecipe.recipe import find_runlog
    from kerasrecipe.report import build_report, save_predictions

    con = _console(console)
    quiet = verbose == 0
    say = (lambda *a, **k: None) if quiet else con.print
    backend = keras.backend.backend()
    epochs = epochs or (8 if quick else 30)
    n_steps = 6 if fault or quick else 7
    result_seconds: Dict[str, float] = {}
    t_start = time.perf_counter()
    step_no = [0]

    def step(title):
        step_no[0] += 1
        if not quiet:
            con.rule(f"[bold]{step_no[0]}/{n_steps}  {title}")
        return time.perf_counter()

    # ---------------------------------------------------------------- 1. seed and data
    t0 = step("Seed and data")
    from kerasrecipe.compile_cache import enable_jax_compilation_cache

    jax_cache = enable_jax_compilation_cache()   # JAX: compile each program once (folds, reruns)
    kr.seed_everything(seed)
    x_train, x_val, y_train, y_val = load_digits_images(seed, batch_size=32)
    if fault == "labels":
        rng = np.random.default_rng(seed)
        y_train, y_val = rng.permutation(y_train), rng.permutation(y_val)
    name = f"demo-{backend}" + (f"-break-{fault}" if fault else "") + "-" + time.strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(out, name)
    suffix = 1
    while os.path.exists(run_dir):
        suffix += 1
        run_dir = os.path.join(out, f"{name}-{suffix}")
    say(f"seed {seed} · backend [bold]{backend}[/bold] · digits: {len(x_train)} train / {len(x_val)} validation "
        f"images 8x8, 10 classes, scaled to [0, 1]" + (" · [red]labels shuffled (planted fault)[/red]"
                                                         if fault == "labels" else ""))
    say(f"run directory: {escape(run_dir)}")
    if jax_cache:
        say(f"JAX compilation cache: {escape(jax_cache)} (KERASRECIPE_JAX_CACHE=0 turns it off)")
    cfg = RecipeConfig(seed=seed, epochs=epochs, run_root=out, run_name=name, early_stopping_patience=6,
                       plateau_patience=2, tensorboard=True, live_findings=True)
    callbacks = kr.default(cfg, run_dir=run_dir)
    runlog = find_runlog(callbacks)
    stem_bias = BAD_BIAS if fault == "init" else 0.0
    model = build_model(1e-3, stem_bias=stem_bias)
    say(f"model {model.name}: {model.count_params():,} parameters (C7: vs {len(x_train):,} samples)"
        + (f" · [red]stem ReLU bias {BAD_BIAS:g} (planted fault)[/red]" if fault == "init" else ""))
    result_seconds["seed"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- 2. preflight
    t0 = step("Preflight checks (C1-C7, B1-B3)")
    report = kr.preflight(model, x_train, y_train, validation_data=(x_val, y_val),
                          time_budget=6.0 if quick else 25.0, runlog=runlog, verbose=verbose,
                          batch_size=cfg.batch_size,
                          console=None if quiet else con, seed=seed)
    say(f"preflight: {len(report.passed)} passed, {len(report.warnings)} warnings, {len(report.failed)} failed")
    result_seconds["preflight"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- 3. LR range test
    t0 = step("LR range test (D2)")
    found = kr.lr_find(model, x_train, y_train, start_lr=1e-5, end_lr=3.0, num_steps=40 if quick else 80,
                       batch_size=cfg.batch_size, seed=seed, verbose=verbose, runlog=runlog)
    # fastai's "valley" (the middle of the longest descent) is the steadier pick on small data;
    # the steepest-slope point is the fallback
    suggestion = (found.suggestions or {}).get("valley") or found.suggestion
    if fault == "lr":
        lr = BAD_LR
        say(f"suggested learning rate {suggestion if suggestion is None else f'{suggestion:.2e}'}; "
            f"[red]training at {lr:g} instead (planted fault)[/red]")
    else:
        lr = suggestion if suggestion is not None else cfg.learning_rate
        clamped = min(max(lr, LR_RANGE[0]), LR_RANGE[1])
        if suggestion is None:
            say(f"no clear suggestion (stop: {found.stop_reason}); using the recipe's default {lr:.1e} (D5)")
        elif clamped != lr:
            say(f"suggested {lr:.2e} is outside the guard range {LR_RANGE}; using {clamped:.2e}")
        else:
            say(f"suggested learning rate: [bold]{lr:.2e}[/bold]")
        lr = clamped
    kr.optimizers.set_learning_rate(model.optimizer, lr, model=model)
    how = ("a planted fault" if fault == "lr" else "the recipe's default: no clear suggestion" if suggestion is None
           else "the valley suggestion" + (f" {suggestion:.3g}, clamped into {LR_RANGE}" if lr != suggestion else ""))
    runlog.log("event", event="lr_choice", learning_rate=float(lr), suggestion=suggestion,
               message=f"training at learning rate {lr:.3g}: {how}")
    result_seconds["lr_find"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- 4. training
    t0 = step(f"Training with callbacks=kerasrecipe.default() (up to {epochs} epochs)")
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=cfg.batch_size,
              callbacks=callbacks, verbose=0 if quiet else 2)
    proba = np.asarray(model.predict(x_val, batch_size=256, verbose=0))
    save_predictions(run_dir, y_val, proba, x=x_val, k=24, class_names=[str(i) for i in range(10)],
                     split="validation")
    val_acc = float(np.mean(np.argmax(proba, axis=1) == y_val))
    say(f"validation accuracy {val_acc:.3f} (best weights restored, F2)")
    result_seconds["train"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- 5. diagnosis
    t0 = step("Diagnosis (G1-G5, C10)")
    findings = _findings(callbacks, run_dir)
    if not findings:
        say("no findings: the curves and internals look healthy")
    else:
        counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
        say(f"{len(findings)} findings: {counts['error']} errors, {counts['warning']} warnings, "
            f"{counts['info']} info (table above, and in the report)")
    caught_by: List[str] = []
    if fault is not None:
        expected = set(FAULTS[fault])
        pre = [f for f in report.findings() if f.tag in expected]
        caught_by = sorted({f"{f.tag}" + (f" [{f.layer}]" if f.layer else "") for f in findings + pre
                            if f.tag in expected})
        if caught_by:
            say(f"[bold green]planted fault '{fault}' caught[/bold green] by: {escape(', '.join(caught_by))}")
        else:
            say(f"[bold red]planted fault '{fault}' NOT caught[/bold red]: no finding tagged "
                f"{sorted(expected)}")
    result_seconds["diagnosis"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- 6. cross-validation
    cv_summary = None
    if not quick and fault is None:
        t0 = step(f"{cv_folds}-fold cross-validation (B5)")
        cv_cfg = cfg.replace(epochs=min(epochs, 15), early_stopping_patience=3, monitor_health=False,
                             checkpoint="none", backup=False, live_findings=False, tensorboard=False,
                             run_name=None)
        cv = kr.cv.cross_validate(lambda: build_model(lr), np.concatenate([x_train, x_val]),
                                  np.concatenate([y_train, y_val]), cv=cv_folds, config=cv_cfg,
                                  run_dir=os.path.join(run_dir, "cv"), verbose=verbose)
        cv_summary = cv.summary()
        result_seconds["cv"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- 7. report
    t0 = step("Report")
    path = build_report(run_dir)
    result_seconds["report"] = time.perf_counter() - t0
    result_seconds["total"] = time.perf_counter() - t_start
    say(f"done in {result_seconds['total']:.0f} s · " + " · ".join(
        f"{k} {v:.0f} s" for k, v in result_seconds.items() if k != "total"))
    return DemoResult(run_dir=run_dir, report=path, findings=findings, fault=fault, caught_by=caught_by,
                      learning_rate=lr, val_accuracy=val_acc, cv_summary=cv_summary, seconds=result_seconds)


def _findings(callbacks, run_dir) -> list:
    """The end-of-fit diagnosis: the DiagnosisCallback's findings, else findings.json."""
    from kerasrecipe.callbacks.diagnosis import DiagnosisCallback
    from kerasrecipe.diagnose.finding import Finding

    for cb in callbacks:
        if isinstance(cb, DiagnosisCallback):
            return list(cb.findings)
    path = os.path.join(run_dir, "findings.json")
    if os.path.exists(path):
        import json

        with open(path, encoding="utf-8") as f:
            return [Finding.from_dict(d) for d in json.load(f)]
    return []
