#include "common/error.h"

namespace portico::common {

const char* toString(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidInput:
      return "invalid input";
    case ErrorKind::NotFound:
      return "not found";
    case ErrorKind::ConnectFailed:
      return "connection failure";
    case ErrorKind::TlsFailed:
      return "TLS failure";
    case ErrorKind::Timeout:
      return "timeout";
    case ErrorKind::ProtocolError:
      return "protocol error";
    case ErrorKind::ResetByPeer:
      return "connection reset";
    case ErrorKind::Overloaded:
      return "overloaded";
    case ErrorKind::Unavailable:
      return "unavailable";
    case ErrorKind::Io:
      return "i/o error";
  }
  return "unknown";
}

const char* toString(ErrorSource source) {
  switch (source) {
    case ErrorSource::Downstream:
      return "downstream";
    case ErrorSource::Upstream:
      return "upstream";
    case ErrorSource::Internal:
      return "internal";
    case ErrorSource::Config:
      return "config";
  }
  return "unknown";
}

}  // namespace portico::common
