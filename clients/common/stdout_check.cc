#include "clients/common/stdout_check.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

namespace rta::client {

int FinishStdout(int status, const char* program) {
  std::cout.flush();
  bool failed = !std::cout.good();
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) failed = true;
  // A failed run has said why already; the message is for a run that would have passed.
  if (!failed || status != 0) return status;
  const int error = errno;
  std::fprintf(stderr, "%s: writing stdout failed%s%s\n", program, error != 0 ? ": " : "",
               error != 0 ? std::strerror(error) : "");
  return 1;
}

}  // namespace rta::client
