#include "translate/status.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace portico::translate {

namespace {

using nlohmann::json;

json conditionsJson(const std::vector<Condition>& conditions) {
  json arr = json::array();
  for (const auto& c : conditions) {
    arr.push_back(json{{"type", c.type},
                       {"status", c.status},
                       {"reason", c.reason},
                       {"message", c.message},
                       {"observedGeneration", c.observed_generation},
                       {"lastTransitionTime", c.last_transition_time}});
  }
  return arr;
}

json parentRefJson(const k8s::ParentReference& p) {
  json j{{"group", p.group}, {"kind", p.kind}, {"name", p.name}};
  if (p.ns) j["namespace"] = *p.ns;
  if (p.section_name) j["sectionName"] = *p.section_name;
  if (p.port) j["port"] = *p.port;
  return j;
}

json gatewayStatusJson(const GatewayStatus& st) {
  json j;
  json addresses = json::array();
  for (const auto& a : st.addresses) addresses.push_back({{"type", "IPAddress"}, {"value", a}});
  j["addresses"] = addresses;
  j["conditions"] = conditionsJson(st.conditions);
  json listeners = json::array();
  for (const auto& l : st.listeners) {
    json kinds = json::array();
    for (const auto& k : l.supported_kinds) kinds.push_back({{"group", k.group}, {"kind", k.kind}});
    listeners.push_back({{"name", l.name},
                         {"supportedKinds", kinds},
                         {"attachedRoutes", l.attached_routes},
                         {"conditions", conditionsJson(l.conditions)}});
  }
  j["listeners"] = listeners;
  return j;
}

// Keeps entries written by other controllers, replaces ours.
json mergeParents(const json* old_status, const char* list_key, json ours,
                  const std::string& controller) {
  json merged = json::array();
  if (old_status && old_status->is_object()) {
    auto it = old_status->find(list_key);
    if (it != old_status->end() && it->is_array()) {
      for (const auto& p : *it) {
        if (p.is_object() && p.value("controllerName", "") != controller) merged.push_back(p);
      }
    }
  }
  for (auto& p : ours) merged.push_back(std::move(p));
  return json{{list_key, merged}};
}

const json* oldStatus(const json& raw) {
  auto it = raw.find("status");
  return it == raw.end() ? nullptr : &*it;
}

// One List item: the object as read (`raw`) with our metadata fields and,
// when set, our status in place of the stored ones. Written straight from
// `raw`, so rendering never copies the object's tree.
struct Item {
  const json* raw = nullptr;  // an object, or null
  json metadata;
  json status;
  bool has_status = false;

  void setStatus(json s) {
    status = std::move(s);
    has_status = true;
  }

