// pybind11 bindings of kerasrecipe._native. Tensors arrive as raw pointers (ints), element counts
// and dtype codes: no framework headers, one build for every backend and framework version.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"
#ifdef KR_WITH_CUDA
#include "cuda/api.h"
#endif

namespace py = pybind11;
using kr::TensorRef;

static std::vector<TensorRef> make_refs(const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels,
                                        const std::vector<int>& codes) {
    if (ptrs.size() != numels.size() || ptrs.size() != codes.size())
        throw std::invalid_argument("ptrs, numels and dtype codes must have the same length");
    std::vector<TensorRef> ts(ptrs.size());
    for (size_t i = 0; i < ptrs.size(); ++i) {
        if (codes[i] < 0 || codes[i] > 3) throw std::invalid_argument("dtype code must be 0..3 (f32, f64, f16, bf16)");
        if (numels[i] < 0) throw std::invalid_argument("numel must be >= 0");
        if (numels[i] > 0 && ptrs[i] == 0) throw std::invalid_argument("null data pointer for a non-empty tensor");
        ts[i] = TensorRef{reinterpret_cast<const void*>(ptrs[i]), numels[i], codes[i]};
    }
    return ts;
}

static kr::HistParams make_hist(int mode, double lo, double scale, int nbins) {
    if (mode != kr::HIST_LOG2 && mode != kr::HIST_UNIFORM) throw std::invalid_argument("hist mode must be 0 or 1");
    if (mode == kr::HIST_LOG2 && nbins != kr::N_LOG_BINS) throw std::invalid_argument("log2 histogram has 65 bins");
    if (nbins < 1 || nbins > (1 << 16)) throw std::invalid_argument("nbins must be in [1, 65536]");
    if (mode == kr::HIST_UNIFORM && !(scale > 0)) throw std::invalid_argument("uniform histogram needs scale > 0");
    return kr::HistParams{mode, lo, scale, nbins};
}

// Fast path for a list of eager torch tensors, without torch headers: reads dtype, contiguity,
// device, data pointer and element count through the Python C API (a few C calls per tensor
// instead of the Python dispatch code). Returns false -- nothing done, the caller takes the
// general path, which also produces the error messages -- unless every item is a contiguous
// tensor of a dtype in `codes` ({torch dtype: code}) on the same device (-1: CPU).
static bool torch_refs(py::handle seq, py::dict codes, std::vector<TensorRef>& out, int& device) {
    static PyObject* s_dtype = PyUnicode_InternFromString("dtype");
    static PyObject* s_contig = PyUnicode_InternFromString("is_contiguous");
    static PyObject* s_getdev = PyUnicode_InternFromString("get_device");
    static PyObject* s_ptr = PyUnicode_InternFromString("data_ptr");
    static PyObject* s_numel = PyUnicode_InternFromString("numel");
    PyObject* fast = PySequence_Fast(seq.ptr(), "expected a sequence");
    if (!fast) { PyErr_Clear(); return false; }
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject** items = PySequence_Fast_ITEMS(fast);
    out.clear();
    out.reserve(size_t(n));
    bool ok = n > 0;
    auto call_long = [&](PyObject* o, PyObject* name, long long& v) {
        PyObject* r = PyObject_CallMethodNoArgs(o, name);
        if (!r) { PyErr_Clear(); return false; }
        v = PyLong_AsLongLong(r);
        Py_DECREF(r);
        if (v == -1 && PyErr_Occurred()) { PyErr_Clear(); return false; }
        return true;
    };
    for (Py_ssize_t i = 0; ok && i < n; ++i) {
        PyObject* o = items[i];
        PyObject* dt = PyObject_GetAttr(o, s_dtype);
        if (!dt) { PyErr_Clear(); ok = false; break; }
        PyObject* code = PyDict_GetItemWithError(codes.ptr(), dt);  // borrowed
        Py_DECREF(dt);
        if (!code) { PyErr_Clear(); ok = false; break; }
        PyObject* c = PyObject_CallMethodNoArgs(o, s_contig);
        const bool contiguous = c == Py_True;
        Py_XDECREF(c);
        if (!contiguous) { PyErr_Clear(); ok = false; break; }
        long long dev = 0, numel = 0;
        if (!call_long(o, s_getdev, dev) || !call_long(o, s_numel, numel)) { ok = false; break; }
        PyObject* r = PyObject_CallMethodNoArgs(o, s_ptr);
        if (!r) { PyErr_Clear(); ok = false; break; }
        const unsigned long long p = PyLong_AsUnsignedLongLong(r);
        Py_DECREF(r);
        if (PyErr_Occurred()) { PyErr_Clear(); ok = false; break; }
        if (i == 0) device = int(dev);
        if (dev != device || (numel > 0 && p == 0) || numel < 0) { ok = false; break; }
        out.push_back(TensorRef{reinterpret_cast<const void*>(uintptr_t(p)), numel, int(PyLong_AsLong(code))});
    }
    Py_DECREF(fast);
    return ok;
}

