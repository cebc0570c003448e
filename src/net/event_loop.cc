#include "net/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"
#include "net/socket.h"

namespace portico::net {
namespace {
uint64_t monotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// Marker handler for the wake eventfd.
class WakeHandler final : public IoHandler {
 public:
  void onIoEvent(uint32_t) override {}
};
WakeHandler g_wake_marker;
}  // namespace

Timer::~Timer() {
  if (heap_index_ != kNotInHeap) loop_.removeTimer(this);
}

void Timer::arm(uint64_t delay_ms) { loop_.armTimer(this, loop_.nowMs() + delay_ms); }

EventLoop::EventLoop() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &g_wake_marker;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  updateTime();
}

EventLoop::~EventLoop() {
  for (IoHandler* h : graveyard_) delete h;
  if (wakefd_ >= 0) ::close(wakefd_);
  if (epfd_ >= 0) ::close(epfd_);
}

bool EventLoop::add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void EventLoop::closeUnshared(int fd) { ::close(fd); }

bool EventLoop::modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t n = ::write(wakefd_, &one, sizeof(one));
  (void)n;  // a full eventfd counter still wakes the loop
}

void EventLoop::stop() {
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    stop_requested_ = true;
  }
  uint64_t one = 1;
  ssize_t n = ::write(wakefd_, &one, sizeof(one));
  (void)n;
}

void EventLoop::updateTime() { now_ms_ = monotonicMs(); }

void EventLoop::drainPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    batch.swap(posted_);
    if (stop_requested_) stopping_ = true;
  }
  for (auto& fn : batch) fn();
}

void EventLoop::run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  while (!stopping_) {
    int timeout = -1;
    if (!heap_.empty()) {
      uint64_t deadline = heap_.front()->heap_ms_;
      timeout = deadline <= now_ms_ ? 0 : static_cast<int>(deadline - now_ms_);
    }
    int n = epollWaitNow(epfd_, events, kMaxEvents, timeout);
    updateTime();
    if (n < 0) {
      if (errno == EINTR) continue;
      PORTICO_LOG(Error, "epoll_wait failed: errno {}", errno);
      return;
    }
    for (int i = 0; i < n; ++i) {
      auto* handler = static_cast<IoHandler*>(events[i].data.ptr);
      if (handler == &g_wake_marker) {
        uint64_t v;
        while (::read(wakefd_, &v, sizeof(v)) > 0) {
        }
        drainPosted();
        continue;
      }
      handler->onIoEvent(events[i].events);
    }
    runTimers();
    if (!graveyard_.empty()) {
      auto dead = std::move(graveyard_);
      graveyard_.clear();
      for (IoHandler* h : dead) delete h;
    }
  }
}

// ---- timer heap (min-heap on deadline, with back indices) -----------------

void EventLoop::armTimer(Timer* t, uint64_t due_ms) {
  t->due_ms_ = due_ms;
  if (t->heap_index_ != Timer::kNotInHeap) {
    // Still in the heap: move only if it must fire earlier than its position
    // says; a later deadline is picked up when the position comes due.
    if (due_ms < t->heap_ms_) {
      t->heap_ms_ = due_ms;
      siftUp(t->heap_index_);
    }
    return;
  }
  t->heap_ms_ = due_ms;
  t->heap_index_ = heap_.size();
  heap_.push_back(t);
  siftUp(t->heap_index_);
}

void EventLoop::removeTimer(Timer* t) {
  size_t i = t->heap_index_;
  size_t last = heap_.size() - 1;
  if (i != last) swapTimers(i, last);
  heap_.pop_back();
  t->heap_index_ = Timer::kNotInHeap;
  if (i < heap_.size()) {
    siftUp(i);
    siftDown(i);
  }
}

void EventLoop::swapTimers(size_t a, size_t b) {
  std::swap(heap_[a], heap_[b]);
  heap_[a]->heap_index_ = a;
  heap_[b]->heap_index_ = b;
}

void EventLoop::siftUp(size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap_[parent]->heap_ms_ <= heap_[i]->heap_ms_) break;
    swapTimers(i, parent);
    i = parent;
  }
}

void EventLoop::siftDown(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_.size() && heap_[l]->heap_ms_ < heap_[m]->heap_ms_) m = l;
    if (r < heap_.size() && heap_[r]->heap_ms_ < heap_[m]->heap_ms_) m = r;
    if (m == i) return;
    swapTimers(i, m);
    i = m;
  }
}

void EventLoop::runTimers() {
  while (!heap_.empty() && heap_.front()->heap_ms_ <= now_ms_) {
    Timer* t = heap_.front();
    if (t->due_ms_ != Timer::kIdle && t->due_ms_ > now_ms_) {
      // Re-armed later since it took this position: move it there.
      t->heap_ms_ = t->due_ms_;
      siftDown(0);
      continue;
    }
    removeTimer(t);
    if (t->due_ms_ == Timer::kIdle) continue;  // disarmed
    t->due_ms_ = Timer::kIdle;
    t->cb_(t->ctx_);  // may re-arm or destroy timers, including t's owner
  }
}

}  // namespace portico::net
