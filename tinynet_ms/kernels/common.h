// Shared by the tinynet_ms CPU kernels: a small persistent thread pool, 8-float vectors (GCC's vector
// extension) and argument-check helpers. Everything is inline in a named namespace, so the translation units
// of the kernel library share one pool.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tinynet {

constexpr int64_t kMinParallelWork = 1 << 17;  // elements / multiply-adds below which one thread is faster

inline int NumThreads() {
  static const int n = [] {
    const char *env = std::getenv("TINYNET_MS_KERNEL_THREADS");
    if (env != nullptr && std::atoi(env) > 0) return std::atoi(env);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return n;
}

// A small persistent thread pool (NumThreads() - 1 workers, created on first use, never destroyed) that runs
// body(chunk) for chunk in [0, chunks), handing chunks out dynamically so a descheduled thread only delays
// the chunk it holds. The caller works too. One job at a time: a caller that finds the pool busy (MindSpore
// may run two kernels concurrently) runs its job inline, as does a forked child (the workers stay in the parent).
class Pool {
 public:
  static Pool &Get() {
    static Pool *pool = new Pool(NumThreads() - 1);  // leaked on purpose: no teardown races at exit
    return *pool;
  }

  // False if a chunk threw (bad_alloc); the other chunks still ran.
  bool Run(int64_t chunks, const std::function<void(int64_t)> &body) {
    std::unique_lock<std::mutex> job;
    if (getpid() == pid_ && !threads_.empty() && chunks > 1) job = std::unique_lock<std::mutex>(submit_, std::try_to_lock);
    if (!job.owns_lock()) {
      bool ok = true;
      for (int64_t c = 0; c < chunks; ++c) ok = RunChunk(body, c) && ok;
      return ok;
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      body_ = &body;
      chunks_ = chunks;
      next_.store(0);
      failed_.store(false);
      ++gen_;
      open_ = true;
    }
    wake_.notify_all();
    for (int64_t c; (c = next_.fetch_add(1)) < chunks;)
      if (!RunChunk(body, c)) failed_.store(true);
    std::unique_lock<std::mutex> lk(m_);
    open_ = false;  // workers that have not joined yet will not
    idle_.wait(lk, [this] { return active_ == 0; });
    return !failed_.load();
  }

 private:
  explicit Pool(int workers) : pid_(getpid()) {
    for (int i = 0; i < workers; ++i) {
      threads_.emplace_back([this] { Work(); });
      threads_.back().detach();
    }
  }

  static bool RunChunk(const std::function<void(int64_t)> &body, int64_t c) {
    try {
      body(c);
      return true;
    } catch (...) {
      return false;
    }
  }

  void Work() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      wake_.wait(lk, [&] { return open_ && gen_ != seen; });
      seen = gen_;
      ++active_;
      const std::function<void(int64_t)> *body = body_;
      const int64_t chunks = chunks_;
      lk.unlock();
      for (int64_t c; (c = next_.fetch_add(1)) < chunks;)
        if (!RunChunk(*body, c)) failed_.store(true);
      lk.lock();
      if (--active_ == 0) idle_.notify_all();
    }
  }

  const pid_t pid_;
  std::vector<std::thread> threads_;
  std::mutex submit_, m_;
  std::condition_variable wake_, idle_;
  const std::function<void(int64_t)> *body_ = nullptr;
  int64_t chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<bool> failed_{false};
  uint64_t gen_ = 0;
  bool open_ = false;
  int active_ = 0;
};

// fn(begin, end) over [0, n) in contiguous pieces, on the pool when there is enough work. False on failure.
template <class F>
inline bool ParallelFor(int64_t n, int64_t work, const F &fn) {
  const int64_t threads = NumThreads();
  if (threads <= 1 || n <= 1 || work < kMinParallelWork) {
    try {
      fn(int64_t{0}, n);
      return true;
    } catch (...) {
      return false;
    }
  }
  const int64_t chunks = std::min<int64_t>(n, threads * 8);
  return Pool::Get().Run(chunks, [&](int64_t c) { fn(n * c / chunks, n * (c + 1) / chunks); });
}

// 8-float vectors via GCC's vector extension: one AVX register with -mavx2, two SSE registers without. `VecU`
// is the unaligned, aliasing view used for loads and stores.
typedef float Vec __attribute__((vector_size(32)));
typedef float VecU __attribute__((vector_size(32), aligned(4), may_alias));
constexpr int64_t kVec = 8;

inline Vec Load(const float *p) { return *reinterpret_cast<const VecU *>(p); }
inline void Store(float *p, Vec v) { *reinterpret_cast<VecU *>(p) = v; }
inline Vec Splat(float x) { return Vec{} + x; }

typedef int IVec __attribute__((vector_size(32)));
typedef float Vec4U __attribute__((vector_size(16), aligned(4), may_alias));

// exp as the Cephes single-precision polynomial (about 1 ulp) on 8-float vectors.
inline Vec Exp(Vec x) {
  // |x| <= 87 keeps 2^n a normal float; sigmoid is 1 or 0 to float32 precision well before that.
  x = x < Splat(87.0f) ? x : Splat(87.0f);
  x = x > Splat(-87.0f) ? x : Splat(-87.0f);
  // x = n * ln2 + r, |r| <= ln2 / 2. Adding 1.5 * 2^23 (+ 127, the exponent bias) rounds x / ln2 to the integer n
  // and leaves n + 127 in t's low mantissa bits: n and 2^n without float<->int conversions, in fewer instructions
  // (Swish is the pointwise kernels' epilogue). Against a floor(x / ln2 + 1/2) form only the ties round otherwise:
  // 16 of the 4.3e9 finite floats, by 1 ulp.
  const Vec t = x * 1.44269504088896341f + (12582912.0f + 127.0f);
  const Vec n = t - (12582912.0f + 127.0f);
  const Vec r = x - n * 0.693359375f + n * 2.12194440e-4f;
  Vec p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n as float bits; a cast between GCC vector types of one size reinterprets the bits.
  return p * (Vec)((IVec)t << 23);
}

inline Vec Sigmoid(Vec x) { return 1.0f / (1.0f + Exp(-x)); }

// Loads/stores a vector at p, or its first m < kVec floats (the rest read as 0).
inline Vec LoadPart(const float *p, int64_t m) {
  if (m == kVec) return Load(p);
  Vec v = Splat(0.f);
  for (int64_t j = 0; j < m; ++j) v[j] = p[j];
  return v;
}

inline void StorePart(float *p, Vec v, int64_t m) {
  if (m == kVec) return Store(p, v);
  for (int64_t j = 0; j < m; ++j) p[j] = v[j];
}

inline int Fail(const char *entry, const char *msg) {
  std::fprintf(stderr, "[tinynet_ms kernel] %s: %s\n", entry, msg);
  std::fflush(stderr);
  return 1;
}

inline bool IsF32(const char *dtype) { return std::strcmp(dtype, "float32") == 0 || std::strcmp(dtype, "float") == 0; }

}  // namespace tinynet
