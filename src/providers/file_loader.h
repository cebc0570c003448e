#pragma once
// Reads `--config PATH` arguments (files or directories) into one
// ResourceSet. Directories are read non-recursively; hidden files are skipped
// and only *.yaml, *.yml and *.json are read. Files are read in sorted order
// so the result never depends on directory listing order.
#include <string>
#include <vector>

#include "k8s/resources.h"

namespace portico::providers {

// The files `paths` stand for, sorted and without duplicates. Missing paths
// are reported in `errors` (as `path: message`).
std::vector<std::string> listConfigFiles(const std::vector<std::string>& paths,
                                         std::vector<k8s::DecodeError>& errors);

// Decodes every file of listConfigFiles(paths) and finalizes the set
// (sorted, duplicates reported). Never throws.
k8s::ResourceSet loadConfig(const std::vector<std::string>& paths);

}  // namespace portico::providers
