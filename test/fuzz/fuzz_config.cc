// libFuzzer target: manifest text through decode and translate, as a user's
// config file. Neither may crash, throw or hang on any input; errors are data.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/log.h"
#include "k8s/decode.h"
#include "translate/translate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  portico::common::setLogLevel(portico::common::LogLevel::Off);  // warnings are expected
  std::string text(reinterpret_cast<const char*>(data), size);
  portico::k8s::ResourceSet set;
  portico::k8s::decodeText(text, "fuzz.yaml", set);
  portico::k8s::finalize(set);
  portico::translate::Options options;
  (void)portico::translate::translate(set, options);
  return 0;
}
