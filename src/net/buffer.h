#pragma once
// A contiguous byte buffer with a read cursor: read(2) lands directly in it,
// consumers take views, and memory is returned when it empties so an idle
// connection holds no buffer at all.
//
// Storage comes in blocks of kBlock bytes (or a power-of-two multiple when a
// message needs more). Freed kBlock-sized blocks go to a small per-thread
// cache, so a busy worker does not call malloc/free for every request while
// an idle one holds at most kCachedBlocks blocks.
#include <cstddef>
#include <cstring>
#include <string_view>

namespace portico::net {

class Buffer {
 public:
  static constexpr size_t kBlock = 16 * 1024;
  static constexpr size_t kCachedBlocks = 256;  // 4 MiB per thread at most

  Buffer() = default;
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  size_t size() const { return end_ - start_; }
  bool empty() const { return end_ == start_; }
  std::string_view view() const { return {data_ + start_, end_ - start_}; }
  void consume(size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  // Space for at least `min` more bytes at the end (compacts or grows).
  char* reserve(size_t min) {
    if (cap_ - end_ >= min) return data_ + end_;
    if (start_ > 0 && cap_ - size() >= min) {
      std::memmove(data_, data_ + start_, size());
    } else {
      const size_t used = size();
      size_t cap = cap_ ? cap_ : kBlock;
      while (cap - used < min) cap *= 2;
      char* grown = allocate(cap);
      if (used > 0) std::memcpy(grown, data_ + start_, used);
      release();
      data_ = grown;
      cap_ = cap;
      end_ = used;
      return data_ + end_;
    }
    end_ -= start_;
    start_ = 0;
    return data_ + end_;
  }
  size_t writableSize() const { return cap_ - end_; }
  void commit(size_t n) { end_ += n; }
  void append(std::string_view s) {
    if (s.empty()) return;
    std::memcpy(reserve(s.size()), s.data(), s.size());
    end_ += s.size();
  }
  // Returns the storage when empty (idle connections keep nothing).
  void shrink() {
    if (empty()) release();
  }
  void clear() { start_ = end_ = 0; }

 private:
  static char* allocate(size_t cap);
  static void deallocate(char* p, size_t cap);
  void release() {
    if (data_ != nullptr) deallocate(data_, cap_);
    data_ = nullptr;
    cap_ = start_ = end_ = 0;
  }

  char* data_ = nullptr;
  size_t cap_ = 0;
  size_t start_ = 0;
  size_t end_ = 0;
};

}  // namespace portico::net
