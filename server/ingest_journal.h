#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <string>

#include "server/service_state.h"
#include "server/storage/ingest_record.h"

namespace rta::server {

// The ingest calls' side of the event log: an ingest message is taken as
//   section = aggregator.EnterIngest()  (a checkpoint cannot cut through what follows)
//   count its events (dedupe + aggregate), note the positions not accepted
//   AppendToJournal(record)             (the log gives it an Lsn; nothing waits for the disk)
//   end of section
// and acknowledged once the log is durable up to that Lsn (Worker::AwaitDurable).

// Copies the message's bytes as received (the record stores them as they are).
void CopyMessageBytes(const grpc::ByteBuffer& buffer, std::string* out);

// True when the log takes new records; otherwise `why` says why (the stream then ends with
// UNAVAILABLE: nothing of the message was counted). Always true in memory-only mode.
bool JournalAccepts(const ServiceState& state, std::string* why);

// Appends the record; returns its Lsn (0 in memory-only mode). Call inside the section.
uint64_t AppendToJournal(ServiceState& state, const storage::IngestRecord& record);

// The Lsn an acknowledgement of duplicates must wait for: the originals they repeat may still
// be on their way to the disk (0 in memory-only mode).
uint64_t JournalTail(const ServiceState& state);

// Counts one AnalyzeSession signal at event_time_ms (0: now) and, on a single node with a data
// directory, logs it as a kSignal record in the same ingest section, so that a restart
// replays it after the checkpoint's cut exactly as it replays events: a signal is never lost
// to a kill -9 once its record is written, nor counted twice. Not awaited (a signal answers no
// client acknowledgement). Cluster mode counts it on this node only, unlogged (README), and so
// does a node whose log refuses ingest meanwhile (JournalAccepts).
void CountSignal(ServiceState& state, agg::SessionSignal signal, int64_t event_time_ms);

}  // namespace rta::server
