#include "lib/limits/shared_ledger.h"

#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "lib/domain/time.h"
#include "lib/limits/limiter.h"
#include "lib/redis/client.h"

namespace llmproxy::limits {
namespace {

namespace net = boost::asio;

// Admission. KEYS: per check, bucket: its key; window: its hash and its
// claims' zset; parallel: its zset. ARGV: claim name, lease ms, then four
// per check: kind (b|w|p), limit, x, y — bucket: x refill per second;
// window: x the amount wanted, y the window's end (epoch ms, 0: never).
// Returns {admitted 1|0, then per check: remaining (bucket: level in
// thousandths), claimed}. Evaluates every check first, then takes all or
// none. A window's claim is the zset member "<claim name>:<amount>" (scored
// by its lease's end), so neither settling nor dropping an expired claim has
// to look its amount up; the hash holds s (spent) and c (claimed, live).
// Few commands per check: the scripts are most of Redis's work per request.
const char* const kAdmitLua = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local name, lease = ARGV[1], tonumber(ARGV[2])
local n = (#ARGV - 2) / 4
local out, seen, fresh, idle, ok, ki = {1}, {}, {}, {}, true, 1
for i = 1, n do
  local a = 2 + (i - 1) * 4
  local kind, limit, x = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local rem = 0
  if kind == 'b' then
    local level = limit
    local v = redis.call('GET', KEYS[ki])
    if v then
      local sep = string.find(v, ':', 1, true)
      local last = tonumber(string.sub(v, sep + 1))
      level = tonumber(string.sub(v, 1, sep - 1))
      if now > last then level = level + x * (now - last) / 1000 end
      if level > limit then level = limit end
    end
    seen[i] = level
    if level < 1 then ok = false end
    rem = math.floor(level * 1000)
    ki = ki + 1
  elseif kind == 'w' then
    local h, z = KEYS[ki], KEYS[ki + 1]
    local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
    if #dead > 0 then
      local gone = 0
      for _, m in ipairs(dead) do gone = gone + tonumber(string.match(m, ':(%d+)$')) end
      redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
      redis.call('HINCRBY', h, 'c', -gone)
    end
    local v = redis.call('HMGET', h, 's', 'c')
    fresh[i] = not v[1] and not v[2]  -- a new hash: it needs its expiry
    idle[i] = (tonumber(v[2]) or 0) == 0  -- no live claim: the zset is new too
    local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
    seen[i] = used
    if used >= limit then ok = false end
    rem = limit - used
    ki = ki + 2
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[ki], '-inf', now)
    local busy = redis.call('ZCARD', KEYS[ki])
    seen[i] = busy
    if busy >= limit then ok = false end
    rem = limit - busy
    ki = ki + 1
  end
  out[2 * i] = rem
  out[2 * i + 1] = 0
end
if not ok then
  out[1] = 0
  return out
end
ki = 1
for i = 1, n do
  local a = 2 + (i - 1) * 4
  local kind, limit, x, y = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if kind == 'b' then
    local level = seen[i] - 1
    redis.call('SET', KEYS[ki], level .. ':' .. now, 'PX', math.ceil(limit / x * 1000) + 1000)
    out[2 * i] = math.floor(level * 1000)
    ki = ki + 1
  elseif kind == 'w' then
    local h, z = KEYS[ki], KEYS[ki + 1]
    local amount = math.min(x, math.floor(limit - seen[i] + 0.5))
    if amount > 0 then
      redis.call('HINCRBY', h, 'c', amount)
      redis.call('ZADD', z, now + lease, name .. ':' .. amount)
      if y > 0 then
        if fresh[i] then redis.call('PEXPIREAT', h, y + lease) end
        if idle[i] then redis.call('PEXPIREAT', z, y + lease) end
      end
    else
      amount = 0
    end
    out[2 * i] = out[2 * i] - amount
    out[2 * i + 1] = amount
    ki = ki + 2
  else
    redis.call('ZADD', KEYS[ki], now + lease, name)
    redis.call('PEXPIRE', KEYS[ki], lease * 2)
    out[2 * i] = out[2 * i] - 1
    ki = ki + 1
  end
end
return out
)lua";

// Settlement. KEYS as for admission, without buckets. ARGV: three per check:
// kind (w|p), the claim's member, what the request used. A claim whose lease
// expired was dropped by an admission already; what was used is added all
// the same, unless the window itself is gone (it ended).
const char* const kSettleLua = R"lua(
local ki = 1
for a = 1, #ARGV, 3 do
  local kind, m, used = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  if kind == 'w' then
    local h, z = KEYS[ki], KEYS[ki + 1]
    local amount = tonumber(string.match(m, ':(%d+)$'))
    local live = amount > 0 and redis.call('ZREM', z, m) == 1
    if live then redis.call('HINCRBY', h, 'c', -amount) end
    if used > 0 and (live or redis.call('EXISTS', h) == 1) then
      redis.call('HINCRBY', h, 's', used)
    end
    ki = ki + 2
  else
    redis.call('ZREM', KEYS[ki], m)
    ki = ki + 1
  end
end
return 1
)lua";

