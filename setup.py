"""Build of kerasrecipe._native: C++17 via pybind11, plus CUDA sources when nvcc is found.

KERASRECIPE_CUDA=0  force a CPU-only build
KERASRECIPE_CUDA=1  a missing nvcc is an error
(unset)             CUDA is compiled in when nvcc is found (CUDA_HOME, /usr/local/cuda, PATH)

The extension links no framework: one build serves every backend. CUDA runtime is linked
statically, so importing never fails for lack of a GPU or a driver.
"""
import glob
import os
import shutil
import subprocess
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def find_nvcc():
    cands = []
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home:
        cands.append(os.path.join(home, "bin", "nvcc"))
    cands.append("/usr/local/cuda/bin/nvcc")
    w = shutil.which("nvcc")
    if w:
        cands.append(w)
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def cuda_wanted():
    flag = os.environ.get("KERASRECIPE_CUDA", "").strip()
    nvcc = find_nvcc()
    if flag == "0":
        return None
    if flag == "1" and nvcc is None:
        sys.exit("KERASRECIPE_CUDA=1 but nvcc was not found (set CUDA_HOME or put nvcc on PATH)")
    return nvcc


NVCC = cuda_wanted()
CPU_SOURCES = sorted(glob.glob("csrc/cpu/*.cpp")) + ["csrc/bindings.cpp"]
CUDA_SOURCES = sorted(glob.glob("csrc/cuda/*.cu")) if NVCC else []
ARCH_FLAGS = os.environ.get(
    "KERASRECIPE_CUDA_ARCH",
    "-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90 "
    "-gencode=arch=compute_90,code=compute_90",
).split()


class BuildExt(build_ext):
    """Compiles .cu files with nvcc into objects linked into the same module."""

    def build_extension(self, ext):
        if CUDA_SOURCES:
            objs = []
            tmp = os.path.join(self.build_temp, "cuda")
            os.makedirs(tmp, exist_ok=True)
            import pybind11

            headers = glob.glob("csrc/*.h") + glob.glob("csrc/cuda/*.h") + glob.glob("csrc/cuda/*.cuh")
            newest_header = max((os.path.getmtime(h) for h in headers), default=0.0)
            for src in CUDA_SOURCES:
                obj = os.path.join(tmp, os.path.basename(src) + ".o")
                objs.append(obj)
                if (not self.force and os.path.exists(obj)
                        and os.path.getmtime(obj) >= max(os.path.getmtime(src), newest_header)):
                    continue  # up to date
                cmd = [NVCC, "-c", src, "-o", obj, "-std=c++17", "-O3", "-Xcompiler", "-fPIC",
                       "--expt-relaxed-constexpr", "-Icsrc", "-I" + pybind11.get_include(),
                       *ARCH_FLAGS]
                print(" ".join(cmd), flush=True)
                subprocess.check_call(cmd, cwd=HERE)
            ext.extra_objects = list(ext.extra_objects or []) + objs
            cuda_home = os.path.dirname(os.path.dirname(os.path.realpath(NVCC)))
            libdirs = [os.path.join(cuda_home, d) for d in ("lib64", "lib", "targets/x86_64-linux/lib")]
            ext.library_dirs = list(ext.library_dirs or []) + [d for d in libdirs if os.path.isdir(d)]
            ext.libraries = list(ext.libraries or []) + ["cudart_static", "dl", "rt", "pthread"]
            ext.define_macros = list(ext.define_macros or []) + [("KR_WITH_CUDA", "1")]
        super().build_extension(ext)


ext = Pybind11Extension(
    "kerasrecipe._native",
    CPU_SOURCES,
    # headers and CUDA sources: a change to any of them relinks the module
    depends=sorted(glob.glob("csrc/**/*.h", recursive=True) + glob.glob("csrc/**/*.cuh", recursive=True)
                   + glob.glob("csrc/cuda/*.cu")),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-fno-math-errno"],
    extra_link_args=["-pthread", "-ldl"],  # dlopen: a loaded libgomp is shared (csrc/cpu/parallel.cpp)
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
