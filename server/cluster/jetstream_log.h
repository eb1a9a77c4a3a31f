#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/storage/event_log.h"

namespace rta::cluster {

// The event log in a NATS JetStream stream (issue 16, docs/design/cluster.md): the records of
// one subject (one partition's, later) in a stream replicated on `replicas` NATS servers. An
// EventLog like the local segment log, so that the ingest path and the recovery do not change:
// a record is durable once JetStream has stored it on a quorum of the stream's replicas.
//
// One writer thread does group commit as the segment log does: everything appended since the
// last publish goes out as one JetStream message (up to the server's max_payload), one message
// in flight at a time. Each message carries its first Lsn and record count in headers, a
// message id `<writer_id>:<first lsn>` (JetStream's de-duplication window catches the re-send of
// a message whose acknowledgement was lost) and the subject sequence it expects to follow. That
// last header is the fencing: a second writer on the same subject (a node that lost its lease,
// later) has its publish refused instead of interleaving; this log then stops being writable.
//
// Lsns continue across restarts from the subject's last message. ReadFrom reads the subject
// with an ordered consumer; TruncateBefore purges the subject's messages whose records are all
// below the given Lsn.
//
// All methods are thread-safe.
struct JetStreamLogOptions {
  std::vector<std::string> servers;  // nats://host:port, any of the cluster's
  std::string stream = "RTA_EVENTS";
  std::string subject = "rta.ev.0";
  int replicas = 3;                   // used when the stream is created
  int duplicate_window_ms = 120'000;  // JetStream's Duplicates, when the stream is created
  std::string writer_id = "node";     // names this writer in message ids
  uint64_t max_pending_bytes = 256 << 20;
  int publish_timeout_ms = 5000;  // one attempt; then the same message again
  int retry_interval_ms = 250;
  int close_timeout_ms = 5000;      // the destructor's last attempts at what is pending
  int connect_timeout_ms = 10'000;  // Open: until the stream answers
  // TruncateBefore purges the messages it covers. Off while checkpoints are local (the server's
  // first cluster step): a node that starts on another machine rebuilds from the whole stream.
  bool purge_on_truncate = true;
};

// Connects, creates the stream if it does not exist (subjects `<subject prefix>.>`, file
// storage, the replicas and duplicate window above) and reads where the subject's Lsns stand.
// Null and *error when the cluster does not answer within connect_timeout_ms.
std::unique_ptr<storage::EventLog> OpenJetStreamLog(const JetStreamLogOptions& options,
                                                    storage::OpenReport* report,
                                                    std::string* error);

}  // namespace rta::cluster
