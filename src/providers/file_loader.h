#pragma once
// Which files `--config PATH` arguments (files or directories) stand for.
// Directories are read non-recursively; hidden files are skipped and only
// *.yaml, *.yml and *.json are read. Sorted, so the result never depends on
// directory listing order. server::FileConfigSource reads and decodes them
// (one loading path for `run` and `check`).
#include <string>
#include <vector>

#include "k8s/resources.h"

namespace portico::providers {

// The files `paths` stand for, sorted and without duplicates. Missing paths
// are reported in `errors` (as `path: message`).
std::vector<std::string> listConfigFiles(const std::vector<std::string>& paths,
                                         std::vector<k8s::DecodeError>& errors);

}  // namespace portico::providers