// Lease renewal. KEYS: zsets; ARGV: lease ms, then one member per key.
const char* const kRenewLua = R"lua(
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', until_ms, ARGV[i + 1])
end
return #KEYS
)lua";

// Startup: what the usage records say each window has spent. KEYS: window
// hashes; ARGV: two per key, spent and the window's end (0: never), and last
// the lease. Raises a window to the figure, never lowers it: every instance
// starting does the same, and Redis may already know more.
const char* const kSeedLua = R"lua(
local lease = tonumber(ARGV[#ARGV])
for i = 1, #KEYS do
  local spent, y = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local have = tonumber(redis.call('HGET', KEYS[i], 's') or '0')
  if spent > have then
    redis.call('HSET', KEYS[i], 's', spent)
    if y > 0 then redis.call('PEXPIREAT', KEYS[i], y + lease) end
  end
end
return #KEYS
)lua";

const redis::Script& seed_script() {
  static const redis::Script s(kSeedLua);
  return s;
}

const redis::Script& admit_script() {
  static const redis::Script s(kAdmitLua);
  return s;
}
const redis::Script& settle_script() {
  static const redis::Script s(kSettleLua);
  return s;
}
const redis::Script& renew_script() {
  static const redis::Script s(kRenewLua);
  return s;
}

// Limits and rates as the scripts read them: integers (most limits, budgets
// in nano-dollars) without printf's cost, fractions exactly.
std::string number(double v) {
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 9e15) {
    return std::string(buf, std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(v)).ptr);
  }
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// A random name for this process, so its claims' members are unique among
// the instances sharing the Redis.
const std::string& instance_name() {
  static const std::string name = [] {
    std::random_device rd;
    char buf[24];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    return std::string(buf);
  }();
  return name;
}

}  // namespace

struct SharedLedger::Impl {
  Impl(Limiter& l, net::io_context& ioc)
      : limiter(l),
        timer(std::make_unique<net::steady_timer>(ioc)),
        client_(std::make_unique<redis::Client>(ioc, url_of(l.options()), options_for(l))),
        client(*client_) {}

  static redis::Url url_of(const LimiterOptions& o) {
    std::string error;
    return redis::parse_url(o.redis_url, error).value_or(redis::Url{});
  }
  redis::Options options_for(Limiter& l) {
    redis::Options o;
    o.connect_timeout = o.command_timeout = std::chrono::milliseconds(l.options().redis_timeout_ms);
    o.on_state_change = [this](bool up, const std::string& why) {
      if (closed) return;  // shutting down: not an outage
      if (up != up_) {
        up_ = up;
        limiter.report_shared(up, why);
      }
      if (up) flush_retries();
    };
    // Loaded on every new connection, so that no EVALSHA meets NOSCRIPT and
    // pays a second round trip: a settlement delayed that way could reach
    // Redis after the client's next request, on another connection.
    o.preload = {admit_script(), settle_script(), renew_script(), seed_script()};
    return o;
  }

  // The Redis keys of a check: one, or two for a window (its hash and leases).
  void keys_of(const Check& c, std::vector<std::string>& keys) const {
    const std::string& prefix = limiter.options().redis_prefix;
    std::string owner = std::string(1, static_cast<char>(c.scope)) + std::to_string(c.owner);
    switch (kind_of(c.slot)) {
      case Kind::kBucket:
        keys.push_back(prefix + "b:" + owner + ":" + std::string(slot_name(c.slot)));
        break;
      case Kind::kWindow: {
        std::string h = prefix + "w:" + owner + ":" + std::string(slot_name(c.slot)) + ":" +
                        std::to_string(c.window_start);
        keys.push_back(h + ":l");
        std::swap(keys.back(), h);
        keys.push_back(std::move(h));
        break;
      }
      case Kind::kParallel:
        keys.push_back(prefix + "p:" + owner);
        break;
    }
  }

