"""kerasrecipe.compile_cache: JAX's persistent compilation cache for the demo (issue 5)."""
import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest

from kerasrecipe.compile_cache import default_dir, enable_jax_compilation_cache


def test_other_backends_and_off_switch_do_nothing(monkeypatch):
    if keras.backend.backend() != "jax":
        assert enable_jax_compilation_cache("/nonexistent/never-created") is None
        assert not os.path.exists("/nonexistent/never-created")
    monkeypatch.setenv("KERASRECIPE_JAX_CACHE", "0")
    assert enable_jax_compilation_cache() is None


def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_dir() == os.path.join(str(tmp_path), "kerasrecipe", "jax")


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's compilation cache")
def test_jax_cache_serves_a_second_identical_model(tmp_path):
    """In a fresh interpreter (the cache is process-wide): the second, identical model's train
    step is loaded from the cache, not compiled again; a user's own cache directory is kept."""
    code = textwrap.dedent("""
        import os, sys, json
        os.environ["KERAS_BACKEND"] = "jax"
        import jax, keras, numpy as np
        from kerasrecipe.compile_cache import enable_jax_compilation_cache
        path = enable_jax_compilation_cache()
        assert path == os.environ["KERASRECIPE_JAX_CACHE"], path
        assert enable_jax_compilation_cache("/elsewhere") == path   # already configured: kept
        hits = []
        jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event))
        x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32"); y = x[:, :1]
        for _ in range(2):
            m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7), keras.layers.Dense(1)])
            m.compile("adam", "mse")
            m.fit(x, y, epochs=1, batch_size=32, verbose=0)
        print("HITS " + json.dumps([e for e in hits if "cache_hit" in e]))
    """)
    env = dict(os.environ, KERASRECIPE_JAX_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert any("train_step" in f for f in os.listdir(tmp_path / "cache"))
    hits = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("HITS ")][-1][5:])
    assert hits, out.stdout[-2000:]   # the second model's identical programs came from the cache
