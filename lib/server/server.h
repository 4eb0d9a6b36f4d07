// `llm-proxy serve`: N worker threads, each with its own event loop, acceptor
// (SO_REUSEPORT) and upstream connection pool; a config watcher thread that
// swaps in a new snapshot when storage reports a change; a usage writer
// thread. SIGTERM/SIGINT drain in-flight requests, flush usage and return.
#pragma once

#include "lib/server/context.h"
#include "storage/store.h"

namespace llmproxy::server {

// Runs until SIGTERM or SIGINT. Returns the process exit code. Throws
// llmproxy::Error when it cannot start (storage unreachable, address in use).
int serve(const storage::Location& where, const ServerOptions& options);

}  // namespace llmproxy::server
