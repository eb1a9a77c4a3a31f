#include "tests/storage/storage_test_util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace rta::storage::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/rta_storage_test_XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int WaitDurable(EventLog& log, Lsn lsn, std::chrono::milliseconds timeout) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int result = -1;
  };
  auto state = std::make_shared<State>();
  log.WhenDurable(lsn, [state](bool ok) {
    std::lock_guard lock(state->mu);
    state->result = ok ? 1 : 0;
    state->cv.notify_all();
  });
  std::unique_lock lock(state->mu);
  state->cv.wait_for(lock, timeout, [&] { return state->result != -1; });
  return state->result;
}

std::vector<std::pair<Lsn, std::string>> ReadAll(EventLog& log, Lsn from, std::string* why) {
  std::vector<std::pair<Lsn, std::string>> out;
  std::string error;
  if (!log.ReadFrom(
          from,
          [&](Lsn lsn, std::string_view payload) {
            out.emplace_back(lsn, std::string(payload));
            return true;
          },
          &error)) {
    if (why) *why = error.empty() ? "ReadFrom failed" : error;
  }
  return out;
}

std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".log") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

uint64_t FileSize(const std::string& path) { return std::filesystem::file_size(path); }

void FlipByte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) throw std::runtime_error("open " + path);
  unsigned char c = 0;
  if (::pread(fd, &c, 1, static_cast<off_t>(offset)) != 1) throw std::runtime_error("pread");
  c ^= 0x5A;
  if (::pwrite(fd, &c, 1, static_cast<off_t>(offset)) != 1) throw std::runtime_error("pwrite");
  ::close(fd);
}

void TruncateFile(const std::string& path, uint64_t size) {
  std::filesystem::resize_file(path, size);
}

void AppendZeros(const std::string& path, uint64_t count) {
  std::filesystem::resize_file(path, FileSize(path) + count);
}

std::string MakeRecord(int writer, int seq, size_t size) {
  std::string s = "w" + std::to_string(writer) + "-" + std::to_string(seq) + ":";
  while (s.size() < size) s.push_back(static_cast<char>('a' + (s.size() + seq) % 26));
  s.resize(std::max(size, s.size()));
  return s;
}

}  // namespace rta::storage::testing
