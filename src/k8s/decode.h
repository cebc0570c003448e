#pragma once
// Manifest decoding: YAML (multi-document, `kind: List`) or JSON text into a
// ResourceSet. Never throws: every problem becomes a DecodeError naming the
// file, the 1-based document index and the field path, and a bad document
// never stops the others from loading.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "k8s/resources.h"

namespace portico::k8s {

// Appends every object of `text` to `out` (errors to out.errors). `file` is
// only used in messages.
void decodeText(std::string_view text, std::string_view file, ResourceSet& out);

// One file's documents as last decoded without errors, each with the objects
// it gave, in file order: decodeDocuments() parses again only the documents
// whose text is not here (an edit to one route of 10,000 parses one).
struct DocumentMemo {
  struct Document {
    std::string text;
    ResourceSet objects;
  };
  std::vector<Document> documents;
};

// Decodes `text` (YAML or JSON, as decodeText) into `memo`; a document whose
// text is in `previous` is copied from it instead of parsed. Errors go to
// `errors`; with errors `memo` is incomplete and should not be kept.
void decodeDocuments(std::string_view text, std::string_view file, const DocumentMemo* previous,
                     DocumentMemo& memo, std::vector<DecodeError>& errors);

// Appends the objects of every document of `memos`, in order (one
// allocation per list, not per document).
void appendDocuments(ResourceSet& dst, const std::vector<const DocumentMemo*>& memos);

// Appends every object of `src` to `dst` (errors too).
void appendResources(ResourceSet& dst, const ResourceSet& src);
void appendResources(ResourceSet& dst, ResourceSet&& src);

// Call once after all decodeText() calls: sorts every list by namespace/name
// (deterministic output) and reports duplicate objects (the first one read
// wins, as if the later apply had been rejected).
void finalize(ResourceSet& set);

// Standard base64 (RFC 4648, padding optional, whitespace ignored).
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace portico::k8s
