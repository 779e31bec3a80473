"""get/set learning rate, ReduceLROnPlateauAny, clipping optimizer, presets."""
import math

import keras
import numpy as np
import pytest
from keras import ops

import kerasrecipe as kr
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.optimizers import get_learning_rate, get_learning_rates, set_learning_rate
from kerasrecipe.schedules import PlateauAware


def _mean_pred_loss(y_true, y_pred):
    # d loss / d w = 1 for a bias-free Dense(1) on inputs of ones: each SGD step moves w by -lr.
    return ops.mean(y_pred)


def _linear_model(optimizer, units=1):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(units, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=optimizer, loss=_mean_pred_loss)
    return model


# ----------------------------------------------------------------------------- get / set
def test_get_set_float_lr():
    opt = keras.optimizers.Adam(1e-3)
    assert get_learning_rate(opt) == pytest.approx(1e-3)
    set_learning_rate(opt, 5e-4)
    assert get_learning_rate(opt) == pytest.approx(5e-4)
    assert float(ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(5e-4)


def test_get_set_schedule_wraps_in_plateau_aware():
    sched = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=10, decay_rate=0.5)
    opt = keras.optimizers.SGD(sched)
    assert get_learning_rate(opt) == pytest.approx(1e-2)
    opt.iterations.assign(10)
    assert get_learning_rate(opt) == pytest.approx(5e-3)
    set_learning_rate(opt, 1e-3)  # Keras's own setter raises TypeError here
    assert isinstance(opt._learning_rate, PlateauAware)
    assert opt._learning_rate.schedule is sched
    assert get_learning_rate(opt) == pytest.approx(1e-3, rel=1e-5)
    opt.iterations.assign(20)  # the schedule keeps its shape at the lower level
    assert get_learning_rate(opt) == pytest.approx(5e-4, rel=1e-5)


def test_get_set_multi_optimizer_keeps_ratios():
    a, b = keras.optimizers.SGD(0.1), keras.optimizers.Adam(0.01)
    multi = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(a, {"x/.*": b}))
    with pytest.raises(AttributeError):
        multi.learning_rate  # noqa: B018 - Keras's own accessor fails
    assert get_learning_rate(multi) == pytest.approx(0.1)
    assert sorted(get_learning_rates(multi)) == pytest.approx([0.01, 0.1])
    set_learning_rate(multi, 0.05)
    assert get_learning_rate(a) == pytest.approx(0.05)
    assert get_learning_rate(b) == pytest.approx(0.005)


def test_set_learning_rate_errors():
    opt = keras.optimizers.Adam(1e-3)
    for bad in (-1.0, float("nan"), "0.1", True):
        with pytest.raises(ConfigError):
            set_learning_rate(opt, bad)
    with pytest.raises(InputTypeError):
        get_learning_rate(None)
    with pytest.raises(InputTypeError):
        set_learning_rate(keras.optimizers.SGD(lambda: 0.1), 0.01)


def test_plateau_aware_serialization_round_trip():
    sched = PlateauAware(keras.optimizers.schedules.CosineDecay(1e-3, 100), multiplier=0.25)
    cfg = keras.saving.serialize_keras_object(sched)
    back = keras.saving.deserialize_keras_object(cfg)
    assert isinstance(back, PlateauAware) and back.multiplier == 0.25
    for step in (0, 37, 100):
        assert float(back(step)) == pytest.approx(float(sched(step)), rel=1e-6)
        assert float(back(step)) == pytest.approx(0.25 * 1e-3 * 0.5 * (1 + math.cos(math.pi * step / 100)), rel=1e-5)


