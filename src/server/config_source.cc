#include "server/config_source.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "k8s/decode.h"
#include "providers/file_loader.h"

namespace portico::server {
namespace fs = std::filesystem;

void appendResources(k8s::ResourceSet& dst, const k8s::ResourceSet& src) {
  auto add = [](auto& to, const auto& from) { to.insert(to.end(), from.begin(), from.end()); };
  add(dst.gateway_classes, src.gateway_classes);
  add(dst.gateways, src.gateways);
  add(dst.http_routes, src.http_routes);
  add(dst.reference_grants, src.reference_grants);
  add(dst.backend_tls_policies, src.backend_tls_policies);
  add(dst.services, src.services);
  add(dst.endpoints, src.endpoints);
  add(dst.endpoint_slices, src.endpoint_slices);
  add(dst.config_maps, src.config_maps);
  add(dst.secrets, src.secrets);
  add(dst.namespaces, src.namespaces);
  add(dst.errors, src.errors);
}

k8s::ResourceSet FileConfigSource::load(std::vector<std::string>& errors) {
  std::vector<k8s::DecodeError> list_errors;
  std::vector<std::string> files = providers::listConfigFiles(paths_, list_errors);
  for (const auto& e : list_errors) errors.push_back(e.toString());
  k8s::ResourceSet merged;
  std::map<std::string, k8s::ResourceSet> next_good;
  for (const auto& file : files) {
    k8s::ResourceSet one;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      errors.push_back(file + ": cannot be read");
    } else {
      std::stringstream ss;
      ss << in.rdbuf();
      k8s::decodeText(ss.str(), file, one);
    }
    if (one.hasErrors() || !in) {
      for (const auto& e : one.errors) errors.push_back(e.toString());
      auto it = last_good_.find(file);
      if (it != last_good_.end()) {
        next_good.emplace(file, it->second);
        appendResources(merged, it->second);
      }
      continue;
    }
    appendResources(merged, one);
    next_good.emplace(file, std::move(one));
  }
  last_good_ = std::move(next_good);
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
