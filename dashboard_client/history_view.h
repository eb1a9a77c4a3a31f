#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "analytics.grpc.pb.h"
#include "clients/common/client_channel.h"
#include "dashboard_client/render.h"
#include "dashboard_client/screen.h"

namespace rta::dashboard {

// The terminal dashboard's history view (the `t`, `f` and `b` keys): a past range from the
// server's rollups (QueryMetrics), every KPI tile with its change against the period before,
// optionally one segment (filters) and a breakdown table. What it shows and asks for; the
// terminal loop owns it.
struct HistoryView {
  std::string range;        // "" (the live view), "1h", "24h", "7d", "30d"
  std::string filter_text;  // as typed at the `f` prompt: "country=DE utm_campaign=spring"
  std::string breakdown;    // "" or a dimension
  bool prompt_open = false;
  std::string prompt_input;

  bool has_result = false;
  analytics::RangeResult result;  // the last answer for the current query
  std::string error;              // why the last query failed ("" when it did not)
  bool error_transient = false;   // the server was unreachable or busy: ask again at the refresh
  bool loading = false;
};

// Whether the filter text has a condition on `dimension` ("country=DE ..." names country).
bool FilterNames(const std::string& filter_text, const std::string& dimension);
// `t`: live -> 1h -> 24h -> 7d -> 30d -> live.
std::string NextRange(const std::string& range);
// `b`: none -> page -> country -> device -> referrer -> utm_source -> utm_campaign -> event_type
// -> none, skipping the dimensions `filter_text` already filters on (the server refuses a
// breakdown by a filtered dimension).
std::string NextBreakdown(const std::string& breakdown, const std::string& filter_text);
// "last 7 days".
std::string RangeTitle(const std::string& range);

// The QueryMetrics request for the view: its range, filters and breakdown, the tiles' metrics
// and the breakdown table's, and the previous period. False with *error (naming the filter word
// that is wrong) when the filter text does not parse.
bool BuildHistoryQuery(const HistoryView& view, int breakdown_rows, analytics::RangeQuery* query,
                       std::string* error);

// Draws the history view into the screen (any size; below 40x12 a "too small" notice): title
// bar, eight KPI tiles (total, change against the period before, the series as a sparkline),
// the breakdown table or a hint, the notes or the error, the filter prompt, the status line.
void RenderHistory(const HistoryView& history, const ViewState& view, Screen* screen);
// How many breakdown rows the history view has room for on a screen of `height` lines.
int HistoryBreakdownRows(int width, int height);

// Runs QueryMetrics for the history view without blocking the terminal's frame loop: each call
// goes out on a completion queue of this object's own, which Poll() checks without waiting once
// per frame. Start() while a call is in flight cancels that call, whose answer is then dropped.
// Not thread-safe: the UI thread owns it; the destructor cancels what is in flight and waits
// for gRPC to hand the calls back.
class HistoryQueries {
 public:
  HistoryQueries(std::shared_ptr<grpc::Channel> channel, client::ChannelOptions options,
                 std::chrono::milliseconds timeout);
  ~HistoryQueries();
  HistoryQueries(const HistoryQueries&) = delete;
  HistoryQueries& operator=(const HistoryQueries&) = delete;

  void Start(const analytics::RangeQuery& query);
  // True once the call started last has finished, with *result (status OK) or *status.
  bool Poll(analytics::RangeResult* result, grpc::Status* status);

 private:
  struct Call {
    grpc::ClientContext context;
    analytics::RangeResult result;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<analytics::RangeResult>> reader;
  };

  std::unique_ptr<analytics::AnalyticsService::Stub> stub_;
  client::ChannelOptions options_;
  std::chrono::milliseconds timeout_;
  grpc::CompletionQueue queue_;
  std::map<uint64_t, std::unique_ptr<Call>> calls_;  // in flight (cancelled ones included)
  uint64_t next_id_ = 1;
  uint64_t current_ = 0;  // the call whose answer is wanted
};

}  // namespace rta::dashboard
