// HTTP/1 codec costs per message, steady state (parsers reused the way a
// keep-alive connection reuses them).
#include <benchmark/benchmark.h>

#include <string>

#include "http/http1.h"

namespace portico::http {
namespace {

// A typical browser/curl-ish request, ~300 bytes.
const std::string kRequest =
    "GET /api/v1/orders/12345?expand=items&currency=EUR HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) curl/8.4.0\r\n"
    "Accept: application/json\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: session=0123456789abcdef\r\n"
    "X-Request-Id: 7f2c1b9e-3a4d-4e5f-8a6b-9c0d1e2f3a4b\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

const std::string kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Thu, 26 Nov 2026 12:00:00 GMT\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 63\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: no-cache\r\n"
    "\r\n"
    "{\"id\":12345,\"status\":\"shipped\",\"items\":[1,2,3],\"total\":\"42.00\"}";

const std::string kChunkedResponse =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Content-Type: text/plain\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "20\r\n0123456789abcdef0123456789abcdef\r\n"
    "20\r\n0123456789abcdef0123456789abcdef\r\n"
    "0\r\n\r\n";

// Runs one message through the parser; returns body bytes seen.
template <typename Parser>
size_t parseOne(Parser& p, std::string_view in) {
  size_t body = 0;
  for (;;) {
    size_t used = 0;
    ParseEvent ev = p.next(in, used);
    in.remove_prefix(used);
    if (ev.type == ParseEvent::Type::Body) body += ev.body.size();
    if (ev.type == ParseEvent::Type::MessageComplete) return body;
    if (ev.type != ParseEvent::Type::HeadComplete && ev.type != ParseEvent::Type::Body) {
      std::abort();  // the benchmark input is valid
    }
  }
}

void BM_ParseRequest(benchmark::State& state) {
  RequestParser p;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parseOne(p, kRequest));
    benchmark::DoNotOptimize(p.head().headers.get("host").data());
    p.reset();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRequest.size()));
  state.SetLabel(std::to_string(kRequest.size()) + " B");
}
BENCHMARK(BM_ParseRequest);

// The same request arriving in 4 reads: measures the cost of resuming.
void BM_ParseRequestSplit4(benchmark::State& state) {
  RequestParser p;
  const size_t q = kRequest.size() / 4;
  for (auto _ : state) {
    std::string_view in = kRequest;
    size_t used = 0;
    for (int i = 0; i < 3; ++i) {
      p.next(in.substr(0, q), used);
      in.remove_prefix(used);
    }
    benchmark::DoNotOptimize(parseOne(p, in));
    p.reset();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRequest.size()));
}
BENCHMARK(BM_ParseRequestSplit4);

void BM_ParseResponse(benchmark::State& state) {
  ResponseParser p;
  for (auto _ : state) {
    p.expect("GET");
    benchmark::DoNotOptimize(parseOne(p, kResponse));
    p.reset();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kResponse.size()));
  state.SetLabel(std::to_string(kResponse.size()) + " B");
}
BENCHMARK(BM_ParseResponse);

void BM_ParseChunkedResponse(benchmark::State& state) {
  ResponseParser p;
  for (auto _ : state) {
    p.expect("GET");
    benchmark::DoNotOptimize(parseOne(p, kChunkedResponse));
    p.reset();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kChunkedResponse.size()));
}
BENCHMARK(BM_ParseChunkedResponse);

// What the proxy does per request on the way out: strip hop-by-hop fields,
// add one, serialize into a reused buffer.
void BM_RewriteAndSerializeRequest(benchmark::State& state) {
  RequestParser p;
  parseOne(p, kRequest);
  std::string out;
  for (auto _ : state) {
    Headers h = p.head().headers;
    removeHopByHop(h, false);
    h.add("X-Forwarded-For", "10.1.2.3");
    out.clear();
    appendRequestHead(out, p.head().method, p.head().target, h);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_RewriteAndSerializeRequest);

}  // namespace
}  // namespace portico::http
