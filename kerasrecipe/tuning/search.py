"""search(): coarse-to-fine hyperparameter search with the recipe (tips H1-H5, B5, B7, A4, A7, D1).

Stage "lr" searches the learning rate alone, everything else at its default (D1: the LR matters
most); stage "rest" searches the other parameters with the LR fixed at the best found so far;
stage "refine" searches the LR again, in the decade around the best, with the rest fixed at the
best configuration (H1). Each stage is a keras-tuner project `<directory>/<project_name>/<i>-<stage>`,
so a killed search resumes where it stopped. The best configuration is then retrained on the
full data, after printing how long that should take, extrapolated from the trials' timings (H5).
"""
from __future__ import annotations

import csv
import io
import math
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import keras
import keras_tuner

from kerasrecipe.config import RecipeConfig, resolve_config
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.io import atomic_write_json, atomic_write_text
from kerasrecipe.tuning import data as data_mod
from kerasrecipe.tuning import distributed, space
from kerasrecipe.tuning.hypermodel import RecipeHyperModel
from kerasrecipe.tuning.kfold import KFoldTuner
from kerasrecipe.tuning.tuner import TUNERS, ObjectiveError, RecipeTuner, make_oracle, metric_direction, objective_for

STAGES = ("lr", "rest", "refine")
STAGE_NAMES = ("lr", "rest", "refine", "all")
_TIMING = ("fit_seconds", "epochs_run", "n_train", "first_epoch_seconds", "epoch_seconds")


# --------------------------------------------------------------------------- results
@dataclass
class SearchResult:
    """What `search` returns.

    Attributes:
        best_config: the best trial's `RecipeConfig` (dropout in `extra["dropout"]`,
            architecture values in `extra["hp"]`).
        best_hyperparameters: the best trial's keras-tuner values (recipe and architecture).
        best_score: its objective value; `objective`: the objective's name.
        model: the best configuration retrained on the full data (None with retrain=False).
        trials: one dict per trial, all stages (also in `csv_path`).
        estimated_seconds / retrain_seconds: the predicted (H5) and actual retraining time.
        stages: per stage, its best values and the learning-rate range it searched.
        directory: the project directory.
        direction: "min" or "max", the objective's.
    """

    best_config: RecipeConfig
    best_hyperparameters: Dict[str, Any]
    best_score: float
    objective: str
    model: Optional[keras.Model]
    trials: List[Dict[str, Any]]
    directory: str
    csv_path: str
    estimated_seconds: Optional[float] = None
    retrain_seconds: Optional[float] = None
    history: Any = None
    stages: Dict[str, Any] = field(default_factory=dict)
    direction: str = "min"

    def table(self, max_rows: Optional[int] = None):
        """The trials as a rich Table, best first (failed trials last); `max_rows`: the best ones."""
        return trials_table(self.trials, keras_tuner.Objective(self.objective, self.direction), max_rows=max_rows)

    def print(self, console=None):
        from rich.console import Console

        (console or Console()).print(self.table())


def trial_name(stage: str, trial_id: str, values: Dict[str, Any], objective: str, score) -> str:
    """A trial's name from its key parameters and its score (A4), e.g.
    'rest-t03-sgd-lr3.0e-03-bs64-wd1e-04-do0.2-cosine-units64-val_loss0.4123'."""
    parts = [stage, f"t{trial_id}"]
    if "optimizer" in values:
        parts.append(str(values["optimizer"]))
    if "learning_rate" in values:
        parts.append(f"lr{float(values['learning_rate']):.1e}")
    if "batch_size" in values:
        parts.append(f"bs{values['batch_size']}")
    if values.get("weight_decay"):
        parts.append(f"wd{float(values['weight_decay']):.0e}")
    if values.get("dropout"):
        parts.append(f"do{float(values['dropout']):.2g}")
    if "schedule" in values:
        parts.append(str(values["schedule"]))
    recipe = set(space.HP_NAMES.values())
    for k, v in values.items():
        if k not in recipe and not k.startswith("tuner/"):
            parts.append(f"{k}{v:.3g}" if isinstance(v, float) else f"{k}{v}")
    parts.append(f"{objective}{score:.4f}" if isinstance(score, (int, float)) else f"{objective}-none")
    return "-".join(str(p).replace(" ", "") for p in parts)


