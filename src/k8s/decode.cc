#include "k8s/decode.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/log.h"
#include "k8s/yaml_json.h"

namespace portico::k8s {

using nlohmann::json;

std::string DecodeError::toString() const {
  if (document == 0) return file + ": " + message;
  return file + ": document " + std::to_string(document) + ": " + path + ": " + message;
}

bool selectorMatches(const LabelSelector& selector,
                     const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector.match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& req : selector.match_expressions) {
    auto it = labels.find(req.key);
    bool has = it != labels.end();
    bool in =
        has && std::find(req.values.begin(), req.values.end(), it->second) != req.values.end();
    if (req.op == "In" && !in) return false;
    if (req.op == "NotIn" && in) return false;
    if (req.op == "Exists" && !has) return false;
    if (req.op == "DoesNotExist" && has) return false;
  }
  return true;
}

std::optional<std::string> base64Decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    if (padding) return std::nullopt;  // data after padding
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone trailing character
  return out;
}

namespace {

// ---- field access with error paths -------------------------------------------------

const char* typeName(const json& j) {
  if (j.is_string()) return "string";
  if (j.is_boolean()) return "boolean";
  if (j.is_number()) return "number";
  if (j.is_array()) return "list";
  if (j.is_object()) return "map";
  return "null";
}

std::string join(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return path + "." + std::string(key);
}

std::string index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

class Ctx {
 public:
  Ctx(std::string file, int document, ResourceSet& out)
      : file_(std::move(file)), document_(document), out_(out) {}

  void error(const std::string& path, std::string message) {
    out_.errors.push_back(DecodeError{file_, document_, path, std::move(message)});
    ++errors_;
  }
  int errors() const { return errors_; }
  const std::string& file() const { return file_; }
  int document() const { return document_; }

  // Absent and explicit null are the same thing in Kubernetes.
  const json* field(const json& obj, std::string_view key) {
    if (track_reads_) visited_.push_back(&obj);
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (track_reads_) misses_.push_back(Miss{&obj, std::string(key)});
      return nullptr;
    }
    if (track_reads_) read_.push_back(&*it);
    if (it->is_null()) return nullptr;
    return &*it;
  }

  // ---- fields nothing read ----
  // Every field() call notes the map it looked into, the value it found or
  // the key it missed; warnUnread() then walks an object and warns about
  // every key of a looked-into map that was never asked for. Maps the
  // decoder never looks into (status, annotations, option maps) are opaque.
  // `track`: whether the object about to be decoded gets warnUnread().
  void forgetReads(bool track) {
    read_.clear();
    visited_.clear();
    misses_.clear();
    track_reads_ = track;
  }

  // `only_misspellings`: for an object with errors, whose decoding may have
  // stopped early, only keys that look like a misspelled known one.
  void warnUnread(const json& obj, const std::string& path, bool only_misspellings) {
    if (!track_reads_) return;  // not a Gateway API object (see decodeObject())
    for (auto* v : {&read_, &visited_}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    only_misspellings_ = only_misspellings;
    walkUnread(obj, path, true);
  }

  void warning(const std::string& path, std::string message) {
    DecodeError w{file_, document_, path, std::move(message)};
    PORTICO_LOG(Warn, "{}", w.toString());
    out_.warnings.push_back(std::move(w));
  }

  bool str(const json& obj, const std::string& path, std::string_view key, std::string& out,
           bool required = false) {
    const json* v = field(obj, key);
    if (!v) {
      if (required) error(join(path, key), "required field is missing");
      return false;
    }
    if (!v->is_string()) {
      error(join(path, key), std::string("expected string, got ") + typeName(*v));
      return false;
    }
    out = v->get<std::string>();
    if (required && out.empty()) {
      error(join(path, key), "must not be empty");
      return false;
    }
    return true;
  }

  bool optStr(const json& obj, const std::string& path, std::string_view key,
              std::optional<std::string>& out) {
    std::string s;
    if (!str(obj, path, key, s)) return false;
    out = std::move(s);
    return true;
  }

  bool i64(const json& obj, const std::string& path, std::string_view key, int64_t& out,
           bool required = false) {
    const json* v = field(obj, key);
    if (!v) {
      if (required) error(join(path, key), "required field is missing");
      return false;
    }
    if (!v->is_number_integer()) {
      error(join(path, key), std::string("expected integer, got ") + typeName(*v));
      return false;
    }
    out = v->get<int64_t>();
    return true;
  }

  bool i32(const json& obj, const std::string& path, std::string_view key, int32_t& out,
           int64_t min, int64_t max, bool required = false) {
    int64_t v = 0;
    if (!i64(obj, path, key, v, required)) return false;
    if (v < min || v > max) {
      error(join(path, key), "must be between " + std::to_string(min) + " and " +
                                 std::to_string(max) + ", got " + std::to_string(v));
      return false;
    }
    out = static_cast<int32_t>(v);
    return true;
  }

  bool optI32(const json& obj, const std::string& path, std::string_view key,
              std::optional<int32_t>& out, int64_t min, int64_t max) {
    int32_t v = 0;
    if (!i32(obj, path, key, v, min, max)) return false;
    out = v;
    return true;
  }

  bool boolean(const json& obj, const std::string& path, std::string_view key,
               std::optional<bool>& out) {
    const json* v = field(obj, key);
    if (!v) return false;
    if (!v->is_boolean()) {
      error(join(path, key), std::string("expected boolean, got ") + typeName(*v));
      return false;
    }
    out = v->get<bool>();
    return true;
  }

  // Calls each(item, itemPath) for every element that is a map.
  void list(const json& obj, const std::string& path, std::string_view key,
            const std::function<void(const json&, const std::string&)>& each,
            bool items_are_maps = true) {
    const json* v = field(obj, key);
    if (!v) return;
    std::string p = join(path, key);
    if (!v->is_array()) {
      error(p, std::string("expected list, got ") + typeName(*v));
      return;
    }
    for (size_t i = 0; i < v->size(); ++i) {
      const json& item = (*v)[i];
      if (items_are_maps && !item.is_object()) {
        error(index(p, i), std::string("expected map, got ") + typeName(item));
        continue;
      }
      each(item, index(p, i));
    }
  }

  void strList(const json& obj, const std::string& path, std::string_view key,
               std::vector<std::string>& out) {
    list(
        obj, path, key,
        [&](const json& item, const std::string& p) {
          if (!item.is_string()) {
            error(p, std::string("expected string, got ") + typeName(item));
            return;
          }
          out.push_back(item.get<std::string>());
        },
        false);
  }

  void strMap(const json& obj, const std::string& path, std::string_view key,
              std::map<std::string, std::string>& out) {
    const json* v = field(obj, key);
    if (!v) return;
    std::string p = join(path, key);
    if (!v->is_object()) {
      error(p, std::string("expected map, got ") + typeName(*v));
      return;
    }
    for (const auto& [k, val] : v->items()) {
      if (!val.is_string()) {
        error(join(p, k), std::string("expected string, got ") + typeName(val));
        continue;
      }
      out[k] = val.get<std::string>();
    }
  }

  const json* map(const json& obj, const std::string& path, std::string_view key,
                  bool required = false) {
    const json* v = field(obj, key);
    if (!v) {
      if (required) error(join(path, key), "required field is missing");
      return nullptr;
    }
    if (!v->is_object()) {
      error(join(path, key), std::string("expected map, got ") + typeName(*v));
      return nullptr;
    }
    return v;
  }

  // String field restricted to a fixed set of values (the CRD's enum).
  bool oneOf(const json& obj, const std::string& path, std::string_view key, std::string& out,
             std::initializer_list<const char*> allowed) {
    std::string s;
    if (!str(obj, path, key, s)) return false;
    for (const char* a : allowed) {
      if (s == a) {
        out = s;
        return true;
      }
    }
    std::string want;
    for (const char* a : allowed) want += (want.empty() ? "" : ", ") + std::string(a);
    error(join(path, key), "unsupported value \"" + s + "\" (want one of: " + want + ")");
    return false;
  }

 private:
  static bool has(const std::vector<const json*>& sorted, const json* p) {
    return std::binary_search(sorted.begin(), sorted.end(), p);
  }

  // The key this map was asked for in vain that `key` most likely misspells.
  std::string nearestMiss(const json* obj, const std::string& key) const {
    std::string best;
    size_t best_distance = 3;  // at most two edits away
    for (const Miss& m : misses_) {
      if (m.obj != obj) continue;
      size_t d = editDistance(key, m.key);
      if (d < best_distance) {
        best_distance = d;
        best = m.key;
      }
    }
    return best;
  }

  static size_t editDistance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                          std::tolower(static_cast<unsigned char>(b[j - 1]));
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
        diagonal = up;
      }
    }
    return row[b.size()];
  }

  void walkUnread(const json& node, const std::string& path, bool root) {
    if (node.is_array()) {
      for (size_t i = 0; i < node.size(); ++i) walkUnread(node[i], index(path, i), false);
      return;
    }
    if (!node.is_object() || !has(visited_, &node)) return;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string& key = it.key();
      // Object metadata has many fields Portico has no use for; status is
      // the controller's to write.
      if (root && (key == "metadata" || key == "status")) continue;
      std::string kp = join(path, key);
      if (has(read_, &*it)) {
        walkUnread(*it, kp, false);
        continue;
      }
      std::string near = nearestMiss(&node, key);
      if (near.empty() && only_misspellings_) continue;
      warning(kp, near.empty() ? "unknown field, ignored (misspelled, or not supported by Portico)"
                               : "unknown field, ignored (did you mean " + near + "?)");
    }
  }

  struct Miss {
    const json* obj;
    std::string key;
  };
  std::string file_;
  int document_;
  ResourceSet& out_;
  int errors_ = 0;
  std::vector<const json*> read_;     // values field() returned
  std::vector<const json*> visited_;  // maps field() looked into
  std::vector<Miss> misses_;          // keys field() looked for and did not find
  bool only_misspellings_ = false;
  bool track_reads_ = false;
};

