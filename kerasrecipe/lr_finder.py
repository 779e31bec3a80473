"""LR range test (tip D2): sweep the learning rate exponentially over a few hundred steps, watch the
loss, and pick the rate where it falls fastest. The model and its optimizer are put back exactly as
they were (bit for bit) afterwards.

    import kerasrecipe as kr
    res = kr.lr_find(model, x, y)              # model compiled, not necessarily trained
    res.suggestion                             # steepest descent of the smoothed loss
    res.suggestions                            # {"steepest", "valley", "min_div10"}
    res.plot("lr_find.png")

How the suggestion is chosen (all three are in `suggestions`):
  - "steepest" (the default `suggestion`): where the smoothed loss falls fastest per decade of
    learning rate. Made robust to noisy losses (dropout, BatchNorm, small batches): the slope is a
    least-squares line over a one-decade window, not a difference of neighbouring points, and only
    the final descent counts: past the first 10% of the loss's fall from its first-decade level, up
    to its lowest point. None when the loss never falls. Like the plotted curve it reads the
    smoothed loss, which trails the raw one by about beta/(1-beta) steps (1 decade at the
    defaults), as in fastai;
  - "valley": fastai's valley rule: the longest stretch over which the loss keeps falling, and the
    point halfway along it (usually more conservative than steepest);
  - "min_div10": the rate of the lowest smoothed loss divided by 10 (the classic rule of thumb).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np

from kerasrecipe.errors import ConfigError, DivergenceError, InputTypeError, NotCompiledError, is_integer, is_real

SUGGESTION_METHODS = ("steepest", "valley", "min_div10")


# ---------------------------------------------------------------------------- result
@dataclass
class LRFindResult:
    """Outcome of `lr_find`.

    Attributes:
        lrs: learning rate of each step (the largest group's rate for a MultiOptimizer).
        losses: raw training loss of each step's batch.
        smoothed: debiased exponential moving average of `losses` (beta).
        suggestion: the steepest-descent learning rate (see the module docstring); None when the
            loss does not fall.
        suggestions: {"steepest", "valley", "min_div10"} -> learning rate (None if not found).
        stop_reason: "end" (swept to end_lr), "diverged" (the smoothed loss rose above its best by
            more than (diverge_factor - 1) x max(|best|, spread of the first losses); see `diverged`)
            or "nan" (a non-finite loss).
        beta, diverge_factor: the settings used.
    """

    lrs: List[float]
    losses: List[float]
    smoothed: List[float]
    suggestion: Optional[float]
    suggestions: Dict[str, Optional[float]] = field(default_factory=dict)
    stop_reason: str = "end"
    beta: float = 0.98
    diverge_factor: float = 4.0

    @property
    def min_loss_lr(self) -> Optional[float]:
        """Learning rate at the lowest smoothed loss."""
        if not self.smoothed:
            return None
        return self.lrs[int(np.nanargmin(self.smoothed))]

    def to_dict(self) -> dict:
        return asdict(self)

    def plot(self, path: str, *, show_raw: bool = True) -> str:
        """Loss against learning rate (log scale) as a PNG, the suggestion marked. Returns `path`."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from kerasrecipe.io import atomic_write_bytes, figure_png

        fig, ax = plt.subplots(figsize=(7, 4.5))
        try:
            if show_raw:
                ax.plot(self.lrs, self.losses, color="0.75", lw=0.8, label="loss (raw)")
            ax.plot(self.lrs, self.smoothed, color="C0", lw=1.8, label=f"loss (smoothed, beta={self.beta:g})")
            marks = {"steepest": ("C3", "o"), "valley": ("C2", "s"), "min_div10": ("C1", "^")}
            for name, (color, marker) in marks.items():
                lr = self.suggestions.get(name)
                if lr is None:
                    continue
                i = int(np.argmin(np.abs(np.log(np.asarray(self.lrs)) - math.log(lr))))
                big = name == "steepest"
                ax.plot([lr], [self.smoothed[i]], marker=marker, color=color, ms=11 if big else 7, ls="none",
                        label=f"{name}: {lr:.2e}" + (" (suggestion)" if big else ""))
                if big:
                    ax.axvline(lr, color=color, ls="--", lw=1)
            ax.set_xscale("log")
            finite = np.asarray([v for v in self.smoothed if np.isfinite(v)])
            if finite.size:
                lo, first = float(finite.min()), float(finite[0])
                top = max(first, lo) + 0.25 * abs(max(first, lo) - lo) + 1e-12
                ax.set_ylim(lo - 0.1 * (top - lo) - 1e-12, top + 0.5 * (top - lo))
            ax.set_xlabel("learning rate")
            ax.set_ylabel("training loss")
            ax.set_title(f"LR range test ({len(self.lrs)} steps, stopped: {self.stop_reason})")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(loc="upper left", fontsize=8)
            data = figure_png(fig, dpi=110)
        finally:
            plt.close(fig)
        atomic_write_bytes(path, data)
        return path

    def __repr__(self):
        s = "None" if self.suggestion is None else f"{self.suggestion:.3g}"
        return f"LRFindResult(suggestion={s}, steps={len(self.lrs)}, stop_reason={self.stop_reason!r})"


# ---------------------------------------------------------------------------- suggestions
def smooth(losses, beta: float = 0.98) -> List[float]:
    """Debiased exponential moving average (as Adam debiases its moments)."""
    out, avg = [], 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


STEEPEST_WINDOW_DECADES = 1.0   # the slope is a least-squares fit over this width of log10(lr)
DESCENT_START = 0.1              # the descent starts once the loss fell by 10% of its total drop
FIRST_MIN_POINTS = 8             # the "first decade" has at least this many points


def _window_slopes(x, y, half):
    """Least-squares slope of y against x over the points within `half` of each x[i] (x sorted)."""
    out = np.full(len(y), np.nan)
    lo = np.searchsorted(x, x - half, side="left")
    hi = np.searchsorted(x, x + half, side="right")
    for i in range(len(y)):
        xs, ys = x[lo[i]:hi[i]], y[lo[i]:hi[i]]
        if len(xs) < 3:
            continue
        xc = xs - xs.mean()
        den = float(np.dot(xc, xc))
        if den > 0:
            out[i] = float(np.dot(xc, ys - ys.mean())) / den
    return out


def suggest_steepest(lrs, smoothed) -> Optional[float]:
    """Learning rate where the smoothed loss falls fastest per decade, on its final descent.

    Robust to the noise of the first steps (the debiased average of only a few losses): the slope
    at each point is a least-squares line through the smoothed loss over a window one decade of
    learning rate wide (at least 2 points either side), not the difference of neighbouring points;
    and only the descent counts: from the last time the loss was within 10% of its total fall of
    its level over the first decade (the median there), down to its lowest point after that first
    decade. An early dip of the noisy first steps is neither the minimum nor the descent. None when
    the loss does not fall below its first-decade level.
    """
    lrs, sm = np.asarray(lrs, "float64"), np.asarray(smoothed, "float64")
    ok = np.isfinite(sm) & np.isfinite(lrs) & (lrs > 0)
    lrs, sm = lrs[ok], sm[ok]
    if len(sm) < 5:
        return None
    x = np.log10(lrs)
    step = float(np.median(np.diff(x)))
    half = max(STEEPEST_WINDOW_DECADES / 2, 2.01 * step)
    k = max(FIRST_MIN_POINTS, int(np.searchsorted(x, x[0] + 2 * half, side="right")))
    k = min(k, len(sm) - 3)                                # the first decade: the level to fall from
    level = float(np.median(sm[:max(k, 1)]))
    stop = max(k, 0) + int(np.argmin(sm[max(k, 0):])) + 1    # the lowest point after it
    seg = sm[:stop]
    drop = level - float(seg[-1])
    if not drop > 0:
        return None
    above = np.flatnonzero(seg > level - DESCENT_START * drop)
    begin = int(above[-1]) + 1 if above.size else 0       # the last time the loss was still up there
    slope = _window_slopes(x[:stop], seg, half)
    cand = np.where((np.arange(stop) >= begin) & np.isfinite(slope), slope, np.inf)
    i = int(np.argmin(cand))
    return float(lrs[i]) if cand[i] < 0 else None


def suggest_valley(lrs, smoothed) -> Optional[float]:
    """fastai's valley rule: the longest run of decreasing loss; the point halfway along it."""
    sm = np.asarray(smoothed, "float64")
    n = len(sm)
    if n < 5:
        return None
    lds = np.ones(n, dtype=int)  # longest decreasing subsequence ending at i
    max_start = max_end = 0
    for i in range(1, n):
        prev = np.nonzero(sm[:i] > sm[i])[0]
        if prev.size:
            lds[i] = lds[prev].max() + 1
        if lds[i] > lds[max_end]:
            max_end, max_start = i, i - int(lds[i])
    sections = (max_end - max_start) / 3
    idx = max(0, min(n - 1, max_start + int(sections) + int(sections / 2)))
    return float(lrs[idx]) if max_end > 0 else None


def suggest_min_div10(lrs, smoothed) -> Optional[float]:
    if not len(smoothed):
        return None
    return float(lrs[int(np.nanargmin(smoothed))]) / 10.0


def suggestions_of(lrs, smoothed) -> Dict[str, Optional[float]]:
    return {"steepest": suggest_steepest(lrs, smoothed), "valley": suggest_valley(lrs, smoothed),
            "min_div10": suggest_min_div10(lrs, smoothed)}


# ---------------------------------------------------------------------------- divergence
DIVERGE_SPREAD_STEPS = 10   # the batch-to-batch spread of the loss is measured over the first steps


def diverged(smoothed_loss, best, first_losses, diverge_factor) -> bool:
    """The sweep's stop test, for losses of any sign: the smoothed loss rose above its best by more
    than (diverge_factor - 1) x the loss's scale, the larger of |best| and the spread (max - min)
    of the raw losses of the first steps. For a positive loss whose best is above that spread this
    is the classic `smoothed > diverge_factor x best`; a loss that can be negative or reach 0
    (cosine similarity, Poisson, Gaussian NLL, a shifted loss) is judged by the same rise."""
    if not math.isfinite(best):
        return False
    spread = (max(first_losses) - min(first_losses)) if first_losses else 0.0
    scale = max(abs(best), spread, 1e-12)
    return smoothed_loss - best > (diverge_factor - 1.0) * scale


# ---------------------------------------------------------------------------- data
def _as_arrays(x):
    """Table-like inputs (pandas DataFrame/Series, polars: anything with `shape` and `to_numpy()`)
    -> NumPy arrays, inside lists/tuples/dicts too; arrays, backend tensors and data pipelines are
    left as they are."""
    if isinstance(x, dict):
        return {k: _as_arrays(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_as_arrays(v) for v in x)
    if not isinstance(x, np.ndarray) and hasattr(x, "shape") and callable(getattr(x, "to_numpy", None)):
        return np.asarray(x.to_numpy())
    return x


class _Batches:
    """Endless batches: arrays are reshuffled each pass; re-iterable datasets restart; one-shot
    iterators raise ConfigError when they run out before the sweep ends."""

    def __init__(self, x, y, batch_size, shuffle, seed, num_steps):
        import keras

        self.num_steps = num_steps
        self.arrays = not _is_dataset_like(x)
        if self.arrays:
            if x is None:
                raise InputTypeError("lr_find: x is None; pass the training inputs")
            self.x = keras.tree.map_structure(np.asarray, x)
            self.y = None if y is None else keras.tree.map_structure(np.asarray, y)
            lens = {len(a) for a in keras.tree.flatten(self.x)} | (
                set() if self.y is None else {len(a) for a in keras.tree.flatten(self.y)})
            if len(lens) != 1:
                raise ConfigError(f"lr_find: x and y have different numbers of samples {sorted(lens)}")
            self.n = lens.pop()
            if self.n == 0:
                raise ConfigError("lr_find: no samples")
            self.batch_size = min(batch_size, self.n)
            self.rng = np.random.default_rng(seed)
            self.shuffle = shuffle
            self._order, self._pos = None, self.n
        else:
            if y is not None:
                raise ConfigError("lr_find: y must be None when x is a dataset/generator yielding (x, y) batches")
            self.source = x
            self.reiterable = _reiterable(x)
            self._it = iter(x) if not _is_pydataset(x) else _pydataset_iter(x)
            self.served = 0

    def __next__(self):
        if self.arrays:
            import keras

            if self._pos + self.batch_size > self.n:
                self._order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
                self._pos = 0
            idx = self._order[self._pos:self._pos + self.batch_size]
            self._pos += self.batch_size
            xb = keras.tree.map_structure(lambda a: a[idx], self.x)
            yb = None if self.y is None else keras.tree.map_structure(lambda a: a[idx], self.y)
            return xb, yb
        try:
            batch = next(self._it)
        except StopIteration:
            if not self.reiterable or self.served == 0:
                raise ConfigError(
                    f"lr_find: the data ran out after {self.served} batches but the sweep needs {self.num_steps}. "
                    f"Pass arrays (they are reshuffled and reused), a repeating dataset (e.g. ds.repeat()), "
                    f"or num_steps <= {self.served}."
                ) from None
            self._it = iter(self.source) if not _is_pydataset(self.source) else _pydataset_iter(self.source)
            batch = next(self._it)
        self.served += 1
        if isinstance(batch, (tuple, list)):
            if len(batch) == 1:
                return batch[0], None
            return batch[0], batch[1]
        return batch, None


def _is_pydataset(x):
    import keras

    return isinstance(x, keras.utils.PyDataset)


def _pydataset_iter(ds):
    for i in range(len(ds)):
        yield ds[i]


def _is_dataset_like(x):
    if isinstance(x, (np.ndarray, list, tuple, dict)) or x is None:
        return False
    if hasattr(x, "shape") and hasattr(x, "dtype"):  # a backend tensor
        return False
    return _is_pydataset(x) or hasattr(x, "__iter__") or hasattr(x, "__next__")


def _reiterable(x):
    if _is_pydataset(x):
        return True
    try:
        return iter(x) is not x
    except TypeError:
        return False


# ---------------------------------------------------------------------------- the sweep
def _sweep_class():
    import keras

    class _Sweep(keras.optimizers.schedules.LearningRateSchedule):
        """Exponential learning rate from the optimizer's current iteration: lr0 * q ** (step - step0).
        Lives only during the sweep (never saved)."""

        def __init__(self, lr0, q, step0):
            self.lr0, self.q, self.step0 = float(lr0), float(q), int(step0)

        def __call__(self, step):
            from keras import ops

            k = ops.cast(step, "float32") - float(self.step0)
            return ops.convert_to_tensor(self.lr0, "float32") * ops.power(ops.convert_to_tensor(self.q, "float32"), k)

        def get_config(self):
            return {"lr0": self.lr0, "q": self.q, "step0": self.step0}

    return _Sweep


def _leaf_optimizers(optimizer):
    import keras

    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    if isinstance(optimizer, keras.optimizers.MultiOptimizer):
        return list(optimizer.optimizers)
    return [optimizer]


def _snapshot(variables):
    import keras

    return [np.array(keras.ops.convert_to_numpy(v.value), copy=True) for v in variables]


def _restore(variables, values):
    for v, val in zip(variables, values):
        v.assign(val)


def lr_find(model, x, y=None, *, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: Optional[int] = None,
            batch_size: Optional[int] = None, step_factor: float = 1.05, beta: float = 0.98,
            diverge_factor: float = 4.0, shuffle: bool = True, seed: int = 0, verbose: int = 1,
            runlog=None) -> LRFindResult:
    """LR range test (tip D2) on a compiled model; the model and optimizer are restored afterwards.

    Trains one batch per step while the learning rate grows exponentially from `start_lr` to
    `end_lr`; stops early when the smoothed loss diverges (for a positive loss: exceeds
    `diverge_factor` x its best; any sign: see `diverged`) or is NaN;
    then puts back every model variable (weights, BatchNorm statistics, seed states) and every
    optimizer variable (moments, iteration count, learning rate) exactly, and the optimizer's
    learning-rate object (float, schedule). Metrics are reset.

    Args:
        model: a compiled Keras model (optimizer and loss). A MultiOptimizer keeps its groups'
            ratios; `lrs` report the largest group's rate.
        x, y: arrays or pandas DataFrames/Series (reshuffled and reused as often as the sweep
            needs), or x a dataset / generator / PyDataset yielding (x, y) batches (y=None then).
        start_lr, end_lr: the range of the sweep (D2: from 1e-7).
        num_steps: steps of the sweep; None -> as many as a factor of `step_factor` per step needs
            (1.05: 379 steps from 1e-7 to 10), and at least 20. Given: an integer >= 20.
        batch_size: for arrays; None -> 32 (the recipe's default batch size).
        beta: smoothing of the loss (debiased EMA).
        diverge_factor: stop when the smoothed loss exceeds this multiple of its best (losses that
            can be negative or 0: when it rose by (diverge_factor - 1) x max(|best|, the spread of
            the first 10 losses) above it).
        shuffle, seed: order of array batches.
        verbose: 1 shows a progress bar (rich) and the suggestion; 0 is silent.
        runlog: a `kerasrecipe.RunLog` to record the result in (record kind "lr_find").

    Returns:
        LRFindResult (`suggestion`, `suggestions`, `lrs`, `losses`, `smoothed`, `plot(path)`, `to_dict()`).

    Raises:
        NotCompiledError: the model has no optimizer/loss yet.
        ConfigError: bad range or step counts, or a one-shot data source with too few batches.
        DivergenceError: the loss is NaN/Inf from the very first step (not a learning-rate problem:
            check the data for NaN and the loss/labels; run kr.preflight).
    """
    import keras

    from kerasrecipe.config import RecipeConfig

    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise NotCompiledError(
            "lr_find needs a compiled model: call model.compile(optimizer=..., loss=...) first "
            "(the optimizer you will train with: its state is restored after the sweep)."
        )
    for name, v in (("start_lr", start_lr), ("end_lr", end_lr)):
        if not is_real(v) or v <= 0:
            raise ConfigError(f"lr_find: {name}={v!r} is invalid: expected a finite number > 0")
    if end_lr <= start_lr:
        raise ConfigError(f"lr_find: end_lr={end_lr!r} must be larger than start_lr={start_lr!r}")
    if not (0 <= beta < 1):
        raise ConfigError(f"lr_find: beta={beta!r} must be in [0, 1)")
    if not diverge_factor > 1:
        raise ConfigError(f"lr_find: diverge_factor={diverge_factor!r} must be > 1")
    if num_steps is None:
        if not step_factor > 1:
            raise ConfigError(f"lr_find: step_factor={step_factor!r} must be > 1 (D2: 1.05)")
        # a factor of step_factor per step, but never fewer than the 20 steps a sweep needs
        num_steps = max(20, int(math.ceil(math.log(end_lr / start_lr) / math.log(step_factor))) + 1)
    if not is_integer(num_steps) or num_steps < 20:
        raise ConfigError(f"lr_find: num_steps={num_steps!r} is too few: the sweep needs at least 20 steps "
                          "(a few hundred is typical; D2) to see where the loss falls fastest")
    num_steps = int(num_steps)
    if batch_size is None:
        batch_size = RecipeConfig.batch_size
    if not is_integer(batch_size) or batch_size <= 0:
        raise ConfigError(f"lr_find: batch_size={batch_size!r} must be an integer > 0")
    batch_size = int(batch_size)
    q = (end_lr / start_lr) ** (1.0 / (num_steps - 1))
    batches = _Batches(_as_arrays(x), _as_arrays(y), batch_size, shuffle, seed, num_steps)

    optimizer = model.optimizer
    first = next(batches)
    if not model.built:
        model(first[0])
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    leaves = _leaf_optimizers(optimizer)
    model_vars, opt_vars = list(model.variables), list(optimizer.variables)
    saved_model, saved_opt = _snapshot(model_vars), _snapshot(opt_vars)
    saved_lr = [o._learning_rate for o in leaves]

    from kerasrecipe.optimizers import get_learning_rates

    rates = get_learning_rates(optimizer)
    top = max(rates) if max(rates) > 0 else 1.0
    ratios = [r / top if max(rates) > 0 else 1.0 for r in rates]
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) or len(leaves) == 1:
        ratios = [1.0]

    lrs, losses, smoothed, first_losses = [], [], [], []
    stop_reason, best, avg = "end", math.inf, 0.0
    progress = _progress(verbose, num_steps)
    try:
        sweep = _sweep_class()
        for o, r in zip(leaves, ratios):
            object.__setattr__(o, "_learning_rate", sweep(start_lr * r, q, int(keras.ops.convert_to_numpy(o._iterations))))
        model.make_train_function(force=True)
        batch = first
        for i in range(num_steps):
            logs = model.train_on_batch(batch[0], batch[1], return_dict=True)
            loss = float(logs["loss"])
            lr = start_lr * q ** i
            if not math.isfinite(loss):
                if i == 0:
                    raise DivergenceError(
                        f"lr_find: the loss is {loss} at the very first step (lr={start_lr:g}), so no learning rate "
                        "can help: look for NaN/Inf in the inputs or targets, a loss that does not fit the labels "
                        "or the output activation, or an exploding initialisation. Run kr.preflight(model, x, y)."
                    )
                stop_reason = "nan"
                break
            avg = beta * avg + (1 - beta) * loss
            s = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            losses.append(loss)
            smoothed.append(s)
            if progress is not None:
                progress.advance(lr, loss)
            if i < DIVERGE_SPREAD_STEPS:
                first_losses.append(loss)
            if i > 0 and diverged(s, best, first_losses, diverge_factor):
                stop_reason = "diverged"
                break
            best = min(best, s)
            if i + 1 < num_steps:
                batch = next(batches)
    finally:
        if progress is not None:
            progress.close()
        for o, lr_obj in zip(leaves, saved_lr):
            object.__setattr__(o, "_learning_rate", lr_obj)
        _restore(model_vars, saved_model)
        _restore(opt_vars, saved_opt)
        model.reset_metrics()
        model.make_train_function(force=True)

    sugg = suggestions_of(lrs, smoothed)
    result = LRFindResult(lrs=lrs, losses=losses, smoothed=smoothed, suggestion=sugg["steepest"], suggestions=sugg,
                          stop_reason=stop_reason, beta=beta, diverge_factor=diverge_factor)
    if runlog is not None:
        runlog.log("lr_find", lrs=lrs, losses=losses, smoothed=smoothed, suggestion=result.suggestion,
                   suggestions=sugg, stop_reason=stop_reason)
    if verbose:
        _print_result(result)
    return result


class _progress:
    """rich progress bar for the sweep (verbose only)."""

    def __new__(cls, verbose, total):
        if not verbose:
            return None
        return super().__new__(cls)

    def __init__(self, verbose, total):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("LR range test"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("lr {task.fields[lr]:.2e}  loss {task.fields[loss]:.4g}"),
                          TimeElapsedColumn(), transient=True)
        self.task = self.p.add_task("lr_find", total=total, lr=0.0, loss=float("nan"))
        self.p.start()

    def advance(self, lr, loss):
        self.p.update(self.task, advance=1, lr=lr, loss=loss)

    def close(self):
        self.p.stop()


def _print_result(result: LRFindResult):
    from rich.console import Console

    s = result.suggestions
    fmt = lambda v: "-" if v is None else f"{v:.2e}"  # noqa: E731
    Console().print(
        f"LR range test: {len(result.lrs)} steps (stopped: {result.stop_reason}); suggestion (steepest) "
        f"[bold]{fmt(result.suggestion)}[/bold], valley {fmt(s.get('valley'))}, min/10 {fmt(s.get('min_div10'))}"
    )