using Stats = std::tuple<py::array_t<double>, py::array_t<int64_t>, py::array_t<int64_t>>;

static Stats alloc_stats(size_t n, int nbins) {
    return Stats{py::array_t<double>({n, size_t(kr::N_DBL)}), py::array_t<int64_t>({n, size_t(kr::N_CNT)}),
                 py::array_t<int64_t>({n, size_t(nbins)})};
}

#ifdef KR_WITH_CUDA
// The CUDA entry points, shared by the raw-pointer and the torch-list bindings.
static Stats cuda_stats_of(const std::vector<TensorRef>& ts, int device, uintptr_t stream, double saturation,
                           const kr::HistParams& hp) {
    Stats out = alloc_stats(ts.size(), hp.nbins);
    double* d = std::get<0>(out).mutable_data();
    int64_t* c = std::get<1>(out).mutable_data();
    int64_t* h = std::get<2>(out).mutable_data();
    {
        py::gil_scoped_release nogil;
        kr::gpu::stats_many(ts, device, stream, saturation, hp, d, c, h);
    }
    return out;
}

static void cuda_clip_of(const std::vector<TensorRef>& ts, int device, uintptr_t stream, double max_norm,
                         double eps, uintptr_t out_norm, uintptr_t out_flag) {
    if (!out_norm || !out_flag) throw std::invalid_argument("null output pointer");
    py::gil_scoped_release nogil;
    kr::gpu::clip_many(ts, device, stream, max_norm, eps, reinterpret_cast<float*>(out_norm),
                       reinterpret_cast<uint8_t*>(out_flag));
}
#endif

