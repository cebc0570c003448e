#pragma once
// One epoll event loop per thread. Every object registered with a loop is
// owned by and only touched from that loop's thread; the only thread-safe
// entry point is post(), used for rare control messages (a new snapshot, a
// drain order), never per request.
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace portico::net {

class EventLoop;

// Receives readiness for one fd. Implementations stay alive until they
// remove their fd from the loop.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual void onIoEvent(uint32_t epoll_events) = 0;
};

// A one-shot timer owned by its user (no allocation to arm/disarm; the loop
// keeps a heap of pointers with back-indices).
//
// Lazy: the proxy disarms and re-arms the same timers on every request
// (header/idle timeout, request timeout, pooled connection idle), with
// deadlines seconds away. So disarm() only marks the timer, and arming a
// timer that is still in the heap at an earlier position only records the new
// deadline; the heap is fixed up when that earlier position comes due. A
// request then costs no heap operations; a timer costs one re-sift per
// timeout period at most.
class Timer {
 public:
  using Callback = void (*)(void* ctx);
  Timer(EventLoop& loop, Callback cb, void* ctx) : loop_(loop), cb_(cb), ctx_(ctx) {}
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void arm(uint64_t delay_ms);  // re-arming moves the deadline
  void disarm() { due_ms_ = kIdle; }
  bool armed() const { return due_ms_ != kIdle; }

 private:
  friend class EventLoop;
  static constexpr size_t kNotInHeap = static_cast<size_t>(-1);
  static constexpr uint64_t kIdle = static_cast<uint64_t>(-1);
  EventLoop& loop_;
  Callback cb_;
  void* ctx_;
  uint64_t due_ms_ = kIdle;  // when the callback should run; kIdle: not armed
  uint64_t heap_ms_ = 0;     // the heap key: <= due_ms_ while in the heap
  size_t heap_index_ = kNotInHeap;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  bool add(int fd, uint32_t events, IoHandler* handler);
  bool modify(int fd, uint32_t events, IoHandler* handler);
  void remove(int fd);
  // Closes a registered fd whose file description no other fd shares (never
  // dup()ed, as accepted and connected sockets): closing the last reference
  // drops the epoll registration, so no EPOLL_CTL_DEL syscall is needed.
  // Shared descriptions (the workers' dup()ed listen sockets) need remove().
  static void closeUnshared(int fd);

  // Frees `h` after the current batch of events: a handler deleted while a
  // batch is being dispatched may still have an event later in that batch.
  // The handler must already have removed its fd and disarmed its timers.
  void deleteLater(IoHandler* h) { graveyard_.push_back(h); }

  // Thread-safe: runs fn on the loop thread.
  void post(std::function<void()> fn);
  // Runs until stop(). Returns when stopped.
  void run();
  // Thread-safe.
  void stop();

  // Monotonic milliseconds, cached per loop iteration (cheap to read often).
  uint64_t nowMs() const { return now_ms_; }
  void updateTime();

 private:
  friend class Timer;
  void armTimer(Timer* t, uint64_t due_ms);
  void removeTimer(Timer* t);
  void siftUp(size_t i);
  void siftDown(size_t i);
  void swapTimers(size_t a, size_t b);
  void runTimers();
  void drainPosted();

  int epfd_ = -1;
  int wakefd_ = -1;
  bool stopping_ = false;
  uint64_t now_ms_ = 0;
  std::vector<Timer*> heap_;
  std::vector<IoHandler*> graveyard_;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  bool stop_requested_ = false;  // guarded by post_mu_
};

}  // namespace portico::net
