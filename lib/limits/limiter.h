// Per-assignment admission control, in memory on the hot path:
//   tps          token bucket, capacity = one second's worth (at least 1)
//   rpm          token bucket, capacity = rpm, refilled continuously
//   token_limit  prompt + completion tokens per calendar window (UTC); a
//                request is refused while the window is spent
// State is keyed by assignment id, so it survives config reloads; the limits
// themselves are read from the assignment on every call, so a changed limit
// applies at once.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lib/domain/types.h"

namespace llmproxy::limits {

enum class Refusal { kNone, kRate, kTokens };

struct Decision {
  Refusal refusal = Refusal::kNone;
  std::optional<double> retry_after_s;  // unset when waiting cannot help (total window)
  // For the x-ratelimit-* headers; unset where no such limit is configured.
  std::optional<std::int64_t> limit_requests, remaining_requests;
  double reset_requests_s = 0;
  std::optional<std::int64_t> limit_tokens, remaining_tokens;
  double reset_tokens_s = 0;
  std::string message;  // for refusals

  bool allowed() const { return refusal == Refusal::kNone; }
};

// Start (inclusive) and end (exclusive) of the window containing `now`, in UTC
// epoch ms. kTotal spans all time.
std::pair<TimeMs, TimeMs> window_bounds(TokenWindow w, TimeMs now);

class Limiter {
 public:
  // Checks every limit of `a` and, if all pass, takes one request from the
  // buckets. `now` is wall-clock ms (token windows are calendar-aligned).
  Decision admit(const Assignment& a, TimeMs now);
  // Charges tokens used by a finished request to the window they ran in.
  void charge(const Assignment& a, std::int64_t tokens, TimeMs now);
  // Sets a window's spent count, e.g. rebuilt from usage records at startup.
  void seed(const Assignment& a, std::int64_t spent, TimeMs now);

 private:
  struct Bucket {
    double level = -1;  // -1: not yet initialised (starts full)
    TimeMs last = 0;
  };
  struct State {
    std::mutex mu;
    Bucket tps, rpm;
    TokenWindow window = TokenWindow::kDay;
    TimeMs window_start = -1;
    std::int64_t spent = 0;
  };

  State& state(Id assignment_id);
  static void roll_window(State& s, const Assignment& a, TimeMs now);

  std::mutex mu_;
  std::unordered_map<Id, std::unique_ptr<State>> states_;
};

// "1s", "6m0s", "1h2m3s": the duration format of OpenAI's x-ratelimit-reset-*.
std::string format_reset(double seconds);

}  // namespace llmproxy::limits
