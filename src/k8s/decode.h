#pragma once
// Manifest decoding: YAML (multi-document, `kind: List`) or JSON text into a
// ResourceSet. Never throws: every problem becomes a DecodeError naming the
// file, the 1-based document index and the field path, and a bad document
// never stops the others from loading.
#include <optional>
#include <string>
#include <string_view>

#include "k8s/resources.h"

namespace portico::k8s {

// Appends every object of `text` to `out` (errors to out.errors). `file` is
// only used in messages.
void decodeText(std::string_view text, std::string_view file, ResourceSet& out);

// Call once after all decodeText() calls: sorts every list by namespace/name
// (deterministic output) and reports duplicate objects (the first one read
// wins, as if the later apply had been rejected).
void finalize(ResourceSet& set);

// Standard base64 (RFC 4648, padding optional, whitespace ignored).
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace portico::k8s
