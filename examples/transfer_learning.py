"""Transfer learning: freeze a pretrained backbone, train the head, then unfreeze and fine-tune
with layer-wise learning rates (lower for the backbone, higher for the head).

    python examples/transfer_learning.py            # ~1-2 minutes on 2 CPU cores
    python examples/transfer_learning.py --smoke

The "pretrained" backbone is trained here on digits 0-4 (the source task); the target task is
digits 5-9 with only 40 labelled images per class.

Tips shown: E7 (start from a pretrained backbone), D7 (freeze, train the head, unfreeze and
fine-tune with layer-wise learning rates: backbone 10x lower than the head), F2 (early stopping
in both stages, via `kerasrecipe.default()`), D3 (plateau halving keeps the groups' ratio).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import parse_args  # noqa: E402


def build_backbone():
    import keras

    from kerasrecipe.layers import ConvBNReLU, ResidualBlock

    return keras.Sequential([
        keras.Input((8, 8, 1)),
        ConvBNReLU(16, name="stem"),
        ResidualBlock(16, name="res1"),
        ResidualBlock(32, strides=2, name="res2"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
    ], name="backbone")


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import keras
    import numpy as np
    from keras.optimizers import MultiOptimizer
    from keras.src.optimizers.multi_optimizer import OptimizerMap
    from sklearn.datasets import load_digits

    import kerasrecipe as kr
    from kerasrecipe.optimizers import get_learning_rates

    kr.seed_everything(0)
    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    y = d.target.astype("int32")
    src, tgt = y < 5, y >= 5
    x_src, y_src = x[src], y[src]
    rng = np.random.default_rng(0)
    per_class = 10 if args.smoke else 40
    idx = np.concatenate([rng.choice(np.nonzero(y == c)[0], per_class, replace=False) for c in range(5, 10)])
    rest = np.setdiff1d(np.nonzero(tgt)[0], idx)
    x_tgt, y_tgt = x[idx], y[idx] - 5
    x_test, y_test = x[rest], y[rest] - 5
    epochs_src, epochs_head, epochs_ft = (1, 2, 2) if args.smoke else (8, 20, 20)

    # 1. the "pretrained" backbone (source task: digits 0-4)
    backbone = build_backbone()
    source = keras.Sequential([backbone, keras.layers.Dense(5, activation="softmax")], name="source")
    source.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    source.fit(x_src, y_src, epochs=epochs_src, batch_size=64, verbose=0)
    print(f"source task (0-4) accuracy: {source.evaluate(x_src, y_src, verbose=0)[1]:.3f}")

    # 2. new head on the frozen backbone (E7, D7)
    model = keras.Sequential([backbone, keras.layers.Dense(5, activation="softmax", name="head")], name="transfer")
    backbone.trainable = False
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs = kr.default(epochs=epochs_head, run_dir=os.path.join(args.out, "transfer-1-head"),
                     early_stopping_patience=5, tensorboard=False)
    model.fit(x_tgt, y_tgt, validation_split=0.25, epochs=epochs_head, batch_size=16, callbacks=cbs, verbose=0)
    head_only = float(model.evaluate(x_test, y_test, verbose=0)[1])
    print(f"frozen backbone, head trained: test accuracy {head_only:.3f}")

    # 3. unfreeze and fine-tune with layer-wise learning rates (D7): backbone 1e-4, head 1e-3
    backbone.trainable = True
    optimizer = MultiOptimizer(OptimizerMap(keras.optimizers.Adam(1e-3),
                                            {"backbone/.*": keras.optimizers.Adam(1e-4)}))
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs = kr.default(epochs=epochs_ft, run_dir=os.path.join(args.out, "transfer-2-finetune"),
                     early_stopping_patience=5, tensorboard=False)
    model.fit(x_tgt, y_tgt, validation_split=0.25, epochs=epochs_ft, batch_size=16, callbacks=cbs, verbose=0)
    fine_tuned = float(model.evaluate(x_test, y_test, verbose=0)[1])
    rates = get_learning_rates(model.optimizer)
    print(f"fine-tuned with layer-wise rates {', '.join(f'{r:.1e}' for r in rates)}: test accuracy {fine_tuned:.3f}")
    return {"head_only": head_only, "fine_tuned": fine_tuned, "learning_rates": rates}


if __name__ == "__main__":
    main()
