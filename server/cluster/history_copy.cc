#include "server/cluster/history_copy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <system_error>

namespace rta::cluster {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

// A read's reply: one byte saying what follows, then the chunk or the error's text.
constexpr char kChunk = 'D';
constexpr char kError = 'E';
constexpr int64_t kRequestTimeoutMs = 10'000;
// "open" takes a checkpoint, which first flushes the peer's memtables through the rollup merge
// operator: seconds on a busy peer (10 s was seen not to be enough under TSan).
constexpr int64_t kOpenTimeoutMs = 120'000;

std::string OfferSubject() { return std::string(kHistoryCopyPrefix) + ".offer"; }
std::string ExportSubject(const std::string& node) {
  return std::string(kHistoryCopyPrefix) + ".export." + node;
}

std::string_view Body(natsMsg* msg) {
  return {natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))};
}

struct SubscriptionFree {
  void operator()(natsSubscription* sub) const { natsSubscription_Destroy(sub); }
};

// A request to `node`'s exporter and its reply; false and *why when it was not answered.
bool Ask(NatsSession* session, const std::string& node, const Json& request, NatsMsgPtr* reply,
         std::string* why) {
  const std::string body = request.dump();
  natsMsg* raw = nullptr;
  const natsStatus status = natsConnection_Request(
      &raw, session->connection(), ExportSubject(node).c_str(), body.data(),
      static_cast<int>(body.size()),
      request.value("op", "") == "open" ? kOpenTimeoutMs : kRequestTimeoutMs);
  reply->reset(raw);
  if (status != NATS_OK) {
    *why = "asking " + node + " (" + request.value("op", "") + "): " + DescribeNats(status);
    return false;
  }
  return true;
}

bool SyncFile(const std::string& path, std::string* why) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    *why = "syncing " + path + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

// Copies one file of an open copy, chunk by chunk, into `path`; false and *why.
bool CopyFile(NatsSession* session, const std::string& node, uint64_t id, const std::string& name,
              uint64_t size, const std::string& path, uint64_t* bytes, std::string* why) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    *why = "creating " + path;
    return false;
  }
  uint64_t offset = 0;
  while (offset < size) {
    const uint64_t length = std::min<uint64_t>(kHistoryChunkBytes, size - offset);
    NatsMsgPtr reply;
    if (!Ask(session, node,
             {{"op", "read"}, {"id", id}, {"file", name}, {"offset", offset}, {"length", length}},
             &reply, why)) {
      return false;
    }
    const std::string_view body = Body(reply.get());
    if (body.empty() || body[0] != kChunk) {
      *why = node + " refused " + name + " at " + std::to_string(offset) + ": " +
             std::string(body.empty() ? "(empty reply)" : body.substr(1));
      return false;
    }
    const std::string_view chunk = body.substr(1);
    if (chunk.size() != length) {
      *why = node + " answered " + std::to_string(chunk.size()) + " bytes of " + name + " at " +
             std::to_string(offset) + " for " + std::to_string(length);
      return false;
    }
    out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    offset += chunk.size();
    *bytes += chunk.size();
  }
  out.close();
  if (!out) {
    *why = "writing " + path;
    return false;
  }
  return SyncFile(path, why);
}

}  // namespace

std::unique_ptr<HistoryExporter> HistoryExporter::Start(NatsSession* session, std::string node,
                                                        std::string scratch, Source source,
                                                        std::string* error,
                                                        std::chrono::seconds idle_limit) {
  std::unique_ptr<HistoryExporter> exporter(new HistoryExporter(
      session, std::move(node), std::move(scratch), std::move(source), idle_limit));
  // Checkpoints of an earlier run of this node: nobody reads them any more.
  std::error_code ignored;
  const fs::path scratch_path(exporter->scratch_);
  const std::string stem = scratch_path.filename().string() + ".export-";
  for (const auto& entry : fs::directory_iterator(
           scratch_path.parent_path().empty() ? "." : scratch_path.parent_path(), ignored)) {
    if (entry.path().filename().string().rfind(stem, 0) == 0) fs::remove_all(entry.path(), ignored);
  }
  exporter->offer_sub_ = AsyncSubscription::Subscribe(
      session->connection(), OfferSubject(), &HistoryExporter::OnOffer, exporter.get(), error);
  if (exporter->offer_sub_ != nullptr) {
    exporter->export_sub_ =
        AsyncSubscription::Subscribe(session->connection(), ExportSubject(exporter->node_),
                                     &HistoryExporter::OnExport, exporter.get(), error);
  }
  if (exporter->export_sub_ == nullptr) return nullptr;
  exporter->sweeper_ = std::thread([raw = exporter.get()] {
    std::unique_lock lock(raw->mu_);
    while (!raw->wake_.wait_for(lock, std::chrono::seconds(5), [raw] { return raw->stopping_; })) {
      lock.unlock();
      raw->Sweep(/*all=*/false);
      lock.lock();
    }
  });
  return exporter;
}

