#include "server/config_source.h"

#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string_view>

#include "k8s/decode.h"
#include "providers/file_loader.h"

namespace portico::server {
namespace fs = std::filesystem;

namespace {

bool readFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size > 0) {
    out.resize(static_cast<size_t>(size));
    in.read(out.data(), size);
    out.resize(static_cast<size_t>(in.gcount()));
  }
  // Whatever is left (a file that grew while read, or one whose size is unknown).
  std::ostringstream rest;
  rest << in.rdbuf();
  out += rest.str();
  return !in.bad();
}

int64_t wallClockNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

// A file that never decoded cleanly contributes nothing, except its refused
// BackendTLSPolicies: each still names the Services it meant to protect, and
// those must fail closed (503 naming the refusal), never go plaintext.
static void addRefusedPolicies(k8s::ResourceSet& merged,
                               std::vector<k8s::BackendTlsPolicy> refused) {
  for (auto& p : refused) merged.backend_tls_policies.push_back(std::move(p));
}

bool FileConfigSource::statFile(const std::string& path, Stamp& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  out.size = st.st_size;
  out.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  out.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  return true;
}

void FileConfigSource::decodeInto(FileState& st, const std::string& file, const std::string& text) {
  k8s::DocumentMemo memo;
  std::vector<k8s::DecodeError> errors;
  k8s::decodeDocuments(text, file, st.have_good ? &st.good : nullptr, memo, errors);
  st.errors.clear();
  st.refused.clear();
  if (!errors.empty()) {
    // Keep the last good objects (decoding is a function of the text, so
    // they are what the last good text would give again).
    for (const auto& e : errors) st.errors.push_back(e.toString());
    for (auto& d : memo.documents)
      for (auto& p : d.objects.refused_backend_tls_policies) st.refused.push_back(std::move(p));
    return;
  }
  st.good = std::move(memo);
  st.have_good = true;
}

k8s::ResourceSet FileConfigSource::load(std::vector<std::string>& errors) {
  stats_ = LoadStats{};
  std::vector<k8s::DecodeError> list_errors;
  std::vector<std::string> files = providers::listConfigFiles(paths_, list_errors);
  for (const auto& e : list_errors) errors.push_back(e.toString());
  stats_.files = files.size();
  k8s::ResourceSet merged;
  std::map<std::string, FileState> next;
  std::vector<const k8s::DocumentMemo*> kept;  // in file order
  for (const auto& file : files) {
    FileState st;
    if (auto it = files_.find(file); it != files_.end()) st = std::move(it->second);
    Stamp now_stamp;
    int64_t now_ns = wallClockNs();
    bool stat_ok = statFile(file, now_stamp);
    // The stamp can vouch for the content only if the file's last change is
    // older than one timestamp tick before we looked: a write in the same
    // tick as our read leaves every field (size aside) as it was.
    bool trusted = stat_ok && st.have_content && now_stamp == st.stamp &&
                   st.stamp.ctime_ns < st.stamped_at_ns - racy_window_ns_;
    bool decoded = false;
    if (!trusted) {
      std::string text;
      if (!stat_ok || !readFile(file, text)) {
        st.have_content = false;  // read it again next time, whatever the stamp says
        st.errors.assign(1, file + ": cannot be read");
      } else {
        uint64_t hash = std::hash<std::string_view>{}(text);
        bool same = st.have_content && st.content_size == text.size() && st.content_hash == hash;
        st.stamp = now_stamp;
        st.stamped_at_ns = now_ns;
        st.have_content = true;
        st.content_hash = hash;
        st.content_size = text.size();
        if (!same) {
          ++stats_.decoded;
          decoded = true;
          if (!keep_objects_) {
            // One-shot: nothing is kept, so the objects move straight out.
            k8s::ResourceSet one;
            k8s::decodeText(text, file, one);
            for (const auto& e : one.errors) errors.push_back(e.toString());
            if (!one.hasErrors()) {
              k8s::appendResources(merged, std::move(one));
            } else {
              addRefusedPolicies(merged, std::move(one.refused_backend_tls_policies));
            }
            continue;
          }
          decodeInto(st, file, text);
        }
      }
    }
    errors.insert(errors.end(), st.errors.begin(), st.errors.end());
    if (st.have_good && !decoded) ++stats_.reused;
    FileState& placed = next.insert_or_assign(file, std::move(st)).first->second;
    if (placed.have_good) {
      kept.push_back(&placed.good);
    } else if (!placed.refused.empty()) {
      addRefusedPolicies(merged, placed.refused);
    }
  }
  // `kept` points into map nodes, which moving the map leaves in place.
  files_ = std::move(next);
  k8s::appendDocuments(merged, kept);
  k8s::finalize(merged);
  for (const auto& e : merged.errors) errors.push_back(e.toString());
  return merged;
}

std::vector<std::string> FileConfigSource::watchDirectories() const {
  std::vector<std::string> dirs;
  for (const auto& p : paths_) {
    std::error_code ec;
    fs::path path(p);
    if (fs::is_directory(path, ec)) {
      dirs.push_back(path.string());
    } else {
      auto parent = path.parent_path();
      dirs.push_back(parent.empty() ? "." : parent.string());
    }
  }
  return dirs;
}

}  // namespace portico::server