def _metric(trial, name):
    try:
        if trial.metrics.exists(name):
            return trial.metrics.get_last_value(name)
    except Exception:  # pragma: no cover
        pass
    return None


def trial_rows(stage: str, oracle, objective: str, assignments=None) -> List[Dict[str, Any]]:
    """One dict per trial of a stage's oracle, in trial order."""
    rows = []
    for tid in sorted(oracle.trials, key=lambda t: (len(t), t)):
        t = oracle.trials[tid]
        values = dict(t.hyperparameters.values)
        score = t.score if t.score is not None and not (isinstance(t.score, float) and math.isnan(t.score)) else None
        row = {
            "stage": stage,
            "trial": tid,
            "name": trial_name(stage, tid, values, objective, score),
            "status": str(t.status),
            "score": score,
            "worker": (assignments or {}).get(tid, ""),
        }
        for k, v in values.items():
            row[k] = v
        names = list(t.metrics.metrics) if hasattr(t.metrics, "metrics") else []
        for name in names:
            if name == objective:
                continue
            v = _metric(t, name)
            if v is not None:
                row[name] = v
        rows.append(row)
    return rows


def best_first(rows, direction: str = "min") -> List[Dict[str, Any]]:
    """The trial rows sorted best first for an objective `direction` ("min"/"max"); trials without
    a finite score or not completed go last, in trial order."""
    def key(r):
        s = r.get("score")
        if (not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s)
                or r.get("status", "COMPLETED") != "COMPLETED"):
            return (1, 0.0)
        return (0, s if direction == "min" else -s)

    return sorted(rows, key=key)


def trials_table(rows, objective, max_rows: Optional[int] = None):
    """The trial rows as a rich Table, best first. `objective`: a keras_tuner.Objective or a metric
    name (its direction then from the name; "min" when the name does not say)."""
    from rich.table import Table

    if isinstance(objective, keras_tuner.Objective):
        direction, objective = objective.direction, objective.name
    else:
        direction = metric_direction(objective) or "min"
    table = Table(title=f"kerasrecipe search: {len(rows)} trials, {objective}", title_justify="left")
    short = {"score": objective, "learning_rate": "lr", "optimizer": "opt", "batch_size": "bs",
             "weight_decay": "wd", "dropout": "drop", "schedule": "sched", "epochs_run": "ep",
             "fit_seconds": "s"}
    skip = {"name", "status", "n_train", "first_epoch_seconds", "epoch_seconds", "folds"}
    cols = ["stage", "trial", "score", "learning_rate", "optimizer", "batch_size", "weight_decay", "dropout",
            "schedule"]
    cols = [c for c in cols if any(c in r for r in rows)]
    for r in rows:
        for c in r:
            if c not in cols and c not in skip and not c.startswith("tuner/") and "_fold" not in c and c not in (
                    "worker", "epochs_run", "fit_seconds"):
                cols.append(c)
    cols += [c for c in ("epochs_run", "fit_seconds") if any(c in r for r in rows)]
    if any(r.get("worker") not in ("", "local", None) for r in rows):
        cols.append("worker")
    if any(r.get("status") != "COMPLETED" for r in rows):
        cols.append("status")
    for c in cols:
        table.add_column(short.get(c, c), justify="left" if c in ("stage", "status", "optimizer", "schedule",
                                                                   "worker") else "right")
    order = best_first(rows, direction)[: max_rows or len(rows)]
    for r in order:
        table.add_row(*[_fmt(r.get(c)) for c in cols])
    return table


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def write_csv(path: str, rows) -> None:
    cols = []
    for r in rows:
        for c in r:
            if c not in cols:
                cols.append(c)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in cols})
    atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- timing (H5)
