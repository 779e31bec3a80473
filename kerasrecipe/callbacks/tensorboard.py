"""TensorBoard logging at epoch end (tip A6), written without TensorFlow.

`EpochTensorBoard` writes what Keras's `keras.callbacks.TensorBoard` writes with
update_freq="epoch", in the same format, so TensorBoard shows the same charts:

- `LOG_DIR/train`: `epoch_<metric>` for each training metric and `epoch_learning_rate`
  (`epoch_learning_rate_<name>` per sub-optimizer of a MultiOptimizer), step = epoch;
- `LOG_DIR/validation`: `epoch_<metric>` for each `val_` metric (prefix dropped), step = epoch, and
  `evaluation_<metric>_vs_iterations` after each validation pass, step = optimizer iterations;
- every `histogram_freq` epochs, a 30-bucket histogram of every weight
  (`<weight path>/histogram`, in `train`).

Scalars and histograms are TF2 summaries (tensors with the `scalars` / `histograms` plugin
metadata), made with the `tensorboard` package's own protobuf helpers and written as TFRecord
event files with its record writer: TensorFlow itself is never imported. On PyTorch and JAX this
spares the process TensorFlow's import (seconds, hundreds of MB) and its thread pools, which
spin-wait after each summary op on the cores the next training steps need (a torch fit on 2 cores ran 9-22% slower per
epoch after one `tf.summary.scalar` per epoch); and logging works where tensorboard is installed
without TensorFlow. No batch hook: Keras keeps its asynchronous batch-end dispatch. Inside `fit`
the per-validation scalars are written at epoch end (with their own step), so no writing happens
within an epoch's steps; every write appends the epoch's records and closes the file: nothing
written is lost on a crash.
"""
from __future__ import annotations

import itertools
import os
import socket
import time
from typing import Dict, List, Optional

import keras
import numpy as np

from kerasrecipe.errors import ConfigError

HISTOGRAM_BUCKETS = 30  # tf.summary.histogram's default
_FILE_COUNTER = itertools.count()


def scalar_value(tag: str, value: float):
    """A Summary.Value as tf.summary.scalar writes it (tensorboard's own `scalar_pb`)."""
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    return scalar_pb(tag, np.float32(value)).value[0]


