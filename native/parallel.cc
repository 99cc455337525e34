#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace innflow {
namespace {

thread_local bool insideWorker = false;

// Workers sleep on a condition variable; a job is published with a generation number and chunks are claimed
// through an atomic counter, so the calling thread works too and uneven chunks balance out.
class ThreadPool {
 public:
  explicit ThreadPool(int n) { resize(n); }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    n = std::max(1, n);
    stopWorkers();
    // A worker must start from the generation current at its creation: reading it later, from inside the
    // new thread, could skip a job published in between and leave run() waiting forever.
    for (int i = 0; i < n - 1; i++) workers_.emplace_back([this, start = generation_] { workerLoop(start); });
  }

  void run(int64_t chunks, const std::function<void(int64_t)>& body) {
    std::unique_lock<std::mutex> lock(mutex_);
    body_ = &body;
    chunkCount_ = chunks;
    nextChunk_.store(0);
    pending_ = static_cast<int>(workers_.size());
    generation_++;
    lock.unlock();
    wake_.notify_all();
    work();
    lock.lock();
    done_.wait(lock, [this] { return pending_ == 0; });
    body_ = nullptr;
  }

 private:
  void work() {
    insideWorker = true;
    for (int64_t c; (c = nextChunk_.fetch_add(1)) < chunkCount_;) (*body_)(c);
    insideWorker = false;
  }
  void workerLoop(uint64_t seen) {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      lock.unlock();
      work();
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }
  void stopWorkers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* body_ = nullptr;
  int64_t chunkCount_ = 0;
  std::atomic<int64_t> nextChunk_{0};
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

int defaultThreads() {
  if (const char* env = std::getenv("INNFLOW_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

// Deliberately leaked: joining threads from a static destructor at process exit can deadlock.
ThreadPool& pool() {
  static ThreadPool* p = new ThreadPool(defaultThreads());
  return *p;
}

}  // namespace

void setNumThreads(int n) { pool().resize(n); }
int numThreads() { return pool().size(); }

void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  ThreadPool& p = pool();
  int64_t maxChunks = (n + grain - 1) / grain;
  int64_t chunks = std::min<int64_t>(maxChunks, static_cast<int64_t>(p.size()) * 4);
  if (insideWorker || chunks <= 1 || p.size() == 1) {
    fn(0, n);
    return;
  }
  int64_t step = (n + chunks - 1) / chunks;
  p.run(chunks, [&](int64_t c) {
    int64_t b = c * step, e = std::min(n, b + step);
    if (b < e) fn(b, e);
  });
}

}  // namespace innflow
