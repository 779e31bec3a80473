"""Ensembles of Keras models (tips I1, I2, I6): averaging, voting, weighted blending.

    import kerasrecipe as kr
    ens = kr.ensemble.Ensemble([m1, m2, m3])                 # probability averaging (I1)
    ens.predict(x_test); ens.evaluate(x_test, y_test, return_dict=True)
    ens.fit_weights(x_val, y_val)                             # weighted blend on validation data
    ens.save("ens.zip"); ens2 = kr.ensemble.Ensemble.load("ens.zip")

    kr.ensemble.Ensemble.from_seeds(build_fn, x, y, seeds=5)  # I2/I6: same config, N seeds
    kr.ensemble.Ensemble.from_folds(kr.cv.cross_validate(build_fn, x, y))   # the k fold models
    kr.ensemble.Ensemble.from_snapshots("runs/my-run/snapshots")            # snapshot-XX.keras

Methods: "mean" averages the members' outputs (probabilities for classifiers, values for
regressors); "vote" is a majority vote over the members' labels and returns, per sample, the
fraction of members voting for each class (per label for multi-label members); "weighted" is a
convex combination (non-negative weights summing to one) fit on validation data by `fit_weights`.

Tasks: "classification" (softmax over classes, or one sigmoid unit), "multilabel" (several
sigmoid units, each label independent: labels by thresholding each at 0.5, weights fit on the
binary log loss per label) and "regression"; read from the members' compiled loss.
"""
from __future__ import annotations

import glob
import io
import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from typing import Any, List, Optional, Sequence

import numpy as np

from kerasrecipe.errors import ConfigError, InputTypeError

METHODS = ("mean", "vote", "weighted")
TASKS = ("auto", "classification", "multilabel", "regression")
MANIFEST = "manifest.json"
FORMAT = "kerasrecipe.ensemble"
FORMAT_VERSION = 1


def _labels_from_predictions(p: np.ndarray, *, multilabel: bool = False) -> np.ndarray:
    """Labels from probabilities (turn logits into probabilities first: `kerasrecipe.cv.
    to_probabilities`): class ids by argmax of probability rows, or by p > 0.5 for one sigmoid
    column; for multi-label outputs a 0/1 matrix, each label p > 0.5."""
    p = np.asarray(p)
    if multilabel:
        return (p.reshape(len(p), -1) > 0.5).astype(np.int64)
    if p.ndim >= 2 and p.shape[-1] > 1:
        return p.argmax(axis=-1)
    return (p.reshape(len(p), -1)[:, 0] > 0.5).astype(np.int64)


def _output_shape(model):
    try:
        outs = model.outputs
    except (AttributeError, ValueError):
        return None
    if not outs:
        return None
    if len(outs) != 1:
        raise ConfigError(
            f"model {model.name!r} has {len(outs)} outputs; an Ensemble combines single-output models"
        )
    return tuple(outs[0].shape[1:])


