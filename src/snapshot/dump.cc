#include "snapshot/dump.h"

#include <nlohmann/json.hpp>

namespace portico::snapshot {

namespace {

using nlohmann::json;

constexpr const char* kRedacted = "[redacted]";

const char* toString(PathMatch::Type t) {
  switch (t) {
    case PathMatch::Type::Exact:
      return "Exact";
    case PathMatch::Type::PathPrefix:
      return "PathPrefix";
    case PathMatch::Type::RegularExpression:
      return "RegularExpression";
  }
  return "?";
}

const char* toString(PathModifier::Type t) {
  return t == PathModifier::Type::ReplaceFullPath ? "ReplaceFullPath" : "ReplacePrefixMatch";
}

template <typename Match>
json valueMatchJson(const Match& m) {
  return json{{"type", m.type == Match::Type::Exact ? "Exact" : "RegularExpression"},
              {"name", m.name},
              {"value", m.value}};
}

json headerModifierJson(const HeaderModifier& h) {
  json j = json::object();
  auto pairs = [](const std::vector<std::pair<std::string, std::string>>& v) {
    json arr = json::array();
    for (const auto& [name, value] : v) arr.push_back({{"name", name}, {"value", value}});
    return arr;
  };
  if (!h.set.empty()) j["set"] = pairs(h.set);
  if (!h.add.empty()) j["add"] = pairs(h.add);
  if (!h.remove.empty()) j["remove"] = h.remove;
  return j;
}

json pathModifierJson(const PathModifier& p) {
  return json{{"type", toString(p.type)}, {"value", p.value}};
}

json routeJson(const Route& r) {
  json j;
  j["name"] = r.name;
  json match;
  match["path"] = {{"type", toString(r.match.path.type)}, {"value", r.match.path.value}};
  if (!r.match.headers.empty()) {
    json arr = json::array();
    for (const auto& h : r.match.headers) arr.push_back(valueMatchJson(h));
    match["headers"] = arr;
  }
  if (!r.match.query_params.empty()) {
    json arr = json::array();
    for (const auto& q : r.match.query_params) arr.push_back(valueMatchJson(q));
    match["query_params"] = arr;
  }
  if (!r.match.method.empty()) match["method"] = r.match.method;
  j["match"] = match;
  if (r.request_header_modifier)
    j["request_header_modifier"] = headerModifierJson(*r.request_header_modifier);
  if (r.response_header_modifier)
    j["response_header_modifier"] = headerModifierJson(*r.response_header_modifier);
  if (r.redirect) {
    json red;
    if (r.redirect->scheme) red["scheme"] = *r.redirect->scheme;
    if (r.redirect->hostname) red["hostname"] = *r.redirect->hostname;
    if (r.redirect->path) red["path"] = pathModifierJson(*r.redirect->path);
    if (r.redirect->port) red["port"] = *r.redirect->port;
    red["status_code"] = r.redirect->status_code;
    j["redirect"] = red;
  }
  if (r.rewrite) {
    json rw = json::object();
    if (r.rewrite->hostname) rw["hostname"] = *r.rewrite->hostname;
    if (r.rewrite->path) rw["path"] = pathModifierJson(*r.rewrite->path);
    j["rewrite"] = rw;
  }
  if (r.cors) {
    const Cors& c = *r.cors;
    json cj = {{"allow_origins", c.allow_origins},
               {"allow_credentials", c.allow_credentials},
               {"max_age", c.max_age}};
    if (!c.allow_methods.empty()) cj["allow_methods"] = c.allow_methods;
    if (!c.allow_headers.empty()) cj["allow_headers"] = c.allow_headers;
    if (!c.expose_headers.empty()) cj["expose_headers"] = c.expose_headers;
    j["cors"] = cj;
  }
  json backends = json::array();
  for (const auto& b : r.backends) {
    json bj = {{"cluster", b.cluster}, {"weight", b.weight}};
    if (b.request_header_modifier)
      bj["request_header_modifier"] = headerModifierJson(*b.request_header_modifier);
    if (b.response_header_modifier)
      bj["response_header_modifier"] = headerModifierJson(*b.response_header_modifier);
    backends.push_back(std::move(bj));
  }
  j["backends"] = backends;
  if (!r.mirrors.empty()) {
    json mirrors = json::array();
    for (const auto& m : r.mirrors)
      mirrors.push_back(
          {{"cluster", m.cluster},
           {"fraction", std::to_string(m.numerator) + "/" + std::to_string(m.denominator)}});
    j["mirrors"] = mirrors;
  }
  j["total_weight"] = r.total_weight;
  if (r.direct_status != 0) {
    j["direct_status"] = r.direct_status;
    j["direct_body"] = r.direct_body;
  }
  if (r.timeout_ms) j["timeout_ms"] = *r.timeout_ms;
  if (r.retry)
    j["retry"] = {{"codes", r.retry->codes},
                  {"attempts", r.retry->attempts},
                  {"backoff_ms", r.retry->backoff_ms}};
  if (r.try_timeout_ms) j["try_timeout_ms"] = *r.try_timeout_ms;
  return j;
}

json certJson(const CertificateKeyPair& c) {
  return json{{"name", c.name}, {"cert_pem", c.cert_pem}, {"key_pem", kRedacted}};
}

json upstreamTlsJson(const UpstreamTls& t) {
  json j;
  j["policy"] = t.policy;
  j["sni"] = t.sni;
  j["ca_pem"] = t.ca_pem;
  j["use_system_trust"] = t.use_system_trust;
  json sans = json::array();
  for (const auto& s : t.subject_alt_names)
    sans.push_back(
        {{"type", s.type == SanMatcher::Type::Hostname ? "Hostname" : "URI"}, {"value", s.value}});
  j["subject_alt_names"] = sans;
  if (!t.min_version.empty()) j["min_version"] = t.min_version;
  if (!t.max_version.empty()) j["max_version"] = t.max_version;
  if (!t.cipher_suites.empty()) j["cipher_suites"] = t.cipher_suites;
  if (!t.curves.empty()) j["curves"] = t.curves;
  if (t.fail_closed) {
    j["fail_closed"] = true;
    j["fail_reason"] = t.fail_reason;
  }
  return j;
}

}  // namespace

std::string dumpSnapshotJson(const Snapshot& s) {
  json root;
  root["version"] = s.version;
  json listeners = json::array();
  for (const auto& l : s.listeners) {
    json lj;
    lj["name"] = l.name;
    lj["address"] = l.address;
    lj["port"] = l.port;
    lj["stat_prefix"] = l.stat_prefix;
    if (!l.gateway.empty()) lj["gateway"] = l.gateway;
    if (l.backend_client_certificate) {
      lj["backend_client_certificate"] = certJson(*l.backend_client_certificate);
    }
    json vhosts = json::array();
    for (const auto& vh : l.virtual_hosts) {
      json routes = json::array();
      for (const auto& r : vh.routes) routes.push_back(routeJson(r));
      vhosts.push_back({{"name", vh.name}, {"domains", vh.domains}, {"routes", routes}});
    }
    lj["virtual_hosts"] = vhosts;
    if (l.tls) {
      json certs = json::array();
      for (const auto& e : l.tls->certificates) {
        json ej = {{"hostnames", e.hostnames}, {"certificate", certJson(e.cert)}};
        if (!e.client_ca_pem.empty())
          ej["client_validation"] = {
              {"ca", e.client_ca_name},
              {"mode", e.client_cert_optional ? "AllowInsecureFallback" : "AllowValidOnly"}};
        certs.push_back(std::move(ej));
      }
      lj["tls"] = {{"certificates", certs}};
    }
    listeners.push_back(std::move(lj));
  }
  root["listeners"] = listeners;
  json clusters = json::array();
  for (const auto& c : s.clusters) {
    json cj;
    cj["name"] = c.name;
    json eps = json::array();
    for (const auto& e : c.endpoints)
      eps.push_back({{"address", e.address}, {"port", e.port}, {"ready", e.ready}});
    cj["endpoints"] = eps;
    if (!c.dns_name.empty()) {
      cj["dns_name"] = c.dns_name;
      cj["dns_port"] = c.dns_port;
    }
    cj["lb_policy"] = c.lb_policy == LbPolicy::RoundRobin ? "RoundRobin" : "LeastRequest";
    cj["connect_timeout_ms"] = c.connect_timeout_ms;
    cj["request_timeout_ms"] = c.request_timeout_ms;
    cj["idle_timeout_ms"] = c.idle_timeout_ms;
    if (c.tls) cj["tls"] = upstreamTlsJson(*c.tls);
    clusters.push_back(std::move(cj));
  }
  root["clusters"] = clusters;
  return root.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace portico::snapshot
