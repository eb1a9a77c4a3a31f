#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "analytics.pb.h"
#include "server/aggregator/aggregator.h"
#include "server/storage/ingest_record.h"

namespace rta::server {

// Reads one event-log record back: decodes it, parses its message by kind, and calls `apply`
// for each event the record counted (the positions it lists as not accepted are skipped), with
// the record's ingest time. Shared by recovery (which rebuilds the aggregator) and the rollup
// writer (which folds the same events into the history), so both read a record the same way.
// Reuses its protobuf messages across calls: one reader per thread.
class LoggedEventReader {
 public:
  // False with *why naming the record when it does not decode or its message does not parse.
  // *record holds the decoded header afterwards (views into `bytes`). A kSignal record calls
  // `apply_signal` (when given; the history has no signals and passes none) instead of `apply`.
  using SignalApply = std::function<void(agg::SessionSignal signal, int64_t event_ms)>;
  bool Read(uint64_t lsn, std::string_view bytes, storage::IngestRecord* record,
            const std::function<void(const analytics::EventData&, int64_t ingest_ms)>& apply,
            std::string* why, const SignalApply& apply_signal = {});

 private:
  analytics::EventData event_;
  analytics::EventBatch batch_;
  analytics::PublishRequest publish_;
};

}  // namespace rta::server
