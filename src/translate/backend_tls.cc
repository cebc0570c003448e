#include "translate/backend_tls.h"

#include "common/time.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "k8s/resources.h"
#include "snapshot/snapshot.h"
#include "translate/translate.h"

namespace portico::translate {

namespace {

using k8s::kGatewayGroup;

constexpr size_t kMaxTargetRefs = 16;
constexpr size_t kMaxCaRefs = 8;
constexpr size_t kMaxSubjectAltNames = 5;
constexpr size_t kMaxOptions = 16;
constexpr std::string_view kOurOptionPrefix = "portico.dev/";

std::string joined(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

bool isLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// Lower-case RFC 1123 subdomain: the pattern of Gateway API's PreciseHostname.
bool isSubdomain(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t end = host.find('.', start);
    if (end == std::string_view::npos) end = host.size();
    std::string_view label = host.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label)
      if (!isLabelChar(c)) return false;
    start = end + 1;
  }
  return true;
}

bool isIpv4Literal(std::string_view host) {
  int labels = 0;
  size_t start = 0;
  while (start <= host.size()) {
    size_t end = host.find('.', start);
    if (end == std::string_view::npos) end = host.size();
    std::string_view label = host.substr(start, end - start);
    if (label.empty() || label.size() > 3) return false;
    for (char c : label)
      if (c < '0' || c > '9') return false;
    ++labels;
    start = end + 1;
  }
  return labels == 4;
}

// Gateway API Hostname: a subdomain, optionally with a "*." left-most label.
bool isSanHostname(std::string_view host) {
  if (host.rfind("*.", 0) == 0) host.remove_prefix(2);
  return isSubdomain(host);
}

// Gateway API AbsoluteURI: "scheme://authority/path...", scheme free of ":/?#".
bool isAbsoluteUri(std::string_view uri) {
  size_t colon = uri.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  for (char c : uri.substr(0, colon))
    if (c == '/' || c == '?' || c == '#') return false;
  if (uri.substr(colon + 1, 2) != "//") return false;
  for (unsigned char c : uri)
    if (c <= 0x20 || c == 0x7f) return false;
  return uri.size() <= 253;
}

// Cipher and curve lists: names separated by ',' or ':'. The TLS library
// (when injected) has the last word on whether it knows them.
bool isNameList(std::string_view list) {
  if (list.empty()) return false;
  size_t names = 0;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find_first_of(",:", start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) return false;
    for (char c : item)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
    ++names;
    start = end + 1;
  }
  return names > 0;
}

// ---- FNV-1a -------------------------------------------------------------------------

