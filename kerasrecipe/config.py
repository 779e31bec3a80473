"""RecipeConfig: every hyperparameter and default of the recipe in one place (tip A1).

Each field's comment names the tip (docs/RECIPES.md) its default comes from. A run is fully
described by its config: `to_json()` / `from_json()` round-trip it, and the run directory keeps
a copy as `config.json`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from kerasrecipe.errors import ConfigError

SCHEDULES = ("constant", "plateau", "cosine", "cosine_restarts", "onecycle", "cyclic", "multistep")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
CHECKPOINT_MODES = ("best", "every", "none")


@dataclass
class RecipeConfig:
    # --- reproducibility and bookkeeping (A2, A3, A4) ---
    seed: Optional[int] = 42                  # A2: one seed everywhere
    run_root: str = "runs"                    # A3: where run directories are created
    run_name: Optional[str] = None            # A4: None -> named from the key parameters
    # --- optimisation (D1, D5, D6, D10) ---
    optimizer: str = "adam"                   # D5: Adam is the safe start
    learning_rate: float = 3e-4               # D5: "3e-4 is the best learning rate for Adam"
    momentum: float = 0.9                     # D5: SGD momentum 0.9
    nesterov: bool = False                    # D5
    weight_decay: float = 0.0                 # D10: 1e-4 as a first try when regularising (adamw)
    batch_size: int = 32                      # D6: 32..256 in powers of two
    epochs: int = 100                         # F2: long, early stopping ends it
    # --- learning-rate schedule (D3, D4, D9) ---
    schedule: str = "plateau"                 # D3: halve when validation stops improving
    warmup_epochs: float = 0.0                # D9
    plateau_factor: float = 0.5               # D3: halve
    plateau_patience: int = 3                 # D3
    min_lr: float = 1e-7                      # D4: never decay to zero
    multistep_milestones: tuple = ()          # D3: epochs at which the LR is multiplied
    multistep_gamma: float = 0.1              # D3
    # --- gradient clipping (D8) ---
    clipnorm: Optional[float] = None          # D8: global norm 1, 5, 10, 15; None = off
    # --- stopping and checkpoints (F2, A5) ---
    monitor: str = "val_loss"                 # F2, A9: one metric, fixed before tuning
    early_stopping_patience: int = 10         # F2
    restore_best_weights: bool = True         # F2
    checkpoint: str = "best"                  # A5: "best" (keep best k), "every", "none"
    keep_best: int = 3                        # A5
    backup: bool = True                       # resumable after a crash
    tensorboard: bool = True                  # A6: used when tensorboard is installed
    # --- health monitoring and diagnosis (G2, G3, G4) ---
    monitor_health: bool = True               # G3/G4
    monitor_interval: Optional[int] = None    # steps between probes; None = auto (~4 per epoch, overhead-bounded)
    probe_batch_size: int = 64                # fixed probe batch (G3)
    saturation_threshold: float = 0.99        # G3: |a| >= this counts as saturated (tanh/sigmoid)
    nan_guard: bool = True                    # G2
    diagnose: bool = True                     # G1, G5, C10
    live_findings: bool = True                # print a finding once, when first seen
    validation_split: float = 0.2             # B2: 20% of train for validation
    extra: dict = field(default_factory=dict)  # user keys, carried along untouched

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self):
        def bad(name, value, expected, fix=""):
            msg = f"RecipeConfig.{name}={value!r} is invalid: expected {expected}."
            if fix:
                msg += f" {fix}"
            raise ConfigError(msg)

        def positive(name, allow_zero=False):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or (
                v < 0 if allow_zero else v <= 0
            ):
                bad(name, v, "a finite number " + (">= 0" if allow_zero else "> 0"))

        positive("learning_rate")
        positive("min_lr", allow_zero=True)
        positive("weight_decay", allow_zero=True)
        positive("warmup_epochs", allow_zero=True)
        positive("multistep_gamma")
        if not (0 < self.plateau_factor < 1):
            bad("plateau_factor", self.plateau_factor, "a number in (0, 1)", "0.5 halves the LR (D3).")
        if not (0 <= self.momentum < 1):
            bad("momentum", self.momentum, "a number in [0, 1)")
        for name in ("plateau_patience", "early_stopping_patience", "keep_best"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad(name, v, "an integer >= 0")
        for name in ("batch_size", "epochs", "probe_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                bad(name, v, "an integer > 0")
        if self.monitor_interval is not None and (
            not isinstance(self.monitor_interval, int) or self.monitor_interval <= 0
        ):
            bad("monitor_interval", self.monitor_interval, "None (automatic) or an integer > 0")
        if self.schedule not in SCHEDULES:
            bad("schedule", self.schedule, f"one of {SCHEDULES}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        if self.checkpoint not in CHECKPOINT_MODES:
            bad("checkpoint", self.checkpoint, f"one of {CHECKPOINT_MODES}")
        if self.clipnorm is not None:
            if not isinstance(self.clipnorm, (int, float)) or not math.isfinite(self.clipnorm) or self.clipnorm <= 0:
                bad("clipnorm", self.clipnorm, "None or a finite number > 0", "Typical values: 1, 5, 10 (D8).")
        if not (0 < self.saturation_threshold <= 1):
            bad("saturation_threshold", self.saturation_threshold, "a number in (0, 1]")
        if not (0 <= self.validation_split < 1):
            bad("validation_split", self.validation_split, "a number in [0, 1)")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0):
            bad("seed", self.seed, "None or an integer >= 0")
        if not isinstance(self.extra, dict):
            bad("extra", self.extra, "a dict")
        self.multistep_milestones = tuple(int(m) for m in self.multistep_milestones)
        if any(m <= 0 for m in self.multistep_milestones) or list(self.multistep_milestones) != sorted(
            set(self.multistep_milestones)
        ):
            bad("multistep_milestones", self.multistep_milestones, "increasing positive epochs")

    # ------------------------------------------------------------------ helpers
    def replace(self, **overrides) -> "RecipeConfig":
        """A copy with some fields changed; unknown names raise ConfigError."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(
                f"unknown RecipeConfig field(s) {sorted(unknown)}; known fields: "
                f"{sorted(f.name for f in fields(self))}"
            )
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["multistep_milestones"] = list(self.multistep_milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RecipeConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"RecipeConfig.from_dict expects a dict, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown RecipeConfig field(s) {sorted(unknown)} in the given dict")
        return cls(**d)

    def to_json(self, path: Optional[str] = None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent, sort_keys=True)
        if path is not None:
            from kerasrecipe.io import atomic_write_text

            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str) -> "RecipeConfig":
        import os

        text = text_or_path
        if not text_or_path.lstrip().startswith("{") and os.path.exists(text_or_path):
            with open(text_or_path) as f:
                text = f.read()
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"RecipeConfig.from_json: not valid JSON ({e})") from None
        return cls.from_dict(d)

    def short_name(self) -> str:
        """Key parameters as a run-name fragment (A4), e.g. 'adam-lr3e-04-bs32-plateau'."""
        parts = [self.optimizer, f"lr{self.learning_rate:.0e}", f"bs{self.batch_size}", self.schedule]
        if self.weight_decay:
            parts.append(f"wd{self.weight_decay:.0e}")
        if self.clipnorm:
            parts.append(f"clip{self.clipnorm:g}")
        if self.seed is not None:
            parts.append(f"s{self.seed}")
        return "-".join(parts)


def resolve_config(config: Optional[RecipeConfig] = None, **overrides: Any) -> RecipeConfig:
    """`config` (or the defaults) with `overrides` applied; the one way every API takes a config."""
    if config is None:
        config = RecipeConfig()
    elif isinstance(config, dict):
        config = RecipeConfig.from_dict(config)
    elif not isinstance(config, RecipeConfig):
        raise ConfigError(f"config must be a RecipeConfig, a dict or None, got {type(config).__name__}")
    return config.replace(**overrides) if overrides else config