def histogram_buckets(values, bucket_count: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """(bucket_count, 3) float64 rows (left edge, right edge, count), exactly as
    tf.summary.histogram (and tensorboard's `histogram_pb`) lays them out: equal-width buckets from
    min to max, bucket = min(floor((v - min) / width), last); all values equal -> every edge at the
    value and the count in the last bucket; no value -> zeros. Counted in O(n) (`histogram_pb`
    builds an n x buckets array). Non-finite values are left out (TensorFlow's buckets turn to NaN)."""
    v = np.asarray(values, dtype="float64").ravel()
    v = v[np.isfinite(v)]
    out = np.zeros((bucket_count, 3))
    if v.size == 0:
        return out
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        out[:, :2] = hi
        out[-1, 2] = v.size
        return out
    idx = np.minimum(np.floor((v - lo) / ((hi - lo) / bucket_count)).astype(np.int64), bucket_count - 1)
    edges = np.linspace(lo, hi, bucket_count + 1)
    out[:, 0], out[:, 1] = edges[:-1], edges[1:]
    out[:, 2] = np.bincount(idx, minlength=bucket_count)
    return out


def histogram_value(tag: str, values):
    """A Summary.Value as tf.summary.histogram writes it (histograms plugin metadata)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.histogram import metadata
    from tensorboard.util import tensor_util

    return summary_pb2.Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(display_name=None,
                                                                                      description=None),
                                     tensor=tensor_util.make_tensor_proto(histogram_buckets(values),
                                                                          dtype=np.float64))


class EventFile:
    """One TensorBoard event file in `LOG_DIR/<subdir>`, appended to one batch of events at a time.

    The directory is taken at each write (the run directory may be renamed between writes, with
    the file in it); the file name is chosen at the first write, in TensorFlow's pattern."""

    def __init__(self, subdir: str):
        self.subdir = subdir
        self.name: Optional[str] = None

    def write(self, log_dir: str, step: int, values: List) -> None:
        if not values:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        d = os.path.join(log_dir, self.subdir)
        os.makedirs(d, exist_ok=True)
        if self.name is None:
            self.name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}."
                         f"{next(_FILE_COUNTER)}.v2")
        path = os.path.join(d, self.name)
        records = []
        if not os.path.exists(path):
            records.append(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        records.append(event_pb2.Event(wall_time=time.time(), step=int(step),
                                       summary=summary_pb2.Summary(value=values)))
        with open(path, "ab") as f:
            writer = RecordWriter(f)
            for r in records:
                writer.write(r.SerializeToString())


def _scalars(prefix: str, logs: Dict) -> List:
    out = []
    for name, value in logs.items():
        try:
            v = float(np.asarray(keras.ops.convert_to_numpy(value)).reshape(()))
        except (TypeError, ValueError):
            continue  # not a scalar (Keras's TensorBoard would fail on it): left out
        out.append(scalar_value(f"{prefix}{name}", v))
    return out


class EpochTensorBoard(keras.callbacks.Callback):
    """TensorBoard event files at epoch end, like `keras.callbacks.TensorBoard(update_freq="epoch")`,
    without TensorFlow (see the module docstring for what is written where).

    Args:
        log_dir: where to write (`train/` and `validation/` below it).
        histogram_freq: epochs between weight histograms (0 = none).

    Keras's TensorBoard options for per-batch logging, profiling, graphs, images and embeddings are
    not offered: use `keras.callbacks.TensorBoard` for those (it needs TensorFlow).

    Example:
        >>> tb = EpochTensorBoard("runs/try1/tensorboard", histogram_freq=5)
        >>> model.fit(x, y, validation_split=0.2, epochs=20, callbacks=[tb])
        $ tensorboard --logdir runs/try1/tensorboard
    """

    async_safe = True

    def __init__(self, log_dir: str = "logs", histogram_freq: int = 0, **kwargs):
        super().__init__()
        if kwargs:
            raise ConfigError(f"EpochTensorBoard writes epoch scalars and weight histograms only; "
                              f"{', '.join(sorted(kwargs))}: use keras.callbacks.TensorBoard for "
                              "those (it writes through TensorFlow)")
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ConfigError(f"EpochTensorBoard histogram_freq={histogram_freq!r} is invalid: "
                              "expected an integer >= 0")
        self.log_dir = str(log_dir)
        self.histogram_freq = histogram_freq
        self._train = EventFile("train")
        self._val = EventFile("validation")
        self._in_fit = False
        self._pending_eval = None

    def get_config(self):
        return {"log_dir": self.log_dir, "histogram_freq": self.histogram_freq}

    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._pending_eval = None

    def on_train_end(self, logs=None):
        self._write_pending_eval()
        self._in_fit = False

    def on_test_end(self, logs=None):
        step = self._iterations()
        if step is None:
            return
        if self._in_fit:  # written at epoch end, outside the epoch's steps
            self._pending_eval = (dict(logs or {}), step)
        else:
            self._write_eval(logs or {}, step)

    def on_epoch_end(self, epoch, logs=None):
        self._write_pending_eval()
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        train.update(self._learning_rates())
        values = _scalars("epoch_", train)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            values += self._histograms()
        self._train.write(self.log_dir, epoch, values)
        self._val.write(self.log_dir, epoch, _scalars("epoch_", {k[4:]: v for k, v in logs.items()
                                                                 if k.startswith("val_")}))

    def _write_pending_eval(self):
        pending, self._pending_eval = self._pending_eval, None
        if pending is not None:
            self._write_eval(*pending)

    def _write_eval(self, logs, step):
        """Keras's `evaluation_<metric>_vs_iterations` scalars of one validation pass."""
        self._val.write(self.log_dir, step,
                        _scalars("evaluation_", {f"{k}_vs_iterations": v for k, v in logs.items()}))

    def _iterations(self) -> Optional[int]:
        opt = getattr(self.model, "optimizer", None)
        if opt is None or not hasattr(opt, "iterations"):
            return None
        return int(np.asarray(keras.ops.convert_to_numpy(opt.iterations)))

    def _learning_rates(self) -> Dict[str, float]:
        from kerasrecipe.optimizers import _check_optimizer, _is_multi, _single_lr

        try:
            opt = _check_optimizer(getattr(self.model, "optimizer", None))
            if _is_multi(opt):
                return {f"learning_rate_{o.name}": _single_lr(o) for o in opt.optimizers}
            return {"learning_rate": _single_lr(opt)}
        except Exception:  # no optimizer, or a learning rate that is not a number
            return {}

    def _histograms(self) -> List:
        out = []
        for layer in self.model.layers:
            for w in layer.weights:
                out.append(histogram_value(f"{w.path.replace(':', '_')}/histogram",
                                           np.asarray(keras.ops.convert_to_numpy(w.value))))
        return out