PYBIND11_MODULE(_native, m) {
    m.doc() = "kerasrecipe native kernels: single-pass activation statistics, global-norm clipping";
#ifdef KR_WITH_CUDA
    m.attr("cuda_compiled") = true;
#else
    m.attr("cuda_compiled") = false;
#endif
    m.attr("N_LOG_BINS") = kr::N_LOG_BINS;
    m.def("hardware_threads", &kr::hardware_threads, "std::thread::hardware_concurrency()");
    m.def("simd_level", &kr::simd_level, "'avx2' or 'base': which copy of the CPU loops runs");
    m.def("default_threads", &kr::default_threads,
          "threads a CPU kernel call uses when none are asked for: OpenMP's team size where torch's libgomp "
          "is shared (follows torch.set_num_threads), else every core");
    m.def("cpu_thread_pool", &kr::cpu_thread_pool,
          "'openmp' (the libgomp team torch loaded, shared) or 'std::thread': who runs the CPU kernels now");

    m.def(
        "stats_cpu",
        [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels, const std::vector<int>& codes,
           double saturation, int mode, double lo, double scale, int nbins, int nthreads) {
            auto ts = make_refs(ptrs, numels, codes);
            auto hp = make_hist(mode, lo, scale, nbins);
            Stats out = alloc_stats(ts.size(), nbins);
            double* d = std::get<0>(out).mutable_data();
            int64_t* c = std::get<1>(out).mutable_data();
            int64_t* h = std::get<2>(out).mutable_data();
            {
                py::gil_scoped_release nogil;
                kr::stats_many(ts, saturation, hp, nthreads, d, c, h);
            }
            return out;
        },
        py::arg("ptrs"), py::arg("numels"), py::arg("codes"), py::arg("saturation"), py::arg("mode"),
        py::arg("lo"), py::arg("scale"), py::arg("nbins"), py::arg("nthreads") = 0,
        "Statistics of host buffers -> (dbl[n,4]: mean,var,min,max; cnt[n,6]: count,finite,zeros,"
        "saturated,nan,inf; hist[n,nbins]).");

    m.def(
        "sumsq_cpu",
        [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels, const std::vector<int>& codes,
           int nthreads) {
            auto ts = make_refs(ptrs, numels, codes);
            py::gil_scoped_release nogil;
            return kr::sumsq_many(ts, nthreads);
        },
        py::arg("ptrs"), py::arg("numels"), py::arg("codes"), py::arg("nthreads") = 0,
        "Sum of squares (float64) over all host buffers.");

    m.def(
        "scale_cpu",
        [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels, const std::vector<int>& codes,
           double coef, int nthreads) {
            auto ts = make_refs(ptrs, numels, codes);
            py::gil_scoped_release nogil;
            kr::scale_many(ts, coef, nthreads);
        },
        py::arg("ptrs"), py::arg("numels"), py::arg("codes"), py::arg("coef"), py::arg("nthreads") = 0,
        "In place: every buffer *= coef.");

    m.def(
        "clip_cpu",
        [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels, const std::vector<int>& codes,
           double max_norm, double eps, int nthreads) {
            auto ts = make_refs(ptrs, numels, codes);
            py::gil_scoped_release nogil;
            return kr::clip_many(ts, max_norm, eps, nthreads);
        },
        py::arg("ptrs"), py::arg("numels"), py::arg("codes"), py::arg("max_norm"), py::arg("eps"),
        py::arg("nthreads") = 0, "In place global-norm clipping of host buffers; returns the norm before.");

    m.def(
        "torch_sumsq_cpu",
        [](py::handle tensors, py::dict codes, int nthreads) -> py::object {
            std::vector<TensorRef> ts;
            int device = -1;
            if (!torch_refs(tensors, codes, ts, device) || device != -1) return py::none();
            double s;
            {
                py::gil_scoped_release nogil;
                s = kr::sumsq_many(ts, nthreads);
            }
            return py::float_(s);
        },
        py::arg("tensors"), py::arg("codes"), py::arg("nthreads") = 0,
        "sumsq_cpu on a list of contiguous CPU torch tensors; None if any item is not one.");

    m.def(
        "torch_clip_cpu",
        [](py::handle tensors, py::dict codes, double max_norm, double eps, int nthreads) -> py::object {
            std::vector<TensorRef> ts;
            int device = -1;
            if (!torch_refs(tensors, codes, ts, device) || device != -1) return py::none();
            double norm;
            {
                py::gil_scoped_release nogil;
                norm = kr::clip_many(ts, max_norm, eps, nthreads);
            }
            return py::float_(norm);
        },
        py::arg("tensors"), py::arg("codes"), py::arg("max_norm"), py::arg("eps"), py::arg("nthreads") = 0,
        "clip_cpu on a list of contiguous CPU torch tensors; None (nothing done) if any item is not one.");

#ifdef KR_WITH_CUDA
    m.def("cuda_device_count", &kr::gpu::device_count, "usable CUDA devices (0 on any error, never raises)");
    m.def("cuda_unavailable_reason", &kr::gpu::unavailable_reason);
    m.def(
        "cuda_stats",
        [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels, const std::vector<int>& codes,
           int device, uintptr_t stream, double saturation, int mode, double lo, double scale, int nbins) {
            return cuda_stats_of(make_refs(ptrs, numels, codes), device, stream, saturation,
                                 make_hist(mode, lo, scale, nbins));
        },
        py::arg("ptrs"), py::arg("numels"), py::arg("codes"), py::arg("device"), py::arg("stream"),
        py::arg("saturation"), py::arg("mode"), py::arg("lo"), py::arg("scale"), py::arg("nbins"),
        "Statistics of device buffers in one launch on `stream` (synchronises it for the results).");
    m.def(
        "cuda_clip",
        [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels, const std::vector<int>& codes,
           int device, uintptr_t stream, double max_norm, double eps, uintptr_t out_norm, uintptr_t out_flag) {
            cuda_clip_of(make_refs(ptrs, numels, codes), device, stream, max_norm, eps, out_norm, out_flag);
        },
        py::arg("ptrs"), py::arg("numels"), py::arg("codes"), py::arg("device"), py::arg("stream"),
        py::arg("max_norm"), py::arg("eps"), py::arg("out_norm"), py::arg("out_flag"),
        "Global-norm clipping of device buffers in two launches on `stream`, no host sync.");
    m.def(
        "torch_clip_cuda",
        [](py::handle tensors, py::dict codes, int device, uintptr_t stream, double max_norm, double eps,
           uintptr_t out_norm, uintptr_t out_flag) {
            std::vector<TensorRef> ts;
            int dev = -1;
            if (!torch_refs(tensors, codes, ts, dev) || dev != device || device < 0) return false;
            cuda_clip_of(ts, device, stream, max_norm, eps, out_norm, out_flag);
            return true;
        },
        py::arg("tensors"), py::arg("codes"), py::arg("device"), py::arg("stream"), py::arg("max_norm"),
        py::arg("eps"), py::arg("out_norm"), py::arg("out_flag"),
        "cuda_clip on a list of contiguous torch tensors all on CUDA device `device`; False (nothing done) if not.");
    m.def(
        "torch_stats_cuda",
        [](py::handle tensors, py::dict codes, int device, uintptr_t stream, double saturation, int mode, double lo,
           double scale, int nbins) -> py::object {
            std::vector<TensorRef> ts;
            int dev = -1;
            if (!torch_refs(tensors, codes, ts, dev) || dev != device || device < 0) return py::none();
            return py::cast(cuda_stats_of(ts, device, stream, saturation, make_hist(mode, lo, scale, nbins)));
        },
        py::arg("tensors"), py::arg("codes"), py::arg("device"), py::arg("stream"), py::arg("saturation"),
        py::arg("mode"), py::arg("lo"), py::arg("scale"), py::arg("nbins"),
        "cuda_stats on a list of contiguous torch tensors all on CUDA device `device`; None if not.");
#else
    m.def("cuda_device_count", []() { return 0; }, "0: this build has no CUDA");
    m.def("cuda_unavailable_reason", []() { return std::string("built without CUDA (nvcc not found or KERASRECIPE_CUDA=0)"); });
#endif
}
