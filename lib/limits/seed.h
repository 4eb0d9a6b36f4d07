// Rebuilds what the calendar windows (requests, tokens, dollars) have spent
// from the usage records, so a restart does not hand out a fresh window.
#pragma once

#include <vector>

#include "lib/config/snapshot.h"
#include "lib/limits/claim.h"
#include "storage/store.h"

namespace llmproxy::limits {

class Limiter;

// What one window of one limit has spent so far.
struct SpentWindow {
  Scope scope = Scope::kAssignment;
  Id owner = 0;
  Slot slot = Slot::kTokens;
  TimeMs start = 0, end = 0;
  std::int64_t spent = 0;
};

// Reads the usage records once per kind of window; seeds the limiter's own
// ledger, and hands the figures to its gates for Redis (see SharedLedger).
void seed_windows(storage::Store& store, const config::Snapshot& snapshot, Limiter& limiter,
                  TimeMs now);

}  // namespace llmproxy::limits
