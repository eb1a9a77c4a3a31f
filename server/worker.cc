#include "server/worker.h"

#include <algorithm>

#include "server/subscribe_call.h"

namespace rta::server {

Worker::Worker(ServiceState& state, std::unique_ptr<grpc::ServerCompletionQueue> cq)
    : state_(state), cq_(std::move(cq)) {}

Worker::~Worker() { Join(); }

void Worker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Run() {
  void* tag = nullptr;
  bool ok = false;
  // Next() returns false only once the queue is shut down and fully drained; the queue is shut
  // down only when no call is left (MaybeShutdownQueue), so nothing can start an operation on
  // it afterwards.
  while (cq_->Next(&tag, &ok)) {
    DispatchTag(tag, ok);
    MaybeShutdownQueue();
  }
}

void Worker::ShutdownQueueWhenIdle() {
  if (drain_alarm_set_.exchange(true, std::memory_order_acq_rel)) return;
  // The request itself travels through the queue (the worker notes it when the alarm fires), so
  // the queue cannot be shut down before this Set() has started its operation on it.
  drain_alarm_.Set(cq_.get(), gpr_now(GPR_CLOCK_MONOTONIC), &drain_tag_);
}

void Worker::MaybeShutdownQueue() {
  if (queue_shut_down_ || live_calls_ != 0 || !drain_requested_) return;
  // The worker's own alarms may still be pending; they complete during the drain (a queue that
  // is shut down still delivers what was started before).
  std::lock_guard lock(queue_mutex_);
  queue_shut_down_ = true;
  cq_->Shutdown();
}

void Worker::NotifyPublished(bool early) {
  if (!early) {
    regular_tick_pending_.store(true, std::memory_order_seq_cst);
  } else if (push_subscriber_count_.load(std::memory_order_relaxed) == 0) {
    return;  // nobody here wants early snapshots
  }
  // One alarm in flight per queue: if the worker has not handled the previous notification yet,
  // it will read the newest snapshot (and the regular-tick flag) when it does.
  if (publish_pending_.exchange(true, std::memory_order_seq_cst)) return;
  publish_alarm_.Set(cq_.get(), gpr_now(GPR_CLOCK_MONOTONIC), &publish_tag_);
}

void Worker::NotifyShutdown() {
  if (shutdown_requested_.exchange(true, std::memory_order_acq_rel)) return;
  shutdown_alarm_.Set(cq_.get(), gpr_now(GPR_CLOCK_MONOTONIC), &shutdown_tag_);
}

void Worker::OnEvent(int op, bool /*ok*/) {
  // Alarms complete with ok == false only when cancelled, which this class never does; either
  // way the right action is the same.
  if (op == kPublished) {
    // In this order: a notification arriving from here on sets a new alarm, and what it
    // published is read below or by that alarm.
    publish_pending_.store(false, std::memory_order_seq_cst);
    const bool regular = regular_tick_pending_.exchange(false, std::memory_order_seq_cst);
    const auto latest = state_.hub.Latest();
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
    // Calls leave the list only from their done tag, never from inside these loops.
    for (SubscribeCall* call : regular ? subscribers_ : push_subscribers_) {
      call->OnPublished(latest, now_ms, regular);
    }
  } else if (op == kShutdown) {
    for (SubscribeCall* call : subscribers_) call->OnShutdown();
  } else if (op == kDurable) {
    durable_pending_.store(false, std::memory_order_seq_cst);
    ReleaseDurableWaits(/*failed=*/drain_requested_ && state_.log != nullptr &&
                        !state_.log->health().writable);
  } else {  // kDrain: Run() checks MaybeShutdownQueue() right after this
    drain_requested_ = true;
    // The server is past its grace period: what the log has not made durable by now will not
    // be acknowledged (when the log can write, the waits end by themselves in a few ms).
    if (state_.log != nullptr && !state_.log->health().writable) ReleaseDurableWaits(true);
  }
}

bool Worker::AwaitDurable(CallBase* call, int op, uint64_t lsn) {
  if (state_.log == nullptr || state_.log->durable_lsn() >= lsn) return true;
  durable_waits_.push_back({lsn, call, op});
  // The log calls back on its writer thread once durable up to lsn (or at once, here, if it
  // already is); the callback only sets this worker's alarm, so it holds nothing of the call.
  state_.log->WhenDurable(lsn, [this](bool) { NotifyDurable(); });
  return false;
}

void Worker::NotifyDurable() {
  if (durable_pending_.exchange(true, std::memory_order_seq_cst)) return;
  // The log may call back after this queue is shut down (waits failed at drain fire when the
  // log closes): an alarm on a shut-down queue is fatal, so check under the mutex that
  // MaybeShutdownQueue() holds while it shuts the queue down.
  std::lock_guard lock(queue_mutex_);
  if (queue_shut_down_) return;
  durable_alarm_.Set(cq_.get(), gpr_now(GPR_CLOCK_MONOTONIC), &durable_tag_);
}

void Worker::ReleaseDurableWaits(bool failed) {
  if (durable_waits_.empty()) return;
  const uint64_t durable = state_.log != nullptr ? state_.log->durable_lsn() : UINT64_MAX;
  // Taken out first: a released call may park again (its next batch) or free itself.
  std::vector<DurableWait> ready;
  for (size_t i = 0; i < durable_waits_.size();) {
    if (failed || durable_waits_[i].lsn <= durable) {
      ready.push_back(durable_waits_[i]);
      durable_waits_[i] = durable_waits_.back();
      durable_waits_.pop_back();
    } else {
      ++i;
    }
  }
  for (const DurableWait& wait : ready) {
    wait.call->OnEvent(wait.op, !failed || wait.lsn <= durable);
  }
}

void Worker::AddSubscriber(SubscribeCall* call, bool push_on_change) {
  call->worker_slot = subscribers_.size();
  subscribers_.push_back(call);
  if (push_on_change) {
    push_subscribers_.push_back(call);
    push_subscriber_count_.fetch_add(1, std::memory_order_relaxed);
    state_.push_subscribers.fetch_add(1, std::memory_order_relaxed);
  }
}

void Worker::RemoveSubscriber(SubscribeCall* call) {
  // Push subscribers are few: a linear search is fine.
  if (auto it = std::find(push_subscribers_.begin(), push_subscribers_.end(), call);
      it != push_subscribers_.end()) {
    *it = push_subscribers_.back();
    push_subscribers_.pop_back();
    push_subscriber_count_.fetch_sub(1, std::memory_order_relaxed);
    state_.push_subscribers.fetch_sub(1, std::memory_order_relaxed);
  }
  const size_t slot = call->worker_slot;
  subscribers_[slot] = subscribers_.back();
  subscribers_[slot]->worker_slot = slot;
  subscribers_.pop_back();
}

}  // namespace rta::server
