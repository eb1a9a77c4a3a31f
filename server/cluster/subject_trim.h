#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <string>

#include "server/cluster/nats_session.h"

namespace rta::cluster {

// Finding and dropping a subject's old messages in a JetStream stream (issue 16: the cluster's
// streams are trimmed as partitions are counted, docs/design/cluster.md "Trimming").

// When JetStream stored a message, in ms since the Unix epoch (its timestamps are ns).
inline int64_t StoredMs(natsMsg* msg) { return natsMsg_GetTime(msg) / 1'000'000; }

// The smallest stream sequence s in [1, hi] from which the subject's next message was stored at
// since_ms or later (hi + 1: none of the subject's messages up to hi was): every message of the
// subject below s is older, so a purge below s drops exactly those, and a read from s finds the
// first newer one. Stored times grow with stream sequences, so this is a binary
// search with "next message on the subject at sequence n or later" reads: log2(hi) of them.
// get(sequence, &msg) makes one such read: false when it failed (the search then ends with
// false), true with a null msg when the subject has none at or after `sequence`.
template <typename Get>
bool FirstStoredSince(int64_t since_ms, uint64_t hi, Get&& get, uint64_t* first) {
  uint64_t lo = 1;
  uint64_t end = hi + 1;
  while (lo < end) {
    const uint64_t mid = lo + (end - lo) / 2;
    NatsMsgPtr probe;
    if (!get(mid, &probe)) return false;
    if (probe == nullptr || StoredMs(probe.get()) >= since_ms) {
      end = mid;
    } else {
      lo = natsMsg_GetSequence(probe.get()) + 1;
    }
  }
  *first = lo;
  return true;
}

// Deletes the subject's messages below stream sequence `below` (JetStream's purge with a subject
// filter; the stream's other subjects are untouched). False and *why when it failed.
bool PurgeSubjectBelow(jsCtx* js, const std::string& stream, const std::string& subject,
                       uint64_t below, std::string* why);

}  // namespace rta::cluster
