#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <cstdint>
#include <memory>
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
// Thread-safety: NotifyPublished() and NotifyShutdown() may be called from any thread; the rest
// runs on the worker's own thread. Shut down by the server: Shutdown() on the queue after the
// grpc::Server is shut down, then Join().
class Worker final : public CallBase {
 public:
  Worker(ServiceState& state, std::unique_ptr<grpc::ServerCompletionQueue> cq);
  ~Worker() override;

  void Start();
  void NotifyPublished(bool early);
  void NotifyShutdown();
  void ShutdownQueue() { cq_->Shutdown(); }
  void Join();

  grpc::ServerCompletionQueue* cq() { return cq_.get(); }
  void AddSubscriber(SubscribeCall* call, bool push_on_change);
  void RemoveSubscriber(SubscribeCall* call);

  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kPublished, kShutdown };
  void Run();

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
  std::vector<SubscribeCall*> subscribers_;       // this thread only
  std::vector<SubscribeCall*> push_subscribers_;  // this thread only; also in subscribers_
};

}  // namespace rta::server
