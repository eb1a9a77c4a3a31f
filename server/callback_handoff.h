#pragma once

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace rta::server {

// A callback-API reactor's members are written on the thread that creates it and read in its
// callbacks on gRPC's threads. gRPC orders the two with its own synchronization, in code
// ThreadSanitizer does not see (Debian's gRPC is not built with it), so TSan would report every
// such read as a race. ReactorCreated(this) as the constructor body's first statement (members
// initialized, no Start* call yet) and CallbackEntered(this) first in each callback tell TSan of
// exactly that ordering (creation before every callback) and of nothing between two callbacks,
// whose races stay reported. The one read these cannot cover, gRPC's handler loading the vtable
// pointer to make the call, is matched in tests/tsan.supp (section 6). No-ops outside
// ThreadSanitizer builds.
inline void ReactorCreated([[maybe_unused]] const void* reactor) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(const_cast<void*>(reactor));
#endif
}
inline void CallbackEntered([[maybe_unused]] const void* reactor) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(const_cast<void*>(reactor));
#endif
}

}  // namespace rta::server