def _simplex_projection(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {w >= 0, sum w = 1} (Duchi et al. 2008)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ind = np.arange(1, len(v) + 1)
    rho = np.nonzero(u - css / ind > 0)[0][-1]
    theta = css[rho] / (rho + 1.0)
    return np.maximum(v - theta, 0.0)


class Ensemble:
    """A group of Keras models used as one, with `predict`/`evaluate` like a Keras model.

    Args:
      models: a non-empty list of Keras models (or paths of saved `.keras` models) with the
        same output shape.
      method: "mean" (average outputs: probability averaging for classifiers, mean for
        regressors), "vote" (majority vote over labels; classifiers only) or "weighted"
        (convex combination: pass `weights` or call `fit_weights`).
      weights: one non-negative weight per model (normalised to sum to one); only used by
        "weighted".
      task: "auto" (from the members' loss, or from their outputs), "classification",
        "multilabel" or "regression".
      from_logits: the members output logits; they are turned into probabilities (softmax, or
        the sigmoid for one column and for multi-label members) before combining. "auto": read
        from the members' loss.
      name: a name for messages and the manifest.

    Example:
      >>> ens = Ensemble([model_a, model_b, model_c], method="mean")
      >>> proba = ens.predict(x_test)              # (n, classes), the averaged probabilities
      >>> ens.evaluate(x_test, y_test, return_dict=True)
      {'loss': 0.21, 'accuracy': 0.95}
    """

    def __init__(
        self,
        models: Sequence[Any],
        method: str = "mean",
        weights: Optional[Sequence[float]] = None,
        *,
        task: str = "auto",
        from_logits="auto",
        name: str = "ensemble",
    ):
        import keras

        if isinstance(models, (keras.Model, str, os.PathLike)) or not isinstance(models, (list, tuple)):
            raise InputTypeError(
                f"models must be a list of Keras models, got {type(models).__name__}; "
                "wrap a single model in a list"
            )
        if len(models) == 0:
            raise ConfigError("an Ensemble needs at least one model; the list of models is empty")
        loaded = []
        for i, m in enumerate(models):
            if isinstance(m, (str, os.PathLike)):
                m = keras.saving.load_model(os.fspath(m))
            if not isinstance(m, keras.Model):
                raise InputTypeError(f"models[{i}] is a {type(m).__name__}, expected a keras.Model")
            loaded.append(m)
        shapes = [_output_shape(m) for m in loaded]
        known = {s for s in shapes if s is not None}
        if len(known) > 1:
            desc = ", ".join(f"{m.name}: {s}" for m, s in zip(loaded, shapes))
            raise ConfigError(
                "the models of an Ensemble must have the same output shape; got " + desc
            )
        if method not in METHODS:
            raise ConfigError(f"method={method!r} is unknown: expected one of {METHODS}")
        if task not in TASKS:
            raise ConfigError(f"task={task!r} is unknown: expected one of {TASKS}")
        self.models: List[Any] = loaded
        self.method = method
        self.name = name
        self._task = task
        if from_logits == "auto":
            from kerasrecipe.cv import loss_from_logits

            from_logits = loss_from_logits(loaded[0])
        self.from_logits = bool(from_logits)
        self.weights = None if weights is None else self._check_weights(weights)
        if method == "vote" and self.task == "regression":
            raise ConfigError("method='vote' needs classifiers (labels to vote on); use 'mean' for regression")

    # ------------------------------------------------------------------ basics
    def __len__(self):
        return len(self.models)

    def __repr__(self):
        return f"Ensemble({len(self.models)} models, method={self.method!r}, task={self.task!r})"

    @property
    def task(self) -> str:
        if self._task != "auto":
            return self._task
        from kerasrecipe.cv import model_task

        return model_task(self.models[0]) or "auto"  # "auto": decided from the outputs at predict time

    def _check_weights(self, weights) -> np.ndarray:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(w) != len(self.models):
            raise ConfigError(f"got {len(w)} weights for {len(self.models)} models")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ConfigError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
        return w / w.sum()

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "method": self.method,
            "weights": None if self.weights is None else [float(v) for v in self.weights],
            "task": self._task,
            "from_logits": self.from_logits,
            "n_members": len(self.models),
        }

    # ------------------------------------------------------------------ prediction
    def predict_members(self, x, batch_size: Optional[int] = None, verbose=0) -> np.ndarray:
        """Each member's predictions stacked: shape (n_models, n_samples, ...); probabilities
        when the members output logits (`from_logits`)."""
        outs = []
        for m in self.models:
            p = np.asarray(m.predict(x, batch_size=batch_size, verbose=verbose), dtype=np.float64)
            if outs and p.shape != outs[0].shape:
                raise ConfigError(
                    f"member {m.name!r} predicts shape {p.shape} but the first member predicts "
                    f"{outs[0].shape}; all members must have the same output shape"
                )
            outs.append(p)
        P = np.stack(outs)
        if self.from_logits:
            from kerasrecipe.cv import to_probabilities

            task = "multilabel" if self.task == "multilabel" else "classification"
            P = to_probabilities(P, task=task, from_logits=True)
        return P

    def _resolved_task(self, P) -> str:
        task = self.task
        if task != "auto":
            return task
        finite = np.all(np.isfinite(P))
        if finite and P.min() >= 0 and P.max() <= 1:
            if P.shape[-1] > 1 and np.allclose(P.sum(axis=-1), 1, atol=1e-3):
                return "classification"
        return "regression"

    def combine(self, P: np.ndarray) -> np.ndarray:
        """Combine stacked member predictions (n_models, n, ...) with this ensemble's method."""
        if self.method == "mean":
            return P.mean(axis=0)
        if self.method == "weighted":
            if self.weights is None:
                raise ConfigError(
                    "method='weighted' has no weights yet: pass weights=... or call "
                    "ensemble.fit_weights(x_val, y_val) first"
                )
            return np.tensordot(self.weights, P, axes=1)
        # vote
        task = self._resolved_task(P)
        if task == "multilabel":  # per label: the share of members predicting it
            return np.mean(P > 0.5, axis=0)
        if task != "classification":
            raise ConfigError("method='vote' needs classifiers (labels to vote on); use 'mean' for regression")
        labels = np.stack([_labels_from_predictions(p) for p in P])  # (M, n)
        n_classes = P.shape[-1] if P.shape[-1] > 1 else 2
        counts = np.zeros((labels.shape[1], n_classes))
        for lab in labels:
            counts[np.arange(labels.shape[1]), lab] += 1
        frac = counts / len(P)
        if P.shape[-1] == 1:
            return frac[:, 1:2]  # fraction voting for the positive class
        return frac

    def predict(self, x, batch_size: Optional[int] = None, verbose=0) -> np.ndarray:
        """The combined prediction (NumPy), shaped like one member's prediction."""
        return self.combine(self.predict_members(x, batch_size=batch_size, verbose=verbose))

    def predict_labels(self, x, batch_size: Optional[int] = None) -> np.ndarray:
        """Class labels: argmax of the combined probabilities (majority for "vote", ties broken
        by the mean probability), or threshold 0.5 for one sigmoid column; for a multi-label
        ensemble a 0/1 matrix (n, labels), each label thresholded at 0.5."""
        P = self.predict_members(x, batch_size=batch_size)
        task = self._resolved_task(P)
        if task not in ("classification", "multilabel"):
            raise ConfigError("predict_labels needs a classification or multi-label ensemble")
        out = self.combine(P)
        if task == "multilabel":
            if self.method == "vote":  # a tie (half the members) goes to the mean probability
                mean = P.mean(axis=0)
                out = np.where(np.isclose(out, 0.5), mean, out)
            return _labels_from_predictions(out, multilabel=True)
        if self.method == "vote":
            mean = P.mean(axis=0)
            if P.shape[-1] == 1:
                tie = np.isclose(out[:, 0], 0.5)
                lab = (out[:, 0] > 0.5).astype(np.int64)
                lab[tie] = (mean[tie, 0] > 0.5).astype(np.int64)
                return lab
            out = out + 1e-9 * mean  # tie-break only: vote fractions differ by >= 1/M
        return _labels_from_predictions(out)

    # ------------------------------------------------------------------ evaluation
    def _scorer(self, pred_shape, loss=None, metrics=None):
        import keras

        key = (tuple(pred_shape), loss is None and metrics is None)
        cache = self.__dict__.setdefault("_scorers", {})
        if key[1] and key in cache:  # the members' own loss/metrics: compiled once, reused
            return cache[key]
        scorer = keras.Sequential([keras.Input(shape=pred_shape), keras.layers.Identity()], name=f"{self.name}_scorer")
        if loss is None:
            ref = next((m for m in self.models if m.compiled and m.loss is not None), None)
            if ref is None:
                raise ConfigError(
                    "no member is compiled, so the ensemble does not know its loss: "
                    "pass evaluate(..., loss=..., metrics=[...])"
                )
            cfg = ref.get_compile_config()
            scorer.compile_from_config(cfg)
        else:
            scorer.compile(optimizer="sgd", loss=loss, metrics=metrics or [])
        if key[1]:
            cache[key] = scorer
        return scorer

    def evaluate(self, x, y, *, batch_size: Optional[int] = None, return_dict: bool = False,
                 loss=None, metrics=None, verbose=0):
        """Loss and metrics of the combined prediction, like `keras.Model.evaluate`.

        The loss and metrics are the first compiled member's (from its compile config), unless
        `loss`/`metrics` are given."""
        pred = self.predict(x, batch_size=batch_size)
        if self.from_logits:  # the members' loss expects logits: give it the combined ones
            eps = 1e-7
            p = np.clip(pred, eps, 1 - eps)
            sigmoid = pred.shape[-1] == 1 or self.task == "multilabel"
            pred = np.log(p / (1 - p)) if sigmoid else np.log(p)
        scorer = self._scorer(pred.shape[1:], loss=loss, metrics=metrics)
        return scorer.evaluate(pred.astype("float32"), y, batch_size=batch_size or 256,
                               verbose=verbose, return_dict=return_dict)

    def member_scores(self, x, y, *, batch_size: Optional[int] = None) -> List[dict]:
        """`evaluate(return_dict=True)` of each member alone (e.g. to compare with the ensemble)."""
        return [m.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True) for m in self.models]

    # ------------------------------------------------------------------ weighted blending
    def fit_weights(self, x_val, y_val, *, batch_size: Optional[int] = None, max_iter: int = 500,
                    tol: float = 1e-10) -> np.ndarray:
        """Fit blending weights on validation data and switch to method="weighted".

        Minimises the log loss of the blended probabilities (classification; for multi-label
        members the binary log loss of each label, averaged) or the squared error of the
        blended values (regression) over the simplex (w >= 0, sum w = 1), by
        projected gradient descent with backtracking (both objectives are convex in w).
        Returns the weights. Use data the members were not trained on.
        """
        P = self.predict_members(x_val, batch_size=batch_size)
        M = len(P)
        task = self._resolved_task(P)
        y = np.asarray(y_val, dtype=np.float64)
        flatP = P.reshape(M, P.shape[1], -1)
        if task in ("classification", "multilabel"):
            C = flatP.shape[-1]
            if C == 1 or task == "multilabel":  # each sigmoid column -> two probability columns
                if y.size != flatP.shape[1] * C or np.any((y < 0) | (y > 1)):
                    raise ConfigError(
                        f"y_val must hold 0/1 labels (or probabilities), one per output column: "
                        f"predictions have shape {P.shape[1:]}, y_val has shape {y.shape}"
                    )
                flatP = flatP.reshape(M, -1, 1)
                flatP = np.concatenate([1 - flatP, flatP], axis=-1)
                Y = np.stack([1 - y.reshape(-1), y.reshape(-1)], axis=1)
            elif y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
                yi = y.reshape(-1).astype(int)
                if yi.min() < 0 or yi.max() >= C:
                    raise ConfigError(f"y_val labels must be in [0, {C}), got [{yi.min()}, {yi.max()}]")
                Y = np.eye(C)[yi]
            else:
                Y = y.reshape(len(y), -1)
            if Y.shape != flatP.shape[1:]:
                raise ConfigError(f"y_val has shape {y.shape}, predictions have {P.shape[1:]}")
            eps = 1e-12

            def f(w):
                q = np.tensordot(w, flatP, axes=1)
                return -np.mean(np.sum(Y * np.log(q + eps), axis=1))

            def grad(w):
                q = np.tensordot(w, flatP, axes=1)
                r = Y / (q + eps)
                return -np.einsum("mnc,nc->m", flatP, r) / Y.shape[0]
        else:
            Y = y.reshape(flatP.shape[1], -1)
            if Y.shape != flatP.shape[1:]:
                raise ConfigError(f"y_val has shape {y.shape}, predictions have {P.shape[1:]}")

            def f(w):
                return float(np.mean((np.tensordot(w, flatP, axes=1) - Y) ** 2))

            def grad(w):
                resid = np.tensordot(w, flatP, axes=1) - Y
                return 2 * np.einsum("mnc,nc->m", flatP, resid) / resid.size

        w = np.full(M, 1.0 / M)
        fw = f(w)
        step = 1.0
        for _ in range(max_iter):
            g = grad(w)
            while True:
                w_new = _simplex_projection(w - step * g)
                f_new = f(w_new)
                # Armijo condition for projected gradient
                if f_new <= fw + np.dot(g, w_new - w) + np.sum((w_new - w) ** 2) / (2 * step) or step < 1e-12:
                    break
                step *= 0.5
            converged = abs(fw - f_new) <= tol * max(1.0, abs(fw))
            w, fw = w_new, f_new
            step *= 2.0
            if converged:
                break
        w = np.maximum(w, 0)
        self.weights = w / w.sum()
        self.method = "weighted"
        self.blend_loss_ = float(fw)
        return self.weights.copy()

    # ------------------------------------------------------------------ save / load
    def save(self, path: str, overwrite: bool = True) -> str:
        """Save to a directory, or to a single file when `path` ends in ".zip": one
        `member-XXX.keras` per model and `manifest.json`. Written atomically: a temporary
        sibling is completed first and then renamed over `path`."""
        path = os.fspath(path)
        if os.path.exists(path) and not overwrite:
            raise ConfigError(f"{path!r} exists; pass overwrite=True to replace it")
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        names = [f"member-{i:03d}.keras" for i in range(len(self.models))]
        import keras

        manifest = dict(
            format=FORMAT,
            version=FORMAT_VERSION,
            members=names,
            keras_version=keras.__version__,
            backend=keras.backend.backend(),
            **self.get_config(),
        )
        tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=parent)
        try:
            for m, nm in zip(self.models, names):
                m.save(os.path.join(tmp, nm))
            from kerasrecipe.io import atomic_write_bytes, atomic_write_json

            atomic_write_json(os.path.join(tmp, MANIFEST), manifest)
            if path.endswith(".zip"):
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
                    for nm in [MANIFEST] + names:
                        zf.write(os.path.join(tmp, nm), nm)
                atomic_write_bytes(path, buf.getvalue())
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                if os.path.isdir(path):
                    old = os.path.join(parent, f".old-{os.path.basename(path)}-{uuid.uuid4().hex[:8]}")
                    os.replace(path, old)
                    os.replace(tmp, path)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    if os.path.exists(path):
                        os.unlink(path)
                    os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str, *, custom_objects=None, compile: bool = True, safe_mode: bool = True) -> "Ensemble":
        """Load an ensemble written by `save` (a directory or a .zip)."""
        import keras

        path = os.fspath(path)
        if not os.path.exists(path):
            raise ConfigError(f"no ensemble at {path!r}")
        with tempfile.TemporaryDirectory() as tmp:
            if os.path.isdir(path):
                root = path
            elif zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    zf.extractall(tmp)
                root = tmp
            else:
                raise ConfigError(f"{path!r} is neither an ensemble directory nor a .zip written by Ensemble.save")
            mpath = os.path.join(root, MANIFEST)
            if not os.path.exists(mpath):
                raise ConfigError(f"{path!r} has no {MANIFEST}: not written by Ensemble.save")
            with open(mpath) as f:
                manifest = json.load(f)
            if manifest.get("format") != FORMAT:
                raise ConfigError(f"{mpath} is not a kerasrecipe ensemble manifest")
            if int(manifest.get("version", 0)) > FORMAT_VERSION:
                raise ConfigError(
                    f"{path!r} was written by a newer kerasrecipe (format {manifest['version']}); upgrade"
                )
            models = [
                keras.saving.load_model(os.path.join(root, nm), custom_objects=custom_objects,
                                        compile=compile, safe_mode=safe_mode)
                for nm in manifest["members"]
            ]
        return cls(models, method=manifest["method"], weights=manifest.get("weights"),
                   task=manifest.get("task", "auto"), from_logits=manifest.get("from_logits", False),
                   name=manifest.get("name", "ensemble"))

    # ------------------------------------------------------------------ constructors (I2)
    @classmethod
    def from_folds(cls, folds, method: str = "mean", **kwargs) -> "Ensemble":
        """From a `kerasrecipe.cv.CVResult` (its fold models) or a list of fold models."""
        models = getattr(folds, "models", folds)
        if models is None or any(m is None for m in models):
            raise ConfigError("the CV result kept no models: run cross_validate(..., keep_models=True)")
        kwargs.setdefault("name", "folds")
        return cls(list(models), method=method, **kwargs)

    @classmethod
    def from_seeds(cls, build_fn, x, y, *, seeds=5, config=None, validation_data=None,
                   method: str = "mean", run_dir: Optional[str] = None, verbose: int = 0,
                   callbacks=None, output_bias="auto", fit_kwargs: Optional[dict] = None,
                   **kwargs) -> "Ensemble":
        """Train one configuration with N seeds (tips I2, I6) and ensemble the models.

        Args:
          build_fn: returns a fresh compiled model; called after each seed is set.
          seeds: a number N (seeds config.seed, config.seed+1, ...) or a list of seeds.
          config, validation_data, callbacks, output_bias, fit_kwargs: as `kerasrecipe.cv.fit_recipe`.
          run_dir: root directory; seed s trains in `run_dir/seed-s`.
        The training histories are kept in `ensemble.histories`.
        """
        from kerasrecipe.config import RecipeConfig, resolve_config
        from kerasrecipe.cv import check_build_fn, fit_recipe

        check_build_fn(build_fn, "build_fn", "seed")
        cfg = resolve_config(config) if not isinstance(config, RecipeConfig) else config
        if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
            if seeds < 1:
                raise ConfigError(f"seeds={seeds} must be >= 1")
            base = cfg.seed if cfg.seed is not None else 0
            seeds = [base + i for i in range(int(seeds))]
        seeds = list(seeds)
        if not seeds:
            raise ConfigError("seeds is empty: give a number of seeds or a non-empty list")
        models, histories = [], []
        progress = None
        if verbose:
            from rich.progress import Progress

            progress = Progress(transient=False)
            progress.start()
            tid = progress.add_task("seeds", total=len(seeds))
        try:
            for s in seeds:
                res = fit_recipe(
                    build_fn, x, y, config=cfg, validation_data=validation_data, seed=int(s),
                    run_dir=None if run_dir is None else os.path.join(run_dir, f"seed-{s}"),
                    verbose=2 if verbose >= 2 else 0, callbacks=callbacks, output_bias=output_bias,
                    fit_kwargs=fit_kwargs,
                )
                models.append(res.model)
                histories.append(res.history)
                if progress is not None:
                    progress.update(tid, advance=1, description=f"seed {s}")
        finally:
            if progress is not None:
                progress.stop()
        kwargs.setdefault("name", "seeds")
        ens = cls(models, method=method, **kwargs)
        ens.histories = histories
        ens.seeds = seeds
        return ens

    @classmethod
    def from_snapshots(cls, source, method: str = "mean", *, pattern: str = "snapshot-*.keras",
                       last: Optional[int] = None, custom_objects=None, compile: bool = True,
                       **kwargs) -> "Ensemble":
        """From snapshots of one run (I2, snapshot ensembles with warm restarts): a directory
        holding `snapshot-XX.keras` files (as the warm-restart snapshot callback saves them), or
        a list of saved model paths. `last=k` keeps the k latest snapshots."""
        import keras

        if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            paths = glob.glob(os.path.join(os.fspath(source), pattern))

            def key(p):
                nums = re.findall(r"\d+", os.path.basename(p))
                return (int(nums[-1]) if nums else -1, p)

            paths = sorted(paths, key=key)
            if not paths:
                raise ConfigError(f"no files matching {pattern!r} in {os.fspath(source)!r}")
        elif isinstance(source, (list, tuple)):
            paths = [os.fspath(p) for p in source]
            if not paths:
                raise ConfigError("the list of snapshot paths is empty")
            missing = [p for p in paths if not os.path.exists(p)]
            if missing:
                raise ConfigError(f"snapshot file(s) not found: {missing}")
        else:
            raise InputTypeError(
                f"source must be a directory or a list of saved model paths, got {source!r}"
            )
        if last is not None:
            paths = paths[-int(last):]
        models = [keras.saving.load_model(p, custom_objects=custom_objects, compile=compile) for p in paths]
        kwargs.setdefault("name", "snapshots")
        ens = cls(models, method=method, **kwargs)
        ens.paths = paths
        return ens