// ---- common pieces ------------------------------------------------------------------

bool decodeMeta(Ctx& c, const json& obj, const std::string& path, ObjectMeta& m, bool namespaced) {
  const json* meta = c.map(obj, path, "metadata", true);
  if (!meta) return false;
  std::string p = join(path, "metadata");
  c.str(*meta, p, "name", m.name, true);
  if (namespaced) {
    std::string ns;
    if (c.str(*meta, p, "namespace", ns) && !ns.empty()) m.ns = ns;
  } else {
    m.ns.clear();
  }
  c.strMap(*meta, p, "labels", m.labels);
  c.strMap(*meta, p, "annotations", m.annotations);
  int64_t gen = 0;
  if (c.i64(*meta, p, "generation", gen)) {
    if (gen < 1)
      c.error(join(p, "generation"), "must be at least 1");
    else
      m.generation = gen;
  }
  c.str(*meta, p, "creationTimestamp", m.creation_timestamp);
  c.str(*meta, p, "resourceVersion", m.resource_version);
  c.str(*meta, p, "uid", m.uid);
  return !m.name.empty();
}

void decodeSelector(Ctx& c, const json& obj, const std::string& path, LabelSelector& sel) {
  c.strMap(obj, path, "matchLabels", sel.match_labels);
  c.list(obj, path, "matchExpressions", [&](const json& e, const std::string& p) {
    LabelSelectorRequirement r;
    c.str(e, p, "key", r.key, true);
    c.oneOf(e, p, "operator", r.op, {"In", "NotIn", "Exists", "DoesNotExist"});
    if (r.op.empty() && !c.field(e, "operator"))
      c.error(join(p, "operator"), "required field is missing");
    c.strList(e, p, "values", r.values);
    if ((r.op == "In" || r.op == "NotIn") && r.values.empty())
      c.error(join(p, "values"), "must be non-empty for operator " + r.op);
    if ((r.op == "Exists" || r.op == "DoesNotExist") && !r.values.empty())
      c.error(join(p, "values"), "must be empty for operator " + r.op);
    sel.match_expressions.push_back(std::move(r));
  });
}

// Validates an RFC 1123 hostname, optionally with a left-most "*." label.
// Upper case is tolerated (translate lower-cases), unlike the CRD's pattern.
bool validHostname(std::string_view h) {
  if (h.size() > 253) return false;
  if (h.substr(0, 2) == "*.") h.remove_prefix(2);
  if (h.empty()) return false;
  auto alnum = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  };
  size_t pos = 0;
  for (;;) {
    size_t dot = h.find('.', pos);
    std::string_view label = h.substr(pos, dot == std::string_view::npos ? h.npos : dot - pos);
    if (label.empty() || !alnum(label.front()) || !alnum(label.back())) return false;
    for (char c : label)
      if (!alnum(c) && c != '-') return false;
    if (dot == std::string_view::npos) return true;
    pos = dot + 1;
  }
}

void hostnameField(Ctx& c, const json& obj, const std::string& path, std::string_view key,
                   std::optional<std::string>& out) {
  if (!c.optStr(obj, path, key, out)) return;
  if (!validHostname(*out)) {
    c.error(join(path, key), "invalid hostname \"" + *out + "\"");
    out.reset();
  }
}

void decodeObjectRef(Ctx& c, const json& obj, const std::string& path, ObjectReference& r,
                     const char* default_kind, bool with_namespace) {
  c.str(obj, path, "group", r.group);
  r.kind = default_kind;
  c.str(obj, path, "kind", r.kind);
  c.str(obj, path, "name", r.name, true);
  if (with_namespace) c.optStr(obj, path, "namespace", r.ns);
}

// ---- Gateway API ----------------------------------------------------------------

void decodeGatewayClass(Ctx& c, const json& spec, const std::string& p, GatewayClass& gc) {
  c.str(spec, p, "controllerName", gc.controller_name, true);
  c.str(spec, p, "description", gc.description);
}

// A TLSConfig: its optional client certificate validation.
void decodeFrontendTls(Ctx& c, const json& tls, const std::string& p,
                       std::optional<FrontendTlsValidation>& out) {
  const json* v = c.map(tls, p, "validation");
  if (!v) return;
  std::string vp = join(p, "validation");
  FrontendTlsValidation val;
  c.list(*v, vp, "caCertificateRefs", [&](const json& r, const std::string& rp) {
    ObjectReference ref;
    decodeObjectRef(c, r, rp, ref, "", true);
    if (!c.field(r, "kind")) c.error(join(rp, "kind"), "required field is missing");
    val.ca_certificate_refs.push_back(std::move(ref));
  });
  if (val.ca_certificate_refs.empty())
    c.error(join(vp, "caCertificateRefs"), "at least 1 item is required");
  else if (val.ca_certificate_refs.size() > 8)
    c.error(join(vp, "caCertificateRefs"), "at most 8 items");
  c.oneOf(*v, vp, "mode", val.mode, {"AllowValidOnly", "AllowInsecureFallback"});
  out = std::move(val);
}