HistoryExporter::HistoryExporter(NatsSession* session, std::string node, std::string scratch,
                                 Source source, std::chrono::seconds idle_limit)
    : session_(session),
      node_(std::move(node)),
      scratch_(std::move(scratch)),
      source_(std::move(source)),
      idle_limit_(idle_limit) {}

HistoryExporter::~HistoryExporter() {
  // No handler runs after these return, so none sees a half-destroyed exporter.
  offer_sub_.reset();
  export_sub_.reset();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  Sweep(/*all=*/true);
}

void HistoryExporter::Reply(natsMsg* request, const std::string& body) {
  const char* reply = natsMsg_GetReply(request);
  if (reply == nullptr || *reply == '\0') return;
  natsConnection_Publish(session_->connection(), reply, body.data(), static_cast<int>(body.size()));
}

void HistoryExporter::OnOffer(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  NatsMsgPtr owned(msg);
  auto* exporter = static_cast<HistoryExporter*>(self);
  const HistoryOffer offer = exporter->source_.offer();
  exporter->Reply(msg, Json{{"node", exporter->node_},
                            {"since", offer.since},
                            {"next_sequence", offer.next_sequence}}
                           .dump());
}

void HistoryExporter::OnExport(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  NatsMsgPtr owned(msg);
  auto* exporter = static_cast<HistoryExporter*>(self);
  const Json request = Json::parse(Body(msg), nullptr, /*allow_exceptions=*/false);
  const std::string op = request.is_object() ? request.value("op", "") : "";
  if (op == "open") {
    exporter->Reply(msg, exporter->Open());
  } else if (op == "read") {
    exporter->Reply(msg, exporter->Read(request.value("id", uint64_t{0}), request.value("file", ""),
                                        request.value("offset", uint64_t{0}),
                                        request.value("length", uint64_t{0})));
  } else if (op == "close") {
    exporter->Close(request.value("id", uint64_t{0}));
    exporter->Reply(msg, "{}");
  } else {
    exporter->Reply(msg, std::string(1, kError) + "unknown request (op: open, read or close)");
  }
}

std::string HistoryExporter::Open() {
  Sweep(/*all=*/false);
  uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    if (copies_.size() >= kMaxCopies) {
      return Json{{"error", "busy: " + std::to_string(copies_.size()) + " copies open"}}.dump();
    }
    id = next_id_++;
    // Reserved before the checkpoint (which takes a while) so that the bound holds.
    copies_[id].used = std::chrono::steady_clock::now();
  }
  Copy copy;
  copy.dir = scratch_ + ".export-" + std::to_string(id);
  std::string why;
  std::error_code ignored;
  bool ok = source_.checkpoint(copy.dir, &why);
  Json files = Json::array();
  if (ok) {
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(copy.dir, error)) {
      if (!entry.is_regular_file()) continue;
      const uint64_t size = entry.file_size(error);
      if (error) break;
      copy.files[entry.path().filename().string()] = size;
      files.push_back({{"name", entry.path().filename().string()}, {"size", size}});
    }
    if (error) {
      ok = false;
      why = "listing " + copy.dir + ": " + error.message();
    }
  }
  std::lock_guard lock(mu_);
  if (!ok) {
    copies_.erase(id);
    fs::remove_all(copy.dir, ignored);
    return Json{{"error", why}}.dump();
  }
  copy.used = std::chrono::steady_clock::now();
  copies_[id] = std::move(copy);
  copies_opened_.fetch_add(1, std::memory_order_relaxed);
  return Json{{"id", id}, {"files", files}}.dump();
}

std::string HistoryExporter::Read(uint64_t id, const std::string& file, uint64_t offset,
                                  uint64_t length) {
  std::string path;
  {
    std::lock_guard lock(mu_);
    const auto found = copies_.find(id);
    if (found == copies_.end() || found->second.dir.empty()) {
      return std::string(1, kError) + "no open copy " + std::to_string(id);
    }
    // Only a listed name: a request cannot name a path outside the checkpoint.
    const auto listed = found->second.files.find(file);
    if (listed == found->second.files.end()) {
      return std::string(1, kError) + "copy " + std::to_string(id) + " has no file " + file;
    }
    if (length == 0 || length > kHistoryChunkBytes || offset > listed->second ||
        length > listed->second - offset) {
      return std::string(1, kError) + "bad range " + std::to_string(offset) + "+" +
             std::to_string(length) + " of " + file + " (" + std::to_string(listed->second) +
             " bytes, at most " + std::to_string(kHistoryChunkBytes) + " per read)";
    }
    found->second.used = std::chrono::steady_clock::now();
    path = found->second.dir + "/" + file;
  }
  std::string reply(1 + length, '\0');
  reply[0] = kChunk;
  const int fd = ::open(path.c_str(), O_RDONLY);
  const ssize_t got =
      fd < 0 ? -1 : ::pread(fd, reply.data() + 1, length, static_cast<off_t>(offset));
  if (fd >= 0) ::close(fd);
  if (got != static_cast<ssize_t>(length)) {
    return std::string(1, kError) + "reading " + file + ": " +
           (got < 0 ? std::strerror(errno) : "short read");
  }
  bytes_served_.fetch_add(length, std::memory_order_relaxed);
  return reply;
}

