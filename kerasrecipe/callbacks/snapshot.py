"""Snapshot saving at the end of each warm-restart cycle (tip I2: snapshot ensembles)."""
from __future__ import annotations

import os
import tempfile

import keras

from kerasrecipe.errors import ConfigError, is_real
from kerasrecipe.io import atomic_write_json

INDEX_FILE = "snapshots.json"


class SnapshotSaver(keras.callbacks.Callback):
    """Save the model at the end of each cosine warm-restart cycle (SGDR), as
    `directory/snapshot-01.keras`, `snapshot-02.keras`, ... plus `snapshots.json` (file, epoch,
    logs of each snapshot): the members of a snapshot ensemble (Huang et al. 2017; tip I2), for
    `kerasrecipe.ensemble`. Files are written atomically (temporary file, then rename).

    Cycle ends come from `kerasrecipe.schedules.restart_cycle_ends(cycle_epochs, mult, epochs)`,
    matching `keras.optimizers.schedules.CosineDecayRestarts(first_decay_steps=cycle_epochs *
    steps_per_epoch, t_mul=mult)` as `kerasrecipe.schedules.from_config` builds it; or give the
    epochs explicitly.

    Args:
        directory: where the snapshots go (created).
        cycle_epochs: epochs of the first cycle (config.extra["restart_epochs"], default 10).
        mult: growth of each cycle (t_mul, default 2).
        at_epochs: explicit 0-based epochs to snapshot at (overrides the cycles).

    Example:
        sched = kr.schedules.from_config(cfg.replace(schedule="cosine_restarts"), steps_per_epoch)
        model.fit(x, y, epochs=cfg.epochs, callbacks=[kr.callbacks.SnapshotSaver("runs/snap", 10, 2.0)])
    """

    def __init__(self, directory, cycle_epochs=10, mult=2.0, at_epochs=None):
        super().__init__()
        if at_epochs is None:
            if not (is_real(cycle_epochs) and cycle_epochs > 0 and is_real(mult) and mult >= 1):
                raise ConfigError(f"SnapshotSaver cycle_epochs={cycle_epochs!r} must be a number > 0 and "
                                  f"mult={mult!r} a number >= 1")
        else:
            at_epochs = sorted({int(e) for e in at_epochs})
            if not at_epochs or at_epochs[0] < 0:
                raise ConfigError(f"SnapshotSaver at_epochs={at_epochs!r} must be non-empty epochs >= 0")
        self.directory = os.fspath(directory)
        self.cycle_epochs, self.mult, self.at_epochs = cycle_epochs, mult, at_epochs
        self.saved = []  # [{"file", "epoch", "logs"}]

    @classmethod
    def from_config(cls, config, directory):
        """Cycle lengths as `kerasrecipe.schedules.from_config` uses for schedule='cosine_restarts'."""
        from kerasrecipe.schedules import restart_epochs, restart_mult

        return cls(directory, restart_epochs(config), restart_mult(config))

    def on_train_begin(self, logs=None):
        from kerasrecipe.schedules import restart_cycle_ends

        os.makedirs(self.directory, exist_ok=True)
        if self.at_epochs is not None:
            self._ends = set(self.at_epochs)
        else:
            self._ends = set(restart_cycle_ends(self.cycle_epochs, self.mult, int(self.params.get("epochs", 0))))

    def on_epoch_end(self, epoch, logs=None):
        if epoch not in self._ends:
            return
        name = f"snapshot-{len(self.saved) + 1:02d}.keras"
        path = os.path.join(self.directory, name)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-snapshot-", suffix=".keras", dir=self.directory)
        os.close(fd)
        try:
            self.model.save(tmp, overwrite=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.saved.append({"file": name, "epoch": int(epoch),
                           "logs": {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}})
        atomic_write_json(os.path.join(self.directory, INDEX_FILE), {"snapshots": self.saved})


def _is_number(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False
