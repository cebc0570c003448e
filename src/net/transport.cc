#include "net/transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/socket.h"

namespace portico::net {

IoResult PlainTransport::read(char* buf, size_t len) {
  for (;;) {
    ssize_t n = recvNow(fd_, buf, len);
    if (n > 0) return {IoResult::Status::Ok, static_cast<size_t>(n), {}};
    if (n == 0) return {IoResult::Status::Eof, 0, {}};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::Status::WouldBlock, 0, {}};
    return {IoResult::Status::Error, 0, std::strerror(errno)};
  }
}

IoResult PlainTransport::write(const char* buf, size_t len) {
  for (;;) {
    ssize_t n = sendNow(fd_, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return {IoResult::Status::Ok, static_cast<size_t>(n), {}};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::Status::WouldBlock, 0, {}};
    return {IoResult::Status::Error, 0, std::strerror(errno)};
  }
}

}  // namespace portico::net
