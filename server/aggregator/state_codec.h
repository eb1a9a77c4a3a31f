#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

// The byte format of aggregator checkpoints (Aggregator::Checkpoint / Restore): flat,
// little-endian, fixed-width integers, length-prefixed strings and sections. Rollup cells
// (server/storage/rollup_cell.h) use the same helpers plus varints (VarU64 / VarI64), because
// they are millions of small stored values whose counts are mostly below 128.
//
// Why our own format and not protobuf: a checkpoint is mostly raw arrays (16 KiB of HyperLogLog
// registers per bucket, the quantile bins in use, 32 MiB of de-dup words): written here they are
// one memcpy each, read back with one bounds check each, and take their own size. As protobuf
// they would be `bytes` fields copied twice (into the message, then into the wire) and parsed
// into intermediate messages before reaching the structures; the few scalar fields gain nothing
// from varints. Each structure writes and reads itself (Save / Load next to its code); this file
// only has the byte-level helpers.
//
// Reads never trust the input: every length is checked against what remains before it is used,
// and the first failure sticks (every later read fails too), so a Load can read several fields
// and test ok() once. Callers still validate values (ranges, invariants) before using them.
namespace rta::agg::detail {

static_assert(std::endian::native == std::endian::little,
              "the checkpoint format is little-endian and copies integers as they are in memory");

class StateWriter {
 public:
  explicit StateWriter(std::string* out) : out_(out) {}

  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, sizeof v); }
  void U64(uint64_t v) { Raw(&v, sizeof v); }
  void I64(int64_t v) { Raw(&v, sizeof v); }
  void F64(double v) { U64(std::bit_cast<uint64_t>(v)); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  // LEB128: 7 bits per byte, low bits first, the high bit set on every byte but the last.
  void VarU64(uint64_t v) {
    while (v >= 0x80) {
      U8(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    U8(static_cast<uint8_t>(v));
  }
  // Zigzag first, so that small negative values stay short.
  void VarI64(int64_t v) {
    VarU64((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void Raw(const void* data, size_t size) {
    if (size == 0) return;  // data may be null (an empty vector)
    out_->append(static_cast<const char*>(data), size);
  }
  void String(std::string_view text) {
    U64(text.size());
    Raw(text.data(), text.size());
  }

  // A section: a tag, then its length, then its bytes. Begin returns the position of the length
  // for End to fill in.
  size_t BeginSection(uint32_t tag) {
    U32(tag);
    const size_t at = out_->size();
    U64(0);
    return at;
  }
  void EndSection(size_t at) {
    const uint64_t length = out_->size() - at - sizeof(uint64_t);
    std::memcpy(out_->data() + at, &length, sizeof length);
  }

  size_t size() const { return out_->size(); }

 private:
  std::string* out_;
};

class StateReader {
 public:
  explicit StateReader(std::string_view data) : data_(data) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t remaining() const { return data_.size() - position_; }
  bool AtEnd() const { return position_ == data_.size(); }

  // Records the first failure; later reads fail without overwriting it.
  bool Fail(std::string_view what) {
    if (error_.empty()) error_.assign(what);
    position_ = data_.size();
    return false;
  }

  uint8_t U8() {
    uint8_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  uint32_t U32() {
    uint32_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  int64_t I64() {
    int64_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  double F64() { return std::bit_cast<double>(U64()); }
  // Fails on a varint longer than 10 bytes or one whose value does not fit 64 bits.
  uint64_t VarU64() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t byte = U8();
      if (!ok()) return 0;
      if (shift == 63 && byte > 1) break;
      v |= uint64_t{byte & 0x7Fu} << shift;
      if ((byte & 0x80) == 0) return v;
    }
    Fail("corrupt checkpoint: a varint is too long");
    return 0;
  }
  int64_t VarI64() {
    const uint64_t v = VarU64();
    return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  bool Bool() {
    const uint8_t v = U8();
    if (v > 1) Fail("corrupt checkpoint: a flag is neither 0 nor 1");
    return v == 1;
  }
  bool Raw(void* out, size_t size) {
    if (size > remaining()) return Fail("corrupt checkpoint: truncated");
    if (size == 0) return true;  // out may be null (an empty vector)
    std::memcpy(out, data_.data() + position_, size);
    position_ += size;
    return true;
  }
  // A view of the next `size` bytes (valid as long as the input).
  std::string_view Bytes(size_t size) {
    if (size > remaining()) {
      Fail("corrupt checkpoint: truncated");
      return {};
    }
    const std::string_view bytes = data_.substr(position_, size);
    position_ += size;
    return bytes;
  }
  std::string_view String(size_t max_size) {
    const uint64_t size = U64();
    if (size > max_size) {
      Fail("corrupt checkpoint: a string is longer than allowed");
      return {};
    }
    return Bytes(static_cast<size_t>(size));
  }
  // A count of items of at least `min_item_bytes` each: fails if the input cannot hold them or
  // the count exceeds `max_count`, so a corrupt count never drives a huge allocation.
  size_t Count(size_t min_item_bytes, uint64_t max_count) {
    const uint64_t count = U64();
    if (count > max_count || count * std::max<size_t>(min_item_bytes, 1) > remaining()) {
      Fail("corrupt checkpoint: a count exceeds its bound or the data left");
      return 0;
    }
    return static_cast<size_t>(count);
  }

  // The body of the next section, which must carry `tag`.
  StateReader Section(uint32_t tag, std::string_view name) {
    const uint32_t found = U32();
    const uint64_t length = U64();
    if (!ok()) return StateReader(std::string_view());
    if (found != tag) {
      Fail(std::string("corrupt checkpoint: expected section ").append(name));
      return StateReader(std::string_view());
    }
    return StateReader(Bytes(static_cast<size_t>(std::min<uint64_t>(length, remaining() + 1))));
  }

 private:
  std::string_view data_;
  size_t position_ = 0;
  std::string error_;
};

// A 64-bit checksum of a checkpoint's bytes (wyhash-style rounds, hash.h), so that flipped bits
// are reported instead of loaded: several GB/s, a few ms for a default-sized checkpoint.
uint64_t StateChecksum(std::string_view bytes);

}  // namespace rta::agg::detail
