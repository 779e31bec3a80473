"""The HTML run report: content, robustness, determinism, and rendering in headless chromium."""
import base64
import json
import os
import re
import warnings

import numpy as np
import pytest

from _browser import assert_renders, render_check, screenshot
from _report_fixtures import make_run_dir
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.io import atomic_write_json
from kerasrecipe.report import build_report, load_predictions, save_predictions
from kerasrecipe.runlog import RunLog

SECTION_IDS = ["summary", "findings", "config", "preflight", "lr-find", "curves", "activations", "gradients",
               "predictions", "cv", "files"]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    run_dir = make_run_dir(str(tmp_path_factory.mktemp("run")))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no section may fail to draw
        path = build_report(run_dir)
    with open(path, encoding="utf-8") as f:
        return run_dir, path, f.read()


def _section(page, sid):
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


def test_full_report_has_every_section_with_its_figures(full_report):
    run_dir, path, page = full_report
    assert path == os.path.join(run_dir, "report.html")
    for sid in SECTION_IDS:
        _section(page, sid)
    assert "could not be drawn" not in page
    # figures where the data is
    expect_imgs = {"lr-find": 1, "curves": 1, "activations": 3, "gradients": 1, "cv": 1}
    for sid, n in expect_imgs.items():
        assert len(re.findall(r"<img\b", _section(page, sid))) == n, sid
    preds = _section(page, "predictions")
    assert 'alt="confusion matrix"' in preds
    assert len(re.findall(r'alt="top loss \d+"', preds)) == 12  # k=12 worst examples, as images
    # every image is an embedded PNG, nothing is fetched
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # content from the run's files
    assert "dead_relu" in _section(page, "findings") and "He init, lower LR" in page
    assert _section(page, "findings").index("dead_relu") < _section(page, "findings").index("overfitting")  # errors first
    assert "Overfit one batch" in _section(page, "preflight") and "no validation data" in page
    assert "clipnorm" in _section(page, "config") and "kernels.native" in _section(page, "config")
    assert "plateau: lr halved" in _section(page, "curves")
    assert "accuracy 0.903" in _section(page, "cv")
    assert "12,345" in _section(page, "summary")


def test_report_escapes_the_run_text(full_report):
    _, _, page = full_report
    assert "add dropout &lt;script&gt;" in page
    assert "cannot overfit 8 samples &lt;b&gt;" in page
    assert len(re.findall(r"<script>", page)) == 1  # only the page's own render check


def test_report_renders_in_headless_chromium(full_report, tmp_path):
    _, path, page = full_report
    check = assert_renders(path, tmp_path, min_images=10)
    assert int(check["images"]) >= 20
    png = screenshot(path, tmp_path)
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert img.shape == (2400, 1280)
    assert img.std() > 20  # not a blank page: header, text and figures drawn


def test_render_check_catches_a_broken_image(tmp_path):
    from kerasrecipe.report.html import RENDER_CHECK_JS

    page = tmp_path / "broken.html"
    page.write_text(f"<html><head><script>{RENDER_CHECK_JS}</script></head><body>"
                    '<img alt="bad" src="data:image/png;base64,AAAA">'
                    '<span id="kr-render-check" data-status="pending"></span></body></html>')
    check = render_check(page, tmp_path)
    assert check["status"] == "broken" and check["failed"] == "bad" and check["decoded"] == "0"


