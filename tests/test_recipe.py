"""End-to-end tests of kerasrecipe.default() (issue 7), on the backend in KERAS_BACKEND."""
import json
import os

import numpy as np
import pytest

import keras
import kerasrecipe as kr
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.recipe import find_run_dir, find_runlog

L = keras.layers
META_KEYS = {"loss", "task", "num_classes", "from_logits", "model", "num_samples", "steps_per_epoch", "epochs",
             "has_validation"}


@pytest.fixture
def small(digits):
    x, y = digits
    return x[:800], y[:800]


def mlp(hidden=(64,), activation="relu", out=10, out_activation="softmax", **dense_kw):
    return keras.Sequential([keras.Input((64,))] + [L.Dense(h, activation=activation, **dense_kw) for h in hidden]
                            + [L.Dense(out, activation=out_activation)])


def recipe(tmp_path, **kw):
    kw.setdefault("tensorboard", False)
    kw.setdefault("monitor_interval", 5)
    return kr.default(run_root=str(tmp_path / "runs"), **kw)


def tags(cbs, severities=("warning", "error")):
    return {f["tag"] for f in find_runlog(cbs).of("finding") if f["severity"] in severities}


def test_healthy_run_writes_every_file_and_no_warning(tmp_path, small):
    x, y = small
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    kr.seed_everything(7)
    cbs = recipe(tmp_path)
    first_dir = find_run_dir(cbs)
    assert os.path.basename(first_dir).startswith(kr.RecipeConfig().short_name())
    stamp = os.path.basename(first_dir)[len(kr.RecipeConfig().short_name()) + 1:]
    hist = model.fit(x, y, validation_split=0.2, epochs=6, batch_size=32, callbacks=cbs, verbose=0)
    run_dir = find_run_dir(cbs)
    # named from what it trained with when fit began, renamed with the best validation loss at the end
    # (each an atomic rename in the same parent)
    best = min(hist.history["val_loss"])
    assert run_dir == os.path.join(os.path.dirname(first_dir), f"adam-lr3e-03-bs32-plateau-s7-{stamp}-best_val_loss{best:.4g}")
    assert not os.path.exists(first_dir)
    for f in ("config.json", "env.json", "runlog.jsonl", "history.csv", "history.jsonl", "findings.json",
              "best.json"):
        assert os.path.isfile(os.path.join(run_dir, f)), f
    ckpts = [f for f in os.listdir(os.path.join(run_dir, "checkpoints")) if f.endswith(".weights.h5")]
    assert 1 <= len(ckpts) <= 3 and all(f.startswith("epoch") and "-val_loss" in f for f in ckpts)
    assert not os.path.exists(os.path.join(run_dir, "backup"))  # deleted after a normal end
    env = json.load(open(os.path.join(run_dir, "env.json")))
    assert env["backend"] == keras.backend.backend() and env["keras"] == keras.__version__
    assert env["seed"] == 7 and env["config_seed"] == 42  # the seed applied, and the config's
    assert kr.RecipeConfig.from_json(os.path.join(run_dir, "config.json")) == kr.RecipeConfig(
        run_root=str(tmp_path / "runs"), tensorboard=False, monitor_interval=5)
    lines = open(os.path.join(run_dir, "history.csv")).read().strip().splitlines()
    assert len(lines) == 7 and lines[0].startswith("epoch,lr,")

    log = kr.RunLog.load(run_dir)  # the saved log is complete
    meta = log.meta
    assert META_KEYS <= set(meta)
    assert meta["task"] == "classification" and meta["num_classes"] == 10 and meta["from_logits"] is False
    assert meta["has_validation"] is True and meta["num_samples"] == 640 and meta["steps_per_epoch"] == 20
    assert [lyr["activation"] for lyr in meta["model"]["layers"]] == ["relu", "softmax"]
    assert sum(meta["class_counts"]) == 640
    assert log.epoch_series("val_loss") == pytest.approx(hist.history["val_loss"])
    # per-batch losses recovered from Keras's running mean average back to the epoch loss
    for e in range(6):
        batch = [r["loss"] for r in log.of("batch") if r["epoch"] == e]
        assert len(batch) == 20
        sizes = [32] * 20
        assert np.average(batch, weights=sizes) == pytest.approx(hist.history["loss"][e], rel=1e-3)
    assert np.std([r["loss"] for r in log.of("batch") if r["epoch"] == 0]) > 1e-3  # not the running mean
    layers = log.of("layer")
    assert {r["layer"] for r in layers} == {"dense", "dense_1"}
    r0 = layers[0]
    assert 0 <= r0["act"]["zero_frac"] <= 1 and r0["grad_norm"] > 0 and r0["update_ratio"] > 0
    assert any(g["source"] == "probe" and g["global_norm"] > 0 for g in log.of("grad"))
    # a healthy model: no warning- or error-level finding
    assert tags(cbs) == set(), [f["symptom"] for f in log.of("finding")]
    findings = json.load(open(os.path.join(run_dir, "findings.json")))
    assert all(f["severity"] == "info" for f in findings)

    # fit called twice: the run goes on, epochs continue, the directory is renamed again
    model.fit(x, y, validation_split=0.2, epochs=1, batch_size=32, callbacks=cbs, verbose=0)
    log2 = find_runlog(cbs)
    assert [r["epoch"] for r in log2.of("epoch")] == list(range(7))
    assert [m["fit"] for m in log2.of("meta")] == [0, 1]
    assert os.path.basename(find_run_dir(cbs)).startswith(f"adam-lr3e-03-bs32-plateau-s7-{stamp}-best_val_loss")


