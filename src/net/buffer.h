#pragma once
// A contiguous byte buffer with a read cursor: read(2) lands directly in it,
// consumers take views, and memory is returned when it empties so an idle
// connection holds no buffer at all.
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace portico::net {

class Buffer {
 public:
  size_t size() const { return end_ - start_; }
  bool empty() const { return end_ == start_; }
  std::string_view view() const { return {data_.get() + start_, end_ - start_}; }
  void consume(size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  // Space for at least `min` more bytes at the end (compacts or grows).
  char* reserve(size_t min) {
    if (cap_ - end_ >= min) return data_.get() + end_;
    if (start_ > 0 && cap_ - size() >= min) {
      std::memmove(data_.get(), data_.get() + start_, size());
    } else {
      size_t cap = cap_ ? cap_ : 4096;
      while (cap - size() < min) cap *= 2;
      std::unique_ptr<char[]> grown(new char[cap]);
      if (size() > 0) std::memcpy(grown.get(), data_.get() + start_, size());
      data_ = std::move(grown);
      cap_ = cap;
    }
    end_ -= start_;
    start_ = 0;
    return data_.get() + end_;
  }
  size_t writableSize() const { return cap_ - end_; }
  void commit(size_t n) { end_ += n; }
  void append(std::string_view s) {
    if (s.empty()) return;
    std::memcpy(reserve(s.size()), s.data(), s.size());
    end_ += s.size();
  }
  // Frees the storage when empty (idle connections keep nothing).
  void shrink() {
    if (empty()) {
      data_.reset();
      cap_ = start_ = end_ = 0;
    }
  }
  void clear() { start_ = end_ = 0; }

 private:
  std::unique_ptr<char[]> data_;
  size_t cap_ = 0;
  size_t start_ = 0;
  size_t end_ = 0;
};

}  // namespace portico::net
