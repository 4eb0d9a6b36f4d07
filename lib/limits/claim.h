// What admitting one request takes from its limits, and gives back when it
// ends. Every kind of limit goes through the same two steps:
//
//   admit   all of the request's checks pass, or none is taken:
//             bucket    (tps, rpm)   a level >= 1 remains; takes 1
//             window    (rph, rpd, tokens, budget; calendar windows in UTC)
//                       spent + claimed by requests in flight < limit;
//                       claims the estimate, capped at what is unclaimed
//             parallel  (max_parallel) in flight < limit; claims 1
//   settle  when the request ends (whatever happened): a window's claim is
//           replaced by the real use, a parallel slot is released.
//
// So requests in flight never jointly overshoot a window: its total exceeds
// the limit by at most what one request used beyond its claim. The same
// arithmetic runs in process memory (local_ledger.h) and, shared by every
// instance, as Lua scripts in Redis (shared_ledger.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "lib/domain/types.h"
#include "lib/limits/estimate.h"

namespace llmproxy::limits {

enum class Refusal { kNone, kRate, kTokens, kBudget, kConcurrency, kUnavailable };

// The error type clients see for a refusal ("rate_limit_exceeded", ...).
std::string_view refusal_type(Refusal r);

// Which limit a check stands for. Its kind, unit and refusal follow from it.
enum class Slot : std::uint8_t { kTps, kRpm, kRph, kRpd, kTokens, kBudget, kParallel };
enum class Kind : std::uint8_t { kBucket, kWindow, kParallel };
// Whose limit: one assignment's, or the key's across its assignments.
enum class Scope : char { kAssignment = 'a', kKey = 'k' };

Kind kind_of(Slot s);
Refusal refusal_of(Slot s);
std::string_view slot_name(Slot s);  // "tps", "rpm", ..., for state keys

// Budgets are counted in billionths of a dollar: integers in Lua and C++ alike.
inline constexpr double kNanoPerUsd = 1e9;

struct Check {
  Scope scope = Scope::kAssignment;
  Id owner = 0;  // assignment or key id
  Slot slot = Slot::kTps;
  double limit = 0;                         // bucket capacity, window limit or parallel maximum
  double rate = 0;                          // bucket refill per second
  TimeMs window_start = 0, window_end = 0;  // [start, end); total: {0, max}
  std::int64_t want = 0;                    // window: the estimate to claim

  // Set by admission.
  std::int64_t claimed = 0;  // window: taken from the unclaimed part
  double remaining = 0;      // after this request: bucket level, unclaimed, free slots
  double reset_s = 0;        // until the bucket is full again / the window ends
};

// What the request used, to settle its claims with.
struct Actual {
  std::int64_t tokens = 0;
  std::int64_t nano_usd = 0;
};

// The checks of one request and what admission made of them.
struct Claim {
  static constexpr std::size_t kMaxChecks = 9;  // 7 per assignment + 2 per key
  std::array<Check, kMaxChecks> checks;
  std::size_t size = 0;

  bool empty() const { return size == 0; }
  Check* begin() { return checks.data(); }
  Check* end() { return checks.data() + size; }
  const Check* begin() const { return checks.data(); }
  const Check* end() const { return checks.data() + size; }
  Check& add() { return checks[size++]; }

  // Set by admission.
  bool admitted = false;
  bool shared = false;       // claimed in Redis (else in process memory)
  std::uint64_t serial = 0;  // unique within the process, names the claim
};

// What the admission said, for a refusal.
struct Admission {
  Refusal refusal = Refusal::kNone;
  int failed = -1;  // index of the check that refused
  std::optional<double> retry_after_s;
  bool endless = false;  // a failed check cannot be waited out: no Retry-After

  bool ok() const { return refusal == Refusal::kNone; }
  // Counts check `index` as failed, `wait` seconds from passing (nullopt:
  // never, e.g. a total window). The first failure names the refusal; the
  // client is told to wait for the slowest one, unless one never passes.
  void refuse(std::size_t index, Slot slot, std::optional<double> wait);
};

// The checks for a request by `assignment` (effective limits) of `key`, on
// `model` (its prices turn the estimate into dollars; none: budgets are
// charged nothing).
struct ClaimInput {
  const Assignment* assignment = nullptr;
  const VirtualKey* key = nullptr;
  const ProviderModel* model = nullptr;
  Estimate estimate;
  TimeMs now = 0;
};
void build_claim(const ClaimInput& in, Claim& out);

// The price of `tokens` in billionths of a dollar.
std::int64_t nano_usd(const ProviderModel* model, std::int64_t prompt_tokens,
                      std::int64_t completion_tokens);

// How much of a check's window `amount` takes from what is unclaimed (the
// claim is capped there, so requests in flight never jointly overshoot).
inline std::int64_t capped_claim(std::int64_t want, double limit, double used) {
  double free = limit - used;
  return free <= 0 ? 0 : std::min<std::int64_t>(want, static_cast<std::int64_t>(free + 0.5));
}

}  // namespace llmproxy::limits
