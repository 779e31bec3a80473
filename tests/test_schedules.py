"""Schedules (D3, D4, D9): values against closed forms, serialization, plot, the D4 check, from_config."""
import math

import keras
import numpy as np
import pytest
from keras import ops

import kerasrecipe as kr
from kerasrecipe import schedules as S
from kerasrecipe.config import RecipeConfig
from kerasrecipe.errors import ConfigError


def lr_at(s, step):
    return float(ops.convert_to_numpy(s(step)))


def cyclic_formula(step, base, top, half, mode, gamma=1.0):
    cycle = math.floor(1 + step / (2 * half))
    x = abs(step / half - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1), "exp_range": gamma ** step}[mode]
    return base + (top - base) * max(0.0, 1 - x) * scale


@pytest.mark.parametrize("mode", S.CYCLIC_MODES)
def test_cyclic_matches_formula(mode):
    s = S.CyclicLR(1e-4, 1e-2, step_size=10, mode=mode, gamma=0.99)
    for step in (0, 3, 10, 15, 20, 27, 30, 41, 55):
        assert lr_at(s, step) == pytest.approx(cyclic_formula(step, 1e-4, 1e-2, 10, mode, 0.99), rel=1e-5)
    assert lr_at(s, 10) == pytest.approx(1e-2 if mode != "exp_range" else 1e-4 + (1e-2 - 1e-4) * 0.99 ** 10, rel=1e-5)


def test_onecycle_matches_formula_and_momentum():
    s = S.OneCycle(0.1, total_steps=101, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    p, end = 0.3 * 101 - 1, 100.0

    def anneal(a, b, t):
        return b + (a - b) * (1 + math.cos(math.pi * t)) / 2

    for step in (0, 7, 15, 29, 30, 50, 80, 100):
        want = anneal(0.004, 0.1, step / p) if step <= p else anneal(0.1, 0.004 / 1e4, (step - p) / (end - p))
        assert lr_at(s, step) == pytest.approx(want, rel=1e-4)
    assert lr_at(s, 0) == pytest.approx(0.1 / 25, rel=1e-5)
    assert lr_at(s, 100) == pytest.approx(0.1 / 25 / 1e4, rel=1e-3)
    assert s.momentum(0) == pytest.approx(0.95) and s.momentum(p) == pytest.approx(0.85, abs=1e-6)
    assert s.momentum(100) == pytest.approx(0.95, abs=1e-6)


def test_warmup_and_multistep():
    base = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=100, decay_rate=0.5)
    w = S.Warmup(base, warmup_steps=20)
    assert lr_at(w, 0) == 0.0
    assert lr_at(w, 10) == pytest.approx(0.5 * 1e-2 * 0.5 ** 0.1, rel=1e-5)
    assert lr_at(w, 20) == pytest.approx(1e-2 * 0.5 ** 0.2, rel=1e-5)
    assert lr_at(w, 200) == pytest.approx(1e-2 * 0.25, rel=1e-5)
    assert lr_at(S.Warmup(3e-4, 10, start_factor=0.1), 5) == pytest.approx(3e-4 * 0.55, rel=1e-5)
    m = S.multistep(0.1, [3, 6], steps_per_epoch=10, gamma=0.1)
    assert [lr_at(m, s) for s in (0, 29, 30, 59, 60, 100)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3])
    with pytest.raises(ConfigError):
        S.multistep(0.1, [6, 3], 10)
    with pytest.raises(ConfigError):
        S.CyclicLR(1e-2, 1e-3, 10)
    with pytest.raises(ConfigError):
        S.OneCycle(0.1, 100, pct_start=1.5)


def test_serialization_round_trip_and_model_save(tmp_path):
    scheds = [
        S.CyclicLR(1e-4, 1e-2, 7, mode="triangular2"),
        S.OneCycle(0.05, 200, pct_start=0.25),
        S.Warmup(S.CyclicLR(1e-4, 1e-2, 7, mode="exp_range", gamma=0.999), 13, start_factor=0.2),
        S.PlateauAware(S.Warmup(keras.optimizers.schedules.CosineDecayRestarts(1e-2, 20), 5), multiplier=0.25),
    ]
    for s in scheds:
        back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
        assert type(back) is type(s) and back.get_config() == s.get_config()
        for step in (0, 6, 13, 44, 150):
            assert lr_at(back, step) == pytest.approx(lr_at(s, step), rel=1e-6)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(scheds[-1]), "mse")
    model.fit(np.ones((8, 3), "float32"), np.ones((8, 1), "float32"), epochs=1, verbose=0)
    model.save(str(tmp_path / "m.keras"))
    back = keras.models.load_model(str(tmp_path / "m.keras"))
    lr = back.optimizer._learning_rate
    assert isinstance(lr, S.PlateauAware) and lr.multiplier == 0.25 and isinstance(lr.schedule, S.Warmup)
    assert kr.optimizers.get_learning_rate(back.optimizer) == pytest.approx(kr.optimizers.get_learning_rate(model.optimizer))


