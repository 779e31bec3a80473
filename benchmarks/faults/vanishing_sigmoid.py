"""Vanishing gradients: ten stacked sigmoid layers (fix: ReLU hidden layers, E1)."""
from ._common import adam, case, digits, mlp

TAGS = ("vanishing_gradients", "stuck_at_prior", "slow_convergence", "saturation")
EPOCHS = 4


def build(fixed):
    (x, y), val = digits()
    model = mlp(x.shape[1], (32,) * 10, act="relu" if fixed else "sigmoid", kernel_initializer="he_normal" if fixed else "glorot_uniform")
    model.compile(adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
