"""Learning rate too low: Adam at 1e-6 (fix: 1e-3, D5)."""
from ._common import adam, case, digits, mlp

TAGS = ("lr_too_low", "slow_convergence", "stuck_at_prior", "stuck")
EPOCHS = 4


def build(fixed):
    (x, y), val = digits()
    model = mlp(x.shape[1], (64,))
    model.compile(adam(1e-3 if fixed else 1e-6), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
