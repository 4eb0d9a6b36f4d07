// The limit state of one process: the claim/settle arithmetic of claim.h on
// in-memory counters. Used alone without --redis, and as the fallback while
// Redis is away (--redis-fail open). Thread-safe; never blocks on I/O.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "lib/limits/claim.h"

namespace llmproxy::limits {

class LocalLedger {
 public:
  // Evaluates every check (filling in remaining / reset_s), then takes all of
  // them or none.
  Admission admit(Claim& claim, TimeMs now);
  // Replaces the claim's windows' claims with `actual` and frees its parallel
  // slot. A claim whose window has since ended is dropped with it.
  void settle(const Claim& claim, const Actual& actual);
  // Sets what a window has spent, e.g. rebuilt from usage records at start.
  void seed(Scope scope, Id owner, Slot slot, TimeMs window_start, std::int64_t spent);

 private:
  struct StateKey {
    Scope scope;
    Id owner;
    Slot slot;
    bool operator==(const StateKey&) const = default;
  };
  struct StateKeyHash {
    std::size_t operator()(const StateKey& k) const {
      return std::hash<std::int64_t>{}(k.owner * 16 + static_cast<int>(k.slot) * 2 +
                                       (k.scope == Scope::kKey));
    }
  };
  struct State {
    double level = -1;  // bucket; -1: not yet used (starts full)
    TimeMs last = 0;
    TimeMs window_start = -1;  // window
    std::int64_t spent = 0, claimed = 0;
    std::int64_t in_flight = 0;  // parallel
  };

  State& state(const Check& c) { return states_[StateKey{c.scope, c.owner, c.slot}]; }
  // Whether the check passes now; fills in remaining, reset_s and, when it
  // fails, how long waiting would take (nullopt: it cannot help).
  bool evaluate(Check& c, State& s, TimeMs now, std::optional<double>& wait);
  void take(Check& c, State& s);

  std::mutex mu_;  // one lock: admissions take several states at once
  std::unordered_map<StateKey, State, StateKeyHash> states_;
};

}  // namespace llmproxy::limits