void decodeGateway(Ctx& c, const json& spec, const std::string& p, Gateway& gw) {
  c.str(spec, p, "gatewayClassName", gw.gateway_class_name, true);
  if (!c.field(spec, "listeners")) c.error(join(p, "listeners"), "required field is missing");
  std::set<std::string> names;
  c.list(spec, p, "listeners", [&](const json& l, const std::string& lp) {
    GatewayListener li;
    c.str(l, lp, "name", li.name, true);
    if (!li.name.empty() && !names.insert(li.name).second)
      c.error(join(lp, "name"), "duplicate listener name \"" + li.name + "\"");
    hostnameField(c, l, lp, "hostname", li.hostname);
    c.i32(l, lp, "port", li.port, 1, 65535, true);
    c.str(l, lp, "protocol", li.protocol, true);
    if (const json* tls = c.map(l, lp, "tls")) {
      std::string tp = join(lp, "tls");
      GatewayTlsConfig t;
      c.oneOf(*tls, tp, "mode", t.mode, {"Terminate", "Passthrough"});
      c.list(*tls, tp, "certificateRefs", [&](const json& r, const std::string& rp) {
        ObjectReference ref;
        decodeObjectRef(c, r, rp, ref, "Secret", true);
        t.certificate_refs.push_back(std::move(ref));
      });
      c.strMap(*tls, tp, "options", t.options);
      li.tls = std::move(t);
    }
    if (const json* ar = c.map(l, lp, "allowedRoutes")) {
      std::string ap = join(lp, "allowedRoutes");
      if (const json* ns = c.map(*ar, ap, "namespaces")) {
        std::string np = join(ap, "namespaces");
        c.oneOf(*ns, np, "from", li.allowed_routes.from, {"All", "Same", "Selector"});
        if (const json* sel = c.map(*ns, np, "selector")) {
          LabelSelector s;
          decodeSelector(c, *sel, join(np, "selector"), s);
          li.allowed_routes.selector = std::move(s);
        }
        if (li.allowed_routes.from == "Selector" && !li.allowed_routes.selector)
          c.error(join(np, "selector"), "required when from is Selector");
      }
      if (c.field(*ar, "kinds")) {
        std::vector<RouteGroupKind> kinds;
        c.list(*ar, ap, "kinds", [&](const json& k, const std::string& kp) {
          RouteGroupKind rgk;
          c.str(k, kp, "group", rgk.group);
          c.str(k, kp, "kind", rgk.kind, true);
          kinds.push_back(std::move(rgk));
        });
        li.allowed_routes.kinds = std::move(kinds);
      }
    }
    gw.listeners.push_back(std::move(li));
  });
  if (const json* tls = c.map(spec, p, "tls")) {
    std::string tp = join(p, "tls");
    if (const json* backend = c.map(*tls, tp, "backend")) {
      std::string bp = join(tp, "backend");
      if (const json* ref = c.map(*backend, bp, "clientCertificateRef")) {
        ObjectReference r;
        decodeObjectRef(c, *ref, join(bp, "clientCertificateRef"), r, "Secret", true);
        gw.backend_client_certificate_ref = std::move(r);
      }
    }
    if (const json* frontend = c.map(*tls, tp, "frontend")) {
      std::string fp = join(tp, "frontend");
      FrontendTlsConfig f;
      if (const json* def = c.map(*frontend, fp, "default", true))
        decodeFrontendTls(c, *def, join(fp, "default"), f.default_validation);
      std::set<int32_t> ports;
      c.list(*frontend, fp, "perPort", [&](const json& pp, const std::string& ppp) {
        int32_t port = 0;
        if (!c.i32(pp, ppp, "port", port, 1, 65535, true)) return;
        if (!ports.insert(port).second)  // the CRD's CEL rule
          c.error(join(ppp, "port"),
                  "Port for TLS configuration must be unique within the Gateway");
        std::optional<FrontendTlsValidation> v;
        if (const json* t = c.map(pp, ppp, "tls", true))
          decodeFrontendTls(c, *t, join(ppp, "tls"), v);
        f.per_port.emplace_back(port, std::move(v));
      });
      if (f.per_port.size() > 64) c.error(join(fp, "perPort"), "at most 64 items");
      gw.frontend_tls = std::move(f);
    }
  }
  // Only parametersRef is read: labels and annotations are for the resources
  // a controller creates, and Portico creates none (they warn as unread).
  if (const json* infra = c.map(spec, p, "infrastructure")) {
    std::string ip = join(p, "infrastructure");
    if (const json* ref = c.map(*infra, ip, "parametersRef")) {
      std::string rp = join(ip, "parametersRef");
      ObjectReference r;
      c.str(*ref, rp, "group", r.group);  // "" is the core group
      c.str(*ref, rp, "kind", r.kind, true);
      c.str(*ref, rp, "name", r.name, true);
      gw.infrastructure_parameters_ref = std::move(r);
    }
  }
}

void decodeHeaderFilter(Ctx& c, const json& f, const std::string& p, HttpHeaderFilter& h) {
  auto pairs = [&](std::string_view key, std::vector<std::pair<std::string, std::string>>& out) {
    c.list(f, p, key, [&](const json& kv, const std::string& kp) {
      std::string name, value;
      c.str(kv, kp, "name", name, true);
      if (!c.field(kv, "value"))
        c.error(join(kp, "value"), "required field is missing");
      else
        c.str(kv, kp, "value", value);
      out.emplace_back(std::move(name), std::move(value));
    });
  };
  pairs("set", h.set);
  pairs("add", h.add);
  c.strList(f, p, "remove", h.remove);
}

void decodePathModifier(Ctx& c, const json& obj, const std::string& path,
                        std::optional<HttpPathModifier>& out) {
  const json* pm = c.map(obj, path, "path");
  if (!pm) return;
  std::string p = join(path, "path");
  HttpPathModifier m;
  if (!c.field(*pm, "type")) {
    c.error(join(p, "type"), "required field is missing");
    return;
  }
  if (!c.oneOf(*pm, p, "type", m.type, {"ReplaceFullPath", "ReplacePrefixMatch"})) return;
  const char* key = m.type == "ReplaceFullPath" ? "replaceFullPath" : "replacePrefixMatch";
  if (!c.field(*pm, key)) {
    c.error(join(p, key), "required when type is " + m.type);
    return;
  }
  c.str(*pm, p, key, m.value);
  out = std::move(m);
}

void decodeBackendObjectRef(Ctx& c, const json& b, const std::string& bp, BackendObjectRef& ref) {
  c.str(b, bp, "group", ref.group);
  c.str(b, bp, "kind", ref.kind);
  c.str(b, bp, "name", ref.name, true);
  c.optStr(b, bp, "namespace", ref.ns);
  c.optI32(b, bp, "port", ref.port, 1, 65535);
  if (ref.group.empty() && ref.kind == "Service" && !ref.port && !c.field(b, "port"))
    c.error(join(bp, "port"), "required when referring to a Service");
}

void decodeRequestMirror(Ctx& c, const json& rm, const std::string& mp,
                         HttpRequestMirrorFilter& m) {
  if (const json* br = c.map(rm, mp, "backendRef", true))
    decodeBackendObjectRef(c, *br, join(mp, "backendRef"), m.backend);
  std::optional<int32_t> percent;
  c.optI32(rm, mp, "percent", percent, 0, 100);
  if (percent) m.numerator = *percent;
  if (const json* fr = c.map(rm, mp, "fraction")) {
    std::string fp = join(mp, "fraction");
    if (percent) {  // the CRD's CEL rule
      c.error(fp, "only one of percent or fraction may be specified");
      return;
    }
    c.i32(*fr, fp, "numerator", m.numerator, 0, INT32_MAX, true);
    c.i32(*fr, fp, "denominator", m.denominator, 1, INT32_MAX);
    if (m.numerator > m.denominator)
      c.error(join(fp, "numerator"),
              "must be less than or equal to denominator (" + std::to_string(m.denominator) + ")");
  }
}

// CORSOrigin: "*", or http(s)://host[:port] where host is "*" or DNS-like
// labels, the first of which may be "*" (any labels to its left).
bool validCorsOrigin(std::string_view o) {
  if (o == "*") return true;
  if (o.substr(0, 7) == "http://")
    o.remove_prefix(7);
  else if (o.substr(0, 8) == "https://")
    o.remove_prefix(8);
  else
    return false;
  const size_t colon = o.find(':');
  if (colon != std::string_view::npos) {
    const std::string_view port = o.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (char ch : port)
      if (ch < '0' || ch > '9') return false;
    o = o.substr(0, colon);
  }
  if (o == "*") return true;
  if (o.substr(0, 2) == "*.") o.remove_prefix(2);
  size_t pos = 0;
  for (;;) {
    const size_t dot = o.find('.', pos);
    const std::string_view label = o.substr(pos, dot == o.npos ? o.npos : dot - pos);
    if (label.empty()) return false;
    for (char ch : label)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
    if (dot == o.npos) return true;
    pos = dot + 1;
  }
}

