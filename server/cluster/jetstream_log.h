#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
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
// in flight at a time. Each message carries its first Lsn and record count in headers, the
// subject sequence it expects to follow, and a message id naming that chain position,
// `<subject>@<sequence it follows>`. Together they are the fencing: a second writer on the same
// subject (a partition owner that lost its lease) has its publish refused, or dropped as a
// duplicate of the position's first message, instead of interleaving or forking the subject;
// this log then stops being writable. The id is needed because the NATS server checks the
// expected sequence of a replicated stream only before the replicas apply the message
// (nats-io/nats-server#4320), while it de-duplicates ids as they apply it. A header names the
// writer, so the re-send of a message whose acknowledgement was lost is told apart from
// another writer's message at the same position.
//
// Lsns continue across restarts from the subject's last message. ReadFrom reads the subject
// with direct gets, one per message (the stream is created, or updated, with AllowDirect);
// TruncateBefore purges the subject's messages whose records are all
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

  // Ingest mode (cluster partitions, docs/design/cluster.md): when set, each record group is
  // split into the parts of its partitions and each part is published to
  // `<subject prefix>.<partition>` (chunked below max_payload), with message id
  // `<writer_id>:<first lsn>:<partition>:<chunk>` and no expected sequence: every node writes
  // every partition's subject, and the partition's owner orders them by stream sequence. A group
  // is durable once every part is stored. Lsns are this log's own (from 1 at each open; the
  // writer id must then differ per process, e.g. carry a random incarnation). ReadFrom reads
  // nothing and TruncateBefore does nothing: the owners read the partitions' subjects.
  //
  // split(record, parts, ingest_ms) appends each of the record's events to (*parts)[partition]
  // (whose size is `partitions`) as an EventBatch field (its wire bytes), and raises *ingest_ms
  // to the record's ingest time; false when the record cannot be read (counted as a write error,
  // the record is skipped). Runs on the writer thread.
  uint32_t partitions = 0;
  std::function<bool(std::string_view record, std::vector<std::string>* parts, int64_t* ingest_ms)>
      split;
};

// The header of an ingest-mode message with the latest ingest time (ms since the epoch) of the
// records in it: an owner replays the events as accepted then.
inline constexpr char kIngestMsHeader[] = "Rta-Ingest-Ms";

// The stream `stream` with `subjects` (file storage, `replicas`, JetStream's de-duplication
// window), created if it does not exist. A new cluster elects its JetStream leader first: this
// retries until timeout_ms. False and *error when it is still not available then.
bool EnsureStream(jsCtx* js, const std::string& stream, const std::string& subjects, int replicas,
                  int duplicate_window_ms, int timeout_ms, std::string* error);

// Calls visit(lsn, record) for every record of a message this log published (not in ingest
// mode), in order; false when the message is not a record group of this log or visit stopped.
// For readers that follow several subjects with their own consumer (the partial merger).
bool ForEachLogRecord(natsMsg* msg,
                      const std::function<bool(storage::Lsn, std::string_view)>& visit);

// Connects, creates the stream if it does not exist (subjects `<subject prefix>.>`, file
// storage, the replicas and duplicate window above) and reads where the subject's Lsns stand.
// Null and *error when the cluster does not answer within connect_timeout_ms.
std::unique_ptr<storage::EventLog> OpenJetStreamLog(const JetStreamLogOptions& options,
                                                    storage::OpenReport* report,
                                                    std::string* error);

}  // namespace rta::cluster
