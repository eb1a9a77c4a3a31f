#include "server/cluster/partition_leases.h"

#include <algorithm>
#include <chrono>

namespace rta::cluster {
namespace {

using Clock = std::chrono::steady_clock;

struct EntryFree {
  void operator()(kvEntry* entry) const { kvEntry_Destroy(entry); }
};
using EntryPtr = std::unique_ptr<kvEntry, EntryFree>;

}  // namespace

std::string PreferredOwner(const std::vector<std::string>& members, uint32_t partition) {
  std::string best;
  uint64_t best_hash = 0;
  for (const std::string& member : members) {
    const uint64_t hash = StableHash(member, 0x9E3779B97F4A7C15ull * (uint64_t{partition} + 1));
    if (best.empty() || hash > best_hash || (hash == best_hash && member < best)) {
      best = member;
      best_hash = hash;
    }
  }
  return best;
}

std::unique_ptr<PartitionLeases> PartitionLeases::Start(NatsSession* session,
                                                        PartitionLeaseOptions options,
                                                        PartitionLeaseCallbacks callbacks,
                                                        std::string* error) {
  if (options.node.empty() || options.node.find_first_of(".*> \t") != std::string::npos) {
    *error = "node name \"" + options.node + "\" is empty or has one of . * > or a space";
    return nullptr;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(options.connect_timeout_ms);
  kvStore* leases = OpenBucket(session->js(), options.lease_bucket, options.lease_ms,
                               options.replicas, deadline, error);  // TTL: the lease
  if (leases == nullptr) return nullptr;
  kvStore* members = OpenBucket(session->js(), options.member_bucket, options.lease_ms,
                                options.replicas, deadline, error);
  if (members == nullptr) {
    kvStore_Destroy(leases);
    return nullptr;
  }
  return std::unique_ptr<PartitionLeases>(
      new PartitionLeases(session, std::move(options), std::move(callbacks), leases, members));
}

PartitionLeases::PartitionLeases(NatsSession* session, PartitionLeaseOptions options,
                                 PartitionLeaseCallbacks callbacks, kvStore* leases,
                                 kvStore* members)
    : session_(session),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      leases_(leases),
      members_(members) {
  thread_ = std::thread([this] { Loop(); });
}

PartitionLeases::~PartitionLeases() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::map<uint32_t, uint64_t> owned;
  {
    std::lock_guard lock(mu_);
    owned.swap(owned_);
  }
  for (const auto& [partition, revision] : owned) {
    if (callbacks_.lost) callbacks_.lost(partition);
    Release(partition, revision);
  }
  kvStore_Delete(members_, options_.node.c_str());
  kvStore_Destroy(members_);
  kvStore_Destroy(leases_);
}

std::vector<uint32_t> PartitionLeases::Owned() const {
  std::lock_guard lock(mu_);
  std::vector<uint32_t> owned;
  for (const auto& entry : owned_) owned.push_back(entry.first);
  return owned;
}

std::vector<std::string> PartitionLeases::Members() const {
  std::lock_guard lock(mu_);
  return member_list_;
}

void PartitionLeases::Loop() {
  const auto period = std::chrono::milliseconds(std::max(options_.lease_ms / 3, 1));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    Round();
    rounds_.fetch_add(1, std::memory_order_acq_rel);
    lock.lock();
    cv_.wait_for(lock, period, [this] { return stopping_; });
  }
}

// One round: heartbeat, list the members, renew what is owned, hand over what another member
// is preferred for, take what this node is preferred for and is free.
void PartitionLeases::Round() {
  kvStore_PutString(nullptr, members_, options_.node.c_str(), "up");
  std::vector<std::string> members;
  std::string why;
  if (!ForEachBucketEntry(
          session_->js(), options_.member_bucket,
          [&](std::string_view node, std::string_view) { members.emplace_back(node); }, &why)) {
    std::lock_guard lock(mu_);
    members = member_list_;  // unknown this round: keep the last list
  }
  // This node is a member for its own decisions even before its heartbeat is listed.
  if (std::find(members.begin(), members.end(), options_.node) == members.end()) {
    members.push_back(options_.node);
  }
  std::sort(members.begin(), members.end());
  std::map<uint32_t, uint64_t> owned;
  {
    std::lock_guard lock(mu_);
    member_list_ = members;
    owned = owned_;
  }

  for (auto& [partition, revision] : owned) {
    if (Stopping()) return;  // the destructor releases what owned_ holds
    const std::string key = Key(partition);
    const std::string preferred = PreferredOwner(members, partition);
    if (preferred != options_.node) {  // hand over: stop first, then free it
      if (callbacks_.lost) callbacks_.lost(partition);
      Release(partition, revision);
      std::lock_guard lock(mu_);
      owned_.erase(partition);
      continue;
    }
    uint64_t renewed = 0;
    if (kvStore_UpdateString(&renewed, leases_, key.c_str(), options_.node.c_str(), revision) ==
        NATS_OK) {
      std::lock_guard lock(mu_);
      owned_[partition] = renewed;
    } else {  // refused (expired, taken over) or unanswered: it may be someone else's now
      if (callbacks_.lost) callbacks_.lost(partition);
      std::lock_guard lock(mu_);
      owned_.erase(partition);
    }
  }

  for (uint32_t partition = 0; partition < options_.partitions; ++partition) {
    if (Stopping()) return;
    if (owned.count(partition) != 0) continue;
    if (PreferredOwner(members, partition) != options_.node) continue;
    uint64_t revision = 0;
    if (!TryAcquire(partition, &revision)) continue;
    bool stop = false;
    {
      std::lock_guard lock(mu_);
      stop = stopping_;
      if (!stop) owned_[partition] = revision;
    }
    if (stop) {  // taken as the node stops: give it back at once
      Release(partition, revision);
      return;
    }
    if (callbacks_.acquired) callbacks_.acquired(partition, revision);
  }
}

bool PartitionLeases::Stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

bool PartitionLeases::TryAcquire(uint32_t partition, uint64_t* revision) {
  const std::string key = Key(partition);
  kvEntry* raw = nullptr;
  const natsStatus status = kvStore_Get(&raw, leases_, key.c_str());
  if (status == NATS_NOT_FOUND) {  // never held, expired, or deleted
    return kvStore_CreateString(revision, leases_, key.c_str(), options_.node.c_str()) == NATS_OK;
  }
  if (status != NATS_OK) return false;
  EntryPtr entry(raw);
  const std::string holder = kvEntry_ValueString(entry.get());
  // Released, or this node's own (a renewal of ours that failed to answer, then a restart or a
  // lost round): take it by compare-and-set on what was read, so a racing taker loses.
  if (!holder.empty() && holder != options_.node) return false;
  return kvStore_UpdateString(revision, leases_, key.c_str(), options_.node.c_str(),
                              kvEntry_Revision(entry.get())) == NATS_OK;
}

void PartitionLeases::Release(uint32_t partition, uint64_t revision) {
  uint64_t ignored = 0;
  // Compare-and-set: a lease that is no longer ours is left alone.
  kvStore_UpdateString(&ignored, leases_, Key(partition).c_str(), "", revision);
}

}  // namespace rta::cluster
