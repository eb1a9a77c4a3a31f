#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/service_state.h"

namespace rta::server {

class SubscribeCall;

// One completion queue and the thread that drains it. Calls requested on this queue live on
// this thread; subscribers register here so that a new snapshot reaches all of them through one
// alarm per queue per tick (not one per subscriber). An early snapshot (published for
// push_on_change subscribers) wakes only a queue that has such subscribers, and reaches only
// them; a regular tick reaches everyone even if an early snapshot superseded it before the
// worker got to it (snapshots are cumulative, so the newest one covers it).
//
// Every call state machine is counted here for its whole life (CallStarted() in its constructor,
// CallEnded() in its destructor, through a LiveCall member), and the queue is shut down only once
// that count is zero: an operation started on a completion queue that is already shut down is a
// fatal assertion in gRPC core, and a call can still start one (a Finish after its last write, a
// read after a message) while completions for it sit in the queue after grpc::Server::Shutdown()
// has returned. So the worker thread itself shuts its queue down, between two events, when no
// call is left to start anything.
//
// Thread-safety: NotifyPublished(), NotifyShutdown() and ShutdownQueueWhenIdle() may be called
// from any thread; the rest runs on the worker's own thread (or before Start()). Shut down by
// the server: ShutdownQueueWhenIdle() after the grpc::Server is shut down, then Join().
class Worker final : public CallBase {
 public:
  Worker(ServiceState& state, std::unique_ptr<grpc::ServerCompletionQueue> cq);
  ~Worker() override;

  void Start();
  void NotifyPublished(bool early);
  void NotifyShutdown();
  // After grpc::Server::Shutdown() has returned (no call can start any more): the queue is
  // shut down as soon as every call on it has freed itself; Join() then returns.
  void ShutdownQueueWhenIdle();
  void Join();
  // Call lifetime accounting, on the worker thread (or before Start()).
  void CallStarted() { ++live_calls_; }
  void CallEnded() { --live_calls_; }

  grpc::ServerCompletionQueue* cq() { return cq_.get(); }
  void AddSubscriber(SubscribeCall* call, bool push_on_change);

  // Durable acknowledgements. A call that must not answer before the event log is durable up
  // to `lsn` asks here (worker thread): true when it already is (nothing registered; also in
  // memory-only mode); otherwise the call is parked and `call->OnEvent(op, ok)` runs later on
  // this thread, with ok == true once the log is durable up to `lsn`, or ok == false when the
  // server drains while the log cannot write (the call then ends with UNAVAILABLE). The call
  // counts a parked wait as a pending operation.
  // NotifyDurable() is what the log calls back (any thread): one alarm in flight per queue,
  // however many calls wait, as with NotifyPublished().
  bool AwaitDurable(CallBase* call, int op, uint64_t lsn);
  void NotifyDurable();
  void RemoveSubscriber(SubscribeCall* call);

  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kPublished, kShutdown, kDrain, kDurable };
  struct DurableWait {
    uint64_t lsn;
    CallBase* call;
    int op;
  };
  void ReleaseDurableWaits(bool failed);
  void Run();
  void MaybeShutdownQueue();

  ServiceState& state_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread thread_;
  grpc::Alarm publish_alarm_;
  Tag publish_tag_{this, kPublished};
  std::atomic<bool> publish_pending_{false};
  std::atomic<bool> regular_tick_pending_{false};  // a regular tick since the last notification
  std::atomic<uint32_t> push_subscriber_count_{0};
  grpc::Alarm shutdown_alarm_;
  Tag shutdown_tag_{this, kShutdown};
  std::atomic<bool> shutdown_requested_{false};
  grpc::Alarm drain_alarm_;
  Tag drain_tag_{this, kDrain};
  std::atomic<bool> drain_alarm_set_{false};
  bool drain_requested_ = false;                  // this thread only: the drain alarm has fired
  std::mutex queue_mutex_;  // orders NotifyDurable()'s alarm before the queue's shutdown
  bool queue_shut_down_ = false;  // written on this thread under queue_mutex_
  int64_t live_calls_ = 0;                        // this thread only (or before Start())
  grpc::Alarm durable_alarm_;
  Tag durable_tag_{this, kDurable};
  std::atomic<bool> durable_pending_{false};
  std::vector<DurableWait> durable_waits_;        // this thread only
  std::vector<SubscribeCall*> subscribers_;       // this thread only
  std::vector<SubscribeCall*> push_subscribers_;  // this thread only; also in subscribers_
};

// A call's membership in its worker's live-call count: a member of every call state machine, so
// that the count covers the call from construction to destruction.
class LiveCall {
 public:
  explicit LiveCall(Worker& worker) : worker_(worker) { worker_.CallStarted(); }
  ~LiveCall() { worker_.CallEnded(); }
  LiveCall(const LiveCall&) = delete;
  LiveCall& operator=(const LiveCall&) = delete;

 private:
  Worker& worker_;
};

}  // namespace rta::server
