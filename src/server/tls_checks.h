#pragma once
// translate() is kept free of OpenSSL; whoever runs it (the reload thread,
// `portico check`, tests) plugs in the OpenSSL-backed certificate and TLS
// settings checks here, so all of them check the same way.
#include "translate/translate.h"

namespace portico::server {

void addTlsChecks(translate::Options& options);

}  // namespace portico::server