void HistoryExporter::Close(uint64_t id) {
  std::string dir;
  {
    std::lock_guard lock(mu_);
    const auto found = copies_.find(id);
    if (found == copies_.end() || found->second.dir.empty()) return;
    dir = found->second.dir;
    copies_.erase(found);
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);
}

void HistoryExporter::Sweep(bool all) {
  std::vector<std::string> gone;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = copies_.begin(); it != copies_.end();) {
      // A copy being opened (no dir yet) belongs to its handler.
      const bool idle = !it->second.dir.empty() && now - it->second.used > idle_limit_;
      if ((all || idle) && !it->second.dir.empty()) {
        gone.push_back(it->second.dir);
        it = copies_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::error_code ignored;
  for (const std::string& dir : gone) fs::remove_all(dir, ignored);
}

bool CopyPeerHistory(NatsSession* session, const std::string& self, uint64_t first_missing,
                     const std::string& into, std::chrono::milliseconds wait,
                     HistoryCopyReport* report, std::string* why) {
  *report = HistoryCopyReport{};
  // Every node's offer, gathered on an inbox of our own for `wait`.
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) {
    *why = "creating an inbox";
    return false;
  }
  const std::string reply_to = inbox;
  natsInbox_Destroy(inbox);
  natsSubscription* raw_sub = nullptr;
  natsStatus status =
      natsConnection_SubscribeSync(&raw_sub, session->connection(), reply_to.c_str());
  std::unique_ptr<natsSubscription, SubscriptionFree> sub(raw_sub);
  if (status == NATS_OK) {
    status = natsConnection_PublishRequest(session->connection(), OfferSubject().c_str(),
                                           reply_to.c_str(), "{}", 2);
  }
  if (status != NATS_OK) {
    *why = "asking for offers: " + DescribeNats(status);
    return false;
  }
  std::vector<HistoryOffer> offers;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) break;
    natsMsg* raw = nullptr;
    if (natsSubscription_NextMsg(&raw, sub.get(), left) != NATS_OK) break;
    NatsMsgPtr msg(raw);
    const Json offer = Json::parse(Body(msg.get()), nullptr, /*allow_exceptions=*/false);
    if (!offer.is_object()) continue;
    HistoryOffer parsed{offer.value("node", ""), offer.value("since", uint64_t{0}),
                        offer.value("next_sequence", uint64_t{0})};
    if (parsed.node.empty() || parsed.node == self) continue;
    offers.push_back(std::move(parsed));
  }
  // Has what the stream lost, and read past it; whole from the earliest, then the furthest.
  const HistoryOffer* best = nullptr;
  for (const HistoryOffer& offer : offers) {
    if (offer.since == 0 || offer.since > first_missing || offer.next_sequence <= first_missing) {
      continue;
    }
    if (best == nullptr || offer.since < best->since ||
        (offer.since == best->since && offer.next_sequence > best->next_sequence)) {
      best = &offer;
    }
  }
  if (best == nullptr) return true;
  report->peer = best->node;
  report->peer_since = best->since;
  const auto started = std::chrono::steady_clock::now();

  NatsMsgPtr reply;
  if (!Ask(session, best->node, {{"op", "open"}}, &reply, why)) return false;
  const Json opened = Json::parse(Body(reply.get()), nullptr, /*allow_exceptions=*/false);
  if (!opened.is_object() || !opened.contains("id") || !opened["files"].is_array()) {
    *why = best->node + " did not open a copy: " +
           (opened.is_object() ? opened.value("error", "no files listed")
                               : std::string("malformed reply"));
    return false;
  }
  const uint64_t id = opened.value("id", uint64_t{0});
  std::error_code error;
  fs::create_directories(into, error);
  bool ok = !error;
  if (!ok) *why = "creating " + into + ": " + error.message();
  for (const Json& file : opened["files"]) {
    if (!ok) break;
    const std::string name = file.value("name", "");
    // A plain file name: nothing the peer says may write outside `into`.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      *why = best->node + " listed a file named \"" + name + "\"";
      ok = false;
      break;
    }
    ok = CopyFile(session, best->node, id, name, file.value("size", uint64_t{0}), into + "/" + name,
                  &report->bytes, why);
    if (ok) ++report->files;
  }
  // Dropped at once (not after its idle limit) whether or not the copy worked.
  NatsMsgPtr closed;
  std::string ignored_why;
  Ask(session, best->node, {{"op", "close"}, {"id", id}}, &closed, &ignored_why);
  if (ok) ok = SyncFile(into, why);
  if (!ok) {
    fs::remove_all(into, error);
    return false;
  }
  report->ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - started)
                   .count();
  return true;
}

}  // namespace rta::cluster