def extrapolate_seconds(rows, n_full: int, epochs: int, batch_size: Optional[int] = None) -> Optional[float]:
    """Training time on `n_full` samples for `epochs` epochs, from the trials' epoch timings:
    per-sample cost of a later epoch (median over trials, those with `batch_size` preferred)
    times n_full times epochs, plus the first epoch's extra (tracing/compilation) overhead."""
    done = [r for r in rows if r.get("epoch_seconds") and r.get("n_train")]
    same = [r for r in done if batch_size is not None and r.get("batch_size") == batch_size]
    use = same or done
    if not use:
        return None
    per_sample = statistics.median(r["epoch_seconds"] / r["n_train"] for r in use)
    overhead = statistics.median(max(0.0, r.get("first_epoch_seconds", 0.0) - r["epoch_seconds"]) for r in use)
    return float(overhead + per_sample * n_full * epochs)


# --------------------------------------------------------------------------- validation
def _check_stages(stages) -> tuple:
    if isinstance(stages, str):
        stages = (stages,)
    try:
        stages = tuple(stages)
    except TypeError:
        raise InputTypeError(f"stages must be a list of stage names, got {stages!r}") from None
    if not stages:
        raise ConfigError(f"stages=() is empty: use e.g. {STAGES} (coarse to fine, H1) or ('all',)")
    bad = [s for s in stages if s not in STAGE_NAMES]
    if bad:
        raise ConfigError(f"unknown stage(s) {bad}: expected names from {STAGE_NAMES}")
    if len(set(stages)) != len(stages):
        raise ConfigError(f"stages lists a stage twice: {stages}")
    if stages[0] == "refine":
        raise ConfigError("stage 'refine' narrows the LR around a best one: it needs an earlier stage")
    return stages


def _check_budget(max_trials, stages) -> List[int]:
    if isinstance(max_trials, int) and not isinstance(max_trials, bool):
        budget = [max_trials] * len(stages)
    elif isinstance(max_trials, (list, tuple)):
        budget = list(max_trials)
        if len(budget) != len(stages):
            raise ConfigError(f"max_trials has {len(budget)} entries for {len(stages)} stages {stages}")
    else:
        raise InputTypeError(f"max_trials must be an int or one int per stage, got {max_trials!r}")
    for b in budget:
        if not isinstance(b, int) or isinstance(b, bool) or b < 1:
            raise ConfigError(f"max_trials={max_trials!r} is invalid: expected integers >= 1")
    return budget


def _stage_space(stage: str, searched, best: Dict[str, Any], decades: float, lr_bounds=None):
    """(search list, fixed values, lr range or None) of a stage, or None when it has nothing to do."""
    if stage == "lr":
        names = ("lr",) if "lr" in searched else ()
    elif stage == "rest":
        names = tuple(n for n in searched if n != "lr")
    elif stage == "refine":
        names = ("lr",) if "lr" in searched else ()
    else:  # all
        names = tuple(searched)
    if not names:
        return None
    fixed = {n: best[n] for n in space.PARAMS if n not in names}
    lr_range = space.narrow_lr(best["lr"], decades, lr_bounds) if stage == "refine" else None
    return names, fixed, lr_range


def _values_to_params(values: Dict[str, Any]) -> Dict[str, Any]:
    """{search name: value} of the recipe parameters in `values`, in the recipe's order."""
    return {p: values[space.HP_NAMES[p]] for p in space.PARAMS if space.HP_NAMES[p] in values}


