// Exceptions inside OpenMP parallel regions, and a test hook that throws one.
//
// An exception must not leave a parallel region: the compiler wraps the region
// in a "must not throw" block, so it would call std::terminate and take down the
// Python process or the LAMMPS run without a message. Parallel code runs its
// per-item work through OmpErrors::run, which keeps the first exception (later
// items become no-ops); the caller re-throws it with rethrow() after the region.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

namespace mtpkit {

class OmpErrors {
 public:
  template <class F>
  void run(F&& body) noexcept {
    if (failed()) return;
    try {
      body();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  // Re-throws the first exception caught by run(), if any (call after the region).
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::exception_ptr first_;
};

// Test hook (mtpkit._core._set_failpoint): while armed, the parallel loop `where`
// throws std::runtime_error("injected fault (<where> <index>)") from the thread
// that handles item `index` (site of packed_site_energies, atom of
// build_neighbor_list). Off unless a test arms it; the check is one relaxed load.
enum class Failpoint : int { none = 0, site = 1, neighbor = 2 };
void set_failpoint(Failpoint where, int64_t index);
[[noreturn]] void throw_failpoint(Failpoint where, int64_t index);
extern std::atomic<int> g_failpoint_where;
extern std::atomic<int64_t> g_failpoint_index;

// Throws when `where` is armed at an item in [lo, hi).
inline void failpoint(Failpoint where, int64_t lo, int64_t hi) {
  if (g_failpoint_where.load(std::memory_order_relaxed) != static_cast<int>(where)) return;
  const int64_t k = g_failpoint_index.load(std::memory_order_relaxed);
  if (k >= lo && k < hi) throw_failpoint(where, k);
}

}  // namespace mtpkit
