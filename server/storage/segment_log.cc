#include "server/storage/segment_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "server/storage/crc32c.h"
#include "server/storage/durable_waiters.h"
#include "server/storage/record_format.h"

namespace rta::storage {
namespace {

using Clock = std::chrono::steady_clock;
using detail::kRecordHeaderSize;

std::string Errno(int err) { return std::strerror(err); }

std::string SegmentName(Lsn first_lsn) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu.log", static_cast<unsigned long long>(first_lsn));
  return name;
}

bool ParseSegmentName(const char* name, Lsn* first_lsn) {
  if (std::strlen(name) != 24 || std::strcmp(name + 20, ".log") != 0) return false;
  Lsn v = 0;
  for (int i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<Lsn>(name[i] - '0');
  }
  *first_lsn = v;
  return true;
}

bool MakeDirs(const std::string& dir, std::string* error) {
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = "mkdir " + path + " failed: " + Errno(errno);
      return false;
    }
  }
  return true;
}

bool SyncDir(const std::string& dir, std::string* error) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    *error = "fsync of directory " + dir + " failed: " + Errno(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

// Reads up to `limit` bytes of a file (all of it for UINT64_MAX).
bool ReadFile(const std::string& path, uint64_t limit, std::string* out, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "open " + path + " failed: " + Errno(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    *error = "stat " + path + " failed: " + Errno(errno);
    ::close(fd);
    return false;
  }
  const uint64_t size = std::min<uint64_t>(static_cast<uint64_t>(st.st_size), limit);
  out->resize(size);
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out->data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = "read " + path + " failed: " + (n == 0 ? "unexpected end of file" : Errno(errno));
      ::close(fd);
      return false;
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return true;
}

struct Segment {
  Lsn first_lsn;
  std::string path;
};

class SegmentLog final : public EventLog {
 public:
  SegmentLog(LogOptions options, std::vector<Segment> segments, int fd, uint64_t file_size,
             Lsn next_lsn)
      : options_(std::move(options)),
        segments_(std::move(segments)),
        active_size_(file_size),
        next_lsn_(next_lsn),
        waiters_(next_lsn - 1),
        durable_lsn_(next_lsn - 1),
        last_lsn_(next_lsn - 1),
        fd_(fd),
        file_size_(file_size),
        synced_size_(file_size),
        written_lsn_(next_lsn - 1) {
    segment_count_.store(segments_.size());
    if (!segments_.empty()) active_path_ = segments_.back().path;
    writer_ = std::thread([this] { WriterLoop(); });
  }

  ~SegmentLog() override {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_one();
    writer_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  bool Append(std::string_view record, Lsn* lsn, std::string* why) override {
    return AppendRecord(record, /*admitted=*/false, lsn, why);
  }

  Lsn AppendAdmitted(std::string_view record) override {
    Lsn lsn = 0;
    std::string why;
    return AppendRecord(record, /*admitted=*/true, &lsn, &why) ? lsn : 0;
  }

  bool AppendRecord(std::string_view record, bool admitted, Lsn* lsn, std::string* why) {
    if (record.size() > detail::kMaxRecordPayload) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      if (why) *why = "record of " + std::to_string(record.size()) + " bytes over the limit";
      return false;
    }
    const uint32_t crc = Crc32c(record);  // outside the lock: the costly part of framing
    const uint64_t framed = kRecordHeaderSize + record.size();
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      std::string refusal;
      if (closing_) {
        refusal = "the log is closing";
      } else if (admitted) {
        // Already counted by the caller: taken even while the disk is failing or behind (the
        // caller checked health() first; the bound is exceeded by a record per ingest thread).
      } else if (!writable_) {
        refusal = health_message_;
      } else if (pending_.size() + inflight_bytes_.load(std::memory_order_relaxed) + framed >
                 options_.max_pending_bytes) {
        refusal = "pending bytes over max_pending_bytes (" +
                  std::to_string(options_.max_pending_bytes) + "): the disk is behind";
      }
      if (!refusal.empty()) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        if (why) *why = std::move(refusal);
        return false;
      }
      const Lsn assigned = next_lsn_++;
      if (pending_.empty()) pending_first_lsn_ = assigned;
      detail::AppendRecord(assigned, record, crc, &pending_);
      last_lsn_.store(assigned, std::memory_order_release);
      pending_bytes_.store(pending_.size(), std::memory_order_relaxed);
      *lsn = assigned;
      wake = writer_waiting_;
    }
    records_appended_.fetch_add(1, std::memory_order_relaxed);
    bytes_appended_.fetch_add(record.size(), std::memory_order_relaxed);
    if (wake) cv_.notify_one();
    return true;
  }

  Lsn durable_lsn() const override { return durable_lsn_.load(std::memory_order_acquire); }
  Lsn last_lsn() const override { return last_lsn_.load(std::memory_order_acquire); }

  void WhenDurable(Lsn lsn, std::function<void(bool)> done) override {
    waiters_.Add(lsn, std::move(done));
  }

  bool ReadFrom(Lsn from, const std::function<bool(Lsn, std::string_view)>& visit,
                std::string* why) override {
    std::vector<Segment> segments;
    uint64_t active_size;
    {
      std::lock_guard lock(segments_mu_);
      segments = segments_;
      active_size = active_size_;
    }
    size_t start = 0;
    for (size_t i = 0; i < segments.size(); ++i) {
      if (segments[i].first_lsn <= from) start = i;
    }
    std::string data;
    Lsn prev = 0;
    for (size_t i = start; i < segments.size(); ++i) {
      const bool active = i + 1 == segments.size();
      if (!ReadFile(segments[i].path, active ? active_size : UINT64_MAX, &data, why)) return false;
      detail::SegmentScan scan = detail::ScanSegment(data, prev);
      prev = scan.last_lsn;
      uint64_t stop_at = UINT64_MAX;
      if (!scan.corrupt.empty() && !options_.skip_corrupt) stop_at = scan.corrupt[0].offset;
      for (const auto& record : scan.records) {
        if (record.offset >= stop_at) break;
        if (record.lsn >= from && !visit(record.lsn, record.payload)) return true;
      }
      if (stop_at != UINT64_MAX) {
        if (why) {
          *why = "corrupt record in " + segments[i].path + " at byte offset " +
                 std::to_string(stop_at) + ": " + scan.corrupt[0].reason;
        }
        return false;
      }
    }
    return true;
  }

  void TruncateBefore(Lsn lsn) override {
    std::vector<std::string> doomed;
    {
      std::lock_guard lock(segments_mu_);
      // Segment i holds lsns below segments_[i + 1].first_lsn; the last one is being written.
      size_t keep_from = 0;
      while (keep_from + 1 < segments_.size() && segments_[keep_from + 1].first_lsn <= lsn) {
        doomed.push_back(segments_[keep_from].path);
        ++keep_from;
      }
      segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(keep_from));
      segment_count_.store(segments_.size(), std::memory_order_relaxed);
    }
    // A deletion lost in a crash only brings back records below lsn, which readers skip.
    for (const auto& path : doomed) ::unlink(path.c_str());
  }

  LogHealth health() const override {
    std::lock_guard lock(mu_);
    return LogHealth{writable_, health_message_};
  }

  LogStats stats() const override {
    LogStats s;
    s.records_appended = records_appended_.load(std::memory_order_relaxed);
    s.bytes_appended = bytes_appended_.load(std::memory_order_relaxed);
    s.appends_refused = refused_.load(std::memory_order_relaxed);
    s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
    s.writes = writes_.load(std::memory_order_relaxed);
    s.syncs = syncs_.load(std::memory_order_relaxed);
    s.sync_nanos_sum = sync_nanos_.load(std::memory_order_relaxed);
    s.write_errors = write_errors_.load(std::memory_order_relaxed);
    s.pending_bytes = pending_bytes_.load(std::memory_order_relaxed) +
                      inflight_bytes_.load(std::memory_order_relaxed);
    s.segments = segment_count_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  // --- Writer thread only, below this line, unless said otherwise. ---

  void WriterLoop() {
    for (;;) {
      bool closing;
      {
        std::unique_lock lock(mu_);
        for (;;) {
          if (closing_) break;
          const auto now = Clock::now();
          if (in_error_ ? now >= retry_at_ : !pending_.empty()) break;
          if (!in_error_ && SyncDue(now)) break;
          auto deadline = Clock::time_point::max();
          if (in_error_) deadline = retry_at_;
          if (!in_error_ && options_.fsync == FsyncMode::kInterval && file_size_ > synced_size_)
            deadline = sync_at_;
          writer_waiting_ = true;
          if (deadline == Clock::time_point::max()) {
            cv_.wait(lock);
          } else {
            cv_.wait_until(lock, deadline);
          }
          writer_waiting_ = false;
        }
        closing = closing_;
        TakePendingLocked();
      }
      if (closing) break;
      Flush(/*final=*/false);
    }
    Drain();
  }

  bool SyncDue(Clock::time_point now) const {
    return options_.fsync == FsyncMode::kInterval && file_size_ > synced_size_ && now >= sync_at_;
  }

  // Requires mu_. Moves pending records behind whatever the writer still holds.
  void TakePendingLocked() {
    if (pending_.empty()) return;
    if (buf_.empty()) {
      buf_.swap(pending_);
      buf_first_lsn_ = pending_first_lsn_;
    } else {
      buf_.append(pending_);
    }
    pending_.clear();
    pending_bytes_.store(0, std::memory_order_relaxed);
    inflight_bytes_.store(buf_.size(), std::memory_order_relaxed);
  }

  // Writes buf_ and syncs per the mode (always when final). On failure, keeps what is not
  // written (with kAlways: not synced) and enters the error state.
  void Flush(bool final) {
    std::string error;
    bool ok = true;
    if (!buf_.empty()) {
      if (fd_ < 0 || file_size_ >= options_.segment_bytes) ok = Rotate(&error);
      if (ok) ok = WriteBuf(final, &error);
    }
    if (ok && options_.fsync == FsyncMode::kNever) PublishDurable(written_lsn_);
    if (ok && file_size_ > synced_size_ &&
        (final || options_.fsync == FsyncMode::kAlways || SyncDue(Clock::now()))) {
      ok = Sync(&error);
      if (ok) PublishDurable(written_lsn_);
    }
    if (ok) {
      ClearError();
    } else {
      SetError(error);
    }
  }

  // Writes buf_ at file_size_. Consumes whole records written (with kAlways or final only once
  // synced); cuts the file back to the end of the last one on failure.
  bool WriteBuf(bool final, std::string* error) {
    const bool sync_now = final || options_.fsync == FsyncMode::kAlways;
    const uint64_t start = file_size_;
    if (dirty_tail_) {
      // An earlier cut-back failed: bytes of a partial record may lie past file_size_.
      if (::ftruncate(fd_, static_cast<off_t>(start)) != 0) {
        *error = "ftruncate of " + active_path_ + " failed: " + Errno(errno);
        write_errors_.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      dirty_tail_ = false;
    }
    size_t done = 0;
    int err = 0;
    while (done < buf_.size()) {
      ssize_t n =
          ::pwrite(fd_, buf_.data() + done, buf_.size() - done, static_cast<off_t>(start + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n == 0 ? EIO : errno;
        break;
      }
      done += static_cast<size_t>(n);
    }
    writes_.fetch_add(1, std::memory_order_relaxed);
    uint64_t last_lsn = 0;
    size_t whole = detail::WholeRecordsPrefix(buf_, done, &last_lsn);
    if (err != 0) {
      *error = "write to " + active_path_ + " failed: " + Errno(err);
      write_errors_.fetch_add(1, std::memory_order_relaxed);
    }
    if (whole > 0 && sync_now) {
      std::string sync_error;
      if (!SyncFd(&sync_error)) {
        if (err == 0) *error = sync_error;
        err = err == 0 ? EIO : err;
        whole = 0;
      }
    }
    if (err != 0 && done > whole) {
      // Leave no partial record behind: a retry rewrites from the last whole record.
      if (::ftruncate(fd_, static_cast<off_t>(start + whole)) != 0) {
        *error += "; ftruncate failed: " + Errno(errno);
        dirty_tail_ = true;
      }
    }
    if (whole > 0) {
      file_size_ = start + whole;
      written_lsn_ = last_lsn;
      bytes_written_.fetch_add(whole, std::memory_order_relaxed);
      if (whole == buf_.size()) {
        buf_.clear();
        buf_first_lsn_ = 0;
      } else {
        buf_.erase(0, whole);
        detail::RecordHeader h;
        detail::DecodeRecordHeader(buf_, &h);
        buf_first_lsn_ = h.lsn;
      }
      inflight_bytes_.store(buf_.size(), std::memory_order_relaxed);
      {
        std::lock_guard lock(segments_mu_);
        active_size_ = file_size_;
      }
      if (sync_now) {
        synced_size_ = file_size_;
        PublishDurable(written_lsn_);
      }
    }
    return err == 0;
  }

  bool SyncFd(std::string* error) {
    const auto t0 = Clock::now();
    const int rc = ::fdatasync(fd_);
    const int err = errno;
    sync_nanos_.fetch_add(
        static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()),
        std::memory_order_relaxed);
    syncs_.fetch_add(1, std::memory_order_relaxed);
    sync_at_ = Clock::now() + std::chrono::milliseconds(options_.interval_ms);
    if (rc != 0) {
      *error = "fdatasync of " + active_path_ + " failed: " + Errno(err);
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  // Syncs the written, unsynced tail (kInterval, or final). On failure the data stays in the
  // file and the sync is retried (Linux may have dropped the dirty pages: a known limit).
  bool Sync(std::string* error) {
    if (!SyncFd(error)) return false;
    synced_size_ = file_size_;
    return true;
  }

  // Starts a new segment named after the first lsn in buf_, after syncing the old one (so that
  // durable_lsn never covers an unsynced older segment).
  bool Rotate(std::string* error) {
    if (fd_ >= 0) {
      if (options_.fsync != FsyncMode::kNever && file_size_ > synced_size_) {
        if (!Sync(error)) return false;
        PublishDurable(written_lsn_);
      }
    }
    const std::string path = options_.dir + "/" + SegmentName(buf_first_lsn_);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      *error = "create " + path + " failed: " + Errno(errno);
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (options_.fsync != FsyncMode::kNever && !SyncDir(options_.dir, error)) {
      ::close(fd);
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    active_path_ = path;
    file_size_ = synced_size_ = 0;
    {
      std::lock_guard lock(segments_mu_);
      segments_.push_back({buf_first_lsn_, path});
      active_size_ = 0;
      segment_count_.store(segments_.size(), std::memory_order_relaxed);
    }
    return true;
  }

  // Advances durable_lsn, then fires the callbacks it covers (in Lsn order, DurableWaiters).
  void PublishDurable(Lsn durable) {
    {
      std::lock_guard lock(mu_);
      if (durable <= durable_lsn_.load(std::memory_order_relaxed)) return;
      durable_lsn_.store(durable, std::memory_order_release);
    }
    waiters_.FireUpTo(durable);
  }

  void SetError(const std::string& error) {
    in_error_ = true;
    retry_at_ = Clock::now() + std::chrono::milliseconds(options_.retry_interval_ms);
    std::lock_guard lock(mu_);
    writable_ = false;
    health_message_ =
        error + "; retrying every " + std::to_string(options_.retry_interval_ms) + " ms";
  }

  void ClearError() {
    if (!in_error_) return;
    in_error_ = false;
    std::lock_guard lock(mu_);
    writable_ = true;
    health_message_.clear();
  }

  // At close: write and sync everything, retrying failures until close_timeout_ms, then answer
  // every remaining callback.
  void Drain() {
    const auto deadline = Clock::now() + std::chrono::milliseconds(options_.close_timeout_ms);
    for (;;) {
      {
        std::lock_guard lock(mu_);
        TakePendingLocked();
      }
      Flush(/*final=*/true);
      if (!in_error_ && buf_.empty()) break;
      const auto now = Clock::now();
      if (now >= deadline) break;
      std::this_thread::sleep_until(std::min(retry_at_, deadline));
    }
    waiters_.Close(durable_lsn());
  }

  const LogOptions options_;

  // Guards the segment list (writer adds, TruncateBefore removes, ReadFrom copies).
  std::mutex segments_mu_;
  std::vector<Segment> segments_;  // by first_lsn; the last is the one being written
  uint64_t active_size_;           // bytes of whole records written to the last segment

  // Guards the appenders' state and the health.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  Lsn pending_first_lsn_ = 0;
  Lsn next_lsn_;
  bool writer_waiting_ = false;
  bool closing_ = false;
  bool writable_ = true;
  std::string health_message_;
  DurableWaiters waiters_;  // its own lock

  std::atomic<Lsn> durable_lsn_;  // written under mu_, by the writer only
  std::atomic<Lsn> last_lsn_;

  std::atomic<uint64_t> records_appended_{0}, bytes_appended_{0}, refused_{0}, bytes_written_{0},
      writes_{0}, syncs_{0}, sync_nanos_{0}, write_errors_{0}, pending_bytes_{0},
      inflight_bytes_{0}, segment_count_{0};

  // Writer thread only.
  int fd_;
  std::string active_path_;
  uint64_t file_size_;    // end of the last whole record written
  uint64_t synced_size_;  // end of the last whole record synced
  Lsn written_lsn_;
  std::string buf_;  // records taken from pending_, not yet written (or synced: kAlways)
  Lsn buf_first_lsn_ = 0;
  bool in_error_ = false;
  bool dirty_tail_ = false;  // a failed ftruncate left bytes past file_size_
  Clock::time_point retry_at_{};
  Clock::time_point sync_at_{};

  std::thread writer_;  // last: starts after every member above is initialised
};

}  // namespace

std::unique_ptr<EventLog> OpenSegmentLog(const LogOptions& options, OpenReport* report,
                                         std::string* error) {
  *report = OpenReport{};
  std::string err;
  if (options.dir.empty()) {
    *error = "event log: no directory given";
    return nullptr;
  }
  if (!MakeDirs(options.dir, error)) return nullptr;

  std::vector<Segment> segments;
  DIR* d = ::opendir(options.dir.c_str());
  if (d == nullptr) {
    *error = "opendir " + options.dir + " failed: " + Errno(errno);
    return nullptr;
  }
  while (dirent* e = ::readdir(d)) {
    Lsn first;
    if (ParseSegmentName(e->d_name, &first))
      segments.push_back({first, options.dir + "/" + e->d_name});
  }
  ::closedir(d);
  std::sort(segments.begin(), segments.end(),
            [](const Segment& a, const Segment& b) { return a.first_lsn < b.first_lsn; });

  // Scan everything; decide afterwards which damage is a torn tail (nothing valid after it).
  struct Damage {
    size_t segment;
    detail::CorruptRegion region;
    Lsn prev_lsn;  // last valid lsn before the damage
  };
  std::vector<Damage> damage;
  std::vector<uint64_t> valid_end(segments.size(), 0);
  std::vector<uint64_t> sizes(segments.size(), 0);
  Lsn prev = 0, first_valid = 0;
  size_t last_valid_segment = SIZE_MAX;
  std::string data;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (!ReadFile(segments[i].path, UINT64_MAX, &data, error)) return nullptr;
    sizes[i] = data.size();
    detail::SegmentScan scan = detail::ScanSegment(data, prev);
    size_t r = 0;
    Lsn before = prev;
    for (auto& region : scan.corrupt) {
      while (r < scan.records.size() && scan.records[r].offset < region.offset) {
        before = scan.records[r].lsn;
        ++r;
      }
      damage.push_back({i, std::move(region), before});
    }
    if (!scan.records.empty()) {
      if (first_valid == 0) first_valid = scan.records.front().lsn;
      last_valid_segment = i;
    }
    valid_end[i] = scan.valid_end;
    prev = scan.last_lsn;
  }
  const Lsn last_valid = prev;

  for (const Damage& dmg : damage) {
    const bool tail =
        last_valid_segment == SIZE_MAX || dmg.segment > last_valid_segment ||
        (dmg.segment == last_valid_segment && dmg.region.offset >= valid_end[dmg.segment]);
    if (tail) continue;
    const std::string where =
        segments[dmg.segment].path + " at byte offset " + std::to_string(dmg.region.offset) + " (" +
        std::to_string(dmg.region.length) + " bytes: " + dmg.region.reason + ")";
    if (!options.skip_corrupt) {
      *error = "event log: corrupt record in " + where +
               "; valid records follow it, so this is not a torn tail; open with skip_corrupt "
               "to skip it";
      return nullptr;
    }
    // The records lost: the lsn gap to the next valid record (at least 1).
    Lsn next_good = 0;
    {
      std::string seg;
      // Cheap enough at open: only damaged segments are rescanned.
      if (ReadFile(segments[dmg.segment].path, UINT64_MAX, &seg, &err)) {
        detail::SegmentScan s = detail::ScanSegment(seg, 0);
        for (const auto& rec : s.records) {
          if (rec.offset > dmg.region.offset) {
            next_good = rec.lsn;
            break;
          }
        }
      }
      for (size_t j = dmg.segment + 1; next_good == 0 && j < segments.size(); ++j) {
        if (ReadFile(segments[j].path, UINT64_MAX, &seg, &err)) {
          detail::SegmentScan s = detail::ScanSegment(seg, 0);
          if (!s.records.empty()) next_good = s.records.front().lsn;
        }
      }
    }
    const uint64_t lost = next_good > dmg.prev_lsn + 1 ? next_good - dmg.prev_lsn - 1 : 1;
    report->corrupt_records_skipped += lost;
    report->messages.push_back("skipped " + std::to_string(lost) + " corrupt record(s) in " +
                               where);
  }

  // Truncate the torn tail: the last valid record's segment after it, and later segments whole.
  const size_t tail_from = last_valid_segment == SIZE_MAX ? 0 : last_valid_segment;
  for (size_t i = tail_from; i < segments.size(); ++i) {
    const uint64_t keep = i == last_valid_segment ? valid_end[i] : 0;
    if (sizes[i] <= keep) continue;
    if (::truncate(segments[i].path.c_str(), static_cast<off_t>(keep)) != 0) {
      *error = "truncate " + segments[i].path + " failed: " + Errno(errno);
      return nullptr;
    }
    report->torn_tail_bytes_truncated += sizes[i] - keep;
    report->messages.push_back("truncated a torn tail of " + std::to_string(sizes[i] - keep) +
                               " bytes in " + segments[i].path + " at byte offset " +
                               std::to_string(keep));
    sizes[i] = keep;
  }

  Lsn next_lsn = last_valid + 1;
  if (!segments.empty()) next_lsn = std::max(next_lsn, segments.back().first_lsn);
  int fd = -1;
  uint64_t file_size = 0;
  if (!segments.empty()) {
    fd = ::open(segments.back().path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::fdatasync(fd) != 0) {
      *error = "open " + segments.back().path + " failed: " + Errno(errno);
      if (fd >= 0) ::close(fd);
      return nullptr;
    }
    file_size = sizes.back();
  }
  report->first_lsn = first_valid != 0 ? first_valid : next_lsn;
  report->last_lsn = next_lsn - 1;
  auto log = std::make_unique<SegmentLog>(options, std::move(segments), fd, file_size, next_lsn);
  return log;
}

}  // namespace rta::storage
