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
  // By file path: the text of its last read that decoded without errors.
  // Keeping the text rather than the objects means a good read moves its
  // objects straight into the result (no copy, no second set held); only a
  // bad read pays, by decoding the old text again.
  std::map<std::string, std::string> last_good_text_;
};

// Appends every object of `src` to `dst` (errors too).
void appendResources(k8s::ResourceSet& dst, const k8s::ResourceSet& src);
void appendResources(k8s::ResourceSet& dst, k8s::ResourceSet&& src);

}  // namespace portico::server