# --------------------------------------------------------------------------- search
def search(
    build_fn,
    x,
    y=None,
    *,
    validation_data=None,
    stages: Sequence[str] = STAGES,
    tuner: str = "random",
    max_trials=10,
    subsample: Optional[float] = None,
    classes=None,
    cv=None,
    directory: str = "tuning",
    project_name: str = "search",
    config: Optional[RecipeConfig] = None,
    search: Optional[Sequence[str]] = None,
    fixed: Optional[Dict[str, Any]] = None,
    ranges: Optional[Dict[str, Any]] = None,
    objective=None,
    epochs: Optional[int] = None,
    loss=None,
    metrics=None,
    callbacks=None,
    refine_decades: float = 1.0,
    retrain: bool = True,
    overwrite: bool = False,
    seed: Optional[int] = None,
    verbose: int = 1,
    console=None,
    fit_verbose: int = 0,
    oracle_kwargs: Optional[Dict[str, Any]] = None,
) -> Optional[SearchResult]:
    """Coarse-to-fine hyperparameter search with the recipe; returns a `SearchResult`.

    Args:
        build_fn: `build_fn(hp) -> keras.Model` (architecture hyperparameters via hp.Int/Choice...;
            the recipe's dropout via `hp.get("dropout")`). Compile it (loss, metrics) or pass `loss`.
        x, y: training data (arrays, or lists/dicts of arrays).
        validation_data: `(x_val, y_val)`; default: a stratified, shuffled split of
            `config.validation_split` of (x, y) (B2). Not with `cv`.
        stages: subset of ("lr", "rest", "refine") in order (H1), or ("all",) for one stage.
        tuner: "random" (H2, default), "bayesian" (H3) or "hyperband" (budget = `epochs`).
        max_trials: trials per stage (an int, or one per stage).
        subsample: fraction in (0, 1] of the data to search on, stratified by class, reproducible
            with `seed` (B7); the validation data is subsampled the same way.
        classes: search on a subset of classes (list of labels, or an int k for k random ones).
        cv: k (or a scikit-learn splitter): each trial's score is the mean over k folds (B5).
        directory, project_name: where the search lives; the same ones resume a killed search.
        config: base `RecipeConfig`: defaults of what is not searched, objective (`monitor`),
            early-stopping patience, seed.
        search, fixed, ranges: the recipe parameters to search (default: all that are not in
            `fixed`) / fix / their ranges (see `RecipeHyperModel`).
        objective: metric name or `keras_tuner.Objective` (default `config.monitor`); the direction
            of a name is known for losses/errors (min) and accuracy, AUC, precision, recall, F1,
            R², IoU, cosine similarity... (max); pass an Objective for other names. It is
            checked against the metrics of one model before any trial.
        epochs: max epochs per trial and for the retraining (default `config.epochs`).
        loss, metrics: compile arguments when build_fn does not compile.
        callbacks: `callbacks(config) -> list` used in every trial and the retraining
            (default: early stopping, NaN stop, plateau halving).
        refine_decades: width (> 0) of the refine stage's LR range in decades (1: best/√10..best·√10),
            kept inside the searched LR range.
        retrain: retrain the best configuration on the full data.
        overwrite: start afresh instead of resuming.
        seed: seed of subsampling, splits and the oracles (default `config.seed`).
        verbose: 0 silent, 1 a line per trial and the final table.

    Distributed (A7): run the same script on each machine with keras-tuner's variables
    `KERASTUNER_TUNER_ID` ("chief" on one, unique names on the others), `KERASTUNER_ORACLE_IP`
    and `KERASTUNER_ORACLE_PORT`. The chief hands out trials, retrains the best and returns the
    result; workers run trials and return None. See docs/distributed-tuning.md.

    Example:
        result = kerasrecipe.tuning.search(build, x, y, max_trials=8, subsample=0.1)
        result.best_config.learning_rate, result.model.evaluate(x_test, y_test)
    """
    from rich.console import Console

    console = console or Console()
    if tuner not in TUNERS:
        raise ConfigError(f"unknown tuner {tuner!r}: expected one of {TUNERS} (random search is the default, H2)")
    stages = _check_stages(stages)
    budget = _check_budget(max_trials, stages)
    if subsample is not None and (isinstance(subsample, bool) or not isinstance(subsample, (int, float))
                                  or not 0 < subsample <= 1):
        raise ConfigError(
            f"subsample={subsample!r} is invalid: expected a fraction in (0, 1], e.g. 0.1 to tune on a "
            "tenth of the data (B7)"
        )
    if cv is not None and validation_data is not None:
        raise ConfigError("cv= validates on held-out folds: do not pass validation_data with it")
    space.check_decades(refine_decades)
    config = resolve_config(config)
    seed = config.seed if seed is None else seed
    seed = 0 if seed is None else int(seed)
    hm = RecipeHyperModel(build_fn, config=config, search=search, fixed=fixed, ranges=ranges, loss=loss,
                          metrics=metrics, epochs=epochs, callbacks=callbacks, fit_verbose=fit_verbose)
    obj = objective_for(objective or config.monitor)
    epochs = epochs or config.epochs
    role = distributed.role()
    say = (lambda *a, **k: console.print(*a, **k)) if verbose and role != "worker" else (lambda *a, **k: None)

    # ---------------------------------------------------------------- data
    if y is None:
        raise ConfigError("search needs targets y (x, y arrays)")
    data_mod.check_cardinality(x, y)
    if cv is None and validation_data is None:
        (x_full, y_full), val_full = data_mod.validation_split(x, y, config.validation_split, seed=seed)
    else:
        x_full, y_full, val_full = x, y, validation_data
    if val_full is not None and (not isinstance(val_full, (tuple, list)) or len(val_full) != 2):
        raise InputTypeError("validation_data must be a tuple (x_val, y_val)")
    if validation_data is not None:
        data_mod.check_cardinality(validation_data[0], validation_data[1], "validation_data: ")
    if subsample is not None or classes is not None:
        idx = data_mod.subsample_indices(y_full, subsample, classes, seed=seed, n=data_mod.n_samples(x_full))
        xs, ys = data_mod.take(x_full, idx), data_mod.take(y_full, idx)
        vs = None
        if val_full is not None:
            vidx = data_mod.subsample_indices(val_full[1], subsample, _chosen_classes(y_full, classes, seed),
                                              seed=seed + 1, n=data_mod.n_samples(val_full[0]))
            vs = (data_mod.take(val_full[0], vidx), data_mod.take(val_full[1], vidx))
        say(f"[bold]search[/] on {len(idx)} of {data_mod.n_samples(x_full)} training samples"
            + (f" (subsample {subsample:g}, stratified)" if subsample else "")
            + (f", classes {sorted(set(data_mod.labels_of(ys).tolist()))}" if classes is not None else ""))
    else:
        xs, ys, vs = x_full, y_full, val_full

    # ---------------------------------------------------------------- stages
    project_dir = os.path.join(directory, project_name)
    if overwrite and role != "worker" and os.path.exists(project_dir):
        shutil.rmtree(project_dir)
    os.makedirs(project_dir, exist_ok=True)
    best = space.base_values(config, hm.fixed)
    best_arch = hm.arch_defaults()  # build_fn's own hyperparameters: held at these in LR stages
    if callbacks is None:  # (custom callbacks may add metrics to the logs)
        _check_objective(hm, obj, xs, ys, has_validation=vs is not None or cv is not None)
    best_trial = None  # (score, stage, trial)
    stage_info: Dict[str, Any] = {}
    all_rows: List[Dict[str, Any]] = []
    server = distributed.ChiefServer(list(stages)) if role == "chief" else None
    better = (lambda a, b: a < b) if obj.direction == "min" else (lambda a, b: a > b)
    try:
        if server is not None:
            server.__enter__()
        for i, stage in enumerate(stages):
            spec = _stage_space(stage, hm.search, best, refine_decades, hm.ranges["lr"])
            if spec is None:
                say(f"stage [bold]{stage}[/]: nothing to search (search={hm.search}), skipped")
                continue
            names, stage_fixed, lr_range = spec
            stage_ranges = dict(hm.ranges)
            if lr_range is not None:
                stage_ranges["lr"] = lr_range
            # the LR stages search the LR alone: the architecture is held at its defaults (stage 1)
            # or at the best configuration's values (refine); "rest" and "all" search it too.
            stage_hm = hm.derive(search=names, fixed=stage_fixed, ranges=stage_ranges,
                                 arch_fixed=best_arch if stage in ("lr", "refine") else {})
            oracle = make_oracle(tuner, objective=obj, max_trials=budget[i], seed=seed + 1000 * (i + 1),
                                 max_epochs=epochs, **(oracle_kwargs or {}))
            kw = dict(directory=project_dir, project_name=f"{i + 1}-{stage}", overwrite=False, stage=stage,
                      tuner_id=distributed.stage_tuner_id(stage) if role == "worker" else None)
            t = (KFoldTuner(stage_hm, oracle=oracle, cv=cv, seed=seed, **kw) if cv is not None
                 else RecipeTuner(stage_hm, oracle=oracle, **kw))
            reporter = _Reporter(say, stage, obj, budget[i] if tuner != "hyperband" else None)
            assignments = None
            if role == "worker":
                t.search(xs, ys, validation_data=vs)
                continue
            t.oracle.verbose = 0
            if role == "chief":
                t.save()
                assignments = server.serve(stage, t.oracle,
                                           assignments_path=os.path.join(t.project_dir, "assignments.json"),
                                           on_trial_end=reporter)
            else:
                t.reporter = reporter
                t.search(xs, ys, validation_data=vs)
                assignments = {tid: "local" for tid in t.oracle.trials}
            rows = trial_rows(stage, t.oracle, obj.name, assignments)
            all_rows.extend(rows)
            done = t.oracle.get_best_trials(1)
            if not done or done[0].score is None:
                raise ConfigError(f"stage {stage!r}: no trial completed{_failure_cause(t.oracle)}; see the "
                                  f"trial messages in {t.project_dir}")
            st = done[0]
            stage_info[stage] = {"best": dict(st.hyperparameters.values), "score": st.score,
                                 "lr_range": (lr_range["min"], lr_range["max"]) if lr_range else None,
                                 "searched": names}
            if best_trial is None or better(st.score, best_trial[0]):
                best_trial = (st.score, stage, st)
            best.update(_values_to_params(best_trial[2].hyperparameters.values))
            best_arch = best_trial[2].hyperparameters  # every architecture value, conditional ones too
            say(f"stage [bold]{stage}[/] done: best {obj.name}={st.score:.4g} with "
                + ", ".join(f"{k}={_fmt(v)}" for k, v in _values_to_params(st.hyperparameters.values).items()
                            if k in names))
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    if role == "worker":
        return None
    if best_trial is None:
        raise ConfigError("no stage had anything to search")

    # ---------------------------------------------------------------- results
    csv_path = os.path.join(project_dir, "trials.csv")
    write_csv(csv_path, all_rows)
    best_score, _, bt = best_trial
    best_values = dict(bt.hyperparameters.values)
    best_config = space.config_from_values(config, best_values)
    best_config.to_json(os.path.join(project_dir, "best_config.json"))
    if verbose:
        # a log file is not a terminal: print the table whole rather than squeezed into 80 columns
        console.print(trials_table(all_rows, obj), width=None if console.is_terminal else 200)
        console.print(f"trials: {csv_path}")

    result = SearchResult(best_config=best_config, best_hyperparameters=best_values, best_score=float(best_score),
                          objective=obj.name, model=None, trials=all_rows, directory=project_dir,
                          csv_path=csv_path, stages=stage_info, direction=obj.direction)
    if retrain:
        _retrain(result, hm, bt, x_full, y_full, val_full, cv, config, seed, epochs, all_rows, xs, say)
    return result


