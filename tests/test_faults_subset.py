"""A fast subset of the faults benchmark (benchmarks/faults, issue 6) as a regression test.

Each faulty program must get its fault as the top finding of the run's diagnosis within a few
epochs (NaN, dead ReLUs, saturated units within two epochs), and the fixed twins of the same
programs must end without any warning or error. The preflight checks (engineer P's) are tested
in their own files; here only what `fit` with `kerasrecipe.default()` records is diagnosed.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

from faults import CASES  # noqa: E402

# case -> epochs trained here (fewer than the benchmark's)
SUBSET = {"nan_lr_high": 2, "dead_relu": 2, "saturated_tanh": 2}


def _run(name, fixed, epochs, tmp_path):
    import keras

    import kerasrecipe
    from kerasrecipe.diagnose import diagnose_run
    from kerasrecipe.recipe import find_runlog

    spec = CASES[name].build(fixed)
    kw = dict(spec["fit_kwargs"])
    cbs = kerasrecipe.default(run_dir=str(tmp_path / f"{name}-{int(fixed)}"), tensorboard=False,
                              checkpoint="none", backup=False, monitor_interval=10)
    spec["model"].fit(spec["x"], spec["y"], validation_data=spec["validation_data"], epochs=epochs,
                      batch_size=kw.pop("batch_size", 32), callbacks=cbs, verbose=0, **kw)
    keras.utils.clear_session()
    return diagnose_run(find_runlog(cbs))


@pytest.mark.parametrize("name", sorted(SUBSET))
def test_fault_is_found_and_named(name, tmp_path):
    findings = _run(name, False, SUBSET[name], tmp_path)
    severe = [f for f in findings if f.severity in ("warning", "error")]
    assert severe, f"{name}: no warning/error finding"
    assert severe[0].tag in CASES[name].TAGS, f"{name}: top finding {severe[0]}"
    assert severe[0].epoch is not None and severe[0].epoch <= 1, f"{name}: found late: {severe[0]}"


@pytest.mark.parametrize("name", ["dead_relu", "saturated_tanh"])
def test_fixed_twin_is_quiet(name, tmp_path):
    findings = _run(name, True, SUBSET[name], tmp_path)
    assert [str(f) for f in findings if f.severity in ("warning", "error")] == []


def test_every_case_has_a_twin_contract():
    assert len(CASES) >= 24
    for name, mod in CASES.items():
        assert mod.TAGS and isinstance(mod.TAGS, tuple) and mod.EPOCHS >= 1, name
        assert callable(mod.build) and mod.__doc__, name
