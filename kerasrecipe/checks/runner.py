"""`preflight`: run the checks in order within a time budget and return the report."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple, Union

from kerasrecipe.checks import data, model as model_checks, targets, training
from kerasrecipe.checks.context import Budget, Context
from kerasrecipe.checks.report import CheckResult, PreflightReport
from kerasrecipe.checks.sample import gather, gather_validation
from kerasrecipe.errors import ConfigError, InputTypeError, PreflightError

DEFAULT_TIME_BUDGET = 30.0   # seconds of training checks; a small model's take a few seconds on 2 CPU cores
MIN_TRAINING_SECONDS = 1.0   # a training check is skipped when less than this is left


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    tips: Tuple[str, ...]
    group: str               # "data" | "model" | "training"
    fn: Callable
    weight: float = 0.0      # share of the remaining budget (training checks)
    optional: bool = False   # not run by checks="all"; ask by name or checks="full"


CHECKS = (
    Check("finite", "NaN / Inf", ("B1", "G2"), "data", data.check_finite),
    Check("constant_features", "Constant features", ("B1",), "data", data.check_constant_features),
    Check("input_scale", "Input scale", ("B3",), "data", data.check_input_scale),
    Check("duplicates", "Duplicates", ("B1",), "data", data.check_duplicates),
    Check("leakage", "Train/val leakage", ("B2",), "data", data.check_leakage),
    Check("class_balance", "Class balance", ("B9", "C2"), "data", targets.check_class_balance),
    Check("targets", "Targets vs loss", ("C8", "J3"), "data", targets.check_targets),
    Check("shift", "Train/val shift", ("B2",), "data", data.check_shift),
    Check("padding", "Sequence padding", ("B6",), "data", data.check_padding),
    Check("params", "Parameters vs data", ("C7",), "model", model_checks.check_params),
    Check("output_loss", "Output vs loss", ("C1", "C2"), "model", targets.check_output_loss),
    Check("initial_loss", "Initial loss", ("C1", "C2"), "model", model_checks.check_initial_loss),
    Check("batch_independence", "Batch independence", ("C6",), "model", model_checks.check_batch_independence),
    Check("zero_baseline", "Zero-input baseline", ("C3",), "training", training.check_zero_baseline, 1.0),
    Check("overfit_batch", "Overfit one batch", ("C4",), "training", training.check_overfit_batch, 1.0),
    Check("capacity", "Capacity step", ("C5",), "training", training.check_capacity, 1.0, optional=True),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)
GROUPS = ("data", "model", "training")
OPTIONS = ("baseline_steps", "overfit_steps", "capacity_steps", "probe_samples")


def _select(checks) -> set:
    if isinstance(checks, str):
        checks = [checks]
    if not isinstance(checks, (list, tuple, set, frozenset)):
        raise InputTypeError(f"checks must be 'all', 'full', a group {GROUPS} or a list of check names; "
                             f"got {type(checks).__name__}")
    out = set()
    for c in checks:
        if c == "all":
            out |= {k.name for k in CHECKS if not k.optional}
        elif c == "full":
            out |= set(CHECK_NAMES)
        elif c in GROUPS:
            out |= {k.name for k in CHECKS if k.group == c and not k.optional}
        elif c in CHECK_NAMES:
            out.add(c)
        else:
            raise ConfigError(f"unknown preflight check {c!r}; known: 'all', 'full', groups {GROUPS}, "
                              f"checks {CHECK_NAMES}")
    return out


def preflight(model, x, y=None, *, validation_data=None, checks: Union[str, Sequence[str]] = "all",
              strict: bool = False, time_budget: Optional[float] = DEFAULT_TIME_BUDGET, verbose: int = 1,
              runlog=None, sample_weight=None, batch_size: Optional[int] = None, max_samples: int = 10000,
              seed: int = 0, options: Optional[dict] = None, console=None) -> PreflightReport:
    """Sanity-check data and model before spending compute (Karpathy's steps 1-2).

    Data checks (B1-B3, B6, B9), target/loss checks, model checks (C1, C6, C7) and short training
    checks on a clone of the model (C3 zero-input baseline, C4 overfit one batch, C5 capacity step,
    optional). The user's model and optimizer are not modified (an unbuilt model gets built, as
    `fit` would).

    Args:
        model: a Keras model; compiled for the loss-based and training checks (they are skipped,
            saying so, when it is not).
        x: inputs: arrays (or lists/dicts of arrays), a `tf.data.Dataset` (TF backend),
            a `keras.utils.PyDataset`, or an iterable of (x, y) batches. A bounded sample
            (`max_samples` rows) is read.
        y: targets, when `x` is arrays.
        validation_data: (x_val, y_val) or a dataset; enables the leakage and shift checks and is
            the held-out set of the zero-input baseline.
        checks: "all" (every standard check), "full" (also the optional capacity step), a group
            ("data", "model", "training") or a list of check names (see `CHECK_NAMES`).
        strict: raise `PreflightError` listing the failures when a check fails.
        time_budget: seconds for the checks that train (None: no limit). The data and model checks
            are cheap and bounded by the sample: they always run and do not count against it. The
            training checks share the budget (the one-off compilation of their clone included); a
            check that cannot run in time is skipped, one cut short reports an inconclusive
            result at info level, and both say so.
        verbose: 0 silent, 1 a progress display while running and the table at the end.
        runlog: a `kerasrecipe.RunLog`; the report is recorded in it as a "preflight" record.
        sample_weight: sample weights for array inputs (the class-balance check weighs the classes
            by them: pass class_weight as per-sample weights to have it taken into account).
        batch_size: batch size of the training checks (default 16: small, cheap steps; pass the
            batch size fit will use and, on JAX, the clones share its compiled train step).
        max_samples: at most this many rows are read from the data.
        seed: seed of the samples and batches preflight draws.
        options: step limits of the training checks: {"baseline_steps": 100, "overfit_steps": 500,
            "capacity_steps": 100, "probe_samples": 512}.
        console: a rich Console to print to.

    Returns:
        PreflightReport.

    Example:
        >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
        ...                           keras.layers.Dense(10, activation="softmax")])
        >>> model.compile("adam", "sparse_categorical_crossentropy")
        >>> report = kr.preflight(model, x_train, y_train, validation_data=(x_val, y_val))
        >>> report.ok
        True
    """
    import keras

    if time_budget is not None:
        if isinstance(time_budget, bool) or not isinstance(time_budget, (int, float)) or not time_budget > 0:
            raise ConfigError(f"time_budget must be None or a number of seconds > 0, got {time_budget!r}")
    if not isinstance(model, keras.Model):
        raise InputTypeError(f"preflight expects a keras.Model, got {type(model).__name__}")
    if runlog is not None:
        from kerasrecipe.runlog import RunLog

        if not isinstance(runlog, RunLog):
            raise InputTypeError(f"runlog must be a kerasrecipe.RunLog, got {type(runlog).__name__}")
    if not isinstance(max_samples, int) or max_samples < 2:
        raise ConfigError(f"max_samples must be an integer >= 2, got {max_samples!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be None or an integer >= 1, got {batch_size!r}")
    selected = _select(checks)

    budget = Budget(time_budget)
    train = gather(x, y, sample_weight, max_samples=max_samples, seed=seed)
    val = gather_validation(validation_data, max_samples=max_samples, seed=seed)
    opts = dict(options or {})
    unknown = set(opts) - set(OPTIONS)
    if unknown:
        raise ConfigError(f"unknown preflight option(s) {sorted(unknown)}; known: {OPTIONS}")
    for k, v in opts.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"options[{k!r}] must be an integer >= 1, got {v!r}")
    ctx = Context(model, train, val, budget, {"seed": seed, "batch_size": batch_size, **opts})

    rows = []
    todo = [c for c in CHECKS]
    progress, task = _start_progress(verbose, len(todo), console)
    restore_threads = None
    t_start = time.perf_counter()
    budget_start = None
    try:
        for i, chk in enumerate(todo):
            row = CheckResult(chk.name, chk.title, list(chk.tips))
            rows.append(row)
            if progress is not None:
                progress.update(task, description=f"preflight: {chk.title}", completed=i)
            if chk.name not in selected:
                row.skip("optional: run with checks='full' or name it in checks" if chk.optional
                         else "not selected (checks=...)")
                continue
            t0 = time.perf_counter()
            try:
                if chk.group == "training":
                    # only the checks that train share the budget: its clock starts here
                    if budget_start is None:
                        budget.begin()
                        budget_start = t0 - t_start
                    if restore_threads is None:
                        restore_threads = _small_batch_threads(model, train)
                    rem = budget.remaining()
                    if rem < MIN_TRAINING_SECONDS:
                        row.skip(f"time budget ({time_budget:g} s) spent: {budget.elapsed():.1f} s of training "
                                 "checks; raise time_budget to run it")
                        row.evidence["budget_limited"] = True
                        continue
                    row.started_at = t0 - t_start
                    # one-off compilation of the shared clone's train step is setup, not training
                    # time: it is paid before the deadlines are shared out, so it cannot eat one
                    # check's steps (on JAX it can take longer than the steps themselves)
                    warm = training.warm_up(ctx)
                    if warm:
                        row.evidence["warm_up_seconds"] = round(warm, 4)
                    pending = sum(c.weight for c in todo[i:] if c.name in selected and c.group == "training")
                    chk.fn(ctx, row, budget.deadline(chk.weight / max(pending, 1e-9)))
                else:
                    # data and model checks are bounded by the sample: they always run
                    row.started_at = t0 - t_start
                    chk.fn(ctx, row)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # a check that crashes is reported, the others still run
                row.issues.clear()
                row.skip(f"the check raised {type(e).__name__}: {str(e)[:300]}")
                row.evidence["traceback"] = traceback.format_exc(limit=6)
            finally:
                row.seconds = time.perf_counter() - t0
        if progress is not None:
            progress.update(task, completed=len(todo), description="preflight: done")
    finally:
        if progress is not None:
            progress.stop()
        if restore_threads:
            restore_threads()

    report = PreflightReport(rows, time_budget=time_budget, elapsed=time.perf_counter() - t_start,
                             budget_used=budget.elapsed(), budget_start=budget_start,
                             sample={"train": train.describe(), "validation": None if val is None else val.describe()},
                             backend=keras.backend.backend())
    if verbose:
        report.print(console)
    if runlog is not None:
        runlog.log("preflight", **report.to_dict())
    if strict and report.failed:
        lines = [f"{r.name}: {i.message}" + (f" Fix: {i.fix}" if i.fix else "")
                 for r in report.failed for i in r.issues if i.severity == "error"]
        raise PreflightError(f"preflight found {len(report.failed)} failed check(s):\n  - " + "\n  - ".join(lines),
                             failures=report.failed)
    return report


def _small_batch_threads(model, train):
    """On the torch CPU backend, train the small probe batches on one thread (restored afterwards):
    intra-op threads only add synchronisation to 16-sample steps of a small model (measured 6x
    faster on a busy 2-core CPU). Returns the function that restores the setting, or False."""
    import keras

    if keras.backend.backend() != "torch":
        return False
    import torch

    try:
        on_cpu = not torch.cuda.is_available()
        small = model.count_params() < 1_000_000
    except Exception:
        return False
    if not (on_cpu and small) or torch.get_num_threads() == 1:
        return False
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    train.notes.append(f"training checks ran on 1 torch thread (was {prev}; restored)")
    return lambda: torch.set_num_threads(prev)


def _start_progress(verbose, total, console):
    if not verbose:
        return None, None
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), transient=True, console=console)
    progress.start()
    return progress, progress.add_task("preflight", total=total)
