#pragma once

#include <cmath>

namespace rta::testing {

// The relative bound a test puts on a unique-visitor estimate read from a server: four standard
// errors of a HyperLogLog of 2^`precision` registers (1.04 / sqrt(2^precision); 3.25% at 14).
//
// Why four and not three: the server draws its hash seeds at random per process (so that no
// client can aim its visitor ids at one register), so every estimate a test reads from it is a
// fresh random draw. At three standard errors a check fails about once in 370 runs, and the suite
// makes a few dozen such checks in each of its three builds, so about one CI run in twenty would
// fail for nothing (one did: 2.71% off at 10^6 visitors, a 3.3-sigma draw). At four a check fails
// about once in 16,000 runs; a union taken as a sum, or a visitor counted twice, is still far
// outside. Tests that hash with fixed seeds are reproducible and keep tighter bounds.
inline double HyperLogLogBound(int precision) {
  return 4 * 1.04 / std::sqrt(static_cast<double>(1 << precision));
}

}  // namespace rta::testing