def _check_objective(hm, objective, x, y, has_validation: bool) -> None:
    """ObjectiveError before any trial when the objective is none of the metrics the model logs
    (one model at the default hyperparameters, evaluated on two samples). A model that cannot
    be evaluated so is left to the trials."""
    model = hm.build(keras_tuner.HyperParameters())
    try:
        idx = list(range(min(2, data_mod.n_samples(x))))
        logs = model.evaluate(data_mod.take(x, idx), data_mod.take(y, idx), verbose=0, return_dict=True)
    except Exception:
        return
    finally:
        del model
        keras.utils.clear_session(free_memory=False)
    names = sorted(set(logs) | ({f"val_{k}" for k in logs} if has_validation else set()))
    if objective.name not in names:
        raise ObjectiveError(
            f"objective {objective.name!r} is none of the metrics the model logs {names}: compile the "
            "metric in build_fn (or pass metrics=), or choose one of these as objective"
        )


def _failure_cause(oracle) -> str:
    """' (trial <id> failed with: <last line of its traceback>)' for the first failed trial, or ''."""
    for tid in sorted(oracle.trials, key=lambda t: (len(t), t)):
        message = getattr(oracle.trials[tid], "message", None)
        lines = [ln.strip() for ln in str(message or "").strip().splitlines() if ln.strip()]
        if lines:
            return f" (trial {tid} failed with: {lines[-1]})"
    return ""


