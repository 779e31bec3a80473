"""What kind of tensor is this, and how do we reach its raw buffer? (no framework is imported
here: a framework is only looked at when it is already in sys.modules)."""
from __future__ import annotations

import os
import sys

import numpy as np

from kerasrecipe.errors import InputTypeError

FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
DTYPE_CODE = {name: i for i, name in enumerate(FLOAT_DTYPES)}  # must match csrc/common.h

NUMPY, TORCH, TF, JAX, TRACED = "numpy", "torch", "tensorflow", "jax", "traced"

try:  # the extension; a build without kernels (or none at all) falls back to the references
    from kerasrecipe import _native as native  # type: ignore
except ImportError as exc:  # pragma: no cover - depends on the build
    native = None
    NATIVE_ERROR = f"{type(exc).__name__}: {exc}"
else:
    NATIVE_ERROR = None if hasattr(native, "stats_cpu") else "the extension was built without kernels"

HAS_NATIVE_CPU = native is not None and hasattr(native, "stats_cpu")
CUDA_COMPILED = bool(native is not None and getattr(native, "cuda_compiled", False) and hasattr(native, "cuda_stats"))


def num_threads() -> int:
    """Threads for the CPU kernels: KERASRECIPE_NUM_THREADS, else every core (0 = let C++ decide)."""
    v = os.environ.get("KERASRECIPE_NUM_THREADS", "").strip()
    return max(int(v), 1) if v.isdigit() and int(v) > 0 else 0


_gpu_count = None


def cuda_device_count() -> int:
    """GPUs the native CUDA code can use (0 without CUDA build, driver or device; never raises)."""
    global _gpu_count
    if _gpu_count is None:
        _gpu_count = int(native.cuda_device_count()) if CUDA_COMPILED else 0
    return _gpu_count


_torch_codes = None


def torch_dtype_codes() -> dict:
    """{torch dtype: native dtype code}, for the native torch fast paths."""
    global _torch_codes
    if _torch_codes is None:
        torch = sys.modules["torch"]
        _torch_codes = {getattr(torch, name): code for name, code in DTYPE_CODE.items()}
    return _torch_codes


def torch_fast_path(t0) -> bool:
    """True when a list starting with `t0` may take the native torch fast path (an eager torch
    tensor, not under torch.compile); the native side still checks every item and declines
    lists it cannot take as they are."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(t0, torch.Tensor) or not HAS_NATIVE_CPU or not hasattr(native, "torch_clip_cpu"):
        return False
    try:
        return not torch.compiler.is_compiling()
    except AttributeError:  # pragma: no cover - old torch
        return True


def torch_raw_stream(device) -> int:
    """The raw handle of torch's current CUDA stream on `device` (an index or torch.device)."""
    torch = sys.modules["torch"]
    index = device if isinstance(device, int) else device.index
    get = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if get is not None and index is not None:
        return int(get(index))
    return int(torch.cuda.current_stream(device).cuda_stream)


def _torch_is_traced(t) -> bool:
    torch = sys.modules["torch"]
    try:
        if torch.compiler.is_compiling():
            return True
    except AttributeError:  # pragma: no cover - old torch
        pass
    name = type(t).__name__
    if name in ("FakeTensor", "FunctionalTensor") or getattr(t, "is_meta", False):
        return True
    try:
        t.data_ptr()
    except (RuntimeError, NotImplementedError):
        return True
    return False


def kind_of(x) -> str:
    """NUMPY, TORCH (eager), TF (eager), JAX (concrete array) or TRACED."""
    if isinstance(x, (np.ndarray, np.generic)):
        return NUMPY
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return TRACED if _torch_is_traced(x) else TORCH
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.Array):
        return TRACED if isinstance(x, jax.core.Tracer) else JAX
    tf = sys.modules.get("tensorflow")
    if tf is not None and (tf.is_tensor(x) or isinstance(x, tf.Variable)):
        return TF if hasattr(x, "numpy") and tf.executing_eagerly() else TRACED
    keras = sys.modules.get("keras")
    if keras is not None:
        if isinstance(x, keras.Variable):
            return kind_of(x.value)
        if isinstance(x, keras.KerasTensor):
            return TRACED
    return NUMPY  # lists, scalars, array-likes: np.asarray


