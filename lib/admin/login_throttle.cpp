#include "lib/admin/login_throttle.h"

#include <algorithm>
#include <iterator>

namespace llmproxy::admin {
namespace {

// Beyond this many tracked names, expired entries are swept so that a flood of
// made-up usernames cannot grow the maps without bound.
constexpr std::size_t kSweepAbove = 10'000;

void drop_expired(std::deque<TimeMs>& q, TimeMs cutoff) {
  while (!q.empty() && q.front() <= cutoff) q.pop_front();
}

}  // namespace

TimeMs LoginThrottle::wait_for(std::unordered_map<std::string, Failures>& m, std::string_view who,
                               int max, TimeMs now) {
  auto it = m.find(std::string(who));
  if (it == m.end()) return 0;
  Failures& q = it->second;
  drop_expired(q, now - policy_.window.count());
  if (static_cast<int>(q.size()) < max) return 0;
  // Allowed again once enough of the oldest failures have left the window.
  return q[q.size() - static_cast<std::size_t>(max)] + policy_.window.count() - now;
}

TimeMs LoginThrottle::wait_ms(std::string_view client, std::string_view username, TimeMs now) {
  return std::max(wait_for(by_client_, client, policy_.max_failures_per_client, now),
                  wait_for(by_username_, username, policy_.max_failures_per_username, now));
}

void LoginThrottle::record_failure(std::string_view client, std::string_view username, TimeMs now) {
  if (by_client_.size() + by_username_.size() > kSweepAbove) forget_old(now);
  by_client_[std::string(client)].push_back(now);
  by_username_[std::string(username)].push_back(now);
}

void LoginThrottle::forget_old(TimeMs now) {
  for (auto* m : {&by_client_, &by_username_}) {
    for (auto it = m->begin(); it != m->end();) {
      drop_expired(it->second, now - policy_.window.count());
      it = it->second.empty() ? m->erase(it) : std::next(it);
    }
  }
}

}  // namespace llmproxy::admin