# ----------------------------------------------------------------------------- ReduceLROnPlateauAny
@pytest.mark.parametrize("kind", ["float", "schedule"])
def test_plateau_halving_applies_inside_fit(kind, backend):
    # mode="max" on a falling loss: never an improvement, so with patience=1 the rate halves at the end
    # of epochs 1, 2, ... One step per epoch; w moves by -lr each step.
    lr = 0.1 if kind == "float" else keras.optimizers.schedules.PiecewiseConstantDecay([1000], [0.1, 0.01])
    model = _linear_model(keras.optimizers.SGD(lr))
    rebuilds = []
    make = model.make_train_function
    model.make_train_function = lambda force=False: (rebuilds.append(1) if force else None) or make(force=force)
    cb = kr.callbacks.ReduceLROnPlateauAny(monitor="loss", mode="max", patience=1, min_lr=0.0)
    x = np.ones((8, 1), "float32")
    hist = model.fit(x, np.zeros((8, 1), "float32"), batch_size=8, epochs=4, verbose=0, callbacks=[cb])
    w = float(ops.convert_to_numpy(model.layers[0].kernel)[0, 0])
    assert w == pytest.approx(-(0.1 + 0.1 + 0.05 + 0.025), rel=1e-5)
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025, 0.0125], rel=1e-5)
    assert [r[0] for r in cb.reductions] == [1, 2, 3]
    # a learning-rate variable is assigned: no rebuild (a recompile on TF/JAX); a schedule's
    # multiplier is baked into traced steps: rebuilt after each halving there
    traced = backend in ("tensorflow", "jax")
    assert len(rebuilds) == (3 if kind == "schedule" and traced else 0)


def test_plateau_multi_optimizer_and_min_lr():
    inp = keras.Input((1,))
    out = keras.layers.Add()([
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="head")(inp),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="body")(inp),
    ])
    model = keras.Model(inp, out)
    head, body = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.01)
    multi = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(head, {"body/.*": body}))
    model.compile(multi, loss=_mean_pred_loss)
    cb = kr.callbacks.ReduceLROnPlateauAny(monitor="loss", mode="max", patience=1, min_lr=0.004)
    x = np.ones((4, 1), "float32")
    hist = model.fit(x, np.zeros((4, 1), "float32"), batch_size=4, epochs=3, verbose=0, callbacks=[cb])
    w_head = float(ops.convert_to_numpy(model.get_layer("head").kernel)[0, 0])
    w_body = float(ops.convert_to_numpy(model.get_layer("body").kernel)[0, 0])
    assert w_head == pytest.approx(-(0.1 + 0.1 + 0.05), rel=1e-5)
    assert w_body == pytest.approx(-(0.01 + 0.01 + 0.005), rel=1e-5)
    assert get_learning_rate(body) == pytest.approx(0.004)  # floored at min_lr
    assert "learning_rate_" + head.name in hist.history


def test_plateau_missing_monitor_warns_and_runlog(tmp_path):
    log = kr.RunLog(str(tmp_path))
    model = _linear_model(keras.optimizers.SGD(0.1))
    x = np.ones((4, 1), "float32")
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, x, epochs=1, verbose=0, callbacks=[kr.callbacks.ReduceLROnPlateauAny()])
    cb = kr.callbacks.ReduceLROnPlateauAny(monitor="loss", mode="max", patience=1, runlog=log)
    model.fit(x, x, epochs=2, verbose=0, callbacks=[cb])
    ev = log.of("event")
    assert len(ev) == 1 and ev[0]["event"] == "lr_reduced" and ev[0]["new_lr"] == pytest.approx(ev[0]["old_lr"] / 2)
    with pytest.raises(ConfigError):
        kr.callbacks.ReduceLROnPlateauAny(factor=1.5)


# ----------------------------------------------------------------------------- fused clipping (D8)
def _mlp(seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)])


def _data(n=16, scale=10.0):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 8)) * scale).astype("float32"), rng.normal(size=(n, 3)).astype("float32")


@pytest.mark.parametrize("name,run_eagerly", [("sgd", False), ("sgd_nesterov", False), ("sgd_plain", False),
                                              ("adam", True), ("adamw_amsgrad", True), ("adam", False)])
