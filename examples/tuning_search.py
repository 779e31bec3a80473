"""Hyperparameter search with keras-tuner and the recipe: coarse to fine, LR first, on a subsample.

    python examples/tuning_search.py            # ~2 minutes on 2 CPU cores
    python examples/tuning_search.py --smoke

Tips shown: H1 (the learning rate alone first, then the rest around the best, then a narrower LR
range), H2 (random search, LR and weight decay on a log scale), B7 (search on a stratified
subsample), H5 (the full retraining time is extrapolated from the trials), A9 (one objective,
val_accuracy, fixed up front), A4 (trials named by their key parameters).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import parse_args  # noqa: E402


def build(hp):
    """The architecture: its width is searched too; the recipe supplies lr, optimizer, dropout..."""
    import keras

    from kerasrecipe.layers import Highway

    units = hp.Choice("units", [32, 64])
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal"),   # E1, E2
        Highway(),                                                                       # E6
        keras.layers.Dropout(hp.get("dropout")),                                         # E5 (searched)
        keras.layers.Dense(10, activation="softmax"),
    ])


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import kerasrecipe as kr
    from kerasrecipe.config import RecipeConfig

    d = load_digits()
    x, y = (d.data / 16.0).astype("float32"), d.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    config = RecipeConfig(monitor="val_accuracy", epochs=3 if args.smoke else 15, early_stopping_patience=3,
                          seed=0)
    result = kr.tuning.search(
        build, x_train, y_train,
        stages=("lr", "rest") if args.smoke else ("lr", "rest", "refine"),      # H1
        max_trials=2 if args.smoke else 4,
        search=("lr", "batch_size", "dropout") if args.smoke else ("lr", "optimizer", "batch_size", "dropout"),
        subsample=0.3 if args.smoke else 0.5,                                    # B7
        loss="sparse_categorical_crossentropy", metrics=["accuracy"],
        directory=os.path.join(args.out, "tuning"), project_name="digits_mlp", overwrite=True,
        config=config,
    )
    best = result.best_config
    test_accuracy = float(result.model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
    print(f"best: lr {best.learning_rate:.2e}, {best.optimizer}, batch {best.batch_size}, "
          f"dropout {best.extra.get('dropout')}, units {result.best_hyperparameters.get('units')} -> "
          f"{result.objective} {result.best_score:.3f}; test accuracy {test_accuracy:.3f}")
    print(f"{len(result.trials)} trials in {result.csv_path}")
    return {"best_config": best, "best_score": result.best_score, "test_accuracy": test_accuracy,
            "trials": result.trials}


if __name__ == "__main__":
    main()
