#include "providers/file_loader.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace portico::providers {

namespace fs = std::filesystem;

namespace {

bool manifestExtension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

}  // namespace

std::vector<std::string> listConfigFiles(const std::vector<std::string>& paths,
                                         std::vector<k8s::DecodeError>& errors) {
  std::vector<std::string> files;
  for (const auto& path : paths) {
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
      errors.push_back(k8s::DecodeError{path, 0, "", "no such file or directory"});
      continue;
    }
    if (fs::is_directory(st)) {
      fs::directory_iterator it(path, ec), end;
      if (ec) {
        errors.push_back(k8s::DecodeError{path, 0, "", "cannot list directory: " + ec.message()});
        continue;
      }
      for (; it != end; it.increment(ec)) {
        if (ec) break;
        const fs::path& p = it->path();
        if (p.filename().string().rfind('.', 0) == 0) continue;  // hidden, editor swap files
        if (!manifestExtension(p)) continue;
        std::error_code fec;
        if (!fs::is_regular_file(it->status(fec)) || fec) continue;
        files.push_back(p.string());
      }
    } else {
      files.push_back(path);  // named explicitly: read whatever its extension
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

}  // namespace portico::providers