  static std::int64_t window_end_arg(const Check& c) {
    return c.window_end == std::numeric_limits<TimeMs>::max() ? 0 : c.window_end;
  }

  // The claim's name in Redis; a window's claim is "<name>:<amount>".
  std::string member(const Claim& claim) const {
    return instance_name() + ":" + std::to_string(claim.serial);
  }
  static std::string window_member(const std::string& name, const Check& c) {
    return name + ":" + std::to_string(c.claimed);
  }

  // Reads the script's reply into the claim; false if it is not one.
  static bool read_admission(const redis::Reply& r, Claim& claim, Admission& a, TimeMs now) {
    if (r.type != redis::Reply::Type::kArray || r.elements.size() != 1 + 2 * claim.size)
      return false;
    for (const auto& e : r.elements)
      if (e.type != redis::Reply::Type::kInteger) return false;
    bool admitted = r.elements[0].integer == 1;
    for (std::size_t i = 0; i < claim.size; ++i) {
      Check& c = claim.checks[i];
      auto rem = static_cast<double>(r.elements[1 + 2 * i].integer);
      c.claimed = r.elements[2 + 2 * i].integer;
      std::optional<double> wait;
      bool failed = false;
      switch (kind_of(c.slot)) {
        case Kind::kBucket:
          c.remaining = rem / 1000.0;
          c.reset_s = c.rate > 0 ? (c.limit - c.remaining) / c.rate : 0;
          failed = !admitted && c.remaining < 1.0;
          if (failed) wait = c.rate > 0 ? (1.0 - c.remaining) / c.rate : 1.0;
          break;
        case Kind::kWindow: {
          bool total = c.window_end == std::numeric_limits<TimeMs>::max();
          c.remaining = std::max(0.0, rem);
          c.reset_s = total ? 0 : static_cast<double>(c.window_end - now) / 1000.0;
          failed = !admitted && rem <= 0;
          if (failed && !total) wait = c.reset_s;
          break;
        }
        case Kind::kParallel:
          c.remaining = rem;
          failed = !admitted && rem < 1;
          if (failed) wait = 1.0;
          break;
      }
      if (failed) a.refuse(i, c.slot, wait);
    }
    if (!admitted && a.ok()) a.refusal = refusal_of(claim.checks[0].slot);  // defensive
    return true;
  }

  // A settlement Redis did not take, sent again once it answers.
  struct Pending {
    std::vector<std::string> keys, args;
  };

  void send_settlement(Pending p) {
    if (closed) return;
    auto held = std::make_shared<Pending>(std::move(p));
    client.send_eval(settle_script(), held->keys, held->args, [this, held](redis::Result r) {
      if (r.failed() && !closed && retries.size() < kMaxRetries) retries.push_back(*held);
    });
  }

  void flush_retries() {
    std::deque<Pending> again;
    again.swap(retries);
    for (auto& p : again) send_settlement(std::move(p));
  }

  // Brings Redis's windows up to what the usage records say they spent (a
  // Redis that is new, or lost its data, would otherwise start them afresh).
  void seed(const std::vector<SpentWindow>& spent) {
    if (spent.empty()) return;
    std::vector<std::string> keys, args;
    for (const SpentWindow& w : spent) {
      Check c;
      c.scope = w.scope;
      c.owner = w.owner;
      c.slot = w.slot;
      c.window_start = w.start;
      c.window_end = w.end;
      std::vector<std::string> pair;
      keys_of(c, pair);
      keys.push_back(std::move(pair.front()));
      args.push_back(std::to_string(w.spent));
      args.push_back(std::to_string(window_end_arg(c)));
    }
    args.push_back(std::to_string(limiter.options().lease_ms));
    client.send_eval(seed_script(), keys, args);
  }

  // Every tick: the leases of this worker's requests in flight (a tick is at
  // most a third of a lease), and while Redis is away a PING, so that its
  // return is noticed without waiting for a request.
  void renew_later() {
    auto tick = std::min<std::int64_t>(1000, limiter.options().lease_ms / 3);
    timer->expires_after(std::chrono::milliseconds(tick));
    timer->async_wait([this](const boost::system::error_code& ec) {
      if (ec || closed) return;
      if (!up_) client.send({"PING"});
      if (!in_flight.empty()) {
        std::vector<std::string> keys, args{std::to_string(limiter.options().lease_ms)};
        for (auto& [serial, held] : in_flight) {
          for (const auto& [key, member] : held.leases) {
            keys.push_back(key);
            args.push_back(member);
          }
        }
        client.send_eval(renew_script(), keys, args);
      }
      if (!retries.empty() && client.healthy()) flush_retries();
      renew_later();
    });
  }