class Fnv {
 public:
  void bytes(std::string_view s) {
    for (unsigned char c : s) {
      h_ ^= c;
      h_ *= 0x100000001b3ULL;
    }
  }
  // Length-prefixed so ("ab","c") and ("a","bc") differ.
  void field(std::string_view s) {
    number(s.size());
    bytes(s);
  }
  void number(uint64_t n) {
    for (int i = 0; i < 8; ++i) {
      h_ ^= static_cast<unsigned char>(n >> (8 * i));
      h_ *= 0x100000001b3ULL;
    }
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

// ---- what one policy asks for -------------------------------------------------------------

struct RefProblem {
  std::string reason;  // InvalidKind, InvalidCACertificateRef
  std::string message;
};

struct TargetKey {
  std::string service;  // "<ns>/<name>"
  std::string section;  // "" = every port
  std::string str() const { return section.empty() ? service : service + ":" + section; }
  bool operator<(const TargetKey& o) const {
    return std::tie(service, section) < std::tie(o.service, o.section);
  }
};

struct PolicyState {
  const k8s::BackendTlsPolicy* policy = nullptr;
  std::string key;

  // CEL / OpenAPI rules the API server would enforce: such a policy would not
  // exist in a cluster, so it takes no part in conflict resolution; it still
  // fails its targets closed when no other policy covers them.
  std::vector<std::string> schema_errors;
  // Implementation-specific problems (options): Accepted=False, Invalid.
  std::vector<std::string> option_errors;
  std::vector<std::string> ignored_options;  // other domains' keys
  std::vector<std::string> target_problems;  // targets that resolve to nothing

  std::vector<TargetKey> targets;  // supported (core Service) targets

  std::vector<RefProblem> ref_problems;
  std::vector<std::string> ca_sources;  // "ConfigMap default/ca"
  std::string ca_pem;
  bool no_valid_ca = false;

  snapshot::UpstreamTls tls;  // sni, trust, SANs, versions... (no client cert yet)

  std::set<TargetKey> lost;  // targets where an older policy wins
  std::map<TargetKey, std::string> lost_to;

  bool competes() const { return schema_errors.empty(); }
  bool invalid() const { return !schema_errors.empty() || !option_errors.empty(); }
  bool usable() const { return !invalid() && !no_valid_ca; }

  std::string invalidMessage() const {
    std::vector<std::string> all = schema_errors;
    all.insert(all.end(), option_errors.begin(), option_errors.end());
    return joined(all, "; ");
  }
  // Why connections governed by this policy fail closed.
  std::string failReason() const {
    if (invalid()) return "the policy is invalid: " + invalidMessage();
    std::vector<std::string> msgs;
    for (const auto& p : ref_problems) msgs.push_back(p.message);
    return "no usable CA certificate: " + joined(msgs, "; ");
  }
};

// A snapshot cluster that belongs to a Service port.
struct ClusterInfo {
  snapshot::Cluster* cluster = nullptr;
  const k8s::Service* service = nullptr;
  int32_t port = 0;
  std::string port_name;
  std::set<std::string> gateways;  // "<ns>/<name>" of Gateways whose routes reach it
  const PolicyState* governing = nullptr;
};

struct GatewayCert {
  const k8s::Gateway* gateway = nullptr;
  bool ok = false;
  std::string reason;
  std::string message;
  snapshot::CertificateKeyPair pair;
};

class BackendTlsPass {
 public:
  BackendTlsPass(const k8s::ResourceSet& rs, const Options& options, snapshot::Snapshot& snap,
                 StatusReport& status)
      : rs_(rs), options_(options), snap_(snap), status_(status) {
    has_now_ = parseRfc3339(options.now, now_);
    for (const auto& s : rs.services) services_[s.key()] = &s;
    for (const auto& c : rs.config_maps) config_maps_[c.key()] = &c;
    for (const auto& s : rs.secrets) secrets_[s.key()] = &s;
  }

  void run() {
    mapClusters();
    for (const auto& p : rs_.backend_tls_policies) {
      PolicyState st;
      st.policy = &p;
      st.key = p.key();
      evaluate(st);
      policies_.push_back(std::move(st));
    }
    // Deterministic output whatever the input order.
    std::sort(policies_.begin(), policies_.end(),
              [](const PolicyState& a, const PolicyState& b) { return a.key < b.key; });
    resolveConflicts();
    gatewayCertificates();
    programClusters();
    programListeners();
    writePolicyStatus();
    writeGatewayStatus();
    describeBackends();
  }

 private:
  // Many policies share one CA ConfigMap: parse each distinct PEM once.
  const PemInspection& inspect(std::string_view pem) const {
    auto it = inspected_.find(pem);
    if (it != inspected_.end()) return it->second;
    return inspected_.emplace(std::string(pem), inspectPem(options_, pem)).first->second;
  }

  // ---- which Gateways reach which clusters ------------------------------------------
  void mapClusters() {
    for (auto& c : snap_.clusters) {
      ClusterInfo info;
      info.cluster = &c;
      // "kube_<ns>_<service>_<port>": Kubernetes names never hold '_'.
      std::vector<std::string> parts;
      size_t start = 0;
      while (start <= c.name.size()) {
        size_t end = c.name.find('_', start);
        if (end == std::string::npos) end = c.name.size();
        parts.push_back(c.name.substr(start, end - start));
        start = end + 1;
      }
      bool numeric = parts.size() == 4 && !parts[3].empty() && parts[3].size() <= 5 &&
                     std::all_of(parts[3].begin(), parts[3].end(),
                                 [](char ch) { return ch >= '0' && ch <= '9'; });
      auto sit = numeric && parts[0] == "kube" ? services_.find(parts[1] + "/" + parts[2])
                                               : services_.end();
      if (sit != services_.end()) {
        info.service = sit->second;
        info.port = std::stoi(parts[3]);
        for (const auto& p : sit->second->ports)
          if (p.port == info.port) info.port_name = p.name;
        by_service_[sit->first].push_back(c.name);
      }
      clusters_.emplace(c.name, std::move(info));
    }
    // Route "<ns>/<name>/rule/<i>/match/<j>" -> clusters it sends to.
    std::map<std::string, std::set<std::string>> route_clusters;
    for (const auto& l : snap_.listeners)
      for (const auto& vh : l.virtual_hosts)
        for (const auto& r : vh.routes) {
          std::string route_key = r.name.substr(0, r.name.find("/rule/"));
          for (const auto& b : r.backends) route_clusters[route_key].insert(b.cluster);
          for (const auto& m : r.mirrors) route_clusters[route_key].insert(m.cluster);
        }
    for (const auto& [route_key, rstatus] : status_.http_routes) {
      auto rc = route_clusters.find(route_key);
      if (rc == route_clusters.end()) continue;
      for (const auto& parent : rstatus.parents) {
        if (parent.parent_ref.group != kGatewayGroup || parent.parent_ref.kind != "Gateway")
          continue;
        bool accepted = std::any_of(
            parent.conditions.begin(), parent.conditions.end(),
            [](const Condition& c) { return c.type == "Accepted" && c.status == "True"; });
        if (!accepted) continue;
        std::string gw = parent.parent_ref.ns.value_or("") + "/" + parent.parent_ref.name;
        if (!status_.gateways.count(gw)) continue;
        for (const auto& cluster : rc->second) {
          auto it = clusters_.find(cluster);
          if (it != clusters_.end()) it->second.gateways.insert(gw);
        }
      }
    }
  }

  // ---- one policy on its own ------------------------------------------------------------
  void evaluate(PolicyState& st) {
    const k8s::BackendTlsPolicy& p = *st.policy;
    auto schema = [&](std::string msg) { st.schema_errors.push_back(std::move(msg)); };

    // Decode refused the manifest (see k8s::BackendTlsPolicy::refused): what
    // it meant can't be known, so it is invalid and fails its targets closed.
    if (p.refused) schema("the manifest was refused: " + *p.refused);
    // targetRefs: 1..16 (decode refuses none), distinct, sectionName all-or-none per target.
    if (p.target_refs.size() > kMaxTargetRefs)
      schema("spec.targetRefs: at most 16 items are allowed, got " +
             std::to_string(p.target_refs.size()));
    for (size_t i = 0; i < p.target_refs.size(); ++i) {
      const auto& a = p.target_refs[i];
      bool a_has = a.section_name && !a.section_name->empty();
      for (size_t j = i + 1; j < p.target_refs.size(); ++j) {
        const auto& b = p.target_refs[j];
        if (a.group != b.group || a.kind != b.kind || a.name != b.name) continue;
        bool b_has = b.section_name && !b.section_name->empty();
        std::string where = "spec.targetRefs[" + std::to_string(j) + "]";
        if (a_has != b_has)
          schema(where +
                 ": sectionName must be specified when targetRefs includes 2 or more references "
                 "to the same target");
        else if (!a_has || *a.section_name == *b.section_name)
          schema(where +
                 ": sectionName must be unique when targetRefs includes 2 or more references to "
                 "the same target");
      }
    }
    for (size_t i = 0; i < p.target_refs.size(); ++i) {
      const auto& t = p.target_refs[i];
      std::string where = "spec.targetRefs[" + std::to_string(i) + "]";
      if (!t.group.empty() || t.kind != "Service") {
        st.target_problems.push_back(where + ": " + (t.group.empty() ? "" : t.group + "/") +
                                     t.kind + " " + t.name +
                                     " is not supported (only core Service): TargetNotFound");
        continue;
      }
      TargetKey key{p.metadata.ns + "/" + t.name, t.section_name.value_or("")};
      auto sit = services_.find(key.service);
      if (sit == services_.end()) {
        st.target_problems.push_back(where + ": Service " + key.service + " not found");
      } else if (!key.section.empty() &&
                 std::none_of(sit->second->ports.begin(), sit->second->ports.end(),
                              [&](const k8s::ServicePort& sp) { return sp.name == key.section; })) {
        st.target_problems.push_back(where + ": Service " + key.service + " has no port named " +
                                     key.section);
      }
      if (std::find_if(st.targets.begin(), st.targets.end(), [&](const TargetKey& k) {
            return !(k < key) && !(key < k);
          }) == st.targets.end())
        st.targets.push_back(std::move(key));
    }

    // validation.hostname: required PreciseHostname; it is always the SNI.
    const auto& v = p.validation;
    if (v.hostname.empty())
      schema("spec.validation.hostname: required");
    else if (v.hostname.find('*') != std::string::npos)
      schema("spec.validation.hostname: \"" + v.hostname +
             "\" must be a precise hostname (no wildcard)");
    else if (isIpv4Literal(v.hostname) || v.hostname.find(':') != std::string::npos)
      schema("spec.validation.hostname: \"" + v.hostname +
             "\" must be a hostname, not an IP address");
    else if (!isPreciseHostname(v.hostname))
      schema("spec.validation.hostname: \"" + v.hostname +
             "\" is not a valid lower-case RFC 1123 hostname");
    st.tls.sni = v.hostname;
    st.tls.policy = st.key;

    // Trust: caCertificateRefs (<= 8) XOR wellKnownCACertificates.
    bool has_refs = !v.ca_certificate_refs.empty();
    bool has_well_known = v.well_known_ca_certificates && !v.well_known_ca_certificates->empty();
    if (v.ca_certificate_refs.size() > kMaxCaRefs)
      schema("spec.validation.caCertificateRefs: at most 8 items are allowed, got " +
             std::to_string(v.ca_certificate_refs.size()));
    if (has_refs && has_well_known)
      schema(
          "spec.validation: must not contain both caCertificateRefs and wellKnownCACertificates");
    if (!has_refs && !has_well_known)
      schema("spec.validation: must specify either caCertificateRefs or wellKnownCACertificates");
    if (has_well_known) {
      if (*v.well_known_ca_certificates == "System")
        st.tls.use_system_trust = !has_refs;
      else
        schema("spec.validation.wellKnownCACertificates: unsupported value \"" +
               *v.well_known_ca_certificates + "\" (only System)");
    }
    if (has_refs) resolveCaRefs(st);

    // subjectAltNames (<= 5): Hostname or URI, with only the matching field.
    if (v.subject_alt_names.size() > kMaxSubjectAltNames)
      schema("spec.validation.subjectAltNames: at most 5 items are allowed, got " +
             std::to_string(v.subject_alt_names.size()));
    for (size_t i = 0; i < v.subject_alt_names.size(); ++i) {
      const auto& san = v.subject_alt_names[i];
      std::string where = "spec.validation.subjectAltNames[" + std::to_string(i) + "]";
      if (san.type == "Hostname") {
        if (san.hostname.empty())
          schema(where + ".hostname: required when type is Hostname");
        else if (!isSanHostname(san.hostname))
          schema(where + ".hostname: \"" + san.hostname + "\" is not a valid hostname");
        if (!san.uri.empty()) schema(where + ".uri: must not be set when type is Hostname");
        st.tls.subject_alt_names.push_back({snapshot::SanMatcher::Type::Hostname, san.hostname});
      } else if (san.type == "URI") {
        if (san.uri.empty())
          schema(where + ".uri: required when type is URI");
        else if (!isAbsoluteUri(san.uri))
          schema(where + ".uri: \"" + san.uri + "\" is not an absolute URI (scheme://...)");
        if (!san.hostname.empty()) schema(where + ".hostname: must not be set when type is URI");
        st.tls.subject_alt_names.push_back({snapshot::SanMatcher::Type::Uri, san.uri});
      } else {
        schema(where + ".type: unsupported value \"" + san.type + "\" (Hostname or URI)");
      }
    }

    evaluateOptions(st);
    st.tls.ca_pem = st.ca_pem;
  }

  void resolveCaRefs(PolicyState& st) {
    const k8s::BackendTlsPolicy& p = *st.policy;
    const auto& refs = p.validation.ca_certificate_refs;
    size_t usable = 0;
    for (size_t i = 0; i < refs.size(); ++i) {
      const auto& ref = refs[i];
      std::string where = "spec.validation.caCertificateRefs[" + std::to_string(i) + "]";
      std::string id = p.metadata.ns + "/" + ref.name;
      auto invalidRef = [&](std::string message) {
        st.ref_problems.push_back({"InvalidCACertificateRef", where + ": " + message});
      };
      if (!ref.group.empty() || (ref.kind != "ConfigMap" && ref.kind != "Secret")) {
        std::string kind = (ref.group.empty() ? "" : ref.group + "/") +
                           (ref.kind.empty() ? std::string("(no kind)") : ref.kind);
        st.ref_problems.push_back(
            {"InvalidKind", where + ": unsupported kind " + kind + " (ConfigMap or Secret)"});
        continue;
      }
      const std::string source = ref.kind + " " + id;
      const std::string* pem = nullptr;
      const k8s::ConfigMap* cm = nullptr;
      const k8s::Secret* secret = nullptr;
      if (ref.kind == "ConfigMap") {
        if (auto it = config_maps_.find(id); it != config_maps_.end()) cm = it->second;
      } else if (auto it = secrets_.find(id); it != secrets_.end()) {
        secret = it->second;
      }
      auto cached = [this](std::string_view text) -> const PemInspection& { return inspect(text); };
      if (std::string problem = readCaBundle(cm, secret, cached, pem); !problem.empty()) {
        invalidRef(source + problem);
        continue;
      }
      warnValidity("BackendTLSPolicy " + st.key + ": " + source + " ca.crt", inspect(*pem));
      st.ca_pem += *pem;
      if (st.ca_pem.back() != '\n') st.ca_pem += '\n';
      st.ca_sources.push_back(source);
      ++usable;
    }
    st.no_valid_ca = usable == 0;
  }

  void evaluateOptions(PolicyState& st) {
    const auto& options = st.policy->options;
    if (options.size() > kMaxOptions)
      st.schema_errors.push_back("spec.options: at most 16 entries are allowed, got " +
                                 std::to_string(options.size()));
    auto bad = [&](const std::string& key, std::string why) {
      st.option_errors.push_back("spec.options[" + key + "]: " + why);
    };
    for (const auto& [key, value] : options) {
      size_t slash = key.find('/');
      if (slash == std::string::npos) {
        // Un-prefixed keys are reserved for Gateway API; it defines none yet, so
        // we can't honour one: refuse rather than silently weaken the connection.
        bad(key, "un-prefixed keys are reserved for Gateway API and none is supported");
        continue;
      }
      if (key.compare(0, kOurOptionPrefix.size(), kOurOptionPrefix) != 0) {
        st.ignored_options.push_back(key);
        continue;
      }
      std::string name = key.substr(kOurOptionPrefix.size());
      if (name == "min-tls-version" || name == "max-tls-version") {
        if (value != "1.2" && value != "1.3") {
          bad(key, "unsupported value \"" + value + "\" (1.2 or 1.3)");
          continue;
        }
        (name == "min-tls-version" ? st.tls.min_version : st.tls.max_version) = value;
      } else if (name == "cipher-suites") {
        if (!isNameList(value)) {
          bad(key, "\"" + value + "\" is not a list of cipher suite names");
          continue;
        }
        st.tls.cipher_suites = value;
      } else if (name == "curves") {
        if (!isNameList(value)) {
          bad(key, "\"" + value + "\" is not a list of curve names");
          continue;
        }
        st.tls.curves = value;
      } else {
        bad(key,
            "unknown option (portico.dev/min-tls-version, portico.dev/max-tls-version, "
            "portico.dev/cipher-suites and portico.dev/curves are supported)");
      }
    }
    if (!st.tls.min_version.empty() && !st.tls.max_version.empty() &&
        st.tls.min_version > st.tls.max_version)
      st.option_errors.push_back("spec.options: portico.dev/min-tls-version " + st.tls.min_version +
                                 " is above portico.dev/max-tls-version " + st.tls.max_version);
    if (st.option_errors.empty() && options_.check_tls_settings &&
        (!st.tls.cipher_suites.empty() || !st.tls.curves.empty())) {
      // Only the settings under test: trust and client certificate are checked elsewhere.
      snapshot::UpstreamTls probe;
      probe.use_system_trust = true;
      probe.min_version = st.tls.min_version;
      probe.max_version = st.tls.max_version;
      probe.cipher_suites = st.tls.cipher_suites;
      probe.curves = st.tls.curves;
      std::string error = options_.check_tls_settings(probe);
      if (!error.empty()) st.option_errors.push_back("spec.options: " + error);
    }
  }

  void warnValidity(const std::string& what, const PemInspection& info) {
    if (!info.dates_known || !has_now_) return;
    for (size_t i = 0; i < info.certificates.size(); ++i) {
      const auto& c = info.certificates[i];
      std::string cert = what + ": certificate " + std::to_string(i + 1) +
                         (c.subject.empty() ? "" : " (" + c.subject + ")");
      if (now_ > c.not_after)
        status_.warnings.push_back(cert + " expired at " + common::formatRfc3339(c.not_after));
      else if (now_ < c.not_before)
        status_.warnings.push_back(cert + " is not valid before " +
                                   common::formatRfc3339(c.not_before));
    }
  }

  // ---- conflicts: oldest, then namespace/name, per Service and sectionName ---------------
  void resolveConflicts() {
    for (auto& st : policies_) {
      for (const auto& t : st.targets) (st.competes() ? competing_ : invalid_)[t].push_back(&st);
    }
    auto older = [](const PolicyState* a, const PolicyState* b) {
      return std::tie(a->policy->metadata.creation_timestamp, a->key) <
             std::tie(b->policy->metadata.creation_timestamp, b->key);
    };
    for (auto* m : {&competing_, &invalid_}) {
      for (auto& [target, list] : *m) std::stable_sort(list.begin(), list.end(), older);
    }
    for (auto& [target, list] : competing_) {
      for (size_t i = 1; i < list.size(); ++i) {
        list[i]->lost.insert(target);
        list[i]->lost_to[target] = list.front()->key;
      }
    }
  }

  const PolicyState* governing(const ClusterInfo& c) const {
    std::string svc = c.service->key();
    for (auto* m : {&competing_, &invalid_}) {
      if (!c.port_name.empty()) {
        auto it = m->find(TargetKey{svc, c.port_name});
        if (it != m->end() && !it->second.empty()) return it->second.front();
      }
      auto it = m->find(TargetKey{svc, ""});
      if (it != m->end() && !it->second.empty()) return it->second.front();
    }
    return nullptr;
  }

  // ---- Gateway client certificates -------------------------------------------------------
  bool referenceAllowed(const std::string& from_ns, const std::string& to_ns,
                        const std::string& to_name) const {
    for (const auto& g : rs_.reference_grants) {
      if (g.metadata.ns != to_ns) continue;
      bool from_ok = std::any_of(g.from.begin(), g.from.end(), [&](const auto& f) {
        return f.group == kGatewayGroup && f.kind == "Gateway" && f.ns == from_ns;
      });
      bool to_ok = std::any_of(g.to.begin(), g.to.end(), [&](const auto& t) {
        return t.group.empty() && t.kind == "Secret" && (!t.name || *t.name == to_name);
      });
      if (from_ok && to_ok) return true;
    }
    return false;
  }

  void gatewayCertificates() {
    for (const auto& gw : rs_.gateways) {
      if (!gw.backend_client_certificate_ref || !status_.gateways.count(gw.key())) continue;
      const auto& ref = *gw.backend_client_certificate_ref;
      GatewayCert gc;
      gc.gateway = &gw;
      std::string ns = ref.ns.value_or(gw.metadata.ns);
      std::string id = ns + "/" + ref.name;
      const std::string where = "spec.tls.backend.clientCertificateRef";
      auto fail = [&](std::string reason, std::string message) {
        gc.reason = std::move(reason);
        gc.message = where + ": " + message;
      };
      if (!ref.group.empty() || ref.kind != "Secret") {
        fail("InvalidClientCertificateRef", "unsupported kind " +
                                                (ref.group.empty() ? "" : ref.group + "/") +
                                                ref.kind + " (only core Secret)");
      } else if (ns != gw.metadata.ns && !referenceAllowed(gw.metadata.ns, ns, ref.name)) {
        fail("RefNotPermitted",
             "Secret " + id + " is in another namespace and no ReferenceGrant " + "allows it");
      } else if (auto it = secrets_.find(id); it == secrets_.end()) {
        fail("InvalidClientCertificateRef", "Secret " + id + " not found");
      } else {
        const auto& data = it->second->data;
        auto crt = data.find("tls.crt");
        auto key = data.find("tls.key");
        if (crt == data.end() || key == data.end() || crt->second.empty() || key->second.empty()) {
          fail("InvalidClientCertificateRef", "Secret " + id + " lacks tls.crt or tls.key");
        } else {
          const PemInspection& info = inspect(crt->second);
          std::string key_error = checkKey(crt->second, key->second);
          if (!info.error.empty() || info.certificates.empty()) {
            fail("InvalidClientCertificateRef",
                 "Secret " + id + ": tls.crt is not a PEM certificate: " +
                     (info.error.empty() ? std::string("no certificate found") : info.error));
          } else if (!key_error.empty()) {
            fail("InvalidClientCertificateRef", "Secret " + id + ": tls.key: " + key_error);
          } else {
            gc.ok = true;
            gc.pair = snapshot::CertificateKeyPair{id, crt->second, key->second};
            warnValidity("Gateway " + gw.key() + ": client certificate Secret " + id + " tls.crt",
                         info);
          }
        }
      }
      gateway_certs_.emplace(gw.key(), std::move(gc));
    }
  }

  std::string checkKey(const std::string& cert, const std::string& key) const {
    return checkCertificateKeyPair(options_, cert, key);
  }

  // ---- the snapshot ------------------------------------------------------------------------
  // A Gateway's backend client certificate travels with its listeners, so a
  // backend reached from two Gateways sees each Gateway's own certificate
  // (or none), never another Gateway's.
  void programListeners() {
    for (auto& l : snap_.listeners) {
      auto it = gateway_certs_.find(l.gateway);
      if (it == gateway_certs_.end() || !it->second.ok) continue;
      l.backend_client_certificate = it->second.pair;
      Fnv h;
      h.field(it->second.pair.cert_pem);
      h.field(it->second.pair.key_pem);
      l.backend_client_fingerprint = h.value() | 1;  // never 0 when set
    }
  }

  void programClusters() {
    for (auto& [name, info] : clusters_) {
      if (!info.service) continue;
      const PolicyState* p = governing(info);
      if (!p) continue;
      info.governing = p;
      snapshot::UpstreamTls tls = p->tls;
      if (!p->usable()) {
        // Fail closed: never plaintext, never unverified. Nothing else is
        // carried, so no half-valid setting looks as if it were in use.
        tls = snapshot::UpstreamTls{};
        tls.policy = p->key;
        tls.fail_closed = true;
        tls.fail_reason = p->failReason();
      }
      tls.fingerprint = upstreamTlsFingerprint(tls);
      info.cluster->tls = std::move(tls);
    }
  }

  // ---- status ------------------------------------------------------------------------------
  Condition condition(const char* type, bool ok, std::string reason, std::string message,
                      int64_t generation) const {
    return Condition{type,       ok ? "True" : "False", std::move(reason), std::move(message),
                     generation, options_.now};
  }

  // Clusters a target of `st` covers.
  std::vector<const ClusterInfo*> clustersOf(const TargetKey& t) const {
    std::vector<const ClusterInfo*> out;
    auto it = by_service_.find(t.service);
    if (it == by_service_.end()) return out;
    for (const auto& name : it->second) {
      const ClusterInfo& info = clusters_.at(name);
      if (!t.section.empty() && info.port_name != t.section) continue;
      out.push_back(&info);
    }
    return out;
  }

  void writePolicyStatus() {
    for (const auto& st : policies_) {
      // Gateway -> the policy's targets that reach it.
      std::map<std::string, std::vector<TargetKey>> ancestors;
      for (const auto& t : st.targets)
        for (const ClusterInfo* c : clustersOf(t))
          for (const auto& gw : c->gateways) {
            auto& v = ancestors[gw];
            if (std::find_if(v.begin(), v.end(),
                             [&](const TargetKey& k) { return !(k < t) && !(t < k); }) == v.end())
              v.push_back(t);
          }
      std::string prefix = "BackendTLSPolicy " + st.key + ": ";
      for (const auto& tp : st.target_problems) status_.notes.push_back(prefix + tp);
      if (ancestors.empty()) {
        std::string why = st.invalid() ? " (it is invalid: " + st.invalidMessage() + ")" : "";
        status_.notes.push_back(prefix + "no Gateway route reaches its targets, so it has no " +
                                "status ancestors" + why);
        continue;
      }
      int64_t gen = st.policy->metadata.generation;
      PolicyStatus ps;
      for (const auto& [gw, targets] : ancestors) {
        PolicyAncestorStatus a;
        size_t slash = gw.find('/');
        a.ancestor_ref.group = kGatewayGroup;
        a.ancestor_ref.kind = "Gateway";
        a.ancestor_ref.ns = gw.substr(0, slash);
        a.ancestor_ref.name = gw.substr(slash + 1);
        a.controller_name = options_.controller_name;
        bool all_lost = std::all_of(targets.begin(), targets.end(),
                                    [&](const TargetKey& t) { return st.lost.count(t) > 0; });
        if (st.invalid()) {
          a.conditions.push_back(condition("Accepted", false, "Invalid", st.invalidMessage(), gen));
        } else if (all_lost) {
          std::vector<std::string> msgs;
          for (const auto& t : targets)
            msgs.push_back("BackendTLSPolicy " + st.lost_to.at(t) + " already targets Service " +
                           t.str());
          a.conditions.push_back(condition(
              "Accepted", false, "Conflicted",
              joined(msgs, "; ") + " and takes precedence (older, then first by namespace/name)",
              gen));
        } else if (st.no_valid_ca) {
          a.conditions.push_back(condition("Accepted", false, "NoValidCACertificate",
                                           "no caCertificateRef is usable", gen));
        } else {
          std::string msg = "Policy is accepted";
          if (!st.ignored_options.empty())
            msg +=
                "; ignored options of other implementations: " + joined(st.ignored_options, ", ");
          if (!st.target_problems.empty())
            msg += "; not applied to: " + joined(st.target_problems, "; ");
          a.conditions.push_back(condition("Accepted", true, "Accepted", msg, gen));
        }
        if (st.ref_problems.empty()) {
          a.conditions.push_back(
              condition("ResolvedRefs", true, "ResolvedRefs", "All references are resolved", gen));
        } else {
          std::vector<std::string> msgs;
          for (const auto& p : st.ref_problems) msgs.push_back(p.message);
          a.conditions.push_back(condition("ResolvedRefs", false, st.ref_problems.front().reason,
                                           joined(msgs, "; "), gen));
        }
        ps.ancestors.push_back(std::move(a));
      }
      status_.backend_tls_policies[st.key] = std::move(ps);
    }
  }

  void writeGatewayStatus() {
    for (auto& [key, gc] : gateway_certs_) {
      auto it = status_.gateways.find(key);
      if (it == status_.gateways.end()) continue;
      int64_t gen = gc.gateway->metadata.generation;
      if (gc.ok) {
        std::string msg = "All references are resolved";
        it->second.conditions.push_back(condition("ResolvedRefs", true, "ResolvedRefs", msg, gen));
      } else {
        it->second.conditions.push_back(
            condition("ResolvedRefs", false, gc.reason, gc.message, gen));
      }
    }
  }

  void describeBackends() {
    for (const auto& [name, info] : clusters_) {
      std::string head = "backend ";
      if (info.service)
        head += info.service->key() + ":" + std::to_string(info.port);
      else
        head += "?";
      head += " (cluster " + name + "): ";
      const auto& tls = info.cluster->tls;
      if (!tls) {
        status_.backends.push_back(head + "plaintext (no BackendTLSPolicy)");
        continue;
      }
      const PolicyState* p = info.governing;
      if (tls->fail_closed) {
        status_.backends.push_back(
            head + "BackendTLSPolicy " + tls->policy +
            " cannot be honoured, requests fail with 503: " + tls->fail_reason);
        continue;
      }
      std::string line = head + "BackendTLSPolicy " + tls->policy + ", SNI " + tls->sni;
      if (tls->use_system_trust)
        line += ", CA from the system trust store";
      else if (p)
        line += ", CA from " + joined(p->ca_sources, " + ");
      if (!tls->subject_alt_names.empty()) {
        std::vector<std::string> sans;
        for (const auto& s : tls->subject_alt_names)
          sans.push_back((s.type == snapshot::SanMatcher::Type::Hostname ? "Hostname " : "URI ") +
                         s.value);
        line += ", SANs " + joined(sans, ", ");
      }
      if (!tls->min_version.empty() || !tls->max_version.empty())
        line += ", TLS " + (tls->min_version.empty() ? std::string("1.2") : tls->min_version) +
                "-" + (tls->max_version.empty() ? std::string("1.3") : tls->max_version);
      if (!tls->cipher_suites.empty()) line += ", ciphers " + tls->cipher_suites;
      if (!tls->curves.empty()) line += ", curves " + tls->curves;
      status_.backends.push_back(line);
    }
  }

  const k8s::ResourceSet& rs_;
  const Options& options_;
  struct PemHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  mutable std::unordered_map<std::string, PemInspection, PemHash, std::equal_to<>> inspected_;
  snapshot::Snapshot& snap_;
  StatusReport& status_;
  bool has_now_ = false;
  int64_t now_ = 0;
  std::map<std::string, const k8s::Service*> services_;
  std::map<std::string, const k8s::ConfigMap*> config_maps_;
  std::map<std::string, const k8s::Secret*> secrets_;
  std::map<std::string, ClusterInfo> clusters_;                 // by cluster name
  std::map<std::string, std::vector<std::string>> by_service_;  // service -> cluster names
  std::vector<PolicyState> policies_;                           // by namespace/name
  // Per target, policies in precedence order; competing_ holds schema-valid ones.
  std::map<TargetKey, std::vector<PolicyState*>> competing_;
  std::map<TargetKey, std::vector<PolicyState*>> invalid_;
  std::map<std::string, GatewayCert> gateway_certs_;
};

// Howard Hinnant's days_from_civil / civil_from_days.
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

PemInspection inspectPemStructurally(std::string_view pem) {
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  PemInspection out;
  size_t pos = 0;
  while (true) {
    size_t begin = pem.find(kBegin, pos);
    if (begin == std::string_view::npos) break;
    size_t body = begin + kBegin.size();
    size_t end = pem.find(kEnd, body);
    std::string n = std::to_string(out.certificates.size() + 1);
    if (end == std::string_view::npos) {
      out.error = "certificate " + n + " has no END CERTIFICATE line";
      return out;
    }
    size_t chars = 0;
    for (char c : pem.substr(body, end - body)) {
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
        out.error = "certificate " + n + " is not base64";
        return out;
      }
      ++chars;
    }
    if (chars == 0) {
      out.error = "certificate " + n + " is empty";
      return out;
    }
    out.certificates.emplace_back();
    pos = end + kEnd.size();
  }
  if (out.certificates.empty()) out.error = "no BEGIN CERTIFICATE block found";
  return out;
}

void applyBackendTls(const k8s::ResourceSet& resources, const Options& options,
                     snapshot::Snapshot& snap, StatusReport& status) {
  BackendTlsPass(resources, options, snap, status).run();
}

std::string readCaBundle(const k8s::ConfigMap* config_map, const k8s::Secret* secret,
                         const std::function<const PemInspection&(std::string_view)>& inspect,
                         const std::string*& pem) {
  pem = nullptr;
  if (config_map == nullptr && secret == nullptr) return " not found";
  const std::string* found = nullptr;
  if (config_map != nullptr) {
    if (auto d = config_map->data.find("ca.crt"); d != config_map->data.end())
      found = &d->second;
    else if (auto b = config_map->binary_data.find("ca.crt"); b != config_map->binary_data.end())
      found = &b->second;
  } else if (auto d = secret->data.find("ca.crt"); d != secret->data.end()) {
    found = &d->second;
  }
  if (found == nullptr) return " has no key ca.crt";
  if (found->find_first_not_of(" \t\r\n") == std::string::npos) return ": ca.crt is empty";
  const PemInspection& info = inspect(*found);
  if (!info.error.empty() || info.certificates.empty())
    return ": ca.crt is not a PEM certificate bundle: " +
           (info.error.empty() ? std::string("no certificate found") : info.error);
  pem = found;
  return "";
}

uint64_t upstreamTlsFingerprint(const snapshot::UpstreamTls& t) {
  Fnv h;
  h.field(t.policy);
  h.field(t.sni);
  h.field(t.ca_pem);
  h.number(t.use_system_trust ? 1 : 0);
  h.number(t.subject_alt_names.size());
  for (const auto& s : t.subject_alt_names) {
    h.number(s.type == snapshot::SanMatcher::Type::Hostname ? 1 : 2);
    h.field(s.value);
  }
  h.field(t.min_version);
  h.field(t.max_version);
  h.field(t.cipher_suites);
  h.field(t.curves);
  h.number(t.fail_closed ? 1 : 0);
  h.field(t.fail_reason);
  return h.value() == 0 ? 1 : h.value();
}

bool isPreciseHostname(std::string_view host) { return isSubdomain(host) && !isIpv4Literal(host); }

bool parseRfc3339(std::string_view s, int64_t& seconds) {
  auto num = [&](size_t pos, size_t len, int64_t& out) {
    if (pos + len > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int64_t y, mo, d, h, mi, se;
  if (!num(0, 4, y) || s.size() < 20 || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' ||
      !num(8, 2, d) || (s[10] != 'T' && s[10] != 't') || !num(11, 2, h) || s[13] != ':' ||
      !num(14, 2, mi) || s[16] != ':' || !num(17, 2, se))
    return false;
  size_t pos = 19;
  if (s[pos] == '.') {
    ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
  }
  if (pos + 1 != s.size() || (s[pos] != 'Z' && s[pos] != 'z')) return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
  seconds = daysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
            h * 3600 + mi * 60 + se;
  return true;
}

PemInspection inspectPem(const Options& options, std::string_view pem) {
  return options.inspect_certificates ? options.inspect_certificates(pem)
                                      : inspectPemStructurally(pem);
}

std::string checkCertificateKeyPair(const Options& options, std::string_view cert,
                                    std::string_view key) {
  PemInspection info = inspectPem(options, cert);
  if (!info.error.empty()) return "tls.crt is not a PEM certificate: " + info.error;
  if (info.certificates.empty()) return "tls.crt holds no PEM certificate";
  if (options.check_key_pair) return options.check_key_pair(cert, key);
  size_t begin = key.find("-----BEGIN ");
  if (begin == std::string_view::npos) return "no PEM private key found";
  size_t end_of_label = key.find("-----", begin + 11);
  if (end_of_label == std::string_view::npos) return "no PEM private key found";
  std::string label(key.substr(begin + 11, end_of_label - begin - 11));
  if (label.size() < 11 || label.compare(label.size() - 11, 11, "PRIVATE KEY") != 0)
    return "no PEM private key found (found " + label + ")";
  if (key.find("-----END " + label + "-----", end_of_label) == std::string_view::npos)
    return "PEM private key is not terminated";
  return "";
}

}  // namespace portico::translate
