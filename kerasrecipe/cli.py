"""The `kerasrecipe` command.

    kerasrecipe demo [--backend B] [--quick] [--out DIR] [--epochs N] [--break lr|labels|init] [--seed S]
    kerasrecipe report RUN_DIR [--out FILE]
    kerasrecipe info

`demo` runs the recipe end to end on the digits images (kerasrecipe/demo.py) and prints the
report's path last. `report` rebuilds a run directory's HTML report offline. `info` shows the
backend and the native extension's state (kerasrecipe.kernels.info()).

`--backend` sets KERAS_BACKEND before Keras is imported; when Keras is already imported with
another backend (e.g. `main()` called from a Python session), the command re-executes itself in
a fresh interpreter with the backend set.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

BACKENDS = ("tensorflow", "torch", "jax")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kerasrecipe", description="The recipe for training neural networks, for Keras 3.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("demo", help="run the whole recipe on the digits images and write a report",
                       description="Seed, preflight, LR range test, training with kerasrecipe.default(), "
                                   "diagnosis, cross-validation and the HTML report, on scikit-learn's digits.")
    d.add_argument("--backend", choices=BACKENDS, help="Keras backend (default: KERAS_BACKEND or Keras's config)")
    d.add_argument("--quick", action="store_true", help="fewer epochs, no cross-validation (under a minute)")
    d.add_argument("--out", default="runs", metavar="DIR", help="parent of the run directory (default: runs)")
    d.add_argument("--epochs", type=int, metavar="N", help="training epochs (default 30, --quick 8)")
    d.add_argument("--break", dest="fault", choices=("lr", "labels", "init"),
                   help="plant a fault for the diagnosis to catch: lr (far too high), labels (shuffled), "
                        "init (dead ReLUs)")
    d.add_argument("--seed", type=int, default=42, help="the one seed (default 42)")
    d.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")

    r = sub.add_parser("report", help="(re)build the HTML report of a run directory",
                       description="Rebuild RUN_DIR/report.html from the run directory's files, offline.")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--out", metavar="FILE", help="write the page here instead of RUN_DIR/report.html")

    i = sub.add_parser("info", help="backend and native-extension status")
    i.add_argument("--backend", choices=BACKENDS)
    return p


def _ensure_backend(backend: Optional[str], argv: List[str]) -> None:
    """Make Keras use `backend`: set KERAS_BACKEND, or re-exec when Keras is already imported."""
    if backend is None:
        return
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() == backend:
            return
        env = dict(os.environ, KERAS_BACKEND=backend)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "kerasrecipe.cli"] + list(argv), env)
    os.environ["KERAS_BACKEND"] = backend


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _ensure_backend(getattr(args, "backend", None), argv)

    from kerasrecipe.errors import KerasRecipeError

    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "report":
            from kerasrecipe.report import build_report

            print(build_report(args.run_dir, out=args.out))
            return 0
        if args.command == "info":
            return _info()
    except KerasRecipeError as e:
        print(f"kerasrecipe {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover - argparse rejects unknown commands


def _demo(args) -> int:
    from kerasrecipe.demo import run_demo

    res = run_demo(quick=args.quick, out=args.out, epochs=args.epochs, fault=args.fault, seed=args.seed,
                   cv_folds=args.folds)
    sys.stdout.flush()
    print(res.report)  # the report's path, last (for scripts: `open "$(kerasrecipe demo | tail -1)"`)
    return 1 if res.caught is False else 0


def _info() -> int:
    import json

    import keras

    from kerasrecipe import __version__, kernels

    print(json.dumps({"kerasrecipe": __version__, "keras": keras.__version__, "backend": keras.backend.backend(),
                      "kernels": kernels.info()}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