def test_run_name_and_meta_say_what_the_run_trains_with(tmp_path, small):
    x, y = small
    model = mlp()
    model.compile(kr.optimizers.clip_global_norm(keras.optimizers.SGD(
        keras.optimizers.schedules.CosineDecay(0.1, 1000), momentum=0.9), 5.0), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path, schedule="constant", clipnorm=1.0, monitor_health=False)
    model.fit(x, y, validation_split=0.2, epochs=1, batch_size=128, callbacks=cbs, verbose=0)
    name = os.path.basename(find_run_dir(cbs))
    assert name.startswith("sgd-lr1e-01-bs128-cosinedecay-clip5-"), name
    meta = find_runlog(cbs).of("meta")[0]
    assert meta["training"]["optimizer"] == "sgd" and meta["training"]["batch_size"] == 128
    assert meta["training"]["learning_rate"] == pytest.approx(0.1, rel=1e-3) and meta["training"]["clipnorm"] == 5.0
    # the config asked for a schedule/clipping the compiled optimizer lacks: said, not silently dropped
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path, schedule="cosine", clipnorm=1.0, monitor_health=False)
    model.fit(x, y, validation_split=0.2, epochs=1, batch_size=64, callbacks=cbs, verbose=0)
    notes = [e["message"] for e in find_runlog(cbs).of("event") if e.get("where") == "config"]
    assert len(notes) == 2 and "schedule='cosine'" in notes[0] and "clipnorm=1" in notes[1]


def test_without_validation_monitors_training_loss(tmp_path, small):
    x, y = small
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path, checkpoint="every")
    model.fit(x[:320], y[:320], epochs=2, batch_size=64, callbacks=cbs, verbose=2)
    run_dir = find_run_dir(cbs)
    log = find_runlog(cbs)
    assert log.meta["has_validation"] is False
    assert any(e["event"] == "note" and "no validation data" in e["message"] for e in log.of("event"))
    best = json.load(open(os.path.join(run_dir, "best.json")))
    assert best["monitor"] == "loss" and best["monitor_fallback"] is True
    names = sorted(f for f in os.listdir(os.path.join(run_dir, "checkpoints")) if f.endswith(".h5"))
    assert len(names) == 2 and all("-loss" in n for n in names)
    es = next(cb for cb in cbs if isinstance(cb, keras.callbacks.EarlyStopping))
    assert es.monitor == "loss"


