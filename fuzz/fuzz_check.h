#pragma once

#include <cstdio>
#include <cstdlib>

// A property a fuzz target checks beyond "does not crash": on failure it says which and aborts,
// which libFuzzer reports as a finding (and saves the input).
#define RTA_FUZZ_CHECK(condition)                                                                 \
  do {                                                                                            \
    if (!(condition)) {                                                                           \
      std::fprintf(stderr, "%s:%d: RTA_FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)