def _chosen_classes(y, classes, seed):
    """The classes a `classes=` argument selects in y (so validation keeps the same ones)."""
    if classes is None:
        return None
    idx = data_mod.subsample_indices(y, None, classes, seed=seed)
    return sorted(set(data_mod.labels_of(data_mod.take(y, idx)).tolist()))


class _Reporter:
    """One line per finished trial."""

    def __init__(self, say, stage, objective, budget):
        self.say, self.stage, self.objective, self.budget = say, stage, objective, budget
        self.best = None

    def __call__(self, trial):
        score = trial.score
        if score is not None and (self.best is None or (score < self.best if self.objective.direction == "min"
                                                         else score > self.best)):
            self.best = score
        n = f"/{self.budget}" if self.budget else ""
        values = _values_to_params(trial.hyperparameters.values)
        self.say(f"  [{self.stage}] trial {int(trial.trial_id) + 1}{n} {trial.status}: "
                 + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
                 + (f" → {self.objective.name}={score:.4g} (best {self.best:.4g})" if score is not None else ""))


def _retrain(result, hm, bt, x_full, y_full, val_full, cv, config, seed, epochs, rows, xs, say):
    """Retrain the best configuration on the full data (B7), after printing the time it should
    take, extrapolated from the trials (H5). A finished retraining is reused on a rerun."""
    if cv is not None:  # the folds used all data; hold out a split for early stopping (F2)
        (x_full, y_full), val_full = data_mod.validation_split(x_full, y_full, config.validation_split, seed=seed)
    n_full = data_mod.n_samples(x_full)
    n_search = data_mod.n_samples(xs)
    bs = result.best_config.batch_size
    run_epochs = int(_metric(bt, "epochs_run") or epochs)
    est = extrapolate_seconds(rows, n_full, run_epochs, bs)
    est_max = extrapolate_seconds(rows, n_full, epochs, bs)
    result.estimated_seconds = est
    if est is not None:
        say(f"[bold]retraining[/] the best configuration on all {n_full} training samples "
            f"({n_full / max(1, n_search):.1f}x the search's {n_search}): estimated ≈ {est:.1f} s for the "
            f"{run_epochs} epochs its trial ran (≤ {est_max:.1f} s for {epochs} epochs), extrapolated "
            "from the trials' epoch times (H5)")
    hp = bt.hyperparameters.copy()
    for k in [k for k in hp.values if k.startswith("tuner/")]:
        del hp.values[k]  # Hyperband's per-trial epochs: the retraining uses `epochs`
    weights = os.path.join(result.directory, "final.weights.h5")
    marker = os.path.join(result.directory, "final.json")
    stamp = {"values": {k: v for k, v in hp.values.items()}, "n_train": n_full, "epochs": epochs,
             "data": data_mod.fingerprint(x_full, y_full, *(val_full or (None, None)))}
    keras.utils.clear_session()
    model = hm.build(hp)
    if os.path.exists(weights) and os.path.exists(marker):
        import json

        with open(marker) as f:
            if json.load(f).get("stamp") == stamp:
                if model.optimizer is not None and not model.optimizer.built and model.built:
                    model.optimizer.build(model.trainable_variables)  # its saved state loads too
                model.load_weights(weights)
                result.model = model
                say(f"retrained model found in {weights}: loaded, not retrained")
                return
    t0 = time.perf_counter()
    history = hm.fit(hp, model, x_full, y_full, validation_data=val_full, epochs=epochs)
    result.retrain_seconds = time.perf_counter() - t0
    result.history = history
    result.model = model
    tmp = weights + ".tmp.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, weights)
    atomic_write_json(marker, {"stamp": stamp, "retrain_seconds": result.retrain_seconds,
                               "estimated_seconds": est})
    say(f"retrained in {result.retrain_seconds:.1f} s"
        + (f" (estimated {est:.1f} s)" if est is not None else ""))
