#pragma once

#include <memory>
#include <string>

#include "server/storage/event_log.h"

namespace rta::storage {

// The local EventLog: segment files `<dir>/<first lsn, 20 digits>.log` in the framing of
// record_format.h.
//
// Threading: one writer thread owns the open segment file. Append copies the framed record into
// a pending buffer under a short mutex and wakes the writer; the writer swaps the buffer out,
// writes it with one pwrite(2) (group commit: one write and one fdatasync for every record that
// arrived meanwhile), syncs per FsyncMode, advances durable_lsn and fires WhenDurable callbacks
// in Lsn order on its own thread. Pending plus in-flight bytes are bounded by max_pending_bytes.
//
// Write errors (ENOSPC, EIO, EFBIG, a failed fdatasync): the unwritten records stay in memory,
// the file is cut back (ftruncate) to the end of the last whole record written (with kAlways:
// synced), health() turns not writable with the reason, Append refuses, and the writer retries
// every retry_interval_ms; the first success makes the log writable again.
//
// Shutdown: the destructor stops Append, writes and syncs what is pending (giving up after
// close_timeout_ms of failing retries), then calls the remaining WhenDurable callbacks with true
// if their record is durable, else false, and joins the writer.
//
// Open scans every segment, truncates a torn tail (damage after the last valid record of the
// log: a crash mid-write), and fails on damage in the middle with the segment file and byte
// offset, unless skip_corrupt (then the damaged records are skipped at Open and by ReadFrom).
std::unique_ptr<EventLog> OpenSegmentLog(const LogOptions& options, OpenReport* report,
                                         std::string* error);

}  // namespace rta::storage
