#include "server/config_source.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "k8s/decode.h"
#include "providers/file_loader.h"

namespace portico::server {
namespace fs = std::filesystem;

namespace {

template <typename Set, typename Add>
void eachList(k8s::ResourceSet& dst, Set&& src, Add add) {
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

}  // namespace

void appendResources(k8s::ResourceSet& dst, const k8s::ResourceSet& src) {
  eachList(dst, src,
           [](auto& to, const auto& from) { to.insert(to.end(), from.begin(), from.end()); });
}

void appendResources(k8s::ResourceSet& dst, k8s::ResourceSet&& src) {
  eachList(dst, src, [](auto& to, auto& from) {
    if (to.empty()) {
      to = std::move(from);
    } else {
      to.insert(to.end(), std::make_move_iterator(from.begin()),
                std::make_move_iterator(from.end()));
    }
    from.clear();
  });
}

k8s::ResourceSet FileConfigSource::load(std::vector<std::string>& errors) {
  std::vector<k8s::DecodeError> list_errors;
  std::vector<std::string> files = providers::listConfigFiles(paths_, list_errors);
  for (const auto& e : list_errors) errors.push_back(e.toString());
  k8s::ResourceSet merged;
  std::map<std::string, std::string> next_good;
  for (const auto& file : files) {
    k8s::ResourceSet one;
    std::string text;
    bool readable = readFile(file, text);
    if (!readable) {
      errors.push_back(file + ": cannot be read");
    } else {
      k8s::decodeText(text, file, one);
    }
    if (one.hasErrors() || !readable) {
      for (const auto& e : one.errors) errors.push_back(e.toString());
      auto it = last_good_text_.find(file);
      if (it != last_good_text_.end()) {
        // It decoded cleanly before, and decoding is a function of the text.
        k8s::ResourceSet good;
        k8s::decodeText(it->second, file, good);
        appendResources(merged, std::move(good));
        next_good.emplace(file, std::move(it->second));
      }
      continue;
    }
    appendResources(merged, std::move(one));
    next_good.emplace(file, std::move(text));
  }
  last_good_text_ = std::move(next_good);
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