  // The item's entries in the order a json object (a std::map) keeps them.
  std::vector<std::pair<std::string_view, const json*>> entries() const {
    std::vector<std::pair<std::string_view, const json*>> out;
    if (raw) {
      out.reserve(raw->size() + 2);
      for (auto it = raw->begin(); it != raw->end(); ++it) {
        if (it.key() == "metadata" || (has_status && it.key() == "status")) continue;
        out.emplace_back(it.key(), &it.value());
      }
    }
    out.emplace_back("metadata", &metadata);
    if (has_status) out.emplace_back("status", &status);
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }
};

template <typename T>
Item baseItem(const T& obj, bool namespaced) {
  Item item;
  if (obj.raw && obj.raw->is_object()) {
    item.raw = obj.raw.get();
    auto it = item.raw->find("metadata");
    if (it != item.raw->end() && it->is_object()) item.metadata = *it;
  }
  if (!item.metadata.is_object()) item.metadata = json::object();
  json& meta = item.metadata;
  meta["name"] = obj.metadata.name;
  if (namespaced) meta["namespace"] = obj.metadata.ns;
  if (obj.metadata.generation > 0) meta["generation"] = obj.metadata.generation;
  if (!obj.metadata.creation_timestamp.empty())
    meta["creationTimestamp"] = obj.metadata.creation_timestamp;
  return item;
}

// ---- a small YAML emitter (block style, like kubectl) ---------------------------------

bool needsQuotes(std::string_view s) {
  if (s.empty()) return true;
  constexpr std::string_view kSpecialFirst = "-?:,[]{}#&*!|>'\"%@` \t";
  if (kSpecialFirst.find(s[0]) != std::string_view::npos) return true;
  if (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '+' || s[0] == '.') return true;
  if (s.back() == ' ' || s.back() == ':') return true;
  if (s.find(": ") != std::string_view::npos || s.find(" #") != std::string_view::npos) return true;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  // Words YAML 1.1 readers take for booleans or null, in any case.
  constexpr size_t kLongestWord = 5;
  if (s.size() > kLongestWord) return false;
  char low[kLongestWord];
  for (size_t i = 0; i < s.size(); ++i)
    low[i] = (s[i] >= 'A' && s[i] <= 'Z') ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
  std::string_view word(low, s.size());
  for (std::string_view w : {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"})
    if (word == w) return true;
  return false;
}

void appendQuoted(std::string_view s, std::string& out) {
  out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

void appendScalar(const json& v, std::string& out) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (needsQuotes(s))
      appendQuoted(s, out);
    else
      out += s;
  } else if (v.is_null()) {
    out += "null";
  } else {
    out += v.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

bool isBlockScalar(const json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  if (s.find('\n') == std::string::npos || s.find('\r') != std::string::npos) return false;
  if (s[0] == ' ' || s[0] == '\n') return false;
  if (s.size() >= 2 && s[s.size() - 1] == '\n' && s[s.size() - 2] == '\n') return false;
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
  return true;
}

void emitBlockScalar(const std::string& s, int indent, std::string& out) {
  out += s.back() == '\n' ? "|\n" : "|-\n";
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find('\n', pos);
    if (end == std::string::npos) end = s.size();
    std::string_view line(s.data() + pos, end - pos);
    if (!line.empty()) out.append(static_cast<size_t>(indent), ' ').append(line);
    out += '\n';
    pos = end + 1;
  }
}

void emitValue(const json& v, int indent, std::string& out);
void emitSequenceItem(const json& item, int indent, std::string& out);
void emitAfterKey(const json& v, int indent, std::string& out);

// "key: value" (or a nested block) for a map entry whose indentation is out.
void emitEntry(std::string_view key, const json& value, int indent, std::string& out) {
  if (needsQuotes(key))
    appendQuoted(key, out);
  else
    out += key;
  out += ':';
  emitAfterKey(value, indent, out);
}

// Writes " value\n" or a nested block after a key / "- " that is already out.
void emitAfterKey(const json& v, int indent, std::string& out) {
  if (v.is_object() && !v.empty()) {
    out += '\n';
    emitValue(v, indent + 2, out);
  } else if (v.is_array() && !v.empty()) {
    out += '\n';
    emitValue(v, indent, out);  // kubectl style: "- " at the key's indentation
  } else if (v.is_object()) {
    out += " {}\n";
  } else if (v.is_array()) {
    out += " []\n";
  } else if (isBlockScalar(v)) {
    out += ' ';
    emitBlockScalar(v.get_ref<const std::string&>(), indent + 2, out);
  } else {
    out += ' ';
    appendScalar(v, out);
    out += '\n';
  }
}

// "- item" at `indent`.
void emitSequenceItem(const json& item, int indent, std::string& out) {
  out.append(static_cast<size_t>(indent), ' ').append("- ");
  if (item.is_object() && !item.empty()) {
    // First key on the dash line, the rest aligned under it.
    bool first = true;
    for (const auto& [k, val] : item.items()) {
      if (!first) out.append(static_cast<size_t>(indent) + 2, ' ');
      first = false;
      emitEntry(k, val, indent + 2, out);
    }
  } else if (item.is_array() && !item.empty()) {
    // First key on the dash line, the rest aligned under it.
    std::string nested;
    emitValue(item, indent + 2, nested);
    out.append(nested, static_cast<size_t>(indent) + 2);
  } else {
    std::string rest;
    emitAfterKey(item, indent, rest);
    out.append(rest, 1);  // drop the leading space meant for "key: value"
  }
}

void emitValue(const json& v, int indent, std::string& out) {
  if (v.is_object()) {
    for (const auto& [k, val] : v.items()) {
      out.append(static_cast<size_t>(indent), ' ');
      emitEntry(k, val, indent, out);
    }
  } else if (v.is_array()) {
    for (const auto& item : v) emitSequenceItem(item, indent, out);
  } else {
    out.append(static_cast<size_t>(indent), ' ');
    appendScalar(v, out);
    out += '\n';
  }
}

// Writes {"apiVersion": "v1", "items": [...], "kind": "List", "metadata": {}}
// one item at a time, byte for byte as json::dump(2) / emitValue would.
class ListWriter {
 public:
  explicit ListWriter(OutputFormat format) : format_(format) {
    out_ = format_ == OutputFormat::Json ? "{\n  \"apiVersion\": \"v1\",\n  \"items\": ["
                                         : "apiVersion: v1\n";
  }

  void add(const Item& item) {
    auto entries = item.entries();  // never empty: metadata is always there
    if (format_ == OutputFormat::Json) {
      out_ += count_ == 0 ? "\n    {\n" : ",\n    {\n";
      for (size_t i = 0; i < entries.size(); ++i) {
        out_.append(6, ' ');
        out_ += json(entries[i].first).dump(-1, ' ', false, json::error_handler_t::replace);
        out_ += ": ";
        // Values sit 6 deep; a dump holds no raw newline but those between lines.
        std::string text = entries[i].second->dump(2, ' ', false, json::error_handler_t::replace);
        size_t pos = 0;
        for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', pos)) {
          out_.append(text, pos, nl + 1 - pos).append(6, ' ');
          pos = nl + 1;
        }
        out_.append(text, pos);
        out_ += i + 1 < entries.size() ? ",\n" : "\n";
      }
      out_ += "    }";
    } else {
      if (count_ == 0) out_ += "items:\n";
      // "- " then the map at indentation 2, its first key on the dash line.
      out_ += "- ";
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out_ += "  ";
        emitEntry(entries[i].first, *entries[i].second, 2, out_);
      }
    }
    ++count_;
  }

  std::string finish() {
    if (format_ == OutputFormat::Json) {
      out_ += count_ == 0 ? "]" : "\n  ]";
      out_ += ",\n  \"kind\": \"List\",\n  \"metadata\": {}\n}\n";
    } else {
      if (count_ == 0) out_ += "items: []\n";
      out_ += "kind: List\nmetadata: {}\n";
    }
    return std::move(out_);
  }

 private:
  OutputFormat format_;
  std::string out_;
  size_t count_ = 0;
};

}  // namespace

