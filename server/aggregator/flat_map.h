#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace rta::agg::detail {

// An open-addressing hash map from a 64-bit hash to V, with linear probing and backward-shift
// deletion. Keys are already well-mixed hashes (see hash.h); key 0 marks an empty slot, so
// callers pass NonZero(hash).
//
// Why not std::unordered_map: the ingest path must not allocate in steady state. Clear() keeps
// the capacity, so a map that is filled and cleared every tick stops allocating once it has
// grown to its working size; ShrinkIfSparse() gives memory back after a burst.
//
// Not thread-safe.
template <typename V>
class FlatMap {
 public:
  struct Slot {
    uint64_t key = 0;
    V value{};
  };

  FlatMap() = default;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return slots_.size(); }

  V* Find(uint64_t key) {
    if (slots_.empty()) return nullptr;
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.key == key) return &slot.value;
      if (slot.key == 0) return nullptr;
    }
  }
  const V* Find(uint64_t key) const { return const_cast<FlatMap*>(this)->Find(key); }

  // The value for `key`, value-initialized when new (second = true). Allocates only to grow.
  std::pair<V*, bool> FindOrInsert(uint64_t key) {
    if ((size_ + 1) * 4 > slots_.size() * 3) Rehash(slots_.empty() ? 16 : slots_.size() * 2);
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.key == key) return {&slot.value, false};
      if (slot.key == 0) {
        slot.key = key;
        slot.value = V{};
        ++size_;
        return {&slot.value, true};
      }
    }
  }

  bool Erase(uint64_t key) {
    if (slots_.empty()) return false;
    size_t hole = Home(key);
    for (;; hole = (hole + 1) & mask_) {
      if (slots_[hole].key == key) break;
      if (slots_[hole].key == 0) return false;
    }
    // Backward shift: pull later entries of the probe run into the hole when the hole lies
    // between their home and their position, so lookups never need tombstones.
    for (size_t j = (hole + 1) & mask_; slots_[j].key != 0; j = (j + 1) & mask_) {
      const size_t home = Home(slots_[j].key);
      if (((j - home) & mask_) >= ((j - hole) & mask_)) {
        slots_[hole] = std::move(slots_[j]);
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
    return true;
  }

  // Removes every entry and keeps the capacity.
  void Clear() {
    if (size_ == 0) return;
    for (Slot& slot : slots_) slot = Slot{};
    size_ = 0;
  }

  // After Clear(): halves the capacity when the last fill used less than 1/8 of it, so a burst
  // does not make every later Clear() expensive forever.
  void ShrinkIfSparse(size_t last_size) {
    if (slots_.size() > 64 && last_size * 8 < slots_.size()) Rehash(slots_.size() / 2);
  }

  template <typename F>
  void ForEach(F&& f) const {
    if (size_ == 0) return;
    for (const Slot& slot : slots_) {
      if (slot.key != 0) f(slot.key, slot.value);
    }
  }

  template <typename F>
  void ForEachMutable(F&& f) {
    if (size_ == 0) return;
    for (Slot& slot : slots_) {
      if (slot.key != 0) f(slot.key, slot.value);
    }
  }

  void Reserve(size_t entries) {
    const size_t wanted = std::bit_ceil(std::max<size_t>(16, entries + entries / 3 + 1));
    if (wanted > slots_.size()) Rehash(wanted);
  }

 private:
  size_t Home(uint64_t key) const {
    // Fibonacci hashing: takes the top bits of a multiply, so low-entropy low bits do not cluster.
    // The key is first rotated by an amount that differs per capacity. Why: ForEach visits the
    // entries in the order of their homes, and the tick merges one map into another by visiting
    // one and inserting into the other (a shard's sessions into the session table, say). With
    // the same home function in both, a smaller destination receives its keys sorted by home,
    // all of the first ones in its first slots: one cluster that every insert walks to its end,
    // quadratic in the keys: a tick of 400,000 new sessions into an empty session table took
    // 15.8 s (70 ms now; aggregator_bench's BM_TickOfNewSessions, and flat_map_test.cc). Maps of
    // different capacities now place keys in unrelated orders; maps of equal capacity share an
    // order, which spreads the keys a destination receives over all of its slots.
    return static_cast<size_t>((std::rotl(key, static_cast<int>(shift_)) * 0x9E3779B97F4A7C15ull) >>
                               shift_);
  }

  void Rehash(size_t new_capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(new_capacity, Slot{});
    mask_ = new_capacity - 1;
    shift_ = 64 - std::countr_zero(new_capacity);
    for (Slot& slot : old) {
      if (slot.key == 0) continue;
      size_t i = Home(slot.key);
      while (slots_[i].key != 0) i = (i + 1) & mask_;
      slots_[i] = std::move(slot);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t mask_ = 0;
  int shift_ = 63;
};

}  // namespace rta::agg::detail
