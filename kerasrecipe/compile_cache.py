"""JAX's persistent compilation cache, turned on for kerasrecipe's demo.

On the JAX backend every new model pays XLA compilations: its initialisers (one per weight
shape), its train, test and predict functions. On a 2-core CPU one compile of the demo's train
step takes ~10 s, and cross-validation builds a fresh model per fold. With the persistent cache,
a fold whose program is the same as an earlier one (same shapes) loads it instead of compiling
(measured: fit of a fresh model 12 s -> 2.5 s), and a second run of the demo loads everything.

It changes JAX's global configuration, so library calls never do it on their own: only the demo
(`run_demo`, i.e. `kerasrecipe demo` / `make demo`) calls `enable_jax_compilation_cache()`; a user
program may too.

    KERASRECIPE_JAX_CACHE=DIR   the cache directory (default: $XDG_CACHE_HOME or ~/.cache, then
                                kerasrecipe/jax)
    KERASRECIPE_JAX_CACHE=0     off
"""
from __future__ import annotations

import os
from typing import Optional

OFF = ("0", "off", "false", "no", "none")


def default_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kerasrecipe", "jax")


def enable_jax_compilation_cache(path: Optional[str] = None) -> Optional[str]:
    """Turn on JAX's persistent compilation cache for every compile (not only slow ones).

    Returns the cache directory, or None when nothing was done: another backend, the variable
    KERASRECIPE_JAX_CACHE set to 0, a cache directory already configured by the user (kept as
    is), or a directory that cannot be created.
    """
    import keras

    if keras.backend.backend() != "jax":
        return None
    env = os.environ.get("KERASRECIPE_JAX_CACHE", "").strip()
    if env.lower() in OFF:
        return None
    import jax

    if getattr(jax.config, "jax_compilation_cache_dir", None):
        return jax.config.jax_compilation_cache_dir   # the user's own choice wins
    path = path or env or default_dir()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
