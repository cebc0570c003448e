#include "net/buffer.h"

#include <vector>

namespace portico::net {
namespace {

// Per-thread cache of kBlock-sized blocks. Buffers live and die on their
// worker's thread, so no locking; the cache frees its blocks at thread exit.
struct BlockCache {
  std::vector<char*> blocks;
  ~BlockCache() {
    for (char* b : blocks) delete[] b;
  }
};
thread_local BlockCache t_cache;

}  // namespace

char* Buffer::allocate(size_t cap) {
  if (cap == kBlock && !t_cache.blocks.empty()) {
    char* b = t_cache.blocks.back();
    t_cache.blocks.pop_back();
    return b;
  }
  return new char[cap];
}

void Buffer::deallocate(char* p, size_t cap) {
  if (cap == kBlock && t_cache.blocks.size() < kCachedBlocks) {
    t_cache.blocks.push_back(p);
    return;
  }
  delete[] p;
}

}  // namespace portico::net