def test_lr_10_stops_on_nan_names_the_layer_and_keeps_files(tmp_path, small):
    x, y = small
    model = mlp(out=1, out_activation=None)
    model.compile(keras.optimizers.SGD(10.0), "mse")
    cbs = recipe(tmp_path)
    hist = model.fit(x, y.astype("float32"), validation_split=0.2, epochs=5, batch_size=32, callbacks=cbs, verbose=0)
    assert len(hist.history["loss"]) == 1  # stopped in the first epoch
    log = find_runlog(cbs)
    nan = [e for e in log.of("event") if e["event"] == "nan"]
    assert len(nan) == 1
    # the first non-finite value: weights, a layer output or a gradient -- or, when all of those are
    # still finite, the loss itself (MSE overflows first on some devices: seen on an H100)
    assert nan[0]["layer"] in {"dense", "dense_1"} and nan[0]["where"] in {"weights", "activation", "gradient", "loss"}
    if nan[0]["where"] == "loss":
        assert nan[0]["layer"] == "dense_1" and not nan[0]["nonfinite_weights"] and "loss" in nan[0]["message"]
    assert nan[0]["restored_step"] is not None and nan[0]["step"] >= nan[0]["restored_step"]
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())  # last finite weights restored
    assert "nan" in tags(cbs)
    run_dir = find_run_dir(cbs)
    for f in ("runlog.jsonl", "history.csv", "findings.json", "config.json", "env.json"):
        assert os.path.exists(os.path.join(run_dir, f))
    ckpt_dir = os.path.join(run_dir, "checkpoints")  # a diverged epoch is never checkpointed
    assert not os.path.exists(ckpt_dir) or not [f for f in os.listdir(ckpt_dir) if f.endswith(".h5")]
    assert "best_" not in os.path.basename(run_dir)  # no finite epoch: nothing to name it by


@pytest.mark.parametrize("bad", ["inputs", "targets"])
def test_nan_in_the_training_data_is_blamed_on_the_data(tmp_path, small, bad):
    """One NaN sample (not in the probe batch) poisons the loss, the gradients and every weight in
    one step: the guard names the data (inputs or targets, the sample), not the learning rate."""
    x, y = small
    x, y = x.copy(), y.astype("float32").copy()
    (x[100] if bad == "inputs" else y[100:101])[...] = np.nan
    model = mlp(out=1, out_activation=None)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    cbs = recipe(tmp_path)
    model.fit(x, y, epochs=3, batch_size=32, callbacks=cbs, verbose=0)
    nan = [e for e in find_runlog(cbs).of("event") if e["event"] == "nan"]
    assert len(nan) == 1
    want = "input" if bad == "inputs" else "targets"
    assert nan[0]["where"] == want and nan[0]["layer"] is None
    assert nan[0]["nonfinite_data"] == {"what": bad, "source": "training data", "values": 64 if bad == "inputs" else 1,
                                       "samples": 1, "first": 100}
    assert f"non-finite {bad} value(s) (NaN/Inf) in 1 sample(s), the first in sample 100" in nan[0]["message"]
    assert nan[0]["restored_step"] is not None and nan[0]["restored_step"] < nan[0]["step"]
    assert "as they were" in nan[0]["message"]
    finding = next(f for f in find_runlog(cbs).of("finding") if f["rule"] == "nan_inf")
    assert finding["causes"][0] == f"NaN/Inf values in the {'input data' if bad == 'inputs' else 'training targets'}"
    assert "the first in sample 100" in finding["symptom"]  # the guard's account, not a probe's layer
    assert "learning rate" not in finding["fixes"][0]


def test_early_stopping_and_lr_halving_leave_events_and_the_report_says_which_weights(tmp_path, small):
    """Early stopping logs its stop and the restore of the best epoch's weights; LR halving's event
    follows the run's numbering (never after the last step); the report's summary says whose
    weights the model holds and labels last-epoch values as such."""
    from kerasrecipe.report import build_report

    x, y = small
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs = recipe(tmp_path, early_stopping_patience=2, plateau_patience=1)
    hist = model.fit(x, y, validation_split=0.25, epochs=30, batch_size=64, callbacks=cbs, verbose=0)
    n = len(hist.history["loss"])
    assert n < 30  # stopped early
    log = find_runlog(cbs)
    events = log.of("event")
    stop = [e for e in events if e["event"] == "stop"]
    assert len(stop) == 1 and stop[0]["reason"] == "early_stopping" and stop[0]["epoch"] == n - 1
    best = int(np.argmin(hist.history["val_loss"]))
    restored = [e for e in events if e["event"] == "restored_best"]
    if best != n - 1:
        assert len(restored) == 1 and restored[0]["epoch"] == best
        assert restored[0]["value"] == pytest.approx(hist.history["val_loss"][best], rel=1e-5)
    last_step = max(b["step"] for b in log.of("batch"))
    assert all(e["step"] <= last_step for e in events if e["event"] == "lr_reduced")
    end = [e for e in events if e["event"] == "end"]
    assert "(early_stopping)" in end[-1]["message"]
    page = open(build_report(find_run_dir(cbs)), encoding="utf-8").read()
    assert "last epoch val_loss" in page
    if restored:
        assert f"epoch {best + 1} (best val_loss" in page


