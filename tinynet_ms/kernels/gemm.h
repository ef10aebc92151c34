// Row-major single-precision GEMM for the kernels: oneDNN's sgemm from MindSpore's own libdnnl when the library is
// built against it (TINYNET_DNNL, see build.py; its JIT kernels are chosen for the CPU at run time), else a plain
// loop doing the same arithmetic. Single-threaded (outside a oneDNN threadpool): callers spread blocks over the
// kernel pool.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef TINYNET_DNNL
extern "C" int dnnl_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                          int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
#endif

namespace tinynet {

// C (m x n, ldc) = A (m x k, lda) @ op(B), op(B) = B (k x n, ldb) or, with trans_b, B^T for B (n x k). False if
// oneDNN reports an error.
inline bool Gemm(bool trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                 int64_t ldb, float *c, int64_t ldc) {
#ifdef TINYNET_DNNL
  return dnnl_sgemm('N', trans_b ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc) == 0;
#else
  for (int64_t i = 0; i < m; ++i) {
    float *row = c + i * ldc;
    std::fill(row, row + n, 0.0f);
    for (int64_t p = 0; p < k; ++p) {
      const float s = a[i * lda + p];
      if (trans_b) {
        for (int64_t j = 0; j < n; ++j) row[j] += s * b[j * ldb + p];
      } else {
        const float *src = b + p * ldb;
        for (int64_t j = 0; j < n; ++j) row[j] += s * src[j];
      }
    }
  }
  return true;
#endif
}

}  // namespace tinynet
