"""Knowledge distillation (tip I3): compress an ensemble (or any teacher) into one network.

    import kerasrecipe as kr
    ens = kr.ensemble.Ensemble.from_seeds(build_fn, x, y, seeds=5)
    res = kr.distill.distill(ens, small_model, x, temperature=3.0)
    res.student           # the trained student (its own weights; the teacher is untouched)
    res.agreement         # fraction of samples where student and ensemble pick the same class

The student learns the teacher's soft targets softened by a temperature T (Hinton et al.
2015): targets softmax(log p_teacher / T), student softmax(z / T), KL divergence scaled by T²
so gradient sizes do not depend on T; optionally mixed with the hard labels (`alpha`).
Students that end in a softmax/sigmoid are handled too (their logits are log-probabilities).
Multi-label teachers (several sigmoid outputs) are distilled label by label: sigmoid(z / T)
against the teacher's tempered label probabilities, binary cross-entropy. Regression teachers are distilled on their outputs with mean squared error (T is not used).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from kerasrecipe.errors import ConfigError, InputTypeError


@dataclass
class DistillResult:
    """What `distill` returns."""

    student: Any
    agreement: float  # on the training inputs: share of samples with the teacher's label
    history: Dict[str, List[float]]
    temperature: float
    task: str
    val_agreement: Optional[float] = None  # on validation_data's inputs, when given
    teacher_accuracy: Optional[float] = None  # when labels are known (y / validation_data)
    student_accuracy: Optional[float] = None


def _teacher_predict(teacher, x, batch_size=None) -> np.ndarray:
    import keras

    if isinstance(teacher, keras.Model) or hasattr(teacher, "predict"):
        return np.asarray(teacher.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    raise InputTypeError(
        f"teacher must be an Ensemble or a Keras model (anything with predict), got {type(teacher).__name__}"
    )


def _ends_in_probabilities(model) -> bool:
    """True when the model's last layer applies softmax or sigmoid."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in reversed(layers):
        act = getattr(layer, "activation", None)
        if act is None:
            if isinstance(layer, keras.layers.Softmax):
                return True
            if isinstance(layer, keras.layers.Activation):
                act = layer.activation
            else:
                continue
        name = getattr(act, "__name__", str(act))
        return name in ("softmax", "sigmoid")
    return False


def _agreement(a: np.ndarray, b: np.ndarray, task: str) -> float:
    """Share of samples (of labels, for multi-label) where a and b pick the same label; R² of a
    against b for regression."""
    from kerasrecipe.ensemble import _labels_from_predictions

    if task in ("classification", "multilabel"):
        ml = task == "multilabel"
        return float(np.mean(_labels_from_predictions(a, multilabel=ml) == _labels_from_predictions(b, multilabel=ml)))
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    ss = np.sum((b - b.mean(axis=0)) ** 2)
    return float(1 - np.sum((a - b) ** 2) / ss) if ss > 0 else float("nan")  # R² against the teacher


def _accuracy(pred, y, task: str = "classification") -> float:
    """Accuracy of probabilities against labels (multi-label: the mean per-label accuracy)."""
    from kerasrecipe.cv import class_labels
    from kerasrecipe.ensemble import _labels_from_predictions

    if task == "multilabel":
        lab = _labels_from_predictions(pred, multilabel=True)
        return float(np.mean(lab == np.asarray(y).reshape(lab.shape)))
    return float(np.mean(_labels_from_predictions(pred) == class_labels(np.asarray(y)).astype(np.int64)))