def test_nan_restore_puts_back_the_optimizer_state_too(tmp_path, small):
    """Weights alone are not enough: momentum (or Adam's moments) left NaN re-poisons the first
    step after the restore; following the finding's advice (a lower LR) must then train."""
    x, y = small
    model = mlp(hidden=(32,), out=1, out_activation=None)
    model.compile(keras.optimizers.SGD(10.0, momentum=0.9), "mse")
    cbs = recipe(tmp_path)
    model.fit(x, y.astype("float32") * 10, validation_split=0.2, epochs=3, batch_size=32, callbacks=cbs, verbose=0)
    nan = [e for e in find_runlog(cbs).of("event") if e["event"] == "nan"]
    assert len(nan) == 1 and "optimizer state" in nan[0]["message"]
    opt_state = [keras.ops.convert_to_numpy(v.value) for v in model.optimizer.variables]
    assert all(np.all(np.isfinite(a)) for a in opt_state)
    model.optimizer.learning_rate.assign(1e-3)
    hist = model.fit(x, y.astype("float32") * 10, validation_split=0.2, epochs=2, batch_size=32, callbacks=cbs,
                     verbose=0)
    assert len(hist.history["loss"]) == 2 and np.all(np.isfinite(hist.history["loss"]))
    assert len([e for e in find_runlog(cbs).of("event") if e["event"] == "nan"]) == 1


def test_nan_only_in_validation_data_keeps_the_trained_weights(tmp_path, small):
    x, y = small
    xv, yv = x[600:].copy(), y[600:]
    xv[0, 0] = np.nan
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path)
    hist = model.fit(x[:600], y[:600], validation_data=(xv, yv), epochs=4, batch_size=32, callbacks=cbs, verbose=0)
    assert len(hist.history["loss"]) == 1 and np.isfinite(hist.history["loss"][0])
    trained = model.get_weights()
    nan = [e for e in find_runlog(cbs).of("event") if e["event"] == "nan"]
    assert len(nan) == 1 and nan[0]["where"] == "validation" and nan[0]["restored_step"] is None
    assert "validation data" in nan[0]["message"] and "epoch 1" in nan[0]["message"]
    # kept, not rolled back to the weights before the epoch
    assert all(np.array_equal(a, b) for a, b in zip(trained, model.get_weights()))
    finding = next(f for f in find_runlog(cbs).of("finding") if f["tag"] == "nan")
    assert "validation loss" in finding["symptom"] and "validation data" in finding["fixes"][0]


def test_ten_sigmoid_layers_vanishing_gradients(tmp_path, small):
    x, y = small
    model = mlp(hidden=(32,) * 10, activation="sigmoid")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path)
    model.fit(x, y, validation_split=0.2, epochs=2, batch_size=32, callbacks=cbs, verbose=0)
    assert "vanishing_gradients" in tags(cbs)


def test_relu_bias_minus_10_dead_units(tmp_path, small):
    x, y = small
    model = mlp(bias_initializer=keras.initializers.Constant(-10.0))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path)
    model.fit(x, y, validation_split=0.2, epochs=2, batch_size=32, callbacks=cbs, verbose=0)
    dead = [f for f in find_runlog(cbs).of("finding") if f["tag"] == "dead_relu"]
    assert dead and dead[0]["layer"] == "dense"


@pytest.mark.parametrize("weighting", [None, "class_weight"])
def test_shuffled_labels_stuck_at_prior(tmp_path, small, weighting):
    """With class_weight Keras's loss is the weighted sum over the number of samples: the prior's
    loss scales with the mean weight (3 here); a false 'lr_too_high' was reported before."""
    x, y = small
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path)
    kw = {"class_weight": {c: 3.0 for c in range(10)}} if weighting else {}
    model.fit(x, np.random.RandomState(1).permutation(y), validation_split=0.2, epochs=5, batch_size=32,
              callbacks=cbs, verbose=0, **kw)
    assert "stuck_at_prior" in tags(cbs) and "lr_too_high" not in tags(cbs)