// HTTPMethodWithWildcard: the CRD's enum (case-sensitive, as methods are).
bool validCorsMethod(std::string_view m) {
  for (const char* ok :
       {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"})
    if (m == ok) return true;
  return false;
}

// HTTPHeaderName: an RFC 9110 token.
bool validHeaderName(std::string_view n) {
  if (n.empty()) return false;
  for (char ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch)) &&
        std::string_view("!#$%&'*+-.^_`|~").find(ch) == std::string_view::npos)
      return false;
  return true;
}

void decodeCors(Ctx& c, const json& obj, const std::string& p, HttpCorsFilter& h) {
  // A list field: each item checked by `valid`, "*" (where `wildcard`) only
  // on its own (the CRD's CEL rule), at most `max` items (its MaxItems).
  auto items = [&](std::string_view key, std::vector<std::string>& out, size_t max, bool wildcard,
                   bool (*valid)(std::string_view), const char* what, const char* want) {
    c.strList(obj, p, key, out);
    const std::string kp = join(p, key);
    if (out.size() > max) c.error(kp, "at most " + std::to_string(max) + " items");
    for (size_t i = 0; i < out.size(); ++i)
      if (!valid(out[i]))
        c.error(index(kp, i),
                std::string("invalid ") + what + " \"" + out[i] + "\" (want " + want + ")");
    if (wildcard && out.size() > 1 && std::find(out.begin(), out.end(), "*") != out.end())
      c.error(kp, "\"*\" cannot be combined with other values");
  };
  items("allowOrigins", h.allow_origins, 64, true, validCorsOrigin, "origin",
        "\"*\" or http(s)://host[:port]");
  items("allowMethods", h.allow_methods, 9, true, validCorsMethod, "method",
        "GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH or \"*\"");
  items("allowHeaders", h.allow_headers, 64, false, validHeaderName, "header name", "a token");
  items("exposeHeaders", h.expose_headers, 64, false, validHeaderName, "header name", "a token");
  std::optional<bool> credentials;
  c.boolean(obj, p, "allowCredentials", credentials);
  h.allow_credentials = credentials.value_or(false);
  c.i32(obj, p, "maxAge", h.max_age, 1, INT32_MAX);
}

void decodeFilters(Ctx& c, const json& obj, const std::string& path,
                   std::vector<HttpRouteFilter>& out) {
  c.list(obj, path, "filters", [&](const json& f, const std::string& fp) {
    HttpRouteFilter filter;
    if (!c.str(f, fp, "type", filter.type, true)) return;
    if (filter.type == "RequestHeaderModifier" || filter.type == "ResponseHeaderModifier") {
      const char* key = filter.type == "RequestHeaderModifier" ? "requestHeaderModifier"
                                                               : "responseHeaderModifier";
      const json* hm = c.map(f, fp, key, true);
      if (!hm) return;
      HttpHeaderFilter h;
      decodeHeaderFilter(c, *hm, join(fp, key), h);
      if (filter.type == "RequestHeaderModifier")
        filter.request_header_modifier = std::move(h);
      else
        filter.response_header_modifier = std::move(h);
    } else if (filter.type == "RequestRedirect") {
      const json* rr = c.map(f, fp, "requestRedirect", true);
      if (!rr) return;
      std::string rp = join(fp, "requestRedirect");
      HttpRequestRedirectFilter r;
      std::string scheme;
      if (c.oneOf(*rr, rp, "scheme", scheme, {"http", "https"})) r.scheme = scheme;
      hostnameField(c, *rr, rp, "hostname", r.hostname);
      if (r.hostname && r.hostname->rfind("*.", 0) == 0) {
        c.error(join(rp, "hostname"), "must not be a wildcard");
        r.hostname.reset();
      }
      decodePathModifier(c, *rr, rp, r.path);
      c.optI32(*rr, rp, "port", r.port, 1, 65535);
      int32_t code = 302;
      if (c.i32(*rr, rp, "statusCode", code, 0, 999)) {
        if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308)
          c.error(join(rp, "statusCode"),
                  "unsupported value " + std::to_string(code) + " (want 301, 302, 303, 307, 308)");
        else
          r.status_code = code;
      }
      filter.request_redirect = std::move(r);
    } else if (filter.type == "URLRewrite") {
      const json* ur = c.map(f, fp, "urlRewrite", true);
      if (!ur) return;
      std::string up = join(fp, "urlRewrite");
      HttpUrlRewriteFilter u;
      hostnameField(c, *ur, up, "hostname", u.hostname);
      decodePathModifier(c, *ur, up, u.path);
      filter.url_rewrite = std::move(u);
    } else if (filter.type == "RequestMirror") {
      const json* rm = c.map(f, fp, "requestMirror", true);
      if (!rm) return;
      HttpRequestMirrorFilter m;
      decodeRequestMirror(c, *rm, join(fp, "requestMirror"), m);
      filter.request_mirror = std::move(m);
    } else if (filter.type == "CORS") {
      const json* cors = c.map(f, fp, "cors", true);
      if (!cors) return;
      HttpCorsFilter h;
      decodeCors(c, *cors, join(fp, "cors"), h);
      filter.cors = std::move(h);
    } else if (filter.type == "ExtensionRef" || filter.type == "ExternalAuth") {
      // Known, not implemented: translate refuses the route naming the
      // filter, so its settings need no second warning of their own.
      c.field(f, filter.type == "ExtensionRef" ? "extensionRef" : "externalAuth");
    } else {
      c.error(join(fp, "type"), "unsupported value \"" + filter.type +
                                    "\" (want one of: RequestHeaderModifier, "
                                    "ResponseHeaderModifier, RequestRedirect, URLRewrite, "
                                    "RequestMirror, ExtensionRef, CORS, ExternalAuth)");
      return;
    }
    out.push_back(std::move(filter));
  });
}