def test_sections_without_data_say_so(tmp_path):
    log = RunLog(str(tmp_path))
    log.log("meta", model={"name": "m", "params": 10}, task="classification", epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        page = open(build_report(str(tmp_path)), encoding="utf-8").read()
    assert "<img" not in page
    assert "could not be drawn" not in page
    for sid, words in [("findings", "findings.json is missing"), ("preflight", "No preflight"),
                       ("lr-find", "No LR range test"), ("curves", "No epoch records"),
                       ("activations", "No activation statistics"), ("gradients", "No gradient records"),
                       ("predictions", "No predictions.npz"), ("cv", "No cross-validation"),
                       ("config", "No config.json")]:
        assert words in _section(page, sid), sid


def _small_run(path, **predictions):
    log = RunLog(str(path))
    log.log("meta", model={"name": "m", "params": 10}, task="classification", epochs=3, steps_per_epoch=2)
    for e in range(3):
        log.log("epoch", epoch=e, step=2 * e + 1, lr=1e-3, logs={"loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1)})
    if predictions:
        save_predictions(str(path), **predictions)
    return str(path)


def test_same_run_dir_gives_the_same_report(tmp_path):
    run_dir = _small_run(tmp_path / "run")
    a = open(build_report(run_dir), "rb").read()
    assert a.count(b"<img") == 1
    other = build_report(run_dir, out=str(tmp_path / "again.html"))
    assert open(other, "rb").read() == a


def test_a_section_that_fails_shows_the_error_and_warns(tmp_path):
    log = RunLog(str(tmp_path))
    log.log("meta", model={"name": "m"}, epochs=1)
    atomic_write_json(str(tmp_path / "findings.json"), ["not a finding"])
    with pytest.warns(RuntimeWarning, match="Findings"):
        page = open(build_report(str(tmp_path)), encoding="utf-8").read()
    assert "This section could not be drawn: AttributeError" in _section(page, "findings")
    assert "<h2>Files</h2>" in page  # the rest of the page is still there


def test_unreadable_files_are_reported_not_fatal(tmp_path):
    log = RunLog(str(tmp_path))
    log.log("meta", model={"name": "m"}, epochs=1)
    (tmp_path / "config.json").write_text("{torn")
    page = open(build_report(str(tmp_path)), encoding="utf-8").read()
    assert "config.json could not be read" in _section(page, "summary")


def test_not_a_run_dir(tmp_path):
    with pytest.raises(ConfigError, match="runlog.jsonl"):
        build_report(str(tmp_path))
    with pytest.raises(ConfigError, match="not a directory"):
        build_report(str(tmp_path / "nope"))


def test_non_image_predictions_get_a_table(tmp_path):
    rng = np.random.default_rng(0)
    _small_run(tmp_path, y_true=np.arange(20) % 3, proba=rng.dirichlet(np.ones(3), 20), x=rng.random((20, 5)), k=4)
    page = open(build_report(str(tmp_path)), encoding="utf-8").read()
    preds = _section(page, "predictions")
    assert "top loss 1" not in preds and "<th>p(true)</th>" in preds


def test_save_predictions_contents_and_order(tmp_path):
    y = np.array([0, 1, 2, 1])
    proba = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    x = np.arange(4 * 64, dtype="float32").reshape(4, 64)
    save_predictions(str(tmp_path), y, proba, x=x, k=2, class_names=["a", "b", "c"], split="test")
    p = load_predictions(str(tmp_path))
    np.testing.assert_array_equal(p["y_pred"], [0, 0, 2, 1])
    np.testing.assert_allclose(p["loss"], -np.log([0.9, 0.3, 0.8, 0.7]), rtol=1e-6)
    np.testing.assert_array_equal(p["worst_index"], [1, 3])
    np.testing.assert_array_equal(p["worst_x"], x[[1, 3]])
    assert list(p["class_names"]) == ["a", "b", "c"] and p["split"] == "test"
    # binary sigmoid output and one-hot labels
    save_predictions(str(tmp_path), np.eye(2)[[1, 0]], np.array([0.8, 0.4]))
    p = load_predictions(str(tmp_path))
    np.testing.assert_allclose(p["proba"], [[0.2, 0.8], [0.6, 0.4]], rtol=1e-6)
    np.testing.assert_array_equal(p["y_pred"], [1, 0])
    assert "worst_x" not in p


def test_save_predictions_rejects_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="labels but"):
        save_predictions(str(tmp_path), [0, 1, 2], np.full((2, 3), 1 / 3))
    with pytest.raises(ConfigError, match=r"labels must be in \[0, 2\]"):
        save_predictions(str(tmp_path), [0, 3], np.full((2, 3), 1 / 3))
    with pytest.raises(InputTypeError):
        save_predictions(str(tmp_path), [0], np.zeros((1, 2, 2)))
    with pytest.raises(ConfigError, match="class_names"):
        save_predictions(str(tmp_path), [0], np.full((1, 3), 1 / 3), class_names=["a"])
    assert load_predictions(str(tmp_path)) is None
    assert not os.listdir(tmp_path)  # nothing half-written