class Crash(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.armed = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.armed and (self.epoch, batch) == self.at:
            self.armed = False
            raise RuntimeError("simulated crash")


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.begins = []
        self.weights_at_begin = None

    def on_epoch_begin(self, epoch, logs=None):
        if not self.begins:
            self.weights_at_begin = self.model.get_weights()
        self.begins.append(epoch)


def test_crash_mid_fit_resumes_from_last_epoch_with_nothing_lost(tmp_path, small):
    x, y = small
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    run_dir = str(tmp_path / "run")
    cbs = kr.default(run_dir=run_dir, tensorboard=False, monitor_health=False)
    fit = dict(x=x, y=y, validation_split=0.2, epochs=4, batch_size=32, verbose=0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        model.fit(callbacks=cbs + [Crash(epoch=1, batch=5)], **fit)
    # the files agree after the crash: best.json names the best finished epoch, the report says
    # the fit did not finish and that the backup resumes it
    from kerasrecipe.report import build_report

    best = json.load(open(os.path.join(run_dir, "best.json")))
    assert best["epoch"] == 0 and best["value"] == pytest.approx(kr.RunLog.load(run_dir).of("epoch")[0]["logs"]["val_loss"])
    page = open(build_report(run_dir), encoding="utf-8").read()
    assert "did not finish" in page and "crash backup is there" in page
    # same callbacks, fit again: resumes at epoch 1, then crashes again in epoch 2
    rec1 = Record()
    with pytest.raises(RuntimeError, match="simulated crash"):
        model.fit(callbacks=cbs + [rec1, Crash(epoch=2, batch=3)], **fit)
    assert rec1.begins == [1, 2]
    backup = os.path.join(run_dir, "backup")
    with np.load(os.path.join(backup, "latest.npz")) as z:  # the model's weights, then the optimizer's variables
        saved = [z[f"arr_{i}"] for i in range(len(z.files))]
    assert len(saved) == len(model.weights) + len(model.optimizer.variables)
    # a new process would build new callbacks on the same run directory: that resumes too
    rec2 = Record()
    cbs2 = kr.default(run_dir=run_dir, tensorboard=False, monitor_health=False)
    model.fit(callbacks=cbs2 + [rec2], **fit)
    assert rec2.begins == [2, 3]  # resumed at the epoch after the last backup
    for a, b in zip(rec2.weights_at_begin, saved[:len(model.weights)]):
        np.testing.assert_allclose(a, b)
    log = kr.RunLog.load(run_dir)
    assert [r["epoch"] for r in log.of("epoch")] == [0, 1, 2, 3]  # nothing lost, nothing twice
    steps = [r["step"] for r in log.of("batch")]  # the crashed epochs' batches are redone: each once
    assert sorted(steps) == list(range(4 * 20)) and steps == sorted(steps)
    assert "did not finish" not in open(build_report(run_dir), encoding="utf-8").read()
    assert len([e for e in log.of("event") if e["event"] == "resume"]) == 2
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4 * 20
    rows = open(os.path.join(run_dir, "history.csv")).read().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    assert not os.path.exists(backup) and find_run_dir(cbs2) == run_dir  # a given run_dir is never renamed
    es = next(cb for cb in cbs2 if isinstance(cb, keras.callbacks.EarlyStopping))
    assert es.best == pytest.approx(min(log.epoch_series("val_loss")))  # early stopping's state came back


class SubNet(keras.Model):  # subclassed: no weights until built (TensorFlow builds at the first step)
    def __init__(self, **kw):
        super().__init__(**kw)
        self.h = L.Dense(16, activation="relu")
        self.o = L.Dense(10, activation="softmax")

    def call(self, x, training=False):
        return self.o(self.h(x))


def test_unbuilt_subclassed_model_resumes_and_is_probed(tmp_path, small):
    x, y = small
    run_dir = str(tmp_path / "run")
    fit = dict(x=x, y=y, validation_split=0.2, epochs=3, batch_size=64, verbose=0)
    model = SubNet()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    with pytest.raises(RuntimeError, match="simulated crash"):
        model.fit(callbacks=kr.default(run_dir=run_dir, tensorboard=False, monitor_interval=3)
                  + [Crash(epoch=1, batch=2)], **fit)
    model = SubNet()  # a new process: a fresh, unbuilt model on the same run directory
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    rec = Record()
    cbs = kr.default(run_dir=run_dir, tensorboard=False, monitor_interval=3)
    model.fit(callbacks=cbs + [rec], **fit)
    assert rec.begins == [1, 2]
    log = find_runlog(cbs)
    assert [e for e in log.of("event") if e["event"] == "resume"]
    layers = log.of("layer")
    assert layers and all(r["grad_norm"] is not None and r["grad_norm"] > 0 for r in layers)
    assert not [e for e in log.of("event") if e["event"] == "note" and e.get("where") in ("build", "probe")]


def test_resume_keeps_the_lr_halving_of_a_schedule(tmp_path, small):
    """LR halving of a schedule is a multiplier beside the optimizer's variables: the backup keeps it."""
    from kerasrecipe.callbacks.checkpoint import RecipeBackup
    from kerasrecipe.optimizers import get_learning_rate, scale_learning_rate

    class Halve(keras.callbacks.Callback):  # what a plateau does at the end of epoch 1
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                scale_learning_rate(self.model.optimizer, 0.5, model=self.model)

    class LRs(keras.callbacks.Callback):
        seen = []

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append(get_learning_rate(self.model.optimizer))

    def model():
        m = mlp()
        m.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, 100000)),
                  "sparse_categorical_crossentropy")
        return m

    x, y = small
    run_dir = str(tmp_path / "run")
    fit = dict(x=x, y=y, validation_split=0.2, epochs=4, batch_size=64, verbose=0)
    cbs = kr.default(run_dir=run_dir, tensorboard=False, monitor_health=False)
    at = next(i for i, cb in enumerate(cbs) if isinstance(cb, RecipeBackup))
    with pytest.raises(RuntimeError, match="simulated crash"):
        model().fit(callbacks=cbs[:at] + [Halve()] + cbs[at:] + [Crash(epoch=2, batch=1)], **fit)
    lrs = LRs()
    model().fit(callbacks=kr.default(run_dir=run_dir, tensorboard=False, monitor_health=False) + [lrs], **fit)
    assert lrs.seen[-2] == pytest.approx(1.5e-3, rel=1e-3)  # epoch 2 again, at the halved rate


