"""Distributed search on keras-tuner's chief/worker mode (A7): one chief and two workers as
subprocesses on 127.0.0.1, a two-stage search served on one port."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np
    import keras
    from kerasrecipe.tuning import search, trial_callbacks

    out = sys.argv[1]
    me = os.environ["KERASTUNER_TUNER_ID"]
    rng = np.random.default_rng(0)                       # the same data in every process
    y = rng.integers(0, 3, 90).astype("int32")
    x = (rng.normal(size=(3, 8))[y] * 2 + rng.normal(size=(90, 8))).astype("float32")

    def build(hp):
        m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(hp.Choice("units", [4, 8]), activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
        m.compile(loss="sparse_categorical_crossentropy", jit_compile=False)
        return m

    class WaitForPeer(keras.callbacks.Callback):
        # A worker's first trial waits until the other worker holds a trial too, so the test
        # does not depend on which process imports faster.
        done = False
        def on_train_begin(self, logs=None):
            if WaitForPeer.done:
                return
            WaitForPeer.done = True
            open(os.path.join(out, "trial_" + me), "w").close()
            deadline = time.time() + 300
            while time.time() < deadline and sum(f.startswith("trial_") for f in os.listdir(out)) < 2:
                time.sleep(0.1)

    res = search(build, x, y, stages=("lr", "rest"), max_trials=(2, 3), epochs=1, retrain=False,
                 directory=os.path.join(out, "tuning"), project_name="dist", verbose=1,
                 callbacks=lambda c: trial_callbacks(c) + [WaitForPeer()])
    if res is None:
        json.dump({"worker": me}, open(os.path.join(out, "done_" + me + ".json"), "w"))
    else:
        rows = [{k: r.get(k) for k in ("stage", "trial", "worker", "score", "status", "learning_rate")}
                for r in res.trials]
        json.dump({"rows": rows, "best_score": res.best_score, "best_lr": res.best_config.learning_rate},
                  open(os.path.join(out, "chief.json"), "w"))
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers(tmp_path, backend):
    pytest.importorskip("grpc")
    if backend != "torch" and not os.environ.get("KERASRECIPE_DISTRIBUTED_ALL_BACKENDS"):
        pytest.skip(
            "runs on the torch backend only (set KERASRECIPE_DISTRIBUTED_ALL_BACKENDS=1 for all): three "
            "processes each import a framework and warm it up, minutes on a loaded CPU, while what is tested "
            "(gRPC routing of stages, the chief's oracle, worker assignment) does not depend on the backend; "
            "the trials' Keras code is tested on every backend in test_tuning.py"
        )
    script = tmp_path / "dist_search.py"
    script.write_text(SCRIPT)
    port = str(_free_port())
    procs = {}
    for who in ("chief", "w1", "w2"):
        env = dict(os.environ, KERASTUNER_TUNER_ID=who, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=port, PYTHONUNBUFFERED="1")
        log = open(tmp_path / f"{who}.log", "w")
        procs[who] = (subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log)
    deadline = time.time() + 540
    try:
        for who, (p, _) in procs.items():
            p.wait(timeout=max(1, deadline - time.time()))
    finally:
        for who, (p, log) in procs.items():
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    logs = {who: (tmp_path / f"{who}.log").read_text() for who in procs}
    for who, (p, _) in procs.items():
        assert p.returncode == 0, f"{who} failed:\n{logs[who][-3000:]}"

    chief = json.loads((tmp_path / "chief.json").read_text())
    rows = chief["rows"]
    # the trial count equals the budget, stage by stage, and every trial completed
    assert [r["stage"] for r in rows] == ["lr"] * 2 + ["rest"] * 3
    assert all(r["status"] == "COMPLETED" for r in rows)
    # both workers ran trials (the chief only serves); each got one of stage 1's two trials
    assert {r["worker"] for r in rows} <= {"w1", "w2"}
    assert sorted(r["worker"] for r in rows if r["stage"] == "lr") == ["w1", "w2"]
    for who in ("w1", "w2"):
        assert json.loads((tmp_path / f"done_{who}.json").read_text()) == {"worker": who}
    # stage 2 ran around stage 1's best rate, across processes
    lr_rows = [r for r in rows if r["stage"] == "lr"]
    best_lr = min(lr_rows, key=lambda r: r["score"])["learning_rate"]
    assert all(r["learning_rate"] == best_lr for r in rows if r["stage"] == "rest")
    # the chief reports the best trial
    assert chief["best_score"] == pytest.approx(min(r["score"] for r in rows))
    assert "kerasrecipe search: 5 trials" in logs["chief"]