def distill(
    teacher,
    student,
    x,
    *,
    y=None,
    temperature: float = 2.0,
    alpha: float = 0.0,
    student_from_logits="auto",
    task: str = "auto",
    config=None,
    validation_data=None,
    seed: Optional[int] = None,
    run_dir: Optional[str] = None,
    verbose: int = 0,
    callbacks=None,
    fit_kwargs: Optional[dict] = None,
) -> DistillResult:
    """Train `student` to reproduce `teacher`'s predictions on `x` (tip I3).

    Args:
      teacher: an `Ensemble` (or any Keras model) whose `predict` gives probabilities
        (classification) or values (regression).
      student: a Keras model (trained in place) or a zero-argument function building one (called
        after seeding). Its last layer may output logits or probabilities.
      x: inputs to distil on (unlabelled data works: only the teacher's outputs are needed).
      y: true labels for `x`, used when `alpha` > 0 and to report accuracies.
      temperature: T >= 1 softens the targets (1 = plain soft targets).
      alpha: weight of the hard-label loss (0..1); the soft loss gets (1 - alpha) * T².
      student_from_logits: "auto" (logits unless the last layer is softmax/sigmoid), True, False.
      task: "auto" (the teacher's `task`, else from its outputs), "classification",
        "multilabel" or "regression".
      config, validation_data, seed, run_dir, verbose, callbacks, fit_kwargs: as
        `kerasrecipe.cv.fit_recipe` (early stopping on a validation split of `x` by default;
        validation_data=(x_val, y_val_or_None) gives agreement/accuracy on held-out data).
    Returns:
      DistillResult(student, agreement, history, ...).

    Example:
      >>> res = distill(ensemble, student, x_train, temperature=3.0, config={"epochs": 50})
      >>> res.agreement, res.student.predict(x_test)
    """
    import keras

    from kerasrecipe.config import RecipeConfig, resolve_config
    from kerasrecipe.cv import class_labels, fit_recipe, optimizer_from_config, to_probabilities

    if not (isinstance(temperature, (int, float)) and np.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature={temperature!r} must be a finite number > 0 (1..10 is typical)")
    if not (0 <= alpha <= 1):
        raise ConfigError(f"alpha={alpha!r} must be in [0, 1]")
    if alpha > 0 and y is None:
        raise ConfigError("alpha > 0 mixes in the hard-label loss: pass y")
    if task not in ("auto", "classification", "multilabel", "regression"):
        raise ConfigError(f"task={task!r}: expected 'auto', 'classification', 'multilabel' or 'regression'")
    cfg = resolve_config(config) if not isinstance(config, RecipeConfig) else config
    T = float(temperature)

    soft = _teacher_predict(teacher, x)
    if task == "auto":
        t_task = getattr(teacher, "task", "auto")
        if t_task in ("classification", "multilabel", "regression"):
            task = t_task
        elif soft.ndim == 2 and soft.shape[1] > 1 and soft.min() >= 0 and np.allclose(soft.sum(1), 1, atol=1e-3):
            task = "classification"
        else:
            task = "regression"
    probabilistic = task in ("classification", "multilabel")
    if probabilistic and (soft.min() < 0 or soft.max() > 1):
        raise ConfigError("the teacher's outputs are not probabilities; a classification teacher must "
                          "predict probabilities (an Ensemble with from_logits=True converts logits)")

    # build the student after seeding (fit_recipe seeds; build it here under the same seed)
    seed = cfg.seed if seed is None else seed
    if not isinstance(student, keras.Model):
        if not callable(student):
            raise InputTypeError(f"student must be a Keras model or a function building one, got {type(student).__name__}")
        from kerasrecipe.seeding import preserve_global_state

        with preserve_global_state():  # seeded like fit_recipe, the caller's streams left alone
            if seed is not None:
                from kerasrecipe import seed_everything

                seed_everything(int(seed))
            student = student()
        if not isinstance(student, keras.Model):
            raise InputTypeError(f"the student function returned {type(student).__name__}, expected a keras.Model")

    n_out = soft.shape[1] if soft.ndim == 2 else 1
    binary = n_out == 1 or task == "multilabel"  # sigmoid per column
    in_shape = tuple(student.inputs[0].shape[1:]) if getattr(student, "inputs", None) else tuple(np.shape(x)[1:])
    inp = keras.Input(shape=in_shape)
    z = student(inp)
    if tuple(z.shape[1:]) != tuple(soft.shape[1:]):
        raise ConfigError(f"the student outputs shape {tuple(z.shape[1:])} but the teacher {soft.shape[1:]}")

    outputs, losses, weights, targets = [], [], [], []
    if probabilistic:
        probs_out = _ends_in_probabilities(student) if student_from_logits == "auto" else not student_from_logits
        eps = 1e-7
        if not binary:
            p = np.clip(soft, eps, 1.0)
            t = np.log(p) / T
            t = np.exp(t - t.max(axis=1, keepdims=True))
            t /= t.sum(axis=1, keepdims=True)
        else:
            p = np.clip(soft, eps, 1 - eps)
            t = 1 / (1 + np.exp(-np.log(p / (1 - p)) / T))
        outputs.append(_Tempered(T, from_probs=probs_out, binary=binary, name="soft")(z))
        losses.append("binary_crossentropy" if binary else "kl_divergence")
        weights.append((1 - alpha) * T * T)
        targets.append(t.astype("float32"))
        if alpha > 0:
            outputs.append(_Tempered(1.0, from_probs=probs_out, binary=binary, name="hard")(z))
            yh = np.asarray(y)
            if not binary and (yh.ndim == 1 or yh.shape[-1] == 1):
                losses.append("sparse_categorical_crossentropy")
            else:
                losses.append("binary_crossentropy" if binary else "categorical_crossentropy")
            weights.append(alpha)
            targets.append(yh)
    else:
        outputs.append(keras.layers.Identity(name="soft")(z))
        losses.append("mean_squared_error")
        weights.append(1.0 - alpha)
        targets.append(soft.astype("float32"))
        if alpha > 0:
            outputs.append(keras.layers.Identity(name="hard")(z))
            losses.append("mean_squared_error")
            weights.append(alpha)
            targets.append(np.asarray(y, dtype="float32").reshape(soft.shape))

    trainer = keras.Model(inp, outputs, name=f"distill_{student.name}")
    x_first = keras.tree.flatten(x)[0]
    if student.compiled and student.optimizer is not None:
        opt = keras.optimizers.deserialize(keras.optimizers.serialize(student.optimizer))
    else:
        n_fit = len(x_first) if validation_data is not None else len(x_first) - int(round(cfg.validation_split * len(x_first)))
        opt = optimizer_from_config(cfg, n_fit)
    trainer.compile(optimizer=opt, loss=losses, loss_weights=weights)

    stratify = class_labels(soft) if task == "classification" else None
    val = None
    if validation_data is not None:
        xv = validation_data[0]
        tv = _teacher_predict(teacher, xv)
        if probabilistic:
            if not binary:
                tt = np.log(np.clip(tv, 1e-7, 1.0)) / T
                tt = np.exp(tt - tt.max(axis=1, keepdims=True))
                tt /= tt.sum(axis=1, keepdims=True)
            else:
                pv = np.clip(tv, 1e-7, 1 - 1e-7)
                tt = 1 / (1 + np.exp(-np.log(pv / (1 - pv)) / T))
        else:
            tt = tv
        vt = [tt.astype("float32")]
        if alpha > 0:
            if len(validation_data) < 2 or validation_data[1] is None:
                raise ConfigError("alpha > 0 needs labels in validation_data=(x_val, y_val)")
            vt.append(np.asarray(validation_data[1]))
        val = (xv, vt if len(vt) > 1 else vt[0])
    res = fit_recipe(
        trainer,
        x,
        targets if len(targets) > 1 else targets[0],
        config=cfg,
        validation_data=val,
        stratify=stratify,
        seed=seed,
        run_dir=run_dir,
        verbose=verbose,
        callbacks=callbacks,
        output_bias=False,
        fit_kwargs=fit_kwargs,
    )

    student_logits = (student_from_logits is True
                      or (student_from_logits == "auto" and not _ends_in_probabilities(student)))
    pred = np.asarray(student.predict(x, verbose=0), dtype=np.float64)
    pred = to_probabilities(pred, task=task, from_logits=student_logits)
    out = DistillResult(
        student=student,
        agreement=_agreement(pred, soft, task),
        history=res.history,
        temperature=T,
        task=task,
    )
    if validation_data is not None:
        pv = np.asarray(student.predict(validation_data[0], verbose=0), dtype=np.float64)
        pv = to_probabilities(pv, task=task, from_logits=student_logits)
        tv = _teacher_predict(teacher, validation_data[0])
        out.val_agreement = _agreement(pv, tv, task)
        if probabilistic and len(validation_data) > 1 and validation_data[1] is not None:
            out.teacher_accuracy = _accuracy(tv, validation_data[1], task)
            out.student_accuracy = _accuracy(pv, validation_data[1], task)
    elif probabilistic and y is not None:
        out.teacher_accuracy = _accuracy(soft, y, task)
        out.student_accuracy = _accuracy(pred, y, task)
    return out


def _tempered_layer_class():
    import keras

    class Tempered(keras.layers.Layer):
        """softmax(z / T) (or sigmoid for one column); z = log p when the input is probabilities."""

        def __init__(self, temperature=1.0, from_probs=False, binary=False, **kwargs):
            super().__init__(**kwargs)
            self.temperature = float(temperature)
            self.from_probs = bool(from_probs)
            self.binary = bool(binary)

        def call(self, z):
            from keras import ops

            if self.from_probs:
                eps = 1e-7
                p = ops.clip(z, eps, 1.0 - eps if self.binary else 1.0)
                z = ops.log(p / (1.0 - p)) if self.binary else ops.log(p)
            z = z / self.temperature
            return ops.sigmoid(z) if self.binary else ops.softmax(z, axis=-1)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "temperature": self.temperature,
                    "from_probs": self.from_probs, "binary": self.binary}

    return Tempered


_TEMPERED = None


def _Tempered(*args, **kwargs):
    global _TEMPERED
    if _TEMPERED is None:
        _TEMPERED = _tempered_layer_class()
    return _TEMPERED(*args, **kwargs)
