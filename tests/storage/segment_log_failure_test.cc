// Write errors, made real: a forked child lowers RLIMIT_FSIZE so that write(2) fails with EFBIG
// (SIGXFSZ ignored), as it would with ENOSPC, then raises it again. The child reports through
// its exit code and a pipe, so the limit never touches the Catch2 process.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "server/storage/segment_log.h"
#include "tests/storage/storage_test_util.h"

namespace rta::storage {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// Returns "" on success, else what went wrong.
std::string FullDiskChild(const std::string& dir) {
  ::signal(SIGXFSZ, SIG_IGN);
  rlimit original{};
  if (::getrlimit(RLIMIT_FSIZE, &original) != 0) return "getrlimit failed";
  rlimit small = original;
  small.rlim_cur = 20 * 1024;  // 19 framed 1 KiB records fit (19 * 1048 bytes), the 20th not
  if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return "setrlimit failed";

  LogOptions options;
  options.dir = dir;
  options.retry_interval_ms = 1000;
  OpenReport report;
  std::string error;
  auto log = OpenSegmentLog(options, &report, &error);
  if (!log) return "open: " + error;

  for (int i = 0; i < 10; ++i) {
    Lsn lsn;
    if (!log->Append(testing::MakeRecord(0, i, 1024), &lsn, &error)) return "append: " + error;
    if (testing::WaitDurable(*log, lsn, 5s) != 1) return "record " + std::to_string(lsn) + " not durable";
  }
  // Past the limit: the writer fails part-way; Append refuses once it has.
  int accepted = 10;
  for (int i = 10; i < 25; ++i) {
    Lsn lsn;
    if (!log->Append(testing::MakeRecord(0, i, 1024), &lsn, &error)) break;
    ++accepted;
  }
  if (!WaitFor([&] { return !log->health().writable; }, 5s)) return "health stayed writable";
  const LogHealth health = log->health();
  if (health.message.find("File too large") == std::string::npos ||
      health.message.find(dir) == std::string::npos ||
      health.message.find("retrying every 1000 ms") == std::string::npos) {
    return "health message: " + health.message;
  }
  Lsn refused_lsn = 0;
  std::string why;
  if (log->Append("refused", &refused_lsn, &why)) return "Append accepted while unwritable";
  if (why != health.message) return "refusal says: " + why;
  if (accepted < 20) return "only " + std::to_string(accepted) + " accepted";
  if (log->last_lsn() != static_cast<Lsn>(accepted)) return "last_lsn moved on a refusal";
  if (log->durable_lsn() != 19) {
    return "durable_lsn " + std::to_string(log->durable_lsn()) + ", expected the 19 that fit";
  }
  if (log->stats().write_errors == 0) return "no write error counted";

  // Space again: the writer's next retry succeeds and health recovers by itself.
  if (::setrlimit(RLIMIT_FSIZE, &original) != 0) return "setrlimit back failed";
  if (!WaitFor([&] { return log->durable_lsn() == static_cast<Lsn>(accepted); }, 5s)) {
    return "not durable after the limit was raised: " + std::to_string(log->durable_lsn());
  }
  if (!WaitFor([&] { return log->health().writable; }, 5s)) return "health did not recover";
  Lsn lsn;
  if (!log->Append(testing::MakeRecord(0, accepted, 1024), &lsn, &why)) return "append: " + why;
  if (lsn != static_cast<Lsn>(accepted + 1)) return "lsn after recovery " + std::to_string(lsn);
  if (testing::WaitDurable(*log, lsn, 5s) != 1) return "last record not durable";
  log.reset();

  log = OpenSegmentLog(options, &report, &error);
  if (!log) return "reopen: " + error;
  if (report.torn_tail_bytes_truncated != 0) return "garbage left behind: a torn tail at reopen";
  why.clear();
  auto records = testing::ReadAll(*log, 1, &why);
  if (!why.empty()) return "read: " + why;
  if (records.size() != static_cast<size_t>(accepted + 1)) {
    return "read " + std::to_string(records.size()) + " records";
  }
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].first != i + 1 ||
        records[i].second != testing::MakeRecord(0, static_cast<int>(i), 1024)) {
      return "record " + std::to_string(i + 1) + " differs";
    }
  }
  return "";
}

TEST_CASE("a write error (EFBIG) makes the log unwritable until a retry succeeds",
          "[storage][segment_log]") {
  testing::TempDir dir;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    const std::string result = FullDiskChild(dir.path() + "/log");
    if (!result.empty()) (void)!::write(fds[1], result.data(), result.size());
    ::_exit(result.empty() ? 0 : 1);
  }
  ::close(fds[1]);
  int status = 0;
  const bool exited =
      WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(30));
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  std::string message;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) > 0;) message.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  INFO("child: " << message);
  REQUIRE(exited);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace rta::storage
