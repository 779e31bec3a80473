"""Tabular classification on breast_cancer with 5-fold cross-validation, the scikit-learn way.

    python examples/tabular_breast_cancer.py            # ~1 minute on 2 CPU cores
    python examples/tabular_breast_cancer.py --smoke

Tips shown: B2 (a test set kept out of everything), B3 (z-scores fitted on the training folds
only: the scaler sits inside the pipeline), B5 (5-fold stratified CV under ~100k samples), C2
(output bias = log class priors, set by the estimator), F2 (early stopping on a validation split
of each training fold), A9 (one metric: accuracy).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import parse_args  # noqa: E402


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import kerasrecipe as kr

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)  # B2
    print(f"{len(X_train)} training / {len(X_test)} test samples, {X.shape[1]} features, "
          f"class balance {np.bincount(y_train)}")

    clf = kr.sklearn.RecipeClassifier(
        config={"epochs": 3 if args.smoke else 60, "early_stopping_patience": 8, "seed": 0},
        model_kwargs={"hidden": (32, 16), "dropout": 0.1},
    )
    pipeline = make_pipeline(StandardScaler(), clf)                       # B3: scaler fit per fold
    folds = 2 if args.smoke else 5                                        # B5
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    scores = cross_val_score(pipeline, X_train, y_train, cv=cv, scoring="accuracy")
    print(f"{folds}-fold CV accuracy: {scores.mean():.3f} ± {scores.std():.3f}  (folds: {np.round(scores, 3)})")

    pipeline.fit(X_train, y_train)                                        # refit on all training data
    test_accuracy = float(np.mean(pipeline.predict(X_test) == y_test))
    print(f"test accuracy: {test_accuracy:.3f}")
    return {"cv_scores": scores, "test_accuracy": test_accuracy}


if __name__ == "__main__":
    main()
