"""Hyperparameter search with keras-tuner and the recipe (tips H1-H5, B5, B7, A4, A7, D1).

    from kerasrecipe import tuning
    result = tuning.search(build_fn, x, y, max_trials=8, subsample=0.1)   # coarse to fine
    result.best_config, result.model, result.trials

Parts: `RecipeHyperModel` (your architecture + the recipe's training hyperparameters),
`search` (stages lr -> rest -> refine, subsampling, retraining, trials table, resumable,
distributed), `KFoldTuner` (trial score = mean over k folds), `RecipeTuner` and `make_oracle`.
Importing this package imports keras-tuner (`import kerasrecipe` alone does not).
"""
from kerasrecipe.tuning.data import subsample, subsample_indices, validation_split
from kerasrecipe.tuning.distributed import ChiefServer
from kerasrecipe.tuning.hypermodel import RecipeHyperModel, trial_callbacks
from kerasrecipe.tuning.kfold import KFoldTuner
from kerasrecipe.tuning.space import DEFAULT_RANGES, PARAMS, narrow_lr
from kerasrecipe.tuning.tuner import TUNERS, RecipeTuner, make_oracle

# bound last: the function `search` shadows the submodule of the same name
from kerasrecipe.tuning.search import STAGES, SearchResult, extrapolate_seconds, search, trial_name  # noqa: E402

__all__ = [
    "ChiefServer", "DEFAULT_RANGES", "KFoldTuner", "PARAMS", "RecipeHyperModel", "RecipeTuner", "STAGES",
    "SearchResult", "TUNERS", "extrapolate_seconds", "make_oracle", "narrow_lr", "search", "subsample",
    "subsample_indices", "trial_callbacks", "trial_name", "validation_split",
]
