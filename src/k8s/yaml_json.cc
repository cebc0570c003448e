#include "k8s/yaml_json.h"

#include <yaml-cpp/yaml.h>
#include <yaml.h>

#include <charconv>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <vector>

namespace portico::k8s::detail {

using nlohmann::json;

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// [0-9]+ starting at i; returns the index after the digits.
size_t digits(std::string_view s, size_t i) {
  while (i < s.size() && isDigit(s[i])) ++i;
  return i;
}

// [-+]?[0-9]+
bool isCoreInt(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  size_t end = digits(s, i);
  return end > i && end == s.size();
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool isCoreFloat(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i < s.size() && s[i] == '.') {
    size_t end = digits(s, i + 1);
    if (end == i + 1) return false;
    i = end;
  } else {
    size_t end = digits(s, i);
    if (end == i) return false;
    i = end;
    if (i < s.size() && s[i] == '.') i = digits(s, i + 1);
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t end = digits(s, i);
    if (end == i) return false;
    i = end;
  }
  return i == s.size();
}

// yaml-cpp turns these plain scalars into Null nodes.
bool isNullWord(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

}  // namespace

json resolvePlainScalar(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (isNullWord(s)) return nullptr;
  if (isCoreInt(s)) {
    int64_t v = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
    return std::string(s);
  }
  if (isCoreFloat(s)) {
    try {
      return std::stod(std::string(s));
    } catch (...) {
      return std::string(s);
    }
  }
  return std::string(s);
}

// ---- libyaml ----------------------------------------------------------------------

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) {
    ok_ = yaml_parser_initialize(&parser_) != 0;
    if (ok_)
      yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()),
                                   text.size());
  }
  ~Parser() {
    if (ok_) yaml_parser_delete(&parser_);
  }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  bool ok() const { return ok_; }
  yaml_parser_t* get() { return &parser_; }

 private:
  yaml_parser_t parser_;
  bool ok_ = false;
};

class Event {
 public:
  Event() = default;
  ~Event() {
    if (live_) yaml_event_delete(&event_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  bool next(yaml_parser_t* parser) {
    if (live_) yaml_event_delete(&event_);
    live_ = yaml_parser_parse(parser, &event_) != 0;
    return live_;
  }
  const yaml_event_t& operator*() const { return event_; }
  const yaml_event_t* operator->() const { return &event_; }

 private:
  yaml_event_t event_{};
  bool live_ = false;
};

struct Frame {
  json value;
  std::string anchor;  // empty: none
  std::string key;     // pending key of a mapping
  bool has_key = false;
};

std::string_view view(const yaml_char_t* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

std::string_view view(const yaml_char_t* p) {
  return p ? std::string_view(reinterpret_cast<const char*>(p)) : std::string_view();
}

// Builds the JSON tree of one document from parser events.
class Builder {
 public:
  // Returns false to decline (the caller falls back to yaml-cpp).
  bool run(yaml_parser_t* parser, json& out) {
    Event ev;
    bool in_document = false;
    for (;;) {
      if (!ev.next(parser)) return false;
      switch (ev->type) {
        case YAML_STREAM_START_EVENT:
        case YAML_NO_EVENT:
          break;
        case YAML_STREAM_END_EVENT:
          out = nullptr;  // no document at all
          return true;
        case YAML_DOCUMENT_START_EVENT:
          in_document = true;
          break;
        case YAML_DOCUMENT_END_EVENT:
          if (!in_document || !done_) return false;
          // libyaml ends a document before it looks at what follows; text
          // after the root node is an error only the next event shows.
          if (!ev.next(parser) || ev->type != YAML_STREAM_END_EVENT) return false;
          out = std::move(root_);
          return true;
        case YAML_SCALAR_EVENT: {
          const auto& s = ev->data.scalar;
          std::string_view text = view(s.value, s.length);
          if (!stack_.empty() && isKeySlot()) {
            // Keys stay text. yaml-cpp writes a null key as "~" and "<<" may
            // be a merge key: leave both to it.
            bool plain = s.tag == nullptr && s.style == YAML_PLAIN_SCALAR_STYLE;
            if (plain && (isNullWord(text) || text == "<<")) return false;
            if (s.anchor) return false;  // an anchored key: rare, leave it to yaml-cpp
            setKey(std::string(text));
            break;
          }
          json v = (s.tag == nullptr && s.style == YAML_PLAIN_SCALAR_STYLE)
                       ? resolvePlainScalar(text)
                       : json(std::string(text));
          if (s.anchor) anchors_[std::string(view(s.anchor))] = v;
          if (!attach(std::move(v))) return false;
          break;
        }
        case YAML_ALIAS_EVENT: {
          if (!stack_.empty() && isKeySlot()) return false;
          auto it = anchors_.find(std::string(view(ev->data.alias.anchor)));
          if (it == anchors_.end()) return false;
          if (!attach(json(it->second))) return false;
          break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
          if (!stack_.empty() && isKeySlot()) return false;  // complex key
          bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
          const yaml_char_t* anchor =
              seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
          Frame f;
          f.value = seq ? json::array() : json::object();
          if (anchor) f.anchor = std::string(view(anchor));
          stack_.push_back(std::move(f));
          break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
          if (stack_.empty()) return false;
          Frame f = std::move(stack_.back());
          stack_.pop_back();
          if (!f.anchor.empty()) anchors_[f.anchor] = f.value;
          if (!attach(std::move(f.value))) return false;
          break;
        }
      }
    }
  }

 private:
  bool isKeySlot() const { return stack_.back().value.is_object() && !stack_.back().has_key; }

  void setKey(std::string key) {
    stack_.back().key = std::move(key);
    stack_.back().has_key = true;
  }

  bool attach(json v) {
    if (stack_.empty()) {
      if (done_) return false;
      root_ = std::move(v);
      done_ = true;
      return true;
    }
    Frame& top = stack_.back();
    if (top.value.is_array()) {
      top.value.push_back(std::move(v));
    } else {
      // Repeated keys: the last one wins, as yaml-cpp's iteration gave us.
      top.value.get_ref<json::object_t&>().insert_or_assign(std::move(top.key), std::move(v));
      top.key.clear();
      top.has_key = false;
    }
    return true;
  }

  std::vector<Frame> stack_;
  std::unordered_map<std::string, json> anchors_;
  json root_;
  bool done_ = false;
};

// ---- yaml-cpp -----------------------------------------------------------------------

json fromYamlCpp(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      // "!" marks a quoted scalar; an explicit tag (e.g. !!str) is taken as a string too.
      if (node.Tag() == "?") return resolvePlainScalar(node.Scalar());
      return node.Scalar();
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& item : node) arr.push_back(fromYamlCpp(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : node) {
        std::string key = kv.first.IsScalar() ? kv.first.Scalar() : YAML::Dump(kv.first);
        obj[key] = fromYamlCpp(kv.second);
      }
      return obj;
    }
  }
  return nullptr;
}

// JSON numbers typed as the YAML path types them: integers that fit int64 are
// int64, anything else declines (the YAML path then decides).
bool normaliseNumbers(json& j) {
  switch (j.type()) {
    case json::value_t::object:
    case json::value_t::array:
      for (auto& v : j)
        if (!normaliseNumbers(v)) return false;
      return true;
    case json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
      j = static_cast<int64_t>(u);
      return true;
    }
    case json::value_t::number_float:
      return false;
    default:
      return true;
  }
}

}  // namespace

