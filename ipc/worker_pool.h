// Blocking work off the event loop: a few threads run what would stall the
// loop (fsync-bound artifact puts, reads from disk, gc), and each job's
// completion is handed back to the loop's thread through an eventfd, so
// replies are sent where every other callback runs. The loop never waits on
// the disk; a job never touches loop state except in its completion.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "ipc/event_loop.h"

namespace symphony::ipc {

class WorkerPool {
 public:
  // A job runs on a worker thread and returns its completion, which runs on
  // the loop's thread (an empty Task means nothing to do there).
  using Job = std::function<Task()>;

  // Starts `threads` workers (at least one). Call from the loop's thread.
  static Result<std::unique_ptr<WorkerPool>> create(EventLoop& loop, unsigned threads);
  // Waits for the jobs already started; jobs not yet started are dropped
  // without running, and completions not yet delivered are destroyed on this
  // thread (a Responder they hold then answers internal_error).
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `job`; jobs start in submission order (they may finish in any
  // order when there is more than one thread).
  void submit(Job job);
  // Runs `task` on the loop's thread soon; callable from any thread (a job
  // reporting progress before its completion). Dropped once the pool is
  // being destroyed.
  void post(Task task);

  std::size_t threads() const;
  std::size_t queued() const;  // submitted, not yet started
  std::size_t running() const;

 private:
  struct Shared;
  explicit WorkerPool(std::shared_ptr<Shared> shared);
  void arm();
  static void arm_poll(const std::shared_ptr<Shared>& shared);

  std::shared_ptr<Shared> shared_;
};

}  // namespace symphony::ipc
