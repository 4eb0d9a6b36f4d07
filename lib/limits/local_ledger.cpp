#include "lib/limits/local_ledger.h"

#include <algorithm>
#include <limits>

namespace llmproxy::limits {

bool LocalLedger::evaluate(Check& c, State& s, TimeMs now, std::optional<double>& wait) {
  switch (kind_of(c.slot)) {
    case Kind::kBucket: {
      if (s.level < 0) {
        s.level = c.limit;
      } else if (now > s.last) {
        s.level += c.rate * static_cast<double>(now - s.last) / 1000.0;
      }
      s.level = std::min(s.level, c.limit);  // also when the limit was lowered
      s.last = now;
      c.remaining = s.level;
      c.reset_s = c.rate > 0 ? (c.limit - s.level) / c.rate : 0;
      if (s.level >= 1.0) return true;
      wait = c.rate > 0 ? (1.0 - s.level) / c.rate : 1.0;
      return false;
    }
    case Kind::kWindow: {
      if (s.window_start != c.window_start) {  // a new window, or another kind of window
        s.window_start = c.window_start;
        s.spent = s.claimed = 0;
      }
      bool total = c.window_end == std::numeric_limits<TimeMs>::max();
      c.reset_s = total ? 0 : static_cast<double>(c.window_end - now) / 1000.0;
      double used = static_cast<double>(s.spent + s.claimed);
      c.remaining = std::max(0.0, c.limit - used);
      if (used < c.limit) return true;
      if (!total) wait = c.reset_s;
      return false;
    }
    case Kind::kParallel:
      c.remaining = c.limit - static_cast<double>(s.in_flight);
      if (c.remaining >= 1) return true;
      wait = 1.0;  // a slot frees when a request in flight ends
      return false;
  }
  return false;
}

void LocalLedger::take(Check& c, State& s) {
  switch (kind_of(c.slot)) {
    case Kind::kBucket:
      s.level -= 1.0;
      c.remaining = s.level;
      c.reset_s = c.rate > 0 ? (c.limit - s.level) / c.rate : 0;
      break;
    case Kind::kWindow:
      c.claimed = capped_claim(c.want, c.limit, static_cast<double>(s.spent + s.claimed));
      s.claimed += c.claimed;
      c.remaining = std::max(0.0, c.remaining - static_cast<double>(c.claimed));
      break;
    case Kind::kParallel:
      ++s.in_flight;
      c.remaining -= 1;
      break;
  }
}

Admission LocalLedger::admit(Claim& claim, TimeMs now) {
  Admission a;
  std::array<State*, Claim::kMaxChecks> states{};
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < claim.size; ++i) {
    Check& c = claim.checks[i];
    states[i] = &state(c);
    std::optional<double> wait;
    if (!evaluate(c, *states[i], now, wait)) a.refuse(i, c.slot, wait);
  }
  if (!a.ok()) return a;
  for (std::size_t i = 0; i < claim.size; ++i) take(claim.checks[i], *states[i]);
  claim.admitted = true;
  claim.shared = false;
  return a;
}

void LocalLedger::settle(const Claim& claim, const Actual& actual) {
  std::lock_guard lock(mu_);
  for (const Check& c : claim) {
    State& s = state(c);
    switch (kind_of(c.slot)) {
      case Kind::kBucket:
        break;
      case Kind::kWindow:
        if (s.window_start != c.window_start) break;  // its window has ended
        s.claimed -= c.claimed;
        s.spent += c.slot == Slot::kTokens   ? actual.tokens
                   : c.slot == Slot::kBudget ? actual.nano_usd
                                             : 1;  // rph, rpd: the request itself
        break;
      case Kind::kParallel:
        --s.in_flight;
        break;
    }
  }
}

void LocalLedger::seed(Scope scope, Id owner, Slot slot, TimeMs window_start, std::int64_t spent) {
  std::lock_guard lock(mu_);
  State& s = states_[StateKey{scope, owner, slot}];
  s.window_start = window_start;
  s.spent = spent;
}

}  // namespace llmproxy::limits
