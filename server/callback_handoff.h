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

// gRPC calls OnDone only after every other reaction of the reactor (OnReadDone, OnWriteDone)
// has returned, and after the reads whose messages those reactions were handed; that ordering,
// too, is made in code TSan does not see. Without it, OnDone's `delete this` freeing a request
// message that gRPC's thread parsed (a repeated field's array, written by the generated parser
// in our binary) was reported as a race (once, in the TSan suite of stop 42's CI). A
// ReactionScope first in each reaction acquires as CallbackEntered does and, when the reaction
// returns, releases on a second key that only OnDone's DoneEntered acquires: so each reaction
// (and what its thread did before it) is ordered before OnDone, and still nothing orders two
// reactions with each other (a read and a write reaction may run at once; their races stay
// reported).
namespace callback_handoff_internal {
inline void* DoneKey(const void* reactor) {
  return const_cast<char*>(static_cast<const char*>(reactor)) + 1;
}
}  // namespace callback_handoff_internal

class ReactionScope {
 public:
  explicit ReactionScope(const void* reactor) : reactor_(reactor) { CallbackEntered(reactor); }
  ~ReactionScope() {
#if defined(__SANITIZE_THREAD__)
    __tsan_release(callback_handoff_internal::DoneKey(reactor_));
#endif
  }
  ReactionScope(const ReactionScope&) = delete;
  ReactionScope& operator=(const ReactionScope&) = delete;

 private:
  [[maybe_unused]] const void* reactor_;
};

// First in OnDone: what CallbackEntered does, and every returned reaction before it.
inline void DoneEntered([[maybe_unused]] const void* reactor) {
  CallbackEntered(reactor);
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(callback_handoff_internal::DoneKey(reactor));
#endif
}

}  // namespace rta::server
