#include "dashboard_client/script_modes.h"

#include <cmath>
#include <map>
#include <thread>

#include "dashboard_client/render.h"

namespace rta::dashboard {
namespace {

std::string Number(double value) {
  char text[64];
  if (std::isfinite(value) && value == std::round(value) && std::fabs(value) < 1e15) {
    std::snprintf(text, sizeof text, "%.0f", value);
  } else {
    std::snprintf(text, sizeof text, "%.6g", value);
  }
  return text;
}

}  // namespace

std::string PlainLine(const analytics::MetricUpdate& update) {
  std::string line = "Updated metric: " + update.metric_type();
  if (!update.labels().empty()) {
    // Labels sorted by name, so lines are stable.
    std::map<std::string, std::string> labels(update.labels().begin(), update.labels().end());
    line += '{';
    bool first = true;
    for (const auto& [key, value] : labels) {
      if (!first) line += ',';
      first = false;
      line += key + "=" + value;
    }
    line += '}';
  }
  line += " = " + Number(update.value()) + " (" + WindowLabel(update.window()) + ")";
  if (update.top_size() > 0) {
    line += " top:";
    for (int i = 0; i < update.top_size(); ++i) {
      line +=
          (i == 0 ? " " : ", ") + update.top(i).key() + " " + std::to_string(update.top(i).count());
    }
  }
  return line;
}

nlohmann::json SnapshotJson(const std::vector<analytics::MetricUpdate>& updates,
                            const std::string& server) {
  nlohmann::json document = {{"server", server}, {"metrics", nlohmann::json::object()}};
  nlohmann::json& metrics = document["metrics"];
  for (const analytics::MetricUpdate& update : updates) {
    if (update.kind() != analytics::UPDATE_KIND_SNAPSHOT) continue;
    document["epoch"] = update.epoch();
    document["sequence"] = update.sequence();
    document["timestamp_ms"] = update.timestamp_ms();
    nlohmann::json& slot = metrics[update.metric_type()][WindowLabel(update.window())];
    if (!update.labels().empty()) {
      slot[update.labels().begin()->second] = update.value();
    } else if (update.top_size() > 0 || update.metric_type().rfind("top_", 0) == 0) {
      nlohmann::json top = nlohmann::json::array();
      for (const analytics::TopEntry& entry : update.top()) {
        top.push_back({{"key", entry.key()},
                       {"count", entry.count()},
                       {"error", entry.error()},
                       {"share", entry.share()}});
      }
      slot = {{"total", update.value()}, {"top", top}};
    } else {
      slot = std::isfinite(update.value()) ? nlohmann::json(update.value()) : nlohmann::json();
    }
  }
  return document;
}

int RunOnce(const std::shared_ptr<grpc::Channel>& channel, const SubscriptionOptions& options,
            bool as_json, std::chrono::milliseconds timeout, FILE* out, FILE* err) {
  auto stub = analytics::AnalyticsService::NewStub(channel);
  grpc::ClientContext context;
  client::AddCredentials(options.channel, &context);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  auto reader = stub->SubscribeMetricBatches(&context, options.request);
  std::vector<analytics::MetricUpdate> updates;
  analytics::MetricUpdateBatch batch;
  bool complete = false;
  while (!complete && reader->Read(&batch)) {
    for (const analytics::MetricUpdate& update : batch.updates()) {
      if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) {
        complete = true;
        context.TryCancel();  // that is all we wanted
        break;
      }
      updates.push_back(update);
    }
  }
  const grpc::Status status = reader->Finish();
  const std::string servers = client::DescribeServers(options.channel);
  if (!complete) {
    std::string message;
    if (status.ok()) {
      message = "the stream ended before the snapshot did";
    } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      // A host that drops packets (or a stuck server) answers nothing at all; say so instead
      // of gRPC's "Deadline Exceeded".
      message = "no snapshot from " + servers + " within " + std::to_string(timeout.count()) +
                " ms (DEADLINE_EXCEEDED); is the server up and reachable?";
    } else {
      message = DescribeFailure(status, servers);
    }
    std::fprintf(err, "dashboard_client: %s\n", message.c_str());
    return 1;
  }
  if (as_json) {
    std::fprintf(out, "%s\n", SnapshotJson(updates, servers).dump(2).c_str());
  } else {
    for (const analytics::MetricUpdate& u : updates)
      std::fprintf(out, "%s\n", PlainLine(u).c_str());
  }
  std::fflush(out);
  return 0;
}

int RunPlain(Subscription& subscription, const std::string& servers, FILE* out, FILE* err,
             const std::atomic<bool>& quit) {
  std::vector<analytics::MetricUpdate> updates;
  LinkState last_link = LinkState::kConnecting;
  std::string last_message;
  while (!quit.load()) {
    updates.clear();
    const SubscriptionStatus status = subscription.Drain(&updates);
    if (status.link != last_link || status.message != last_message) {
      if (status.link == LinkState::kConnected) {
        std::fprintf(err, "dashboard_client: connected to %s\n", servers.c_str());
      } else if (!status.message.empty()) {
        std::fprintf(err, "dashboard_client: %s%s\n", status.message.c_str(),
                     status.link == LinkState::kReconnecting ? ", reconnecting" : "");
      }
      last_link = status.link;
      last_message = status.message;
    }
    for (const analytics::MetricUpdate& update : updates) {
      if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) continue;
      if (update.skipped() > 0) {
        std::fprintf(err, "dashboard_client: %llu updates skipped (slow reader)\n",
                     static_cast<unsigned long long>(update.skipped()));
      }
      std::fprintf(out, "%s\n", PlainLine(update).c_str());
    }
    if (!updates.empty() && (std::fflush(out) != 0 || std::ferror(out))) {
      // The reader is gone (`| grep -m1 ...` has its line; SIGPIPE is ignored) or the disk is
      // full: nothing more can land, so stop rather than stream into the void.
      std::fprintf(err, "dashboard_client: writing the updates failed; stopping\n");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return 0;
}

}  // namespace rta::dashboard
