// libFuzzer target: the HTTP/1.1 request and response parsers fed arbitrary
// bytes in arbitrary pieces (the first input byte picks the piece size), as a
// client or backend could send them. Checks what the proxy relies on: every
// call consumes no more than it was given, a parser that asks for more with
// input left made progress, and a message's body never exceeds its framing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/http1.h"

namespace {

using portico::http::ParseEvent;

void check(bool ok) {
  if (!ok) std::abort();
}

// Feeds `input` to `parser` `piece` bytes at a time, across pipelined messages.
template <typename Parser, typename Restart>
void drive(Parser& parser, std::string_view input, size_t piece, Restart restart) {
  std::string_view fed = input.substr(0, 0);
  size_t offered = 0;
  bool sized = false;  // the current message has a Content-Length body
  uint64_t left = 0;   // of it, not yet seen
  for (int steps = 0; steps < 100000; ++steps) {
    size_t used = 0;
    ParseEvent ev = parser.next(fed, used);
    check(used <= fed.size());
    fed.remove_prefix(used);
    if (ev.type == ParseEvent::Type::Error) return;
    if (ev.type == ParseEvent::Type::HeadComplete) {
      sized = parser.framing() == portico::http::BodyFraming::ContentLength;
      left = parser.contentLength();
    } else if (ev.type == ParseEvent::Type::Body && sized) {
      check(ev.body.size() <= left);  // never more body than the framing says
      left -= ev.body.size();
    }
    if (ev.type == ParseEvent::Type::MessageComplete) {
      check(!sized || left == 0);  // nor less
      sized = false;
      restart(parser);
      continue;
    }
    if (ev.type == ParseEvent::Type::NeedMore) {
      if (offered >= input.size()) {
        parser.finish();
        return;
      }
      // Hand over the next piece (with what is still unconsumed before it).
      const size_t start = static_cast<size_t>(fed.data() - input.data());
      offered = std::min(input.size(), offered + piece);
      fed = input.substr(start, offered - start);
      continue;
    }
    check(used > 0 || ev.type == ParseEvent::Type::HeadComplete);
  }
  std::abort();  // no progress: a parser loop
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  portico::http::RequestParser request;
  drive(request, input, piece, [](portico::http::RequestParser& p) { p.reset(); });

  for (const char* method : {"GET", "HEAD", "CONNECT"}) {
    portico::http::ResponseParser response;
    response.expect(method);
    drive(response, input, piece, [method](portico::http::ResponseParser& p) {
      p.reset();
      p.expect(method);
    });
  }
  return 0;
}
