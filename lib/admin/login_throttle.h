// Slows down password guessing at `POST /admin/api/login`: after too many
// failed attempts within a window, from one client address or for one
// username, further attempts are refused (429 with Retry-After) until the
// window has passed — correct passwords included, or the limit would be a
// password oracle. Unknown usernames count exactly as known ones do, so the
// refusals reveal nothing about which users exist.
//
// Not thread-safe: the admin API runs on one thread.
#pragma once

#include <chrono>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

#include "lib/domain/types.h"

namespace llmproxy::admin {

class LoginThrottle {
 public:
  struct Policy {
    int max_failures_per_client = 10;
    int max_failures_per_username = 5;
    std::chrono::milliseconds window{60'000};
  };

  LoginThrottle() = default;
  explicit LoginThrottle(Policy p) : policy_(p) {}

  // Milliseconds until an attempt is allowed again; 0 when it is allowed now.
  TimeMs wait_ms(std::string_view client, std::string_view username, TimeMs now);
  void record_failure(std::string_view client, std::string_view username, TimeMs now);

 private:
  using Failures = std::deque<TimeMs>;  // times of recent failures, oldest first

  TimeMs wait_for(std::unordered_map<std::string, Failures>& m, std::string_view who, int max,
                  TimeMs now);
  void forget_old(TimeMs now);

  Policy policy_;
  std::unordered_map<std::string, Failures> by_client_;
  std::unordered_map<std::string, Failures> by_username_;
};

}  // namespace llmproxy::admin
