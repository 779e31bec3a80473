"""The two hot operations of the training loop, in one pass over the data.

``clip_by_global_norm(tensors, max_norm, *, eps=1e-6) -> (clipped, global_norm, nonfinite)``
    Global-L2-norm clipping over many tensors, with ``torch.nn.utils.clip_grad_norm_`` semantics:
    ``coef = max_norm / (norm + eps)`` clamped to 1, multiplied into every tensor
    unconditionally (so a NaN/Inf norm propagates into the tensors, as in torch), no host
    synchronisation on the GPU. ``nonfinite`` is true when the norm is NaN or Inf.

``activation_stats(x, *, saturation=0.99, bins=None) -> dict``
    count, mean, var, std, min, max, zeros, saturated, nan, inf, hist, hist_edges of a tensor in
    one read of its data. ``activation_stats_many([x1, x2, ...])`` does all tensors in one
    native call (one kernel launch on the GPU).

``info() -> dict``
    whether the native module is built, CUDA compiled in, a GPU visible, and which path each
    kind of input takes.

Example::

    import numpy as np
    from kerasrecipe import kernels
    x = np.random.randn(64, 128).astype("float32")
    s = kernels.activation_stats(np.maximum(x, 0))
    s["zeros"] / s["count"]                      # ~0.5: half of a ReLU's outputs are dead here
    grads = [np.random.randn(10, 10).astype("float32") * 10]
    grads, norm, bad = kernels.clip_by_global_norm(grads, 1.0)   # in place; norm ~ 100

Statistics contract
-------------------
* ``count``: number of elements (NaN and Inf included); ``nan``/``inf``: how many are NaN/+-Inf.
* ``mean``, ``var`` (population, ddof=0), ``std``, ``min``, ``max``: over the finite values only;
  accumulated in float64 (blockwise, Chan's parallel combination) whatever the input dtype.
* ``zeros``: exact zeros (+0.0 and -0.0). ``saturated``: finite values with ``|x| >= saturation``
  (default 0.99 suits tanh/sigmoid outputs; for a sigmoid in [0, 1] it counts the top end).
* ``hist`` (np.int64) and ``hist_edges``: see :mod:`kerasrecipe.kernels._hist` -- by default 65
  sign/exponent bins that need no range (``[2**e, 2**(e+1))`` per sign for e = -20..11, a centre
  bin for ``|x| < 2**-20``); ``bins=(lo, hi, n)`` gives n fixed bins (out-of-range values
  clamped into the end bins). Only finite values are binned.
* Empty tensor: ``count`` 0, every counter 0, moments/min/max NaN, an all-zero histogram. A tensor
  without any finite value gives the same NaN moments with its counts.
* Range: moments accumulate in float64 and chunks combine by Chan's formula, whose
  ``delta**2 * n_a * n_b / n`` term can overflow for float64 inputs near the top of the range
  (|x| beyond about 1e150): ``var``/``std`` are then ``inf`` although the true variance is
  representable. Every float16/bfloat16/float32 input is far from this.

Clipping contract and differences from Keras's ``global_clipnorm``
------------------------------------------------------------------
* The norm is accumulated in float64 over all tensors (NaN/Inf propagate into it); the
  coefficient is computed in float64 and each tensor is scaled in float32 (float64 for float64
  tensors) and rounded back to its dtype. A multiplication by exactly 1 changes no value, so the
  native kernels skip that pass (same result as torch's unconditional multiply, less traffic).
* Keras (``keras.optimizers.*(global_clipnorm=c)``) uses ``c / max(norm, c)``: no ``eps``, and the
  tensors are left exactly unchanged when ``norm <= c``. Here, as in torch, ``eps`` makes the
  clipped norm slightly below ``max_norm``, and the multiplication by ``coef`` (1 when not
  clipping) always happens. Both propagate NaN: a NaN norm makes every tensor NaN; an Inf norm
  makes the coefficient 0 (finite values become 0, Inf values NaN). Check ``nonfinite`` and skip
  the step rather than applying such gradients.
* ``None`` entries (unconnected gradients) are passed through and ignored.

Dispatch (which path a call takes; all paths give the same answers within float tolerance)
-----------------------------------------------------------------------------------------
* NumPy arrays and eager torch tensors on the CPU: native C++ (threads, GIL released). NumPy
  arrays and torch tensors are clipped in place (read-only arrays: a clipped copy is returned;
  non-contiguous ones and arrays in non-native byte order, e.g. big-endian ``>f4``, are
  processed on a contiguous native-order copy and written back; their statistics are computed
  on such a copy).
* Eager torch tensors on CUDA: native CUDA kernels on the current torch stream (when compiled in
  and a GPU is visible; otherwise torch operations).
* A list of contiguous eager torch tensors of float dtypes on one device is read by the native
  side in one call (dtype, device, pointer and size through the Python C API, ~1 us a tensor)
  instead of per-tensor Python; any other list takes the general path, errors included.
* Eager TF tensors and concrete JAX arrays: native C++ over a host NumPy view; clipping returns
  new tensors (these frameworks' tensors are immutable) scaled by the framework.
* Traced tensors (inside ``tf.function``, ``jax.jit``, ``torch.compile``) and KerasTensors: the
  ``keras.ops`` reference, which the compiler fuses. Results are then 0-d backend tensors (``hist``
  a 1-d int32 tensor); ``hist_edges`` is always NumPy. Its statistics accumulate in float64
  (moments are float64 tensors) wherever the backend traces float64: TensorFlow, torch (not on
  MPS), JAX with ``jax_enable_x64``. JAX without x64 (its default) cannot: there the moments are
  float32, computed on the values divided by max|x| with the mean taken out before squaring, so
  mean and std are finite for every finite input (to ~1e-6 relative) and ``var`` is ``inf`` only
  when the true variance exceeds float32's range (std beyond ~1.8e19).
  The tensors must be traced by the Keras backend's own framework (``keras.ops`` runs on it
  only): a ``jax.jit`` tracer under ``KERAS_BACKEND=tensorflow``, say, is an ``InputTypeError``
  (set ``KERAS_BACKEND`` to that framework, or call outside the trace: eager tensors and concrete
  arrays of every framework work with every backend).
* Without the native module everything still works: NumPy in float64 for arrays, keras.ops or
  torch for the rest -- only slower.
"""
from __future__ import annotations