def test_plot_and_check_decay(tmp_path):
    png = S.plot(S.OneCycle(0.1, 300), 300, str(tmp_path / "s.png"), steps_per_epoch=30)
    with open(png, "rb") as f:
        assert f.read(4) == b"\x89PNG"
    early = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=300)
    f = S.check_decay(early, 1000)
    assert f is not None and f.tag == "lr_decayed_too_early" and f.tips == ["D4"]
    assert 270 <= f.evidence["step"] <= 300 and f.evidence["fraction"] < 0.8
    assert S.check_decay(keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=1000), 1000) is None  # < 1% at 94%
    assert S.check_decay(S.PlateauAware(3e-4), 1000) is None
    assert S.check_decay(S.multistep(0.1, [2, 4, 6], 10, gamma=0.1), 100) is not None  # 1e-4 < 1% of 0.1 at step 60
    assert S.check_decay(S.multistep(0.1, [2, 4], 10, gamma=0.1), 100) is None  # floor 1e-3 = 1%: not below


@pytest.mark.parametrize("name", ["constant", "plateau", "cosine", "cosine_restarts", "onecycle", "cyclic", "multistep"])
def test_from_config_builds_each_schedule(name):
    cfg = RecipeConfig(schedule=name, learning_rate=0.01, epochs=20, warmup_epochs=1.0, min_lr=1e-5,
                       multistep_milestones=(10, 17), extra={"restart_epochs": 4})
    lr = S.from_config(cfg, steps_per_epoch=10)
    vals = [lr_at(lr, s) if not isinstance(lr, float) else lr for s in (0, 10, 50, 120, 199)]
    assert all(np.isfinite(vals)) and max(vals) <= 0.01 * (1 + 1e-5)
    if name in ("plateau", "cosine", "cosine_restarts", "multistep", "cyclic", "constant"):
        assert vals[0] == 0.0  # warm-up starts at 0
        assert S.check_decay(lr, 200) is None
    if name == "plateau":
        assert isinstance(lr, S.PlateauAware) and vals[1] == pytest.approx(0.01)
    if name == "cosine":
        assert vals[1] == pytest.approx(0.01) and lr_at(lr, 200) == pytest.approx(1e-5, rel=1e-3)
    if name == "multistep":
        assert vals[3] == pytest.approx(1e-3) and lr_at(lr, 175) == pytest.approx(1e-4)
    if name == "onecycle":
        assert isinstance(lr, S.OneCycle) and lr.pct_start == pytest.approx(0.05)
    cfg2 = cfg.replace(warmup_epochs=0.0)
    lr2 = S.from_config(cfg2, steps_per_epoch=10)
    if name == "constant":
        assert lr2 == 0.01


def test_restart_cycle_ends():
    assert S.restart_cycle_ends(2, 2.0, 20) == [1, 5, 13]
    assert S.restart_cycle_ends(5, 1.0, 20) == [4, 9, 14, 19]


def test_onecycle_momentum_callback(backend):
    sched = S.OneCycle(0.05, total_steps=40)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(sched), "mse")
    cb = kr.callbacks.OneCycleMomentum(sched)
    model.fit(np.ones((40, 3), "float32"), np.ones((40, 1), "float32"), batch_size=4, epochs=4, verbose=0,
              callbacks=[cb])
    steps = [s for s, _ in cb.history]
    assert steps == (list(range(40)) if backend == "torch" else [0, 10, 20, 30])
    for s, m in cb.history:
        assert m == pytest.approx(sched.momentum(s))
    assert model.optimizer.beta_1 == pytest.approx(cb.history[-1][1])
    assert cb.history[0][1] == pytest.approx(0.95)


def test_arguments_of_the_wrong_type_are_config_errors_and_numpy_integers_are_numbers(tmp_path):
    """Wrong types get the same clear ConfigError as wrong values (were raw TypeErrors); NumPy
    integers count as integers; OneCycleMomentum refuses an SGD without momentum buffers before
    the first step (was an IndexError inside Keras on JAX/torch)."""
    for make in (lambda: S.Warmup(1e-3, 10, start_factor="a"), lambda: S.OneCycle(1e-3, 100, pct_start=None),
                 lambda: S.CyclicLR(1e-4, 1e-3, 10, gamma="x"), lambda: S.OneCycle(1e-3, 100, base_momentum=None),
                 lambda: kr.callbacks.SnapshotSaver(str(tmp_path), cycle_epochs="10"),
                 lambda: kr.callbacks.SWA(bn_batch_size=0)):
        with pytest.raises(ConfigError):
            make()
    assert kr.callbacks.SWA(start_epoch=np.int64(3), bn_batch_size=np.int64(8)).start_epoch == 3
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = np.ones((40, 3), "float32"), np.ones((40, 1), "float32")
    with pytest.raises(ConfigError, match="momentum=0"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[kr.callbacks.OneCycleMomentum(S.OneCycle(0.05, 10))])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    found = kr.lr_find(model, x, y, start_lr=1e-3, end_lr=1.5e-3, batch_size=np.int64(4), verbose=0)
    assert len(found.lrs) >= 2  # the computed step count is raised to the 20 a sweep needs
    kr.lr_find(model, x, y, num_steps=np.int64(20), batch_size=4, verbose=0)
