"""Faulty training programs, each paired with its fixed twin (issue 6).

    from faults import CASES          # with benchmarks/ on sys.path
    spec = CASES["dead_relu"].build(fixed=False)

See _common.py for the contract of a case module.
"""
import importlib
import pkgutil

CASES = {}
for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _m.name.startswith("_"):
        CASES[_m.name] = importlib.import_module(f"{__name__}.{_m.name}")
