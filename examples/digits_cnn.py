"""Digits CNN: the recipe's layers, the LR range test, and `callbacks=kerasrecipe.default()`.

    python examples/digits_cnn.py            # ~1 minute on 2 CPU cores
    python examples/digits_cnn.py --smoke    # a few seconds of training

Tips shown: B2/B3 (stratified split, inputs scaled to [0, 1]), E1-E4 (ConvBNReLU, residual
blocks, He init), D2 (lr_find), A3/F2/D3/G3 (default(): run log, early stopping, LR halving,
health monitor, diagnosis), C9 (predictions and the report's top losses).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import parse_args  # noqa: E402


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import keras
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import kerasrecipe as kr
    from kerasrecipe.layers import ConvBNReLU, ResidualBlock
    from kerasrecipe.report import build_report, save_predictions

    kr.seed_everything(0)                                                     # A2
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]                   # B3: (n, 8, 8, 1) in [0, 1]
    y = digits.target.astype("int32")
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)  # B2
    if args.smoke:
        x_train, y_train = x_train[:256], y_train[:256]

    inputs = keras.Input((8, 8, 1))
    h = ConvBNReLU(16)(inputs)                                                # E1/E3: 3x3 conv, BN, ReLU
    h = ResidualBlock(16)(h)                                                  # E4: identity shortcut
    h = ResidualBlock(32, strides=2)(h)                                       # projection shortcut
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    model.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"])

    found = kr.lr_find(model, x_train, y_train, start_lr=1e-5, end_lr=1.0,       # D2; weights restored after
                       num_steps=25 if args.smoke else 80)
    lr = (found.suggestions or {}).get("valley") or found.suggestion or 1e-3
    lr = float(np.clip(lr, 1e-4, 1e-2))
    kr.optimizers.set_learning_rate(model.optimizer, lr, model=model)
    print(f"learning rate from the range test: {lr:.2e}")

    run_dir = os.path.join(args.out, "digits_cnn")
    epochs = 2 if args.smoke else 25
    callbacks = kr.default(epochs=epochs, run_dir=run_dir, tensorboard=False)
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, callbacks=callbacks, verbose=2)

    proba = model.predict(x_val, verbose=0)
    save_predictions(run_dir, y_val, proba, x=x_val)                           # C9: for the report
    accuracy = float(np.mean(np.argmax(proba, axis=1) == y_val))
    print(f"validation accuracy {accuracy:.3f}")
    report = build_report(run_dir)
    print(f"report: {report}")
    return {"accuracy": accuracy, "learning_rate": lr, "run_dir": run_dir, "report": report}


if __name__ == "__main__":
    main()
