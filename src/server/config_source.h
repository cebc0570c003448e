#pragma once
// Standalone config: manifests from files and directories, re-read on every
// change. A file that fails to decode keeps contributing its last good
// objects, so one bad edit never takes routes away from a running gateway;
// its errors are still reported.
//
// Loads are incremental: each file's decoded objects are kept, and a file is
// decoded again only when its content changed (a 10,000-route file costs
// ~0.1 s to decode; an edit to another file should not pay that).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "k8s/decode.h"
#include "k8s/resources.h"

namespace portico::server {

// What the last load() did, per file (for logs and tests).
struct LoadStats {
  size_t files = 0;
  size_t decoded = 0;  // read and decoded (new or changed content)
  size_t reused = 0;   // files whose objects came from an earlier load, not decoded
};

class FileConfigSource {
 public:
  // `keep_objects` = false: a one-shot source (`portico check`) that moves
  // what it decodes into the result instead of keeping a copy.
  explicit FileConfigSource(std::vector<std::string> paths, bool keep_objects = true)
      : paths_(std::move(paths)), keep_objects_(keep_objects) {}
  // Reads every changed file now. `errors` gets this load's errors
  // ("file: document N: field: message"), unchanged bad files' included.
  k8s::ResourceSet load(std::vector<std::string>& errors);
  // Directories to watch (given dirs, and the parent dir of given files).
  std::vector<std::string> watchDirectories() const;
  const std::vector<std::string>& paths() const { return paths_; }
  const LoadStats& lastLoad() const { return stats_; }
  // How recent a file's last change may be and still have its stat() stamp
  // vouch for its content (default 2 s; tests shorten it).
  void setRacyWindow(std::chrono::nanoseconds window) { racy_window_ns_ = window.count(); }

 private:
  // Who the file is, as stat() sees it. Equal stamps mean unchanged content,
  // unless the file changed within one timestamp tick of being read (see
  // `trusted` in the .cc).
  struct Stamp {
    uint64_t dev = 0, ino = 0;
    int64_t size = -1;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  struct FileState {
    Stamp stamp;
    int64_t stamped_at_ns = 0;  // wall clock when `stamp` was taken
    bool have_content = false;  // content_hash / content_size describe the last read
    uint64_t content_hash = 0;
    size_t content_size = 0;
    bool have_good = false;
    k8s::DocumentMemo good;           // the last read that decoded cleanly
    std::vector<std::string> errors;  // the current content's errors (empty when good)
    // BackendTLSPolicies the current (erroneous) content holds but decode
    // refused: they stand for the file while it has no last good version,
    // so their targets fail closed rather than go plaintext.
    std::vector<k8s::BackendTlsPolicy> refused;
  };
  static bool statFile(const std::string& path, Stamp& out);
  // Decodes `text` into `st` (last-good rule applied).
  void decodeInto(FileState& st, const std::string& file, const std::string& text);

  std::vector<std::string> paths_;
  bool keep_objects_;
  // Coarser than any file timestamp tick likely met (ext4, tmpfs: a jiffy;
  // FAT-like and some network filesystems: 1-2 s).
  int64_t racy_window_ns_ = 2'000'000'000;
  std::map<std::string, FileState> files_;
  LoadStats stats_;
};

}  // namespace portico::server