def traced_framework(x):
    """The framework of a TRACED tensor: "torch", "jax", "tensorflow", or None for a KerasTensor
    (symbolic, which keras.ops takes whatever the backend)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return TORCH
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.Array):
        return JAX
    tf = sys.modules.get("tensorflow")
    if tf is not None and (tf.is_tensor(x) or isinstance(x, tf.Variable)):
        return TF
    return None


def check_traced_backend(x, what: str) -> None:
    """Traced tensors go to the keras.ops reference, which runs on the Keras backend's framework
    only: a tensor traced by another framework (a jax.jit tracer under KERAS_BACKEND=tensorflow, a
    tf.function tensor under jax, ...) cannot be computed on and would fail deep inside Keras."""
    fw = traced_framework(x)
    if fw is None:
        return
    import keras

    backend = keras.backend.backend()
    if fw != backend:
        where = {TORCH: "torch.compile", JAX: "jax.jit or another JAX transformation",
                 TF: "tf.function or another TensorFlow graph"}[fw]
        raise InputTypeError(
            f"kerasrecipe.kernels: {what} is a traced {fw} tensor (inside {where}) but the Keras "
            f"backend is {backend!r}: traced tensors must come from the Keras backend in use, because "
            f"they are computed with keras.ops. Set KERAS_BACKEND={fw} before keras is imported, or call "
            f"kerasrecipe.kernels outside the trace (eager tensors and concrete arrays of any framework "
            f"work with any backend)."
        )


def unwrap(x):
    """keras.Variable -> its backend value; everything else unchanged."""
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(x, keras.Variable):
        return x.value
    return x


def dtype_name(x, kind: str) -> str:
    if kind == NUMPY:
        return np.asarray(x).dtype.name if not isinstance(x, np.ndarray) else x.dtype.name
    if kind == TORCH or (kind == TRACED and type(x).__module__.startswith("torch")):
        return str(x.dtype).replace("torch.", "")
    dt = getattr(x, "dtype", None)
    name = getattr(dt, "name", None)
    if name is None or kind == TRACED:
        import keras

        name = keras.backend.standardize_dtype(dt)
    return str(name)


def check_float(name: str, what: str) -> None:
    if name in FLOAT_DTYPES:
        return
    if name.startswith(("int", "uint", "bool")):
        raise InputTypeError(
            f"{what} has dtype {name}; the kernels work on floating-point tensors "
            f"({', '.join(FLOAT_DTYPES)}). Cast first, e.g. keras.ops.cast(x, 'float32')."
        )
    raise InputTypeError(f"{what} has unsupported dtype {name}; expected one of {', '.join(FLOAT_DTYPES)}")


def torch_buffer(t):
    """(contiguous detached tensor, ptr, numel, device index or -1)."""
    c = t.detach()
    if not c.is_contiguous():
        c = c.contiguous()
    dev = c.device.index if c.device.type == "cuda" else -1
    if c.device.type == "cuda" and dev is None:
        dev = sys.modules["torch"].cuda.current_device()
    return c, c.data_ptr(), c.numel(), dev


def numpy_view(x, kind: str) -> np.ndarray:
    """Host NumPy view (or copy) of an eager tensor, contiguous."""
    if kind == NUMPY:
        a = np.asarray(x)
    elif kind == TF:
        a = x.numpy()
    elif kind == JAX:
        a = np.asarray(x)
    elif kind == TORCH:
        t = x.detach().cpu()
        if t.dtype == sys.modules["torch"].bfloat16:
            import ml_dtypes

            a = t.view(sys.modules["torch"].int16).numpy().view(ml_dtypes.bfloat16)
        else:
            a = t.numpy()
    else:  # pragma: no cover
        raise AssertionError(kind)
    return native_order(np.ascontiguousarray(a))


def native_order(a: np.ndarray) -> np.ndarray:
    """`a` itself when its bytes are in the machine's order, else a copy that is (C-contiguous).
    The native kernels read raw buffers by dtype code, and a dtype's name ("float32") says
    nothing about byte order: a big-endian ">f4" array handed over as is reads as garbage."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="), order="C")


def array_ptr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0]) if a.size else 0
