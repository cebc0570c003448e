#include "net/event_loop.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

namespace portico::net {
namespace {

struct Recorder {
  EventLoop* loop;
  std::vector<int>* order;
  int id;
  bool stop_after = false;
};

void record(void* p) {
  auto* r = static_cast<Recorder*>(p);
  r->order->push_back(r->id);
  if (r->stop_after) r->loop->stop();
}

TEST(EventLoop, TimersFireInDeadlineOrderAndDisarmedOnesDoNot) {
  EventLoop loop;
  std::vector<int> order;
  Recorder a{&loop, &order, 1}, b{&loop, &order, 2}, c{&loop, &order, 3, true}, d{&loop, &order, 4};
  Timer ta(loop, &record, &a), tb(loop, &record, &b), tc(loop, &record, &c), td(loop, &record, &d);
  tc.arm(30);
  ta.arm(10);
  tb.arm(20);
  td.arm(15);
  td.disarm();
  EXPECT_FALSE(td.armed());
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(EventLoop, RearmingMovesTheDeadline) {
  EventLoop loop;
  std::vector<int> order;
  Recorder a{&loop, &order, 1}, b{&loop, &order, 2, true};
  Timer ta(loop, &record, &a), tb(loop, &record, &b);
  ta.arm(5);
  tb.arm(20);
  ta.arm(40);  // now after b, which stops the loop
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{2}));
  EXPECT_TRUE(ta.armed());
}

// Timers are lazy (disarm marks, a later re-arm keeps the heap position);
// these pin down that the observable behaviour is still exact.
TEST(EventLoop, DisarmedThenRearmedLaterFiresOnceAtTheNewDeadline) {
  EventLoop loop;
  std::vector<int> order;
  Recorder a{&loop, &order, 1}, b{&loop, &order, 2}, c{&loop, &order, 3, true};
  Timer ta(loop, &record, &a), tb(loop, &record, &b), tc(loop, &record, &c);
  ta.arm(5);
  ta.disarm();
  ta.arm(25);  // its heap position still says 5
  tb.arm(15);
  tc.arm(40);
  const uint64_t start = loop.nowMs();
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{2, 1, 3}));
  EXPECT_GE(loop.nowMs() - start, 40u);
  EXPECT_FALSE(ta.armed());
}

TEST(EventLoop, RearmingEarlierThanTheHeapPositionTakesEffect) {
  EventLoop loop;
  std::vector<int> order;
  Recorder a{&loop, &order, 1}, b{&loop, &order, 2, true};
  Timer ta(loop, &record, &a), tb(loop, &record, &b);
  ta.arm(60);
  tb.arm(30);
  ta.arm(10);
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventLoop, TimerDestroyedWhileDisarmedInTheHeapIsForgotten) {
  EventLoop loop;
  std::vector<int> order;
  Recorder a{&loop, &order, 1}, b{&loop, &order, 2, true};
  {
    Timer gone(loop, &record, &a);
    gone.arm(5);
    gone.disarm();  // still in the heap: its destructor must take it out
  }
  Timer tb(loop, &record, &b);
  tb.arm(20);
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{2}));
}

TEST(EventLoop, PostFromAnotherThreadRunsOnTheLoop) {
  EventLoop loop;
  std::thread::id ran_on;
  std::thread t([&] {
    loop.post([&] {
      ran_on = std::this_thread::get_id();
      loop.stop();
    });
  });
  loop.run();
  t.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

// A handler deleted while a batch of events is dispatched must not be
// touched by a later event of the same batch: deleteLater defers the free.
class CountingHandler final : public IoHandler {
 public:
  CountingHandler(int* live, int fd) : live_(live), fd_(fd) { ++*live_; }
  ~CountingHandler() override { --*live_; }
  void onIoEvent(uint32_t) override { ++events; }
  int events = 0;

 private:
  int* live_;
  int fd_;
};

TEST(EventLoop, DeleteLaterFreesAfterTheBatch) {
  EventLoop loop;
  int live = 0;
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  auto* h = new CountingHandler(&live, sv[0]);
  ASSERT_TRUE(loop.add(sv[0], EPOLLIN, h));
  ASSERT_EQ(write(sv[1], "x", 1), 1);
  loop.post([&] {
    loop.remove(sv[0]);
    loop.deleteLater(h);
    EXPECT_EQ(live, 1);  // still alive inside the batch
  });
  Recorder stopper{&loop, nullptr, 0, true};
  std::vector<int> order;
  stopper.order = &order;
  Timer t(loop, &record, &stopper);
  t.arm(20);
  loop.run();
  EXPECT_EQ(live, 0);
  close(sv[0]);
  close(sv[1]);
}

}  // namespace
}  // namespace portico::net