bool yamlToJsonFast(std::string_view text, json& out, YamlSyntaxError* refused) {
  // A lone CR is a line break to libyaml (as the spec says) but text to
  // yaml-cpp; keep yaml-cpp's reading of such rare files.
  for (size_t cr = text.find('\r'); cr != std::string_view::npos; cr = text.find('\r', cr + 1))
    if (cr + 1 == text.size() || text[cr + 1] != '\n') return false;
  Parser parser(text);
  if (!parser.ok()) return false;
  Builder builder;
  if (builder.run(parser.get(), out)) return true;
  const yaml_parser_t& p = *parser.get();
  if (refused != nullptr && p.error != YAML_NO_ERROR && p.problem != nullptr) {
    // With a context ("while scanning a simple key") its mark is where the
    // bad construct starts, usually the line to fix; the problem's mark is
    // where libyaml gave up.
    const yaml_mark_t& mark = p.context != nullptr ? p.context_mark : p.problem_mark;
    refused->line = static_cast<int>(mark.line);
    refused->column = static_cast<int>(mark.column);
    refused->message = p.problem;
    if (p.context != nullptr) refused->message += std::string(" ") + p.context;
  }
  return false;
}

bool yamlToJsonCompat(std::string_view text, json& out, YamlSyntaxError& error) {
  try {
    YAML::Node node = YAML::Load(std::string(text));
    out = fromYamlCpp(node);
    return true;
  } catch (const YAML::Exception& e) {
    error.line = e.mark.line;
    error.column = e.mark.column;
    error.message = e.msg;
    return false;
  }
}

bool yamlToJson(std::string_view text, json& out, YamlSyntaxError& error) {
  YamlSyntaxError refused;
  if (yamlToJsonFast(text, out, &refused)) return true;
  if (!yamlToJsonCompat(text, out, error)) return false;  // yaml-cpp's message, as always
  if (refused.message.empty()) return true;               // declined, not refused
  // libyaml (what Kubernetes' own YAML reader was ported from) finds a syntax
  // error that yaml-cpp reads past, e.g. a line of a block scalar pushed out of
  // its indentation: kubectl would refuse the file, and yaml-cpp's reading of
  // it is a guess.
  out = json();
  error = std::move(refused);
  return false;
}

bool jsonTextToJson(std::string_view text, json& out) {
  out = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) return false;
  return normaliseNumbers(out);
}

}  // namespace portico::k8s::detail