def _my_acc(y_true, y_pred):  # a custom metric: Keras cannot tell its direction from the name
    import keras.ops as O

    hit = O.equal(O.cast(O.reshape(y_true, (-1,)), "int32"), O.cast(O.argmax(y_pred, -1), "int32"))
    return O.cast(hit, "float32")


def test_custom_metric_monitor_validation_freq_and_a_misspelt_monitor(tmp_path, small):
    x, y = small
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=[_my_acc])
    cbs = recipe(tmp_path, monitor="val__my_acc")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, validation_split=0.2, validation_freq=2, epochs=4, batch_size=64, callbacks=cbs, verbose=0)
    # no "metric not available" warnings on the epochs without validation
    assert not [w for w in caught if "val__my_acc" in str(w.message)], [str(w.message) for w in caught]
    es = next(cb for cb in cbs if isinstance(cb, keras.callbacks.EarlyStopping))
    assert es.mode == "max" and es.best == pytest.approx(np.nanmax(np.array(find_runlog(cbs).epoch_series("val__my_acc"), float)))
    assert not [e for e in find_runlog(cbs).of("event") if e["event"] == "checkpoint_skipped"]
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs = recipe(tmp_path, monitor="val_acuracy")
    with pytest.raises(ConfigError, match="monitors 'val_acuracy'.*val_accuracy"):
        model.fit(x, y, validation_split=0.2, epochs=3, batch_size=64, callbacks=cbs, verbose=0)
    assert os.path.exists(os.path.join(find_run_dir(cbs), "history.csv"))