std::string renderStatusList(const k8s::ResourceSet& rs, const StatusReport& status,
                             OutputFormat format) {
  // Each item is written out as soon as it is built, so the whole List never
  // exists as one tree. The text is what dumping that tree would give.
  ListWriter items(format);
  for (const auto& gc : rs.gateway_classes) {
    Item item = baseItem(gc, false);
    auto it = status.gateway_classes.find(gc.metadata.name);
    if (it != status.gateway_classes.end()) {
      json st{{"conditions", conditionsJson(it->second.conditions)}};
      if (!it->second.supported_features.empty()) {
        json features = json::array();
        for (const auto& f : it->second.supported_features) features.push_back({{"name", f}});
        st["supportedFeatures"] = std::move(features);
      }
      item.setStatus(std::move(st));
    }
    items.add(item);
  }
  for (const auto& gw : rs.gateways) {
    Item item = baseItem(gw, true);
    auto it = status.gateways.find(gw.key());
    if (it != status.gateways.end()) item.setStatus(gatewayStatusJson(it->second));
    items.add(item);
  }
  for (const auto& r : rs.http_routes) {
    Item item = baseItem(r, true);
    auto it = status.http_routes.find(r.key());
    if (it != status.http_routes.end() && !it->second.parents.empty()) {
      json ours = json::array();
      for (const auto& p : it->second.parents)
        ours.push_back({{"parentRef", parentRefJson(p.parent_ref)},
                        {"controllerName", p.controller_name},
                        {"conditions", conditionsJson(p.conditions)}});
      item.setStatus(mergeParents(r.raw ? oldStatus(*r.raw) : nullptr, "parents", std::move(ours),
                                  it->second.parents.front().controller_name));
    }
    items.add(item);
  }
  for (const auto& g : rs.reference_grants) items.add(baseItem(g, true));
  for (const auto& p : rs.backend_tls_policies) {
    Item item = baseItem(p, true);
    auto it = status.backend_tls_policies.find(p.key());
    if (it != status.backend_tls_policies.end() && !it->second.ancestors.empty()) {
      json ours = json::array();
      for (const auto& a : it->second.ancestors)
        ours.push_back({{"ancestorRef", parentRefJson(a.ancestor_ref)},
                        {"controllerName", a.controller_name},
                        {"conditions", conditionsJson(a.conditions)}});
      item.setStatus(mergeParents(p.raw ? oldStatus(*p.raw) : nullptr, "ancestors", std::move(ours),
                                  it->second.ancestors.front().controller_name));
    }
    items.add(item);
  }
  return items.finish();
}

}  // namespace portico::translate

