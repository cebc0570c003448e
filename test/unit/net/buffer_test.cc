#include "net/buffer.h"

#include <gtest/gtest.h>

#include <string>

namespace portico::net {
namespace {

TEST(Buffer, AppendConsumeKeepsOrderAcrossGrowthAndCompaction) {
  Buffer b;
  std::string expect;
  for (int i = 0; i < 1000; ++i) {
    std::string chunk(static_cast<size_t>(i % 97 + 1), static_cast<char>('a' + i % 26));
    b.append(chunk);
    expect += chunk;
    if (i % 3 == 0) {
      size_t n = std::min<size_t>(b.size(), 50);
      ASSERT_EQ(b.view().substr(0, n), std::string_view(expect).substr(0, n));
      b.consume(n);
      expect.erase(0, n);
    }
  }
  EXPECT_EQ(b.view(), expect);
}

TEST(Buffer, ReserveCommitAndShrinkWhenEmpty) {
  Buffer b;
  char* p = b.reserve(10);
  ASSERT_GE(b.writableSize(), 10u);
  std::memcpy(p, "0123456789", 10);
  b.commit(10);
  EXPECT_EQ(b.view(), "0123456789");
  b.shrink();  // not empty: keeps its data
  EXPECT_EQ(b.size(), 10u);
  b.consume(10);
  EXPECT_TRUE(b.empty());
  b.shrink();
  EXPECT_EQ(b.writableSize(), 0u);  // storage returned
}

TEST(Buffer, GrowsPastOneBlockAndKeepsData) {
  Buffer b;
  std::string big(3 * Buffer::kBlock + 5, 'x');
  big[0] = 'a';
  big.back() = 'z';
  b.append(big);
  EXPECT_EQ(b.view(), big);
  EXPECT_GE(b.writableSize() + b.size(), 4 * Buffer::kBlock);
  b.consume(big.size());
  b.shrink();
  EXPECT_EQ(b.writableSize(), 0u);
}

TEST(Buffer, BlocksAreReusedAcrossBuffers) {
  const char* first = nullptr;
  {
    Buffer a;
    first = a.reserve(1);
  }  // freed into the thread's cache
  Buffer b;
  EXPECT_EQ(b.reserve(1), first);  // the same block comes back: no malloc
}

}  // namespace
}  // namespace portico::net
