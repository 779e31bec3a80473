"""`kerasrecipe demo --quick` end to end (once, on one backend), `kerasrecipe report`, the CLI."""
import os
import sys

import numpy as np
import pytest

from _browser import assert_renders, screenshot
import kerasrecipe as kr
from kerasrecipe import cli
from kerasrecipe.errors import ConfigError

DEMO_BACKEND = "jax"  # the demo runs end to end once per CI run, on this backend


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    import keras

    if keras.backend.backend() != DEMO_BACKEND:
        pytest.skip(f"the demo runs end to end on {DEMO_BACKEND} only, to save CI time "
                    f"(this run uses {keras.backend.backend()})")
    out = tmp_path_factory.mktemp("demo")
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = cli.main(["demo", "--quick", "--epochs", "3", "--out", str(out)])
    text = buf.getvalue()
    return rc, text, out


def test_demo_quick_writes_a_run_directory(demo_run):
    rc, text, out = demo_run
    assert rc == 0, text[-3000:]
    report = text.strip().splitlines()[-1]  # the report's path is printed last
    assert report.endswith("report.html") and os.path.isfile(report)
    run_dir = os.path.dirname(report)
    assert os.path.dirname(run_dir) == str(out)
    for name in ("config.json", "env.json", "runlog.jsonl", "findings.json", "predictions.npz", "history.csv"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    for step in ("Seed and data", "Preflight", "LR range test", "Training", "Diagnosis", "Report"):
        assert step in text
    from kerasrecipe.runlog import RunLog

    log = RunLog.load(run_dir)
    assert log.last("preflight") and log.last("lr_find") and len(log.of("epoch")) == 3
    assert log.of("layer")  # the health monitor probed the recipe layers
    assert {"stem", "res1", "res2", "factorized", "highway"} <= set(log.layer_names())
    p = np.load(os.path.join(run_dir, "predictions.npz"))
    assert p["worst_x"].shape[1:] == (8, 8, 1)
    assert np.mean(p["y_true"] == p["y_pred"]) > 0.5  # it learned something in 3 epochs


def test_demo_report_renders_with_every_image(demo_run, tmp_path):
    rc, text, _ = demo_run
    report = text.strip().splitlines()[-1]
    page = open(report, encoding="utf-8").read()
    for section in ("preflight", "lr-find", "curves", "activations", "gradients", "predictions"):
        assert f'<section id="{section}">' in page
    assert "could not be drawn" not in page
    # the learning rate the run trained at, next to the range test's suggestions and the config's
    from kerasrecipe.runlog import RunLog

    log = RunLog.load(os.path.dirname(report))
    used = log.meta["training"]["learning_rate"]
    choice = [e for e in log.of("event") if e["event"] == "lr_choice"]
    assert len(choice) == 1 and choice[0]["learning_rate"] == pytest.approx(used)
    assert "Training (as run)" in page and "Training started at" in page and "valley" in page
    assert "last epoch val_loss" in page and "final val_loss" not in page
    check = assert_renders(report, tmp_path, min_images=8)
    assert int(check["decoded"]) >= 8
    assert screenshot(report, tmp_path).stat().st_size > 10_000


def test_report_command_regenerates_the_same_page(demo_run, tmp_path, capsys):
    rc, text, _ = demo_run
    report = text.strip().splitlines()[-1]
    again = tmp_path / "again.html"
    assert cli.main(["report", os.path.dirname(report), "--out", str(again)]) == 0
    assert capsys.readouterr().out.strip() == str(again)
    assert again.read_bytes() == open(report, "rb").read()


# ------------------------------------------------------------------ cheap CLI tests (every backend)
def test_report_command_on_a_non_run_dir(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "runlog.jsonl" in capsys.readouterr().err


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--break", "everything"])
    with pytest.raises(SystemExit):
        cli.main(["demo", "--backend", "theano"])
    with pytest.raises(SystemExit):
        cli.main([])


def test_cli_bad_paths_are_clear_errors(tmp_path, capsys):
    """A file where a folder is expected (and the reverse) is a kerasrecipe error on stderr with exit
    code 2, not a traceback; an existing folder given as the report's --out gets report.html in it."""
    from _report_fixtures import make_run_dir

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main(["demo", "--quick", "--out", str(afile)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    run = tmp_path / "run"
    make_run_dir(str(run), with_predictions=False, with_hist=False, images=False)
    outdir = tmp_path / "pages"
    outdir.mkdir()
    assert cli.main(["report", str(run), "--out", str(outdir)]) == 0
    assert (outdir / "report.html").is_file()
    assert cli.main(["report", str(run), "--out", str(tmp_path / "missing" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="is a file"):
        kr.default(run_dir=str(afile))
    with pytest.raises(ConfigError, match="is a file"):
        kr.default(run_root=str(afile))


def test_run_demo_validates_its_arguments():
    from kerasrecipe.demo import run_demo

    with pytest.raises(ConfigError, match="fault"):
        run_demo(fault="gpu")
    with pytest.raises(ConfigError, match="epochs"):
        run_demo(epochs=0)


def test_backend_switch_sets_env_or_reexecs(monkeypatch):
    import keras

    current = keras.backend.backend()
    other = next(b for b in cli.BACKENDS if b != current)
    calls = []
    # saved first, so teardown puts the variable back (_ensure_backend writes os.environ, and a
    # leaked KERAS_BACKEND would give later tests' subprocesses and joblib workers another backend)
    monkeypatch.setenv("KERAS_BACKEND", current)
    monkeypatch.setattr(os, "execve", lambda exe, args, env: calls.append((exe, args, env)))
    cli._ensure_backend(current, ["demo", "--backend", current])
    assert calls == []  # already on it
    cli._ensure_backend(other, ["demo", "--backend", other, "--quick"])
    exe, args, env = calls[0]
    assert exe == sys.executable and args[1:] == ["-m", "kerasrecipe.cli", "demo", "--backend", other, "--quick"]
    assert env["KERAS_BACKEND"] == other
    # before keras is imported, only the variable is set
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.setenv("KERAS_BACKEND", current)
    cli._ensure_backend(other, [])
    assert os.environ["KERAS_BACKEND"] == other and len(calls) == 1


def test_planted_faults_change_the_setup():
    from kerasrecipe.demo import BAD_BIAS, FAULTS, build_model

    assert set(FAULTS) == {"lr", "labels", "init"}
    model = build_model(stem_bias=BAD_BIAS)
    import keras

    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.get_layer("stem").bn.beta), BAD_BIAS)
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    stem = keras.Model(model.input, model.get_layer("stem").output)
    assert float(np.max(keras.ops.convert_to_numpy(stem(x, training=False)))) == 0.0  # all ReLUs dead
