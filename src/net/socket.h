#pragma once
// Thin helpers over BSD sockets: address parsing, non-blocking listen and
// connect. Errors come back as strings for logs and status messages.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

struct epoll_event;  // <sys/epoll.h>

namespace portico::net {

struct Address {
  sockaddr_storage storage{};
  socklen_t len = 0;
  std::string text;  // "127.0.0.1:8080" / "[::1]:8080"
};

// Parses an IP literal (v4 or v6, v6 optionally in brackets) and a port.
bool parseAddress(std::string_view ip, uint16_t port, Address& out);
// Parses "HOST:PORT" where HOST is an IP literal, "[v6]" or "localhost".
bool parseHostPort(std::string_view host_port, Address& out);

// Non-blocking listening socket with SO_REUSEADDR; -1 and `err` on failure.
int listenTcp(const Address& addr, int backlog, std::string& err);
// Starts a non-blocking connect; returns the fd (connect may be in progress)
// or -1 with `err`.
int connectTcp(const Address& addr, std::string& err);
// After EPOLLOUT on a connecting socket: 0 when connected, else the errno.
int connectResult(int fd);
void setNoDelay(int fd);
// The peer's IP as text ("" on failure).
std::string peerIp(int fd);
// Bytes in the socket's send queue (written, not yet acknowledged by the
// peer); -1 if unknown. A shrinking queue is a reading peer, even while the
// socket is not yet reported writable again.
int unsentBytes(int fd);
// The locally bound port of a socket (for port 0 binds).
uint16_t localPort(int fd);

// recv(2), send(2) and epoll_wait(2) as plain system calls. glibc's wrappers
// are thread-cancellation points: in a multi-threaded process each call is
// bracketed by __pthread_enable/disable_asynccancel, 1.3% of scenario 1's CPU
// (perf). Portico never cancels a thread. Same results and errno as the
// wrappers.
ssize_t recvNow(int fd, void* buf, size_t len);
ssize_t sendNow(int fd, const void* buf, size_t len, int flags);
int epollWaitNow(int epfd, epoll_event* events, int max_events, int timeout_ms);

}  // namespace portico::net
