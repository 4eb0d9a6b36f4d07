// Rebuilds what the calendar windows (requests, tokens, dollars) have spent
// from the usage records, so a restart does not hand out a fresh window.
#pragma once

#include "lib/config/snapshot.h"
#include "lib/limits/local_ledger.h"
#include "storage/store.h"

namespace llmproxy::limits {

void seed_windows(storage::Store& store, const config::Snapshot& snapshot, LocalLedger& ledger,
                  TimeMs now);

}  // namespace llmproxy::limits
