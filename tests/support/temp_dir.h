#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace rta::testing {

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char path[] = "/tmp/rta_test_XXXXXX";
    path_ = mkdtemp(path) != nullptr ? path : "";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace rta::testing
