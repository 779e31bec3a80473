"""Whether a logged metric is better when higher or lower, from its name: THE one rule the
recipe's monitor (early stopping, LR halving, checkpoints) and the tuner's objective share."""
from __future__ import annotations

import re
from typing import Optional

#: Metric names (as Keras logs them, without "val_") that are better when higher / lower. A logged
#: name matches when it is one of these or ends with "_" + one (multi-output "out_accuracy").
MAX_METRICS = (
    "accuracy", "acc", "auc", "precision", "recall", "f1", "f1_score", "fbeta", "fbeta_score", "r2",
    "r2_score", "iou", "io_u", "cosine_similarity", "pearson_correlation", "concordance_correlation",
    "true_positives", "true_negatives", "precision_at_recall", "recall_at_precision",
    "sensitivity_at_specificity", "specificity_at_sensitivity", "dice_coef", "dice_coefficient",
    "psnr", "ssim", "bleu", "rouge_n", "rouge_l",
)
MIN_METRICS = (
    "loss", "error", "crossentropy", "ce", "hinge", "kl_divergence", "kld", "kullback_leibler_divergence",
    "poisson", "logcosh", "log_cosh", "huber", "mse", "mae", "mape", "msle", "rmse", "false_positives",
    "false_negatives", "dice", "tversky", "ctc", "circle", "perplexity", "edit_distance",
)


def metric_direction(name: str) -> Optional[str]:
    """"max" or "min" for a logged metric name ("val_r2_score" -> "max", "val_out_loss" -> "min",
    "val_auc_1" -> "max"), None when the name says nothing (e.g. a custom "val_score")."""
    base = name.lower()
    if base.startswith("val_"):
        base = base[4:]
    for candidate in (base, re.sub(r"_\d+$", "", base)):  # Keras numbers duplicate names: auc_1
        best, direction = 0, None
        for names, d in ((MAX_METRICS, "max"), (MIN_METRICS, "min")):
            for m in names:
                if (candidate == m or candidate.endswith("_" + m)) and len(m) > best:
                    best, direction = len(m), d
        if direction is not None:
            return direction
    return None


def monitor_mode(name: str) -> str:
    """'max' or 'min' for a monitored name; names that say nothing (a custom "val_score") are
    taken as losses ('min')."""
    return metric_direction(name) or "min"