def test_clip_matches_keras_global_clipnorm(name, run_eagerly):
    from kerasrecipe.backend_ops import weight_grads

    x, y = _data()
    make = {"sgd": lambda **k: keras.optimizers.SGD(0.05, momentum=0.9, **k),
            "sgd_nesterov": lambda **k: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2, **k),
            "sgd_plain": lambda **k: keras.optimizers.SGD(0.05, **k),
            "adam": lambda **k: keras.optimizers.Adam(1e-2, **k),
            "adamw_amsgrad": lambda **k: keras.optimizers.AdamW(1e-2, weight_decay=1e-2, amsgrad=True, **k)}[name]
    ref, ours = _mlp(), _mlp()
    ours.set_weights(ref.get_weights())
    ref.compile(make(global_clipnorm=1.0), "mse", run_eagerly=run_eagerly)
    opt = kr.optimizers.clip_global_norm(make(), 1.0)
    ours.compile(opt, "mse", run_eagerly=run_eagerly)
    for step in range(2):
        _, grads = weight_grads(ours, x, y)
        norm = math.sqrt(sum(float(np.sum(g.astype("float64") ** 2)) for g in grads))
        assert norm > 1.0  # clipping is active
        ref.train_on_batch(x, y)
        ours.train_on_batch(x, y)
        assert float(ops.convert_to_numpy(opt.last_global_norm)) == pytest.approx(norm, rel=1e-4)
        for a, b in zip(ref.get_weights(), ours.get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_clip_sgd_on_torch_cpu_folds_the_coefficient_into_the_learning_rate(backend, monkeypatch):
    """torch + CPU + SGD: one norm pass, the gradients untouched, the step's learning rate scaled."""
    if backend != "torch":
        pytest.skip("the fold is for eager torch CPU tensors")
    from kerasrecipe import kernels

    passes = {"norm": 0, "clip": 0}
    norm_fn, clip_fn = kernels.torch_cpu_global_norm, kernels.clip_by_global_norm
    monkeypatch.setattr(kernels, "torch_cpu_global_norm",
                        lambda t: passes.__setitem__("norm", passes["norm"] + 1) or norm_fn(t))
    monkeypatch.setattr(kernels, "clip_by_global_norm",
                        lambda *a, **k: passes.__setitem__("clip", passes["clip"] + 1) or clip_fn(*a, **k))
    import torch

    opt = kr.optimizers.clip_global_norm(keras.optimizers.SGD(0.5), 1.0)
    v = keras.Variable(np.zeros(4, "float32"))
    if v.value.device.type != "cpu":
        pytest.skip("the fold is for CPU tensors; on a GPU the gradients are clipped in place")
    opt.build([v])
    g = torch.tensor([3.0, 4.0, 0.0, 0.0])
    opt.apply([g], [v])
    assert passes == {"norm": 1, "clip": 0}
    assert g.tolist() == [3.0, 4.0, 0.0, 0.0]  # not scaled in place
    np.testing.assert_allclose(ops.convert_to_numpy(v), [-0.3, -0.4, 0, 0], rtol=1e-6)  # 0.5 * (3, 4) / 5
    assert float(ops.convert_to_numpy(opt.last_global_norm)) == pytest.approx(5.0)
    assert opt._pending_coef is None  # consumed by the step
    opt.apply([torch.tensor([0.1, 0.0, 0.0, 0.0])], [v])  # below max_norm: the plain rate
    np.testing.assert_allclose(ops.convert_to_numpy(v), [-0.35, -0.4, 0, 0], rtol=1e-6)


@pytest.mark.parametrize("make", [lambda **k: keras.optimizers.Adam(0.1, **k),
                                  lambda **k: keras.optimizers.AdamW(0.1, weight_decay=0.01, amsgrad=True, **k)],
                         ids=["adam", "adamw_amsgrad"])
def test_clip_adam_on_torch_cpu_folds_the_coefficient_into_the_moments(backend, monkeypatch, make):
    """torch + CPU + Adam/AdamW: one norm pass, the gradients untouched, the same weights and
    moments as Keras's global_clipnorm over three steps (clipping active, then not)."""
    if backend != "torch":
        pytest.skip("the fold is for eager torch CPU tensors")
    import torch

    from kerasrecipe import kernels

    calls = {"clip": 0}
    clip_fn = kernels.clip_by_global_norm
    monkeypatch.setattr(kernels, "clip_by_global_norm",
                        lambda *a, **k: calls.__setitem__("clip", calls["clip"] + 1) or clip_fn(*a, **k))
    opt = kr.optimizers.clip_global_norm(make(), 1.0)
    ref = make(global_clipnorm=1.0)
    assert opt._fold == "adam"
    v, w = keras.Variable(np.ones(5, "float32")), keras.Variable(np.ones(5, "float32"))
    if v.value.device.type != "cpu":
        pytest.skip("the fold is for CPU tensors; on a GPU the gradients are clipped in place")
    opt.build([v])
    ref.build([w])
    for g in ([3.0, 4.0, 0.0, 1.0, -2.0], [30.0, -1.0, 2.0, 0.5, 0.0], [0.1, 0.0, 0.2, 0.0, -0.1]):
        mine = torch.tensor(g)
        opt.apply([mine], [v])
        ref.apply([torch.tensor(g)], [w])
        assert mine.tolist() == pytest.approx(g)  # not scaled in place
        np.testing.assert_allclose(ops.convert_to_numpy(v), ops.convert_to_numpy(w), rtol=1e-6, atol=1e-7)
        mine_vars = [x for x in opt.variables if x.path.split("/")[-1] != "last_global_norm"]
        assert [x.path.split("/")[-1].split("_")[-1] for x in mine_vars] == [
            x.path.split("/")[-1].split("_")[-1] for x in ref.variables]
        for a, b in zip(mine_vars, ref.variables):  # iterations, learning rate, moments (and v_hat)
            np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), rtol=1e-5, atol=1e-9)
    assert calls["clip"] == 0 and opt._pending_coef is None


