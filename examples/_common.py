"""Shared command line of the examples: --smoke (tiny and fast, for CI) and --out DIR.

KERASRECIPE_SMOKE=1 in the environment has the same effect as --smoke.
"""
import argparse
import os


def parse_args(description, argv=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="a tiny, fast run (CI smoke test)")
    p.add_argument("--out", default=os.path.join("runs", "examples"), help="where run directories go")
    args = p.parse_args(argv)
    args.smoke = args.smoke or os.environ.get("KERASRECIPE_SMOKE", "") not in ("", "0")
    os.makedirs(args.out, exist_ok=True)
    return args