namespace portico::translate {
namespace {

// An absent namespace or sectionName is the same parent as an empty one.
bool sameParent(const k8s::ParentReference& a, const k8s::ParentReference& b) {
  auto text = [](const std::optional<std::string>& o) {
    return o ? std::string_view(*o) : std::string_view();
  };
  return a.name == b.name && a.kind == b.kind && a.group == b.group && text(a.ns) == text(b.ns) &&
         text(a.section_name) == text(b.section_name) && a.port == b.port;
}

// Conditions whose type and status did not change keep their time.
void carry(std::vector<Condition>& now, const std::vector<Condition>& before) {
  for (auto& c : now) {
    for (const auto& b : before) {
      if (b.type == c.type && b.status == c.status) {
        c.last_transition_time = b.last_transition_time;
        break;
      }
    }
  }
}

template <typename Entry, typename SameFn, typename CondFn>
void carryList(std::vector<Entry>& now, const std::vector<Entry>& before, SameFn same,
               CondFn conds) {
  for (auto& n : now) {
    for (const auto& b : before) {
      if (same(n, b)) {
        carry(conds(n), conds(b));
        break;
      }
    }
  }
}

}  // namespace

void carryTransitionTimes(StatusReport& now, const StatusReport& before) {
  for (auto& [k, s] : now.gateway_classes) {
    auto it = before.gateway_classes.find(k);
    if (it != before.gateway_classes.end()) carry(s.conditions, it->second.conditions);
  }
  for (auto& [k, s] : now.gateways) {
    auto it = before.gateways.find(k);
    if (it == before.gateways.end()) continue;
    carry(s.conditions, it->second.conditions);
    carryList(
        s.listeners, it->second.listeners,
        [](const auto& a, const auto& b) { return a.name == b.name; },
        [](auto& l) -> auto& { return l.conditions; });
  }
  for (auto& [k, s] : now.http_routes) {
    auto it = before.http_routes.find(k);
    if (it == before.http_routes.end()) continue;
    carryList(
        s.parents, it->second.parents,
        [](const auto& a, const auto& b) { return sameParent(a.parent_ref, b.parent_ref); },
        [](auto& p) -> auto& { return p.conditions; });
  }
  for (auto& [k, s] : now.backend_tls_policies) {
    auto it = before.backend_tls_policies.find(k);
    if (it == before.backend_tls_policies.end()) continue;
    carryList(
        s.ancestors, it->second.ancestors,
        [](const auto& a, const auto& b) { return sameParent(a.ancestor_ref, b.ancestor_ref); },
        [](auto& a) -> auto& { return a.conditions; });
  }
}

}  // namespace portico::translate