def test_clip_fold_only_for_keras_own_adam_update(backend):
    """A subclass with its own update step is not folded (its gradients are scaled)."""
    if backend != "torch":
        pytest.skip("torch backend only")
    from keras.src.backend.torch.optimizers.torch_adam import Adam as TorchAdam

    from kerasrecipe.optimizers import _fold_kind, clipped_class

    class MyAdam(TorchAdam):
        def _parallel_update_step(self, grads, variables, learning_rate):
            return super()._parallel_update_step(grads, variables, learning_rate)

    assert _fold_kind(clipped_class(MyAdam)) is None
    assert _fold_kind(clipped_class(TorchAdam)) == "adam"
    assert _fold_kind(clipped_class(type(keras.optimizers.Nadam()))) is None


def test_clip_below_threshold_is_identity_and_counts_every_step():
    x, y = _data(scale=0.01)
    ref, ours = _mlp(), _mlp()
    ours.set_weights(ref.get_weights())
    ref.compile(keras.optimizers.SGD(0.1), "mse")
    opt = kr.optimizers.clip_global_norm(keras.optimizers.SGD(0.1), 1e3)
    ours.compile(opt, "mse")
    ref.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    ours.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(ref.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert 0 < float(ops.convert_to_numpy(opt.last_global_norm)) < 1e3
    assert int(ops.convert_to_numpy(opt.iterations)) == 4


def test_clip_keeps_torch_foreach_path(backend, monkeypatch):
    if backend != "torch":
        pytest.skip("the fused torch._foreach update path exists on the torch backend only")
    from keras.src.backend.torch.optimizers import torch_adam, torch_sgd
    from keras.src.backend.torch.optimizers.torch_parallel_optimizer import TorchParallelOptimizer

    from kerasrecipe import optimizers as kro

    for base, torch_cls in ((keras.optimizers.Adam, torch_adam.Adam), (keras.optimizers.SGD, torch_sgd.SGD)):
        opt = kr.optimizers.clip_global_norm(base(1e-3), 1.0)
        assert isinstance(opt, torch_cls) and isinstance(opt, TorchParallelOptimizer)
        calls = []
        orig = torch_cls._parallel_update_step
        monkeypatch.setattr(torch_cls, "_parallel_update_step", lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
        # on CPU tensors Adam's clipped steps run Keras's foreach update with the coefficient folded in
        folded = kro._adam_update_folded
        monkeypatch.setattr(kro, "_adam_update_folded", lambda *a: calls.append(2) or folded(*a))
        model = _mlp()
        model.compile(opt, "mse")
        model.fit(*_data(), batch_size=8, epochs=1, verbose=0)
        assert len(calls) == 2  # every step went through a torch._foreach update


def test_clip_save_load_round_trip(tmp_path):
    x, y = _data()
    sched = kr.schedules.PlateauAware(keras.optimizers.schedules.CosineDecay(1e-2, 100), multiplier=0.5)
    opt = kr.optimizers.clip_global_norm(keras.optimizers.Adam(sched), 2.5)
    assert opt._learning_rate is sched
    model = _mlp()
    model.compile(opt, "mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    back = keras.models.load_model(path)
    bopt = back.optimizer
    assert type(bopt) is type(opt) and bopt.max_norm == 2.5 and bopt.clip_eps == 1e-6
    assert isinstance(bopt._learning_rate, kr.schedules.PlateauAware) and bopt._learning_rate.multiplier == 0.5
    assert float(ops.convert_to_numpy(bopt.last_global_norm)) == float(ops.convert_to_numpy(opt.last_global_norm)) > 0
    for a, b in zip(opt.variables, bopt.variables):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


def test_clip_multi_optimizer_one_global_norm():
    from kerasrecipe.backend_ops import weight_grads

    x, y = _data()
    model = _mlp()
    multi = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(
        keras.optimizers.SGD(0.1), {".*dense_1.*": keras.optimizers.SGD(0.01)}))
    opt = kr.optimizers.clip_global_norm(multi, 1.0)
    model.compile(opt, "mse")
    w0 = model.get_weights()
    _, grads = weight_grads(model, x, y)
    norm = math.sqrt(sum(float(np.sum(g.astype("float64") ** 2)) for g in grads))
    model.train_on_batch(x, y)
    assert float(ops.convert_to_numpy(opt.last_global_norm)) == pytest.approx(norm, rel=1e-4)
    coef = 1.0 / (norm + 1e-6)
    lrs = [0.1 if "dense_1" not in v.path else 0.01 for v in model.trainable_variables]
    for w_before, w_after, g, lr in zip(w0, model.get_weights(), grads, lrs):
        np.testing.assert_allclose(w_after, w_before - lr * coef * g, rtol=1e-4, atol=1e-6)


def test_clip_errors():
    with pytest.raises(ConfigError):
        kr.optimizers.clip_global_norm(keras.optimizers.Adam(), 0.0)
    with pytest.raises(ConfigError):
        kr.optimizers.clip_global_norm(keras.optimizers.Adam(clipnorm=1.0), 1.0)
    with pytest.raises(InputTypeError):
        kr.optimizers.clip_global_norm(object(), 1.0)
    opt = keras.optimizers.Adam()
    opt.build([keras.Variable(np.zeros(3, "float32"))])
    with pytest.raises(ConfigError, match="already built"):
        kr.optimizers.clip_global_norm(opt, 1.0)
    clipped = kr.optimizers.clip_global_norm("sgd", 5)
    assert clipped.max_norm == 5.0 and kr.optimizers.get_learning_rate(clipped) == pytest.approx(0.01)


# ----------------------------------------------------------------------------- presets and from_config (D5, D10)
def test_presets():
    a = kr.optimizers.adam()
    assert isinstance(a, keras.optimizers.Adam) and get_learning_rate(a) == pytest.approx(3e-4)
    s = kr.optimizers.sgd(0.1, nesterov=True)
    assert s.momentum == 0.9 and s.nesterov and get_learning_rate(s) == pytest.approx(0.1)
    w = kr.optimizers.adamw()
    assert isinstance(w, keras.optimizers.AdamW) and w.weight_decay == 1e-4
    with pytest.raises(ConfigError):
        kr.optimizers.sgd(momentum=1.5)


def test_from_config():
    from kerasrecipe.config import RecipeConfig

    opt = kr.optimizers.from_config(RecipeConfig())
    assert isinstance(opt, keras.optimizers.Adam) and isinstance(opt._learning_rate, PlateauAware)
    assert get_learning_rate(opt) == pytest.approx(3e-4)
    cfg = RecipeConfig(optimizer="sgd", learning_rate=0.1, momentum=0.5, nesterov=True, schedule="cosine",
                       clipnorm=5.0, weight_decay=1e-4)
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        kr.optimizers.from_config(cfg)
    opt = kr.optimizers.from_config(cfg, steps_per_epoch=10)
    assert isinstance(opt, keras.optimizers.SGD) and isinstance(opt, kr.optimizers.GlobalNormClipping)
    assert opt.max_norm == 5.0 and opt.momentum == 0.5 and opt.nesterov and opt.weight_decay == 1e-4
    assert isinstance(opt._learning_rate, keras.optimizers.schedules.CosineDecay)
    assert isinstance(kr.optimizers.from_config(cfg, 10, optimizer="adamw", weight_decay=0.0), keras.optimizers.AdamW)
    assert isinstance(kr.optimizers.from_config(None, optimizer="rmsprop"), keras.optimizers.RMSprop)


def test_switch_optimizer_adam_then_sgd():
    model = _linear_model(kr.optimizers.adam())
    sgd = kr.optimizers.sgd(0.01)
    cb = kr.callbacks.SwitchOptimizer(2, sgd)
    x = np.ones((16, 1), "float32")
    model.fit(x, x, batch_size=4, epochs=3, verbose=0, callbacks=[cb])
    assert model.optimizer is sgd and cb.switched_at == 2
    assert int(ops.convert_to_numpy(sgd.iterations)) == 4