void decodeValueMatches(Ctx& c, const json& m, const std::string& mp, std::string_view key,
                        std::vector<HttpValueMatch>& out, bool lower_names) {
  std::set<std::string> seen;
  c.list(m, mp, key, [&](const json& h, const std::string& hp) {
    HttpValueMatch v;
    c.oneOf(h, hp, "type", v.type, {"Exact", "RegularExpression"});
    c.str(h, hp, "name", v.name, true);
    if (!c.field(h, "value"))
      c.error(join(hp, "value"), "required field is missing");
    else
      c.str(h, hp, "value", v.value);
    std::string key_name = v.name;
    if (lower_names)
      std::transform(key_name.begin(), key_name.end(), key_name.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
    // The spec ignores later duplicates of a header/parameter name.
    if (!seen.insert(key_name).second) return;
    out.push_back(std::move(v));
  });
}

void decodeHttpRoute(Ctx& c, const json& spec, const std::string& p, HttpRoute& r) {
  c.list(spec, p, "parentRefs", [&](const json& pr, const std::string& pp) {
    ParentReference ref;
    c.str(pr, pp, "group", ref.group);
    c.str(pr, pp, "kind", ref.kind);
    c.optStr(pr, pp, "namespace", ref.ns);
    c.str(pr, pp, "name", ref.name, true);
    c.optStr(pr, pp, "sectionName", ref.section_name);
    c.optI32(pr, pp, "port", ref.port, 1, 65535);
    r.parent_refs.push_back(std::move(ref));
  });
  c.list(
      spec, p, "hostnames",
      [&](const json& h, const std::string& hp) {
        if (!h.is_string()) {
          c.error(hp, std::string("expected string, got ") + typeName(h));
          return;
        }
        std::string host = h.get<std::string>();
        if (!validHostname(host)) {
          c.error(hp, "invalid hostname \"" + host + "\"");
          return;
        }
        r.hostnames.push_back(std::move(host));
      },
      false);
  c.list(spec, p, "rules", [&](const json& rule, const std::string& rp) {
    HttpRouteRule out;
    c.optStr(rule, rp, "name", out.name);
    c.list(rule, rp, "matches", [&](const json& m, const std::string& mp) {
      HttpRouteMatch match;
      if (const json* path = c.map(m, mp, "path")) {
        std::string pp = join(mp, "path");
        HttpPathMatch pm;
        c.oneOf(*path, pp, "type", pm.type, {"Exact", "PathPrefix", "RegularExpression"});
        c.str(*path, pp, "value", pm.value);
        if (pm.type != "RegularExpression" && (pm.value.empty() || pm.value[0] != '/'))
          c.error(join(pp, "value"), "must be an absolute path starting with \"/\"");
        match.path = std::move(pm);
      }
      decodeValueMatches(c, m, mp, "headers", match.headers, true);
      decodeValueMatches(c, m, mp, "queryParams", match.query_params, false);
      std::string method;
      if (c.oneOf(m, mp, "method", method,
                  {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}))
        match.method = method;
      out.matches.push_back(std::move(match));
    });
    decodeFilters(c, rule, rp, out.filters);
    c.list(rule, rp, "backendRefs", [&](const json& b, const std::string& bp) {
      HttpBackendRef ref;
      decodeBackendObjectRef(c, b, bp, ref);
      c.i32(b, bp, "weight", ref.weight, 0, 1000000);
      decodeFilters(c, b, bp, ref.filters);
      out.backend_refs.push_back(std::move(ref));
    });
    if (const json* t = c.map(rule, rp, "timeouts")) {
      c.optStr(*t, join(rp, "timeouts"), "request", out.timeout_request);
      c.optStr(*t, join(rp, "timeouts"), "backendRequest", out.timeout_backend_request);
    }
    if (const json* rt = c.map(rule, rp, "retry")) {
      const std::string tp = join(rp, "retry");
      HttpRouteRetry retry;
      c.list(
          *rt, tp, "codes",
          [&](const json& code, const std::string& cp) {
            // HTTPRouteRetryStatusCode: 400..599.
            if (!code.is_number_integer() || code.get<int64_t>() < 400 ||
                code.get<int64_t>() > 599) {
              c.error(cp, "must be a status code between 400 and 599, got " + code.dump());
              return;
            }
            retry.codes.push_back(code.get<int32_t>());
          },
          false);
      c.optI32(*rt, tp, "attempts", retry.attempts, 0, INT32_MAX);
      c.optStr(*rt, tp, "backoff", retry.backoff);
      out.retry = std::move(retry);
    }
    r.rules.push_back(std::move(out));
  });
}

void decodeReferenceGrant(Ctx& c, const json& spec, const std::string& p, ReferenceGrant& g) {
  c.list(spec, p, "from", [&](const json& f, const std::string& fp) {
    ReferenceGrantFrom from;
    if (c.field(f, "group"))
      c.str(f, fp, "group", from.group);
    else
      c.error(join(fp, "group"), "required field is missing");
    c.str(f, fp, "kind", from.kind, true);
    c.str(f, fp, "namespace", from.ns, true);
    g.from.push_back(std::move(from));
  });
  c.list(spec, p, "to", [&](const json& t, const std::string& tp) {
    ReferenceGrantTo to;
    if (c.field(t, "group"))
      c.str(t, tp, "group", to.group);
    else
      c.error(join(tp, "group"), "required field is missing");
    c.str(t, tp, "kind", to.kind, true);
    c.optStr(t, tp, "name", to.name);
    g.to.push_back(std::move(to));
  });
  if (g.from.empty() && !c.field(spec, "from"))
    c.error(join(p, "from"), "required field is missing");
  if (g.to.empty() && !c.field(spec, "to")) c.error(join(p, "to"), "required field is missing");
}

void decodeBackendTlsPolicy(Ctx& c, const json& spec, const std::string& p, BackendTlsPolicy& pol) {
  c.list(spec, p, "targetRefs", [&](const json& t, const std::string& tp) {
    PolicyTargetReference ref;
    c.str(t, tp, "group", ref.group);
    c.str(t, tp, "kind", ref.kind, true);
    c.str(t, tp, "name", ref.name, true);
    c.optStr(t, tp, "sectionName", ref.section_name);
    pol.target_refs.push_back(std::move(ref));
  });
  if (pol.target_refs.empty()) {  // the CRD's MinItems=1: the API server refuses it
    c.error(join(p, "targetRefs"), c.field(spec, "targetRefs") ? "must have at least 1 item"
                                                               : "required field is missing");
  }
  if (const json* v = c.map(spec, p, "validation")) {
    std::string vp = join(p, "validation");
    c.str(*v, vp, "hostname", pol.validation.hostname);
    c.list(*v, vp, "caCertificateRefs", [&](const json& r, const std::string& rp) {
      ObjectReference ref;
      decodeObjectRef(c, r, rp, ref, "", false);
      pol.validation.ca_certificate_refs.push_back(std::move(ref));
    });
    c.optStr(*v, vp, "wellKnownCACertificates", pol.validation.well_known_ca_certificates);
    c.list(*v, vp, "subjectAltNames", [&](const json& s, const std::string& sp) {
      SubjectAltName san;
      c.str(s, sp, "type", san.type, true);
      c.str(s, sp, "hostname", san.hostname);
      c.str(s, sp, "uri", san.uri);
      pol.validation.subject_alt_names.push_back(std::move(san));
    });
  }
  c.strMap(spec, p, "options", pol.options);
}

// ---- core / discovery ----------------------------------------------------------------

void decodeService(Ctx& c, const json& spec, const std::string& p, Service& s) {
  c.oneOf(spec, p, "type", s.type, {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"});
  c.str(spec, p, "clusterIP", s.cluster_ip);
  c.str(spec, p, "externalName", s.external_name);
  if (s.type == "ExternalName" && s.external_name.empty())
    c.error(join(p, "externalName"), "required when type is ExternalName");
  c.strMap(spec, p, "selector", s.selector);
  std::set<std::string> names;
  c.list(spec, p, "ports", [&](const json& sp, const std::string& pp) {
    ServicePort port;
    c.str(sp, pp, "name", port.name);
    c.str(sp, pp, "protocol", port.protocol);
    c.optStr(sp, pp, "appProtocol", port.app_protocol);
    c.i32(sp, pp, "port", port.port, 1, 65535, true);
    if (const json* tp = c.field(sp, "targetPort")) {
      if (tp->is_number_integer()) {
        c.optI32(sp, pp, "targetPort", port.target_port_number, 1, 65535);
      } else if (tp->is_string()) {
        port.target_port_name = tp->get<std::string>();
      } else {
        c.error(join(pp, "targetPort"),
                std::string("expected integer or string, got ") + typeName(*tp));
      }
    }
    if (!names.insert(port.name).second)
      c.error(join(pp, "name"), "duplicate port name \"" + port.name + "\"");
    s.ports.push_back(std::move(port));
  });
  if (s.ports.size() > 1) {
    for (size_t i = 0; i < s.ports.size(); ++i)
      if (s.ports[i].name.empty())
        c.error(join(index(join(p, "ports"), i), "name"),
                "required when the Service has more than one port");
  }
}

void decodeEndpointPorts(Ctx& c, const json& obj, const std::string& p,
                         std::vector<EndpointPort>& out, bool port_required) {
  c.list(obj, p, "ports", [&](const json& ep, const std::string& pp) {
    EndpointPort port;
    c.str(ep, pp, "name", port.name);
    c.str(ep, pp, "protocol", port.protocol);
    int32_t n = 0;
    if (c.i32(ep, pp, "port", n, 1, 65535, port_required)) port.port = n;
    out.push_back(std::move(port));
  });
}

void decodeEndpointSlice(Ctx& c, const json& obj, const std::string& path, EndpointSlice& s) {
  c.oneOf(obj, path, "addressType", s.address_type, {"IPv4", "IPv6", "FQDN"});
  if (!c.field(obj, "addressType")) c.error(join(path, "addressType"), "required field is missing");
  c.list(obj, path, "endpoints", [&](const json& e, const std::string& ep) {
    EndpointSliceEndpoint endpoint;
    c.strList(e, ep, "addresses", endpoint.addresses);
    if (const json* cond = c.map(e, ep, "conditions"))
      c.boolean(*cond, join(ep, "conditions"), "ready", endpoint.ready);
    s.endpoints.push_back(std::move(endpoint));
  });
  decodeEndpointPorts(c, obj, path, s.ports, false);
}

void decodeEndpoints(Ctx& c, const json& obj, const std::string& path, Endpoints& e) {
  c.list(obj, path, "subsets", [&](const json& sub, const std::string& sp) {
    EndpointSubset subset;
    auto addrs = [&](std::string_view key, std::vector<std::string>& out) {
      c.list(sub, sp, key, [&](const json& a, const std::string& ap) {
        std::string ip;
        if (c.str(a, ap, "ip", ip, true)) out.push_back(std::move(ip));
      });
    };
    addrs("addresses", subset.addresses);
    addrs("notReadyAddresses", subset.not_ready_addresses);
    decodeEndpointPorts(c, sub, sp, subset.ports, true);
    e.subsets.push_back(std::move(subset));
  });
}

void decodeBase64Map(Ctx& c, const json& obj, const std::string& path, std::string_view key,
                     std::map<std::string, std::string>& out) {
  std::map<std::string, std::string> encoded;
  c.strMap(obj, path, key, encoded);
  for (auto& [k, v] : encoded) {
    auto decoded = base64Decode(v);
    if (!decoded) {
      c.error(join(join(path, key), k), "invalid base64 data");
      continue;
    }
    out[k] = std::move(*decoded);
  }
}

// ---- dispatch ---------------------------------------------------------------------------

enum class Kind {
  Unknown,
  GatewayClass,
  Gateway,
  HttpRoute,
  ReferenceGrant,
  BackendTlsPolicy,
  Service,
  Endpoints,
  EndpointSlice,
  ConfigMap,
  Secret,
  Namespace
};

// The kinds Portico reads, each with the apiVersions it accepts for it.
struct KnownKind {
  const char* kind;
  Kind value;
  std::array<const char*, 3> api_versions;  // unused slots are null
};
// v1alpha2 manifests (older docs and tools) have the same shape for the
// Gateway API kinds listed with it; BackendTLSPolicy's v1alpha2 does not.
const std::array<KnownKind, 11>& knownKinds() {
  static const std::array<KnownKind, 11> kinds{{
      {"GatewayClass",
       Kind::GatewayClass,
       {"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1",
        "gateway.networking.k8s.io/v1alpha2"}},
      {"Gateway",
       Kind::Gateway,
       {"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1",
        "gateway.networking.k8s.io/v1alpha2"}},
      {"HTTPRoute",
       Kind::HttpRoute,
       {"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1",
        "gateway.networking.k8s.io/v1alpha2"}},
      {"ReferenceGrant",
       Kind::ReferenceGrant,
       {"gateway.networking.k8s.io/v1beta1", "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io/v1alpha2"}},
      {"BackendTLSPolicy",
       Kind::BackendTlsPolicy,
       {"gateway.networking.k8s.io/v1alpha3", "gateway.networking.k8s.io/v1"}},
      {"Service", Kind::Service, {"v1"}},
      {"Endpoints", Kind::Endpoints, {"v1"}},
      {"ConfigMap", Kind::ConfigMap, {"v1"}},
      {"Secret", Kind::Secret, {"v1"}},
      {"Namespace", Kind::Namespace, {"v1"}},
      {"EndpointSlice", Kind::EndpointSlice, {"discovery.k8s.io/v1"}},
  }};
  return kinds;
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

Kind kindOf(const std::string& api_version, const std::string& kind) {
  for (const KnownKind& k : knownKinds()) {
    if (kind != k.kind) continue;
    for (const char* v : k.api_versions)
      if (v && api_version == v) return k.value;
  }
  return Kind::Unknown;
}

// For an object kindOf() does not read but whose kind is one of Portico's up to
// case (a typo, or an apiVersion Portico does not read, such as BackendTLSPolicy
// v1alpha2): the kind and apiVersions it would be read as. Ignoring such an
// object silently can turn a backend's TLS into plaintext, so it is worth a warning.
std::string nearMissKind(const std::string& kind) {
  for (const KnownKind& k : knownKinds()) {
    if (!equalsIgnoringCase(kind, k.kind)) continue;
    std::string versions;
    for (const char* v : k.api_versions) {
      if (!v) continue;
      if (!versions.empty()) versions += ", ";
      versions += v;
    }
    return "Portico reads kind " + std::string(k.kind) + " with apiVersion " + versions;
  }
  return {};
}

template <typename T>
bool fillBase(Ctx& c, const json& obj, const std::string& path, const std::string& api_version,
              const std::string& kind, bool namespaced, T& out) {
  out.api_version = api_version;
  out.kind = kind;
  out.file = c.file();
  out.document = c.document();
  return decodeMeta(c, obj, path, out.metadata, namespaced);
}

// The part of an object whose change bumps metadata.generation: the compact
// JSON of a map holding just these keys, written without copying them into one.
std::string specDigest(const json& obj) {
  // In the order a json object (a std::map) would list them.
  static constexpr const char* kKeys[] = {"addressType", "binaryData", "data",
                                          "endpoints",   "ports",      "spec",
                                          "stringData",  "subsets",    "type"};
  std::string out = "{";
  for (const char* key : kKeys) {
    auto it = obj.find(key);
    if (it == obj.end()) continue;
    if (out.size() > 1) out += ',';
    out += '"';
    out += key;
    out += "\":";
    out += it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  out += '}';
  return out;
}

// The spec map, reported as missing when required.
const json* specOf(Ctx& c, const json& obj, const std::string& path, bool required) {
  return c.map(obj, path, "spec", required);
}

// `owned`, when set, is `obj` itself and may be moved from once decoded.
void decodeObject(Ctx& c, const json& obj, const std::string& path, ResourceSet& out,
                  json* owned = nullptr);

void decodeList(Ctx& c, const json& obj, const std::string& path, ResourceSet& out) {
  c.list(obj, path, "items",
         [&](const json& item, const std::string& ip) { decodeObject(c, item, ip, out); });
}

template <typename T>
void finishObject(Ctx& c, int errors_before, const json& obj, const std::string& path, json* owned,
                  T&& value, std::vector<T>& into) {
  // A Gateway API field Portico skips changes routing or TLS without a word:
  // say so.
  const bool rejected = c.errors() != errors_before;
  c.warnUnread(obj, path, rejected);
  if (rejected) return;  // the API server would have rejected it
  value.spec_digest = std::hash<std::string>{}(specDigest(obj));
  value.raw =
      owned ? std::make_shared<const json>(std::move(*owned)) : std::make_shared<const json>(obj);
  into.push_back(std::forward<T>(value));
}

void decodeObject(Ctx& c, const json& obj, const std::string& path, ResourceSet& out, json* owned) {
  int before = c.errors();
  std::string api_version, kind;
  c.forgetReads(false);
  c.str(obj, path, "apiVersion", api_version, true);
  c.str(obj, path, "kind", kind, true);
  // Only Gateway API objects are checked for fields nothing reads: core kinds
  // carry many fields a gateway has no use for.
  if (api_version.rfind(kGatewayGroup, 0) == 0) {
    c.forgetReads(true);
    c.field(obj, "apiVersion");
    c.field(obj, "kind");
  }
  if (c.errors() != before) return;
  if (kind == "List" && api_version == "v1") {
    decodeList(c, obj, path, out);
    return;
  }
  Kind k = kindOf(api_version, kind);
  // Object-level fields sit under `path` (inside a List) or at the root.
  auto sp = [&](std::string_view key) { return join(path, key); };
  switch (k) {
    case Kind::Unknown:
      if (std::string hint = nearMissKind(kind); !hint.empty()) {
        PORTICO_LOG(Warn, "{}: document {}: ignoring unsupported kind {} ({}): {}", c.file(),
                    c.document(), kind, api_version, hint);
      } else {
        PORTICO_LOG(Info, "{}: document {}: ignoring unsupported kind {} ({})", c.file(),
                    c.document(), kind, api_version);
      }
      return;
    case Kind::GatewayClass: {
      GatewayClass v;
      fillBase(c, obj, path, api_version, kind, false, v);
      if (const json* spec = specOf(c, obj, path, true))
        decodeGatewayClass(c, *spec, sp("spec"), v);
      finishObject(c, before, obj, path, owned, std::move(v), out.gateway_classes);
      return;
    }
    case Kind::Gateway: {
      Gateway v;
      fillBase(c, obj, path, api_version, kind, true, v);
      if (const json* spec = specOf(c, obj, path, true)) decodeGateway(c, *spec, sp("spec"), v);
      finishObject(c, before, obj, path, owned, std::move(v), out.gateways);
      return;
    }
    case Kind::HttpRoute: {
      HttpRoute v;
      fillBase(c, obj, path, api_version, kind, true, v);
      if (const json* spec = specOf(c, obj, path, false)) decodeHttpRoute(c, *spec, sp("spec"), v);
      finishObject(c, before, obj, path, owned, std::move(v), out.http_routes);
      return;
    }
    case Kind::ReferenceGrant: {
      ReferenceGrant v;
      fillBase(c, obj, path, api_version, kind, true, v);
      if (const json* spec = specOf(c, obj, path, true))
        decodeReferenceGrant(c, *spec, sp("spec"), v);
      finishObject(c, before, obj, path, owned, std::move(v), out.reference_grants);
      return;
    }
    case Kind::BackendTlsPolicy: {
      BackendTlsPolicy v;
      fillBase(c, obj, path, api_version, kind, true, v);
      if (const json* spec = specOf(c, obj, path, true))
        decodeBackendTlsPolicy(c, *spec, sp("spec"), v);
      const int errors = c.errors() - before;
      finishObject(c, before, obj, path, owned, std::move(v), out.backend_tls_policies);
      // finishObject() moves `v` only when it takes it (no errors).
      if (errors > 0 && !v.metadata.name.empty() && !v.target_refs.empty()) {
        // Refused; kept aside so its targets can fail closed (see resources.h).
        v.refused = out.errors[out.errors.size() - static_cast<size_t>(errors)].toString();
        v.spec_digest = std::hash<std::string>{}(specDigest(obj));
        v.raw = std::make_shared<const json>(obj);
        out.refused_backend_tls_policies.push_back(std::move(v));
      }
      return;
    }
    case Kind::Service: {
      Service v;
      fillBase(c, obj, path, api_version, kind, true, v);
      if (const json* spec = specOf(c, obj, path, false)) decodeService(c, *spec, sp("spec"), v);
      finishObject(c, before, obj, path, owned, std::move(v), out.services);
      return;
    }
    case Kind::Endpoints: {
      Endpoints v;
      fillBase(c, obj, path, api_version, kind, true, v);
      decodeEndpoints(c, obj, path, v);
      finishObject(c, before, obj, path, owned, std::move(v), out.endpoints);
      return;
    }
    case Kind::EndpointSlice: {
      EndpointSlice v;
      fillBase(c, obj, path, api_version, kind, true, v);
      decodeEndpointSlice(c, obj, path, v);
      finishObject(c, before, obj, path, owned, std::move(v), out.endpoint_slices);
      return;
    }
    case Kind::ConfigMap: {
      ConfigMap v;
      fillBase(c, obj, path, api_version, kind, true, v);
      c.strMap(obj, path, "data", v.data);
      decodeBase64Map(c, obj, path, "binaryData", v.binary_data);
      finishObject(c, before, obj, path, owned, std::move(v), out.config_maps);
      return;
    }
    case Kind::Secret: {
      Secret v;
      fillBase(c, obj, path, api_version, kind, true, v);
      c.str(obj, path, "type", v.type);
      decodeBase64Map(c, obj, path, "data", v.data);
      std::map<std::string, std::string> string_data;
      c.strMap(obj, path, "stringData", string_data);
      // The API server merges stringData over data on write.
      for (auto& [key, value] : string_data) v.data[key] = std::move(value);
      finishObject(c, before, obj, path, owned, std::move(v), out.secrets);
      return;
    }
    case Kind::Namespace: {
      Namespace v;
      fillBase(c, obj, path, api_version, kind, false, v);
      // The API server always sets this label; Selector-based allowedRoutes rely on it.
      v.metadata.labels["kubernetes.io/metadata.name"] = v.metadata.name;
      finishObject(c, before, obj, path, owned, std::move(v), out.namespaces);
      return;
    }
  }
}

// Splits a YAML stream at document markers ("---" / "..." lines) so that a
// syntax error in one document does not take the others down with it.
struct Chunk {
  std::string text;
  int first_line = 0;  // 0-based line of the chunk's first line in the file
};

std::vector<Chunk> splitDocuments(std::string_view text) {
  std::vector<Chunk> chunks;
  Chunk cur;
  int line_no = 0;
  bool seen_marker = false;
  size_t pos = 0;
  auto flush = [&](int next_first_line) {
    chunks.push_back(std::move(cur));
    cur = Chunk{};
    cur.first_line = next_first_line;
  };
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    bool is_start = line.substr(0, 3) == "---" &&
                    (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    bool is_end =
        line.substr(0, 3) == "..." && (line.size() == 3 || line[3] == ' ' || line[3] == '\r');
    if (is_start) {
      if (seen_marker || !chunks.empty() ||
          cur.text.find_first_not_of(" \t\r\n") != std::string::npos) {
        flush(line_no);
      } else {
        cur = Chunk{};  // leading blank/comment-only text is not a document
      }
      seen_marker = true;
      cur.first_line = line_no;
      // Content after "--- " on the same line belongs to the document.
      cur.text.append(line.size() > 3 ? line.substr(4) : std::string_view());
      cur.text.push_back('\n');
    } else if (is_end) {
      cur.text.push_back('\n');
    } else {
      cur.text.append(line);
      cur.text.push_back('\n');
    }
    ++line_no;
    if (end == text.size()) break;
    pos = end + 1;
  }
  chunks.push_back(std::move(cur));
  return chunks;
}

bool blank(const std::string& text) {
  // Only whitespace and comments.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string_view::npos && line[first] != '#') return false;
    pos = end + 1;
  }
  return true;
}

}  // namespace

namespace {

// A whole text that is JSON: one document. False when it is not strict JSON
// (the caller then reads it as YAML, which reports what is wrong).
bool decodeJsonText(std::string_view text, std::string_view file, ResourceSet& out) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || (text[first] != '{' && text[first] != '[')) return false;
  json obj;
  try {
    if (!detail::jsonTextToJson(text, obj)) return false;
  } catch (const std::exception&) {
    return false;
  }
  Ctx c(std::string(file), 1, out);
  try {
    if (!obj.is_object()) {
      c.error("(root)", std::string("expected a Kubernetes object (map), got ") + typeName(obj));
    } else {
      decodeObject(c, obj, "", out, &obj);
    }
  } catch (const std::exception& e) {
    c.error("(root)", std::string("cannot decode: ") + e.what());
  }
  return true;
}

void decodeChunk(const Chunk& chunk, int document, std::string_view file, ResourceSet& out) {
  Ctx c(std::string(file), document, out);
  try {
    json obj;
    detail::YamlSyntaxError syntax;
    if (!detail::yamlToJson(chunk.text, obj, syntax)) {
      c.error("line " + std::to_string(chunk.first_line + syntax.line + 1) + ", column " +
                  std::to_string(syntax.column + 1),
              "invalid YAML: " + syntax.message);
      return;
    }
    if (obj.is_null()) return;
    if (!obj.is_object()) {
      c.error("(root)", std::string("expected a Kubernetes object (map), got ") + typeName(obj));
      return;
    }
    decodeObject(c, obj, "", out, &obj);
  } catch (const std::exception& e) {
    c.error("(root)", std::string("cannot decode: ") + e.what());
  }
}

template <typename Dst, typename Src, typename Fn>
void eachList(Dst& dst, Src& src, Fn fn) {
  fn(dst.gateway_classes, src.gateway_classes);
  fn(dst.gateways, src.gateways);
  fn(dst.http_routes, src.http_routes);
  fn(dst.reference_grants, src.reference_grants);
  fn(dst.backend_tls_policies, src.backend_tls_policies);
  fn(dst.services, src.services);
  fn(dst.endpoints, src.endpoints);
  fn(dst.endpoint_slices, src.endpoint_slices);
  fn(dst.config_maps, src.config_maps);
  fn(dst.secrets, src.secrets);
  fn(dst.namespaces, src.namespaces);
  fn(dst.refused_backend_tls_policies, src.refused_backend_tls_policies);
}

bool givesObjects(const ResourceSet& set) {
  bool any = false;
  eachList(set, set, [&any](const auto& list, const auto&) { any = any || !list.empty(); });
  return any;
}

// A memo document copied to where it now stands in its file.
void setDocument(ResourceSet& set, int document) {
  eachList(set, set, [document](auto& list, auto&) {
    for (auto& obj : list) obj.document = document;
  });
}

}  // namespace

void appendResources(ResourceSet& dst, const ResourceSet& src) {
  eachList(dst, src,
           [](auto& to, const auto& from) { to.insert(to.end(), from.begin(), from.end()); });
  dst.errors.insert(dst.errors.end(), src.errors.begin(), src.errors.end());
}

void appendResources(ResourceSet& dst, ResourceSet&& src) {
  auto move_all = [](auto& to, auto& from) {
    if (to.empty()) {
      to = std::move(from);
    } else {
      to.insert(to.end(), std::make_move_iterator(from.begin()),
                std::make_move_iterator(from.end()));
    }
    from.clear();
  };
  eachList(dst, src, move_all);
  move_all(dst.errors, src.errors);
}

void appendDocuments(ResourceSet& dst, const std::vector<const DocumentMemo*>& memos) {
  std::array<size_t, 16> counts{};  // per list, in eachList order (12 lists)
  for (const DocumentMemo* m : memos) {
    for (const auto& d : m->documents) {
      size_t i = 0;
      eachList(dst, d.objects, [&](auto&, const auto& from) { counts[i++] += from.size(); });
    }
  }
  size_t i = 0;
  eachList(dst, dst, [&](auto& to, auto&) { to.reserve(to.size() + counts[i++]); });
  for (const DocumentMemo* m : memos)
    for (const auto& d : m->documents) appendResources(dst, d.objects);
}

void decodeText(std::string_view text, std::string_view file, ResourceSet& out) {
  // A JSON file: one document, parsed as JSON (much faster than as YAML).
  if (decodeJsonText(text, file, out)) return;
  std::vector<Chunk> chunks = splitDocuments(text);
  int document = 0;
  for (const Chunk& chunk : chunks) {
    ++document;
    if (blank(chunk.text)) continue;
    decodeChunk(chunk, document, file, out);
  }
}

void decodeDocuments(std::string_view text, std::string_view file, const DocumentMemo* previous,
                     DocumentMemo& memo, std::vector<DecodeError>& errors) {
  memo.documents.clear();
  auto keep = [&](std::string doc_text, ResourceSet&& objects) {
    errors.insert(errors.end(), std::make_move_iterator(objects.errors.begin()),
                  std::make_move_iterator(objects.errors.end()));
    objects.errors.clear();
    memo.documents.push_back(DocumentMemo::Document{std::move(doc_text), std::move(objects)});
  };
  ResourceSet whole;
  if (decodeJsonText(text, file, whole)) {
    keep(std::string(text), std::move(whole));
    return;
  }
  std::unordered_map<std::string_view, const ResourceSet*> before;
  if (previous) {
    before.reserve(previous->documents.size());
    for (const auto& d : previous->documents) before.emplace(d.text, &d.objects);
  }
  std::vector<Chunk> chunks = splitDocuments(text);
  memo.documents.reserve(chunks.size());
  int document = 0;
  for (Chunk& chunk : chunks) {
    ++document;
    if (blank(chunk.text)) continue;
    ResourceSet objects;
    auto it = before.find(chunk.text);
    // Documents that gave nothing are parsed again: they may be there only
    // for a message worth repeating (an unsupported kind).
    if (it != before.end() && givesObjects(*it->second)) {
      appendResources(objects, *it->second);
      setDocument(objects, document);
    } else {
      decodeChunk(chunk, document, file, objects);
    }
    keep(std::move(chunk.text), std::move(objects));
  }
}

namespace {

template <typename T>
void sortAndDedupe(std::vector<T>& items, ResourceSet& set) {
  auto less = [](const T& a, const T& b) {
    return std::tie(a.metadata.ns, a.metadata.name) < std::tie(b.metadata.ns, b.metadata.name);
  };
  auto same = [](const T& a, const T& b) {
    return a.metadata.ns == b.metadata.ns && a.metadata.name == b.metadata.name;
  };
  // Generated and exported manifests usually come sorted and without
  // duplicates: then nothing moves (40,000 objects are worth not moving).
  if (!std::is_sorted(items.begin(), items.end(), less))
    std::stable_sort(items.begin(), items.end(), less);
  if (std::adjacent_find(items.begin(), items.end(), same) == items.end()) return;
  std::vector<T> kept;
  kept.reserve(items.size());
  for (auto& item : items) {
    if (!kept.empty() && same(kept.back(), item)) {
      const T& first = kept.back();
      set.errors.push_back(
          DecodeError{item.file, item.document, "metadata.name",
                      "duplicate " + item.kind + " " +
                          (item.metadata.ns.empty() ? "" : item.metadata.ns + "/") +
                          item.metadata.name + " (first defined in " + first.file + ": document " +
                          std::to_string(first.document) + ", which is used)"});
      continue;
    }
    kept.push_back(std::move(item));
  }
  items = std::move(kept);
}

}  // namespace

void finalize(ResourceSet& set) {
  // Duplicates are detected on a stable sort, so "first" means first read.
  sortAndDedupe(set.gateway_classes, set);
  sortAndDedupe(set.gateways, set);
  sortAndDedupe(set.http_routes, set);
  sortAndDedupe(set.reference_grants, set);
  sortAndDedupe(set.backend_tls_policies, set);
  sortAndDedupe(set.services, set);
  sortAndDedupe(set.endpoints, set);
  sortAndDedupe(set.endpoint_slices, set);
  sortAndDedupe(set.config_maps, set);
  sortAndDedupe(set.secrets, set);
  sortAndDedupe(set.namespaces, set);
  std::stable_sort(set.errors.begin(), set.errors.end(), [](const auto& a, const auto& b) {
    return std::tie(a.file, a.document) < std::tie(b.file, b.document);
  });
}

}  // namespace portico::k8s
