// pybind11 bindings of kerasrecipe._native (placeholder until the kernels land).
#include <pybind11/pybind11.h>
namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
    m.doc() = "kerasrecipe native kernels";
#ifdef KR_WITH_CUDA
    m.attr("cuda_compiled") = true;
#else
    m.attr("cuda_compiled") = false;
#endif
}
