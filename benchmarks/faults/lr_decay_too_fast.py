"""Learning rate decayed to ~0 too early: Adam's LR halved every 20 steps, ~1% of its start
after three epochs (fix: halved every 1000 steps, D4)."""
import keras

from ._common import case, digits, mlp

TAGS = ("lr_decayed_too_early", "slow_convergence", "stuck", "underfitting", "lr_too_low")
EPOCHS = 6


def build(fixed):
    (x, y), val = digits()
    sched = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=1000 if fixed else 20, decay_rate=0.5)
    model = mlp(x.shape[1], (64,))
    model.compile(keras.optimizers.Adam(sched), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
