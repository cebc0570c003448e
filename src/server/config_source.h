#pragma once
// Standalone config: manifests from files and directories, re-read on every
// change. A file that fails to decode keeps contributing its last good
// objects, so one bad edit never takes routes away from a running gateway;
// its errors are still reported.
#include <map>
#include <string>
#include <vector>

#include "k8s/resources.h"

namespace portico::server {

class FileConfigSource {
 public:
  explicit FileConfigSource(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  // Reads every file now. `errors` gets this read's decode errors
  // ("file: document N: field: message").
  k8s::ResourceSet load(std::vector<std::string>& errors);
  // Directories to watch (given dirs, and the parent dir of given files).
  std::vector<std::string> watchDirectories() const;
  const std::vector<std::string>& paths() const { return paths_; }

 private:
  std::vector<std::string> paths_;
  std::map<std::string, k8s::ResourceSet> last_good_;  // by file path
};

// Appends every object of `src` to `dst` (errors too).
void appendResources(k8s::ResourceSet& dst, const k8s::ResourceSet& src);

}  // namespace portico::server