import math
import numbers
import sys

import numpy as np

from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.kernels import _dispatch as D
from kerasrecipe.kernels import _reference as R
from kerasrecipe.kernels._hist import HistSpec, parse_bins

__all__ = ["activation_stats", "activation_stats_many", "clip_by_global_norm", "info"]


# ----------------------------------------------------------------------------- validation

def _check_saturation(saturation) -> float:
    if isinstance(saturation, bool) or not isinstance(saturation, numbers.Real) or math.isnan(saturation) \
            or saturation <= 0:
        raise ConfigError(f"saturation must be a positive number (|x| >= saturation counts as saturated), "
                          f"got {saturation!r}; 0.99 suits tanh/sigmoid outputs")
    return float(saturation)


def _check_max_norm(max_norm, eps):
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise ConfigError(f"max_norm must be a positive number, got {max_norm!r}")
    if math.isnan(max_norm) or max_norm <= 0:
        raise ConfigError(f"max_norm must be > 0 (typical: 1, 5 or 10; recipe tip D8), got {max_norm!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (0 <= eps < math.inf):
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(max_norm), float(eps)


class _Item:
    """One input tensor: its kind, dtype name (validated)."""

    __slots__ = ("x", "kind", "dtype")

    def __init__(self, x, what):
        x = D.unwrap(x)
        kind = D.kind_of(x)
        if kind == D.NUMPY and not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if kind == D.TRACED:
            D.check_traced_backend(x, what)
        self.x, self.kind = x, kind
        self.dtype = D.dtype_name(x, kind)
        D.check_float(self.dtype, what)

    @property
    def on_cuda(self):
        return self.kind == D.TORCH and self.x.device.type == "cuda"


# ----------------------------------------------------------------------------- statistics

def activation_stats(x, *, saturation=0.99, bins=None) -> dict:
    """Statistics of one tensor in one pass (see the module docstring for the contract).

    Args:
        x: a float tensor (NumPy, torch, TF, JAX; float16, bfloat16, float32, float64).
        saturation: |x| >= saturation counts as saturated (default 0.99: tanh/sigmoid outputs).
        bins: None for the 65 sign/exponent bins, or ``(lo, hi, n)`` for n fixed bins.

    Returns:
        dict with count, mean, var, std, min, max, zeros, saturated, nan, inf, hist, hist_edges.
    """
    return activation_stats_many([x], saturation=saturation, bins=bins)[0]


def activation_stats_many(tensors, *, saturation=0.99, bins=None) -> list:
    """``activation_stats`` of every tensor, in one native call (one launch per GPU)."""
    if isinstance(tensors, dict) or not isinstance(tensors, (list, tuple)):
        raise InputTypeError(f"activation_stats_many takes a list of tensors, got {type(tensors).__name__}")
    sat = _check_saturation(saturation)
    spec = parse_bins(bins)
    if tensors and D.torch_fast_path(tensors[0]) and tensors[0].is_cuda and D.cuda_device_count() > 0:
        dev = tensors[0].device
        res = D.native.torch_stats_cuda(tensors, D.torch_dtype_codes(), dev.index, D.torch_raw_stream(dev), sat,
                                        spec.mode, spec.lo, spec.scale, spec.n)
        if res is not None:
            return _unpack(*res, spec)
    items = [_Item(t, f"tensor #{i}") for i, t in enumerate(tensors)]
    out = [None] * len(items)
    host, cuda = [], {}
    for i, it in enumerate(items):
        if it.kind == D.TRACED:
            out[i] = R.stats_keras(it.x, sat, spec, it.dtype)
        elif it.on_cuda and D.cuda_device_count() > 0:
            cuda.setdefault(it.x.device, []).append(i)
        else:
            host.append(i)
    if host:
        for i, res in zip(host, _stats_host([items[i] for i in host], sat, spec)):
            out[i] = res
    for idx in cuda.values():
        for i, res in zip(idx, _stats_cuda([items[i] for i in idx], sat, spec)):
            out[i] = res
    return out


def _unpack(dbl, cnt, hist, spec):
    return [R.assemble(c[0], c[1], d[0], d[1], d[2], d[3], c[2], c[3], c[4], c[5], h, spec)
            for d, c, h in zip(dbl, cnt, hist)]


def _stats_host(items, sat, spec: HistSpec):
    if not D.HAS_NATIVE_CPU:
        return [R.stats_numpy(D.numpy_view(it.x, it.kind), sat, spec) for it in items]
    keep, ptrs, numels, codes = [], [], [], []
    for it in items:
        if it.kind == D.TORCH and not it.on_cuda:
            buf, ptr, n, _ = D.torch_buffer(it.x)
        else:
            buf = D.numpy_view(it.x, it.kind)
            ptr, n = D.array_ptr(buf), buf.size
        keep.append(buf)
        ptrs.append(ptr)
        numels.append(int(n))
        codes.append(D.DTYPE_CODE[it.dtype])
    dbl, cnt, hist = D.native.stats_cpu(ptrs, numels, codes, sat, spec.mode, spec.lo, spec.scale, spec.n,
                                        D.num_threads())
    return _unpack(dbl, cnt, hist, spec)


def _stats_cuda(items, sat, spec: HistSpec):
    keep, ptrs, numels, codes = [], [], [], []
    dev = None
    for it in items:
        buf, ptr, n, dev = D.torch_buffer(it.x)
        keep.append(buf)
        ptrs.append(ptr)
        numels.append(int(n))
        codes.append(D.DTYPE_CODE[it.dtype])
    stream = D.torch_raw_stream(dev)
    dbl, cnt, hist = D.native.cuda_stats(ptrs, numels, codes, dev, stream, sat, spec.mode, spec.lo, spec.scale,
                                         spec.n)
    return _unpack(dbl, cnt, hist, spec)


# ----------------------------------------------------------------------------- clipping

def clip_by_global_norm(tensors, max_norm, *, eps=1e-6):
    """Clip tensors by their global L2 norm (``torch.nn.utils.clip_grad_norm_`` semantics).

    Args:
        tensors: list of float tensors of ONE kind (NumPy, torch on one device, TF, JAX, or
            traced); ``None`` entries are passed through.
        max_norm: the largest allowed global norm (> 0; recipe tip D8: 1, 5 or 10).
        eps: added to the norm in the coefficient ``max_norm / (norm + eps)``.

    Returns:
        ``(clipped, global_norm, nonfinite)``: the clipped tensors (the same objects, modified in
        place, for NumPy arrays and torch tensors), the norm before clipping and whether it is
        NaN/Inf. NumPy: a float and a bool. torch: 0-d float32 and bool tensors on the tensors'
        device (no host synchronisation). TF/JAX (eager or traced): 0-d backend tensors.
    """
    if isinstance(tensors, dict) or not isinstance(tensors, (list, tuple)):
        if hasattr(tensors, "shape") or isinstance(tensors, np.ndarray):
            tensors = [tensors]
        else:
            raise InputTypeError(f"clip_by_global_norm takes a list of tensors, got {type(tensors).__name__}")
    max_norm, eps = _check_max_norm(max_norm, eps)
    if tensors and D.torch_fast_path(tensors[0]):
        done = _clip_torch_fast(tensors, max_norm, eps)
        if done is not None:
            return done
    items = [None if t is None else _Item(t, f"tensor #{i}") for i, t in enumerate(tensors)]
    live = [it for it in items if it is not None]
    kinds = {it.kind for it in live}
    if len(kinds) > 1:
        raise InputTypeError(f"clip_by_global_norm needs tensors of one kind, got a mix of {sorted(kinds)}")
    kind = kinds.pop() if kinds else D.NUMPY
    if kind == D.TORCH:
        devices = {it.x.device for it in live}
        if len(devices) > 1:
            raise InputTypeError(f"clip_by_global_norm needs torch tensors on one device, got {sorted(map(str, devices))}")
        new, norm, flag = _clip_torch(live, max_norm, eps)
    elif kind == D.NUMPY:
        new, norm, flag = _clip_numpy(live, max_norm, eps)
    elif kind in (D.TF, D.JAX) and D.HAS_NATIVE_CPU:
        new, norm, flag = _clip_framework(live, max_norm, eps)
    else:
        new, norm, flag = R.clip_keras([it.x for it in live], [it.dtype for it in live], max_norm, eps)
    it_new = iter(new)
    return [None if it is None else next(it_new) for it in items], norm, flag


def _native_norm_and_scale(ptrs, numels, codes, max_norm, eps, scale=True):
    if scale:
        return float(D.native.clip_cpu(ptrs, numels, codes, max_norm, eps, D.num_threads()))
    return math.sqrt(float(D.native.sumsq_cpu(ptrs, numels, codes, D.num_threads())))


def _clip_numpy(items, max_norm, eps):
    arrays = []
    for it in items:
        a = it.x
        if not a.flags.writeable:
            a = a.copy()
        arrays.append(a)
    # the native kernels take C-contiguous buffers in the machine's byte order: other arrays are
    # processed on such a copy and written back (assignment converts the byte order back)
    work = [D.native_order(np.ascontiguousarray(a)) for a in arrays]
    if D.HAS_NATIVE_CPU:
        norm = _native_norm_and_scale([D.array_ptr(w) for w in work], [w.size for w in work],
                                      [D.DTYPE_CODE[it.dtype] for it in items], max_norm, eps)
    else:
        norm = math.sqrt(R.sumsq_numpy(work))
        coef = R.clip_coef(norm, max_norm, eps)
        for w in work:
            R.scale_numpy(w, coef)
    for a, w in zip(arrays, work):
        if w is not a:
            a[...] = w
    return arrays, norm, not math.isfinite(norm)


def _clip_torch_fast(tensors, max_norm, eps):
    """Contiguous eager torch tensors of float dtypes on one device, read by the native side in
    one call (no per-tensor Python); None when the list is not that (the general path then
    handles it, errors included)."""
    torch = sys.modules["torch"]
    codes = D.torch_dtype_codes()
    dev = tensors[0].device
    if dev.type == "cuda":
        if D.cuda_device_count() == 0:
            return None
        norm_t = torch.empty((), dtype=torch.float32, device=dev)
        flag_t = torch.empty((), dtype=torch.bool, device=dev)
        if not D.native.torch_clip_cuda(tensors, codes, dev.index, D.torch_raw_stream(dev), max_norm, eps,
                                        norm_t.data_ptr(), flag_t.data_ptr()):
            return None
        return list(tensors), norm_t, flag_t
    if dev.type != "cpu":
        return None
    norm = D.native.torch_clip_cpu(tensors, codes, max_norm, eps, D.num_threads())
    if norm is None:
        return None
    return list(tensors), torch.tensor(norm, dtype=torch.float32), torch.tensor(not math.isfinite(norm))


def torch_cpu_global_norm(tensors):
    """The global L2 norm (a float, float64 accumulation) of a list of contiguous float CPU torch
    tensors in one native pass, nothing modified; None when the list is not that (or without the
    native module). For `kerasrecipe.optimizers`, which folds the clipping coefficient into SGD's
    learning rate instead of scaling the gradients."""
    if not tensors or not D.torch_fast_path(tensors[0]) or tensors[0].device.type != "cpu":
        return None
    s = D.native.torch_sumsq_cpu(tensors, D.torch_dtype_codes(), D.num_threads())
    return None if s is None else math.sqrt(s)


def _clip_torch(items, max_norm, eps):
    torch = sys.modules["torch"]
    if not items:
        return [], torch.zeros((), dtype=torch.float32), torch.zeros((), dtype=torch.bool)
    dev = items[0].x.device
    bufs = [D.torch_buffer(it.x) for it in items]
    codes = [D.DTYPE_CODE[it.dtype] for it in items]
    if dev.type == "cuda" and D.cuda_device_count() > 0:
        norm_t = torch.empty((), dtype=torch.float32, device=dev)
        flag_t = torch.empty((), dtype=torch.bool, device=dev)
        stream = D.torch_raw_stream(dev)
        D.native.cuda_clip([b[1] for b in bufs], [b[2] for b in bufs], codes, bufs[0][3], stream, max_norm, eps,
                           norm_t.data_ptr(), flag_t.data_ptr())
    elif dev.type == "cpu" and D.HAS_NATIVE_CPU:
        norm = _native_norm_and_scale([b[1] for b in bufs], [b[2] for b in bufs], codes, max_norm, eps)
        norm_t = torch.tensor(norm, dtype=torch.float32)
        flag_t = torch.tensor(not math.isfinite(norm))
    else:  # torch operations (other devices, or no native build)
        norms = [torch.linalg.vector_norm(b[0], dtype=torch.float64) for b in bufs]
        total = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros((), device=dev)
        coef = torch.clamp(max_norm / (total + eps), max=1.0)
        for b in bufs:
            b[0].mul_(coef.to(torch.float64 if b[0].dtype == torch.float64 else torch.float32))
        norm_t, flag_t = total.to(torch.float32), ~torch.isfinite(total)
    for it, b in zip(items, bufs):  # write back what was made contiguous
        if b[0].data_ptr() != it.x.data_ptr() or not it.x.is_contiguous():
            with torch.no_grad():
                it.x.copy_(b[0])
    return [it.x for it in items], norm_t, flag_t


def _clip_framework(items, max_norm, eps):
    """Eager TF / JAX: native norm over host views, scaling by the framework (immutable tensors)."""
    views = [D.numpy_view(it.x, it.kind) for it in items]
    norm = _native_norm_and_scale([D.array_ptr(v) for v in views], [v.size for v in views],
                                  [D.DTYPE_CODE[it.dtype] for it in items], max_norm, eps, scale=False)
    coef = R.clip_coef(norm, max_norm, eps)
    kind = items[0].kind
    if kind == D.JAX:
        import jax.numpy as jnp

        out = [(it.x.astype(jnp.float64 if it.dtype == "float64" else jnp.float32) * coef).astype(it.x.dtype)
               for it in items]
        return out, jnp.asarray(norm, jnp.float32), jnp.asarray(not math.isfinite(norm))
    import tensorflow as tf

    out = []
    for it in items:
        cd = tf.float64 if it.dtype == "float64" else tf.float32
        out.append(tf.cast(tf.cast(it.x, cd) * tf.constant(coef, cd), it.x.dtype))
    return out, tf.constant(norm, tf.float32), tf.constant(not math.isfinite(norm))


# ----------------------------------------------------------------------------- info

def info() -> dict:
    """Which implementation runs, and why.

    Returns a dict: ``native_built``, ``cuda_compiled``, ``gpu_visible`` (a GPU the native CUDA
    code can use), ``gpu_count``, ``threads`` (CPU threads the kernels use), ``thread_pool`` ("openmp": the
    libgomp team torch loaded, shared with torch so its spinning workers take the kernels' chunks;
    "std::thread": threads made per call; None without the native module), ``native_error``
    (why the native path is missing, or None) and ``paths`` (input kind -> implementation).
    """
    gpus = D.cuda_device_count()
    cpu = "native C++" if D.HAS_NATIVE_CPU else "NumPy float64 reference"
    threads = D.num_threads() or (int(D.native.default_threads()) if D.HAS_NATIVE_CPU else 1)
    pool = str(D.native.cpu_thread_pool()) if D.HAS_NATIVE_CPU else None
    return {
        "native_built": D.HAS_NATIVE_CPU,
        "cuda_compiled": D.CUDA_COMPILED,
        "gpu_visible": gpus > 0,
        "gpu_count": gpus,
        "threads": threads,
        "thread_pool": pool,
        "native_error": D.NATIVE_ERROR,
        "paths": {
            "numpy": cpu,
            "torch_cpu": cpu,
            "torch_cuda": "native CUDA" if gpus else "torch operations (no native CUDA: "
            + ("no GPU visible" if D.CUDA_COMPILED else "built without CUDA") + ")",
            "tensorflow_eager": cpu + (" via a host NumPy view" if D.HAS_NATIVE_CPU else ""),
            "jax_eager": cpu + (" via a host NumPy view" if D.HAS_NATIVE_CPU else ""),
            "traced": "keras.ops reference (fused by the compiler)",
        },
    }
