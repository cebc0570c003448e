#pragma once
// YAML text -> nlohmann::json, the model decode.cc validates. Internal to
// src/k8s (decode.cc and its tests).
//
// Two parsers: libyaml's event API (fast; the C parser Kubernetes' own Go YAML
// library was ported from) builds the JSON tree directly, and yaml-cpp, which
// decided what a document means before libyaml was added. The fast path hands
// anything unusual (a syntax error, a complex or merge key, an unknown alias)
// to yaml-cpp, so results and error messages for those stay as they were; but
// text libyaml finds malformed is an error even when yaml-cpp reads past it.
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace portico::k8s::detail {

// Plain (unquoted, untagged) scalars resolved with the YAML 1.2 core schema:
// `port: 80` is a number and `port: "80"` a string, as the API server sees it.
nlohmann::json resolvePlainScalar(std::string_view s);

struct YamlSyntaxError {
  int line = 0;    // 0-based, within `text`
  int column = 0;  // 0-based
  std::string message;
};

// Parses the first document of `text` with libyaml. Returns false (and leaves
// `out` unspecified) when libyaml rejects the text or it holds something whose
// meaning is left to yaml-cpp; `refused`, when given, is filled only for
// libyaml's own syntax errors. An empty stream gives null.
bool yamlToJsonFast(std::string_view text, nlohmann::json& out, YamlSyntaxError* refused = nullptr);

// The first document of `text` through yaml-cpp. Returns false on a syntax
// error (described in `error`); never throws.
bool yamlToJsonCompat(std::string_view text, nlohmann::json& out, YamlSyntaxError& error);

// Both: the fast path first, yaml-cpp when it declines. A syntax error only
// libyaml finds is still a syntax error (with libyaml's message).
bool yamlToJson(std::string_view text, nlohmann::json& out, YamlSyntaxError& error);

// A whole text that is JSON (starts with '{' or '['), parsed by nlohmann::json
// with numbers normalised as the YAML path types them. False when it is not
// strict JSON (the caller then reads it as YAML).
bool jsonTextToJson(std::string_view text, nlohmann::json& out);

}  // namespace portico::k8s::detail