def test_training_on_with_initial_epoch_numbers_epochs_on(tmp_path, small):
    x, y = small
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path, monitor_health=False, checkpoint="every")
    model.fit(x, y, validation_split=0.2, epochs=2, batch_size=64, callbacks=cbs, verbose=0)
    model.fit(x, y, validation_split=0.2, initial_epoch=2, epochs=4, batch_size=64, callbacks=cbs, verbose=0)
    model.fit(x, y, validation_split=0.2, epochs=1, batch_size=64, callbacks=cbs, verbose=0)  # Keras's epoch 0
    log = find_runlog(cbs)
    assert [r["epoch"] for r in log.of("epoch")] == [0, 1, 2, 3, 4]
    files = sorted(os.listdir(os.path.join(find_run_dir(cbs), "checkpoints")))
    assert [f[:9] for f in files if f.endswith(".h5")] == ["epoch0001", "epoch0002", "epoch0003", "epoch0004",
                                                            "epoch0005"]


def test_backup_of_another_model_is_refused_clearly(tmp_path, small):
    x, y = small
    run_dir = str(tmp_path / "run")
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    cbs = kr.default(run_dir=run_dir, tensorboard=False, monitor_health=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=cbs + [Crash(epoch=1, batch=2)])
    other = mlp(hidden=(32, 16))
    other.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="does not fit this model"):
        other.fit(x, y, epochs=3, batch_size=32, verbose=0,
                  callbacks=kr.default(run_dir=run_dir, tensorboard=False, monitor_health=False))


def test_pydataset_and_subclassed_model(tmp_path, small):
    x, y = small

    class Seq(keras.utils.PyDataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.h = L.Dense(32, activation="relu")
            self.o = L.Dense(10, activation="softmax")

        def call(self, inputs, training=False):
            return self.o(self.h(inputs))

    model = Net()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model(x[:2])
    cbs = recipe(tmp_path, monitor_interval=3)
    model.fit(Seq(), validation_data=(x[600:], y[600:]), epochs=2, callbacks=cbs, verbose=0)
    log = find_runlog(cbs)
    assert log.meta["has_validation"] is True and log.meta["steps_per_epoch"] == 10
    assert {r["layer"] for r in log.of("layer")} == {"dense", "dense_1"}
    assert all(r["grad_norm"] is not None for r in log.of("layer"))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data needs the TensorFlow backend")
def test_tf_data_and_tensorboard(tmp_path, small):
    import tensorflow as tf

    x, y = small
    ds = tf.data.Dataset.from_tensor_slices((x[:512], y[:512])).batch(64)
    model = mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    cbs = recipe(tmp_path, tensorboard=True)
    assert any(isinstance(cb, kr.callbacks.EpochTensorBoard) for cb in cbs)
    model.fit(ds, validation_data=ds.take(2), epochs=2, callbacks=cbs, verbose=0)
    log = find_runlog(cbs)
    assert log.of("layer") and log.meta["has_validation"] is True
    assert os.path.isdir(os.path.join(find_run_dir(cbs), "tensorboard"))


def test_tensorboard_skipped_silently_when_not_installed(tmp_path, monkeypatch):
    import kerasrecipe.recipe as recipe_mod

    monkeypatch.setattr(recipe_mod, "_tensorboard_available", lambda: False)
    cbs = kr.default(run_root=str(tmp_path), tensorboard=True)
    assert not any(isinstance(cb, kr.callbacks.EpochTensorBoard) for cb in cbs)


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown RecipeConfig field"):
        kr.default(run_root=str(tmp_path), no_such_field=1)
    with pytest.raises(ConfigError, match="plateau_factor"):
        kr.default(run_root=str(tmp_path), plateau_factor=2.0)
    with pytest.raises(InputTypeError, match="probe_data"):
        kr.default(run_root=str(tmp_path), probe_data=np.zeros(3))
    with pytest.raises(InputTypeError, match="RunLogger"):
        find_runlog([keras.callbacks.History()])


def test_run_dir_given_is_kept_and_default_names_are_unique(tmp_path):
    a = find_run_dir(kr.default(run_root=str(tmp_path)))
    b = find_run_dir(kr.default(run_root=str(tmp_path)))
    assert a != b and os.path.isdir(a) and os.path.isdir(b)
    mine = str(tmp_path / "mine")
    cbs = kr.default(run_dir=mine)
    assert find_run_dir(cbs) == mine and os.path.isdir(mine)