  // The leases of a claim in flight: each zset and the member in it.
  struct Held {
    std::vector<std::pair<std::string, std::string>> leases;
  };

  static constexpr std::size_t kMaxRetries = 100'000;
  Limiter& limiter;
  // Both go in close(), while the worker's loop still exists.
  std::unique_ptr<net::steady_timer> timer;
  std::unique_ptr<redis::Client> client_;
  redis::Client& client;
  bool up_ = true;
  bool closed = false;
  std::unordered_map<std::uint64_t, Held> in_flight;
  std::deque<Pending> retries;
};

SharedLedger::SharedLedger(Limiter& limiter, net::io_context& ioc)
    : impl_(std::make_unique<Impl>(limiter, ioc)) {
  impl_->client.send({"PING"});  // connect now: an unreachable Redis shows at once
  impl_->seed(limiter.take_spent());
  impl_->renew_later();
}

SharedLedger::~SharedLedger() = default;

net::awaitable<std::optional<Admission>> SharedLedger::admit(Claim& claim) {
  Impl& im = *impl_;
  if (im.closed) co_return std::nullopt;
  claim.serial = im.limiter.next_serial();
  std::string member = im.member(claim);
  std::vector<std::string> keys, args;
  keys.reserve(2 * claim.size);
  args.reserve(2 + 4 * claim.size);
  args.push_back(member);
  args.push_back(std::to_string(im.limiter.options().lease_ms));
  for (const Check& c : claim) {
    im.keys_of(c, keys);
    switch (kind_of(c.slot)) {
      case Kind::kBucket:
        args.insert(args.end(), {"b", number(c.limit), number(c.rate), "0"});
        break;
      case Kind::kWindow:
        args.insert(args.end(), {"w", number(c.limit), std::to_string(c.want),
                                 std::to_string(Impl::window_end_arg(c))});
        break;
      case Kind::kParallel:
        args.insert(args.end(), {"p", number(c.limit), "0", "0"});
        break;
    }
  }
  redis::Result r = co_await im.client.eval(admit_script(), keys, args);
  Admission a;
  if (!r.has_reply() || !Impl::read_admission(r.reply(), claim, a, now_ms())) {
    if (r.has_reply()) {  // a script error: as unreachable, and said why
      std::string why = "unexpected reply " + r.to_string();
      if (im.up_) {
        im.up_ = false;
        im.limiter.report_shared(false, why);
      }
    }
    co_return std::nullopt;
  }
  if (!im.up_) {
    im.up_ = true;
    im.limiter.report_shared(true);
  }
  if (!a.ok()) co_return a;
  claim.admitted = true;
  claim.shared = true;
  Impl::Held held;
  for (std::size_t i = 0, k = 0; i < claim.size; ++i) {
    const Check& c = claim.checks[i];
    Kind kind = kind_of(c.slot);
    if (kind == Kind::kWindow && c.claimed > 0)
      held.leases.emplace_back(keys[k + 1], Impl::window_member(member, c));
    if (kind == Kind::kParallel) held.leases.emplace_back(keys[k], member);
    k += kind == Kind::kWindow ? 2 : 1;
  }
  if (!held.leases.empty()) im.in_flight.emplace(claim.serial, std::move(held));
  co_return a;
}

void SharedLedger::settle(const Claim& claim, const Actual& actual) {
  Impl& im = *impl_;
  im.in_flight.erase(claim.serial);
  if (im.closed) return;
  Impl::Pending p;
  std::string name = im.member(claim);
  for (const Check& c : claim) {
    Kind kind = kind_of(c.slot);
    if (kind == Kind::kBucket) continue;
    im.keys_of(c, p.keys);
    std::int64_t used = c.slot == Slot::kTokens   ? actual.tokens
                        : c.slot == Slot::kBudget ? actual.nano_usd
                        : kind == Kind::kWindow   ? 1  // rph, rpd: the request itself
                                                  : 0;
    bool window = kind == Kind::kWindow;
    p.args.insert(p.args.end(), {window ? "w" : "p", window ? Impl::window_member(name, c) : name,
                                 std::to_string(used)});
  }
  if (p.keys.empty()) return;
  im.send_settlement(std::move(p));
}

void SharedLedger::close() {
  Impl& im = *impl_;
  if (im.closed) return;
  im.closed = true;
  im.in_flight.clear();
  im.timer.reset();
  im.client_.reset();  // fails what is pending: those settlements are left to their leases
}

}  // namespace llmproxy::limits
