// The storage conformance suite: checks, for every backend listed in
// backends.cpp, exactly what storage/store.h promises. Each test gets a fresh,
// empty database.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lib/crypto/hash.h"
#include "lib/domain/error.h"
#include "lib/domain/types.h"
#include "storage/store.h"
#include "tests/storage/backends.h"

// GCC 12 warns about members left out of designated initializers
// (`Limits{.rpm = 60}`) even though they have default member initializers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

// Readable failure messages for the domain types (found by ADL).
namespace llmproxy {

template <class T>
std::string show(const std::optional<T>& v) {
  if (!v) return "unset";
  std::ostringstream os;
  os << *v;
  return os.str();
}

void PrintTo(const Connection& c, std::ostream* os) {
  *os << "Connection{id=" << c.id << " name=" << c.name << " provider=" << to_string(c.provider)
      << " endpoint=" << c.endpoint << " api_key=" << c.api_key << " api_version=" << c.api_version
      << " region=" << c.region << " access_key_id=" << c.access_key_id
      << " secret_access_key=" << c.secret_access_key << " session_token=" << c.session_token
      << " headers=[";
  for (const auto& [k, v] : c.headers) *os << k << ": " << v << "; ";
  *os << "] timeout_ms=" << c.timeout_ms << " created_at=" << c.created_at
      << " updated_at=" << c.updated_at << "}";
}

void PrintTo(const ProviderModel& m, std::ostream* os) {
  *os << "ProviderModel{id=" << m.id << " name=" << m.name << " remote=" << m.remote
      << " conn_id=" << m.conn_id << " input_price=" << show(m.input_price)
      << " output_price=" << show(m.output_price) << " created_at=" << m.created_at
      << " updated_at=" << m.updated_at << "}";
}

void PrintTo(const KeyLimits& l, std::ostream* os) {
  *os << "KeyLimits{token_limit=" << show(l.token_limit)
      << " token_window=" << to_string(l.token_window) << " budget=" << show(l.budget)
      << " budget_window=" << to_string(l.budget_window) << "}";
}

void PrintTo(const VirtualKey& k, std::ostream* os) {
  *os << "VirtualKey{id=" << k.id << " name=" << k.name << " key_hash=" << k.key_hash
      << " key_hint=" << k.key_hint << " enabled=" << k.enabled
      << " expires_at=" << show(k.expires_at) << " limits=";
  PrintTo(k.limits, os);
  *os << " created_at=" << k.created_at << " updated_at=" << k.updated_at << "}";
}

void PrintTo(const Limits& l, std::ostream* os) {
  *os << "Limits{tps=" << show(l.tps) << " rpm=" << show(l.rpm) << " rph=" << show(l.rph)
      << " rpd=" << show(l.rpd) << " token_limit=" << show(l.token_limit)
      << " token_window=" << to_string(l.token_window) << " budget=" << show(l.budget)
      << " budget_window=" << to_string(l.budget_window) << " max_parallel=" << show(l.max_parallel)
      << " reserve_tokens=" << show(l.reserve_tokens) << "}";
}

void PrintTo(const Assignment& a, std::ostream* os) {
  *os << "Assignment{id=" << a.id << " vkey_id=" << a.vkey_id << " conn_id=" << show(a.conn_id)
      << " model_id=" << show(a.model_id) << " plan_id=" << show(a.plan_id) << " limits=";
  PrintTo(a.limits, os);
  *os << " created_at=" << a.created_at << " updated_at=" << a.updated_at << "}";
}

void PrintTo(const Plan& p, std::ostream* os) {
  *os << "Plan{id=" << p.id << " name=" << p.name << " limits=";
  PrintTo(p.limits, os);
  *os << " created_at=" << p.created_at << " updated_at=" << p.updated_at << "}";
}

void PrintTo(const UsageRecord& r, std::ostream* os) {
  *os << "UsageRecord{id=" << r.id << " ts=" << r.ts << " request_id=" << r.request_id
      << " vkey_id=" << show(r.vkey_id) << " vkey_name=" << r.vkey_name
      << " assignment_id=" << show(r.assignment_id) << " model=" << r.model
      << " conn_id=" << show(r.conn_id) << " conn_name=" << r.conn_name << " status=" << r.status
      << " latency_ms=" << r.latency_ms << " ttft_ms=" << show(r.ttft_ms)
      << " prompt_tokens=" << r.prompt_tokens << " completion_tokens=" << r.completion_tokens
      << " cost=" << r.cost << "}";
}

void PrintTo(const AdminUser& u, std::ostream* os) {
  *os << "AdminUser{id=" << u.id << " username=" << u.username << " role=" << to_string(u.role)
      << " password_hash=" << u.password_hash << " created_at=" << u.created_at
      << " updated_at=" << u.updated_at << "}";
}

}  // namespace llmproxy

namespace llmproxy::storage {
namespace {

namespace conf = conformance;

// ---------------------------------------------------------------------------
// Time helpers (independent of lib/domain/time so that the suite does not
// trust the code it indirectly checks).

TimeMs utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0, int ms = 0) {
  using namespace std::chrono;
  sys_days day = year{y} / month{mo} / std::chrono::day{d};
  return duration_cast<milliseconds>(day.time_since_epoch()).count() +
         ((h * 60LL + mi) * 60 + s) * 1000 + ms;
}

std::string utc_day(TimeMs t) {
  using namespace std::chrono;
  year_month_day ymd{floor<days>(sys_time<milliseconds>{milliseconds{t}})};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

TimeMs wall_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Sets the process time zone for one scope, so that a backend that formats
// days in local time instead of UTC is caught even when the tests run in UTC.
class ScopedTimeZone {
 public:
  explicit ScopedTimeZone(const char* tz) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~ScopedTimeZone() {
    if (old_) {
      ::setenv("TZ", old_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  ScopedTimeZone(const ScopedTimeZone&) = delete;
  ScopedTimeZone& operator=(const ScopedTimeZone&) = delete;

 private:
  std::optional<std::string> old_;
};

// ---------------------------------------------------------------------------
// Builders. Every object carries explicit, non-zero timestamps so that what
// went in can be compared field by field with what comes out.

constexpr TimeMs kCreated = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr TimeMs kUpdated = kCreated + 61'000;

Connection connection(const std::string& name, Provider provider = Provider::kOpenAI) {
  Connection c;
  c.name = name;
  c.provider = provider;
  c.endpoint = "https://" + name + ".example.com/v1";
  c.api_key = "sk-" + name + "-0123456789";
  c.headers = {{"X-Team", "infra"}, {"X-Route", name}};
  c.timeout_ms = 45'000;
  c.created_at = kCreated;
  c.updated_at = kUpdated;
  return c;
}

// Every field set to a non-default value, whatever the provider would use.
Connection full_connection(const std::string& name) {
  Connection c = connection(name, Provider::kBedrock);
  c.api_key = "sk-full-" + name;
  c.api_version = "2024-10-21";
  c.region = "eu-central-1";
  c.access_key_id = "AKIAEXAMPLE0001";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  c.session_token = "FwoGZXIvYXdzEXAMPLE//token==";
  // Order kept, repeated names kept, empty values kept.
  c.headers = {{"X-Zeta", "1"},
               {"Authorization-Extra", "Bearer abc def"},
               {"X-Zeta", "2"},
               {"X-Empty", ""},
               {"X-Quote", "\"quoted\" \\ back"}};
  c.timeout_ms = 123'456;
  c.created_at = kCreated + 5;
  c.updated_at = kUpdated + 7;
  return c;
}

ProviderModel model(const std::string& name, Id conn_id) {
  ProviderModel m;
  m.name = name;
  m.remote = "remote-" + name;
  m.conn_id = conn_id;
  m.input_price = 2.5;
  m.output_price = 10.0;
  m.created_at = kCreated;
  m.updated_at = kUpdated;
  return m;
}

VirtualKey vkey(const std::string& name) {
  VirtualKey k;
  k.name = name;
  k.key_hash = crypto::sha256_hex("sk-virtual-" + name);
  k.key_hint = "sk-vi…" + name;
  k.enabled = true;
  k.created_at = kCreated;
  k.updated_at = kUpdated;
  return k;
}

Assignment conn_assignment(Id vkey_id, Id conn_id, Limits limits = {}) {
  Assignment a;
  a.vkey_id = vkey_id;
  a.conn_id = conn_id;
  a.limits = limits;
  a.created_at = kCreated;
  a.updated_at = kUpdated;
  return a;
}

Assignment model_assignment(Id vkey_id, Id model_id, Limits limits = {}) {
  Assignment a;
  a.vkey_id = vkey_id;
  a.model_id = model_id;
  a.limits = limits;
  a.created_at = kCreated;
  a.updated_at = kUpdated;
  return a;
}

Plan plan(const std::string& name, Limits limits = {}) {
  Plan p;
  p.name = name;
  p.limits = limits;
  p.created_at = kCreated;
  p.updated_at = kUpdated;
  return p;
}

// Every limit set, none to its type's default.
Limits full_limits() {
  return Limits{.tps = 2.5,
                .rpm = 600,
                .rph = 20'000,
                .rpd = 5'000'000'000,  // beyond 32 bits
                .token_limit = 7'000'000'000,
                .token_window = TokenWindow::kHour,
                .budget = 12.75,
                .budget_window = TokenWindow::kDay,
                .max_parallel = 8,
                .reserve_tokens = 4096};
}

// The hash is opaque to the store: an encoded PBKDF2 hash with every
// character its base64 uses ($ + / =), different per user.
AdminUser admin_user(const std::string& username, AdminRole role = AdminRole::kAdmin) {
  AdminUser u;
  u.username = username;
  u.role = role;
  u.password_hash = "pbkdf2-sha256$600000$c2FsdC8rPQ+" + username + "/w==$aGFzaCs/Lz0=" + username;
  u.created_at = kCreated;
  u.updated_at = kUpdated;
  return u;
}

UsageRecord usage(TimeMs ts, const std::string& request_id) {
  UsageRecord r;
  r.ts = ts;
  r.request_id = request_id;
  r.vkey_name = "master";
  r.model = "gpt-test";
  r.status = 200;
  r.latency_ms = 100;
  return r;
}

// Sets a usage record's key, assignment and connection from real objects.
UsageRecord& attribute(UsageRecord& r, const VirtualKey& k, const Assignment& a,
                       const Connection& c) {
  r.vkey_id = k.id;
  r.vkey_name = k.name;
  r.assignment_id = a.id;
  r.conn_id = c.id;
  r.conn_name = c.name;
  return r;
}

// ---------------------------------------------------------------------------
// Assertion helpers.

const char* kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::kStorage:
      return "kStorage";
    case ErrorKind::kInvalid:
      return "kInvalid";
    case ErrorKind::kNotFound:
      return "kNotFound";
    case ErrorKind::kConflict:
      return "kConflict";
  }
  return "unknown";
}

// Succeeds when fn throws llmproxy::Error of kind `want`.
template <class Fn>
::testing::AssertionResult Throws(ErrorKind want, Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    if (e.kind() == want) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "threw llmproxy::Error " << kind_name(e.kind()) << " ("
                                         << e.what() << "), expected " << kind_name(want);
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure()
           << "threw a std::exception that is not llmproxy::Error: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "threw something that is not llmproxy::Error";
  }
  return ::testing::AssertionFailure()
         << "did not throw; expected llmproxy::Error " << kind_name(want);
}

// Succeeds when `got` is `want` after an update made no earlier than `since`.
// The contract leaves open whether update_* stores the updated_at it is given
// or stamps the time of the update, so either is accepted; every other field,
// created_at included, must be exactly what was written.
template <class T>
::testing::AssertionResult Updated(const std::optional<T>& got, const T& want, TimeMs since) {
  const TimeMs now = wall_now();
  if (!got) return ::testing::AssertionFailure() << "object not found";
  const bool given = got->updated_at == want.updated_at;
  const bool stamped = got->updated_at >= since && got->updated_at <= now;
  if (!given && !stamped) {
    return ::testing::AssertionFailure()
           << "updated_at " << got->updated_at << " is neither the given " << want.updated_at
           << " nor the time of the update [" << since << ", " << now << "]";
  }
  T normalized = *got;
  normalized.updated_at = want.updated_at;
  if (normalized == want) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got  " << ::testing::PrintToString(*got) << "\nwant "
                                       << ::testing::PrintToString(want);
}

template <class T>
std::vector<Id> ids_of(const std::vector<T>& v) {
  std::vector<Id> out;
  for (const auto& x : v) out.push_back(x.id);
  return out;
}

template <class T>
std::vector<T> sorted_by_id(std::vector<T> v) {
  std::sort(v.begin(), v.end(), [](const T& a, const T& b) { return a.id < b.id; });
  return v;
}

std::vector<std::string> request_ids(const std::vector<UsageRecord>& v) {
  std::vector<std::string> out;
  for (const auto& r : v) out.push_back(r.request_id);
  return out;
}

// Usage records without their store-assigned ids, ordered by request id.
std::vector<UsageRecord> comparable(std::vector<UsageRecord> v) {
  for (auto& r : v) r.id = 0;
  std::sort(v.begin(), v.end(),
            [](const UsageRecord& a, const UsageRecord& b) { return a.request_id < b.request_id; });
  return v;
}

bool near(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::max(1.0, std::fabs(b));
}

void ExpectGroups(const std::vector<UsageGroup>& got, const std::vector<UsageGroup>& want) {
  std::vector<std::string> got_names, want_names;
  for (const auto& g : got) got_names.push_back(g.group);
  for (const auto& g : want) want_names.push_back(g.group);
  ASSERT_EQ(got_names, want_names) << "groups (in order) differ";
  for (std::size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("group " + want[i].group);
    EXPECT_EQ(got[i].requests, want[i].requests);
    EXPECT_EQ(got[i].errors, want[i].errors);
    EXPECT_EQ(got[i].prompt_tokens, want[i].prompt_tokens);
    EXPECT_EQ(got[i].completion_tokens, want[i].completion_tokens);
    EXPECT_PRED2(near, got[i].cost, want[i].cost) << "cost";
    EXPECT_PRED2(near, got[i].avg_latency_ms, want[i].avg_latency_ms) << "avg_latency_ms";
  }
}

// ---------------------------------------------------------------------------
// Reference semantics of list_usage and aggregate_usage, written from the
// contract, for checking the backends on larger data.

bool matches(const UsageRecord& r, const UsageQuery& q) {
  if (q.vkey_id && r.vkey_id != q.vkey_id) return false;
  if (q.since && r.ts < *q.since) return false;
  if (q.until && r.ts >= *q.until) return false;
  return true;
}

std::vector<UsageRecord> reference_list(const std::vector<UsageRecord>& records,
                                        const UsageQuery& q) {
  std::vector<UsageRecord> out;
  for (const auto& r : records)
    if (matches(r, q)) out.push_back(r);
  std::sort(out.begin(), out.end(),
            [](const UsageRecord& a, const UsageRecord& b) { return a.ts > b.ts; });
  if (q.limit != 0 && out.size() > q.limit) out.resize(q.limit);
  return out;
}

std::string group_key(const UsageRecord& r, UsageGroupBy by) {
  switch (by) {
    case UsageGroupBy::kDay:
      return utc_day(r.ts);
    case UsageGroupBy::kModel:
      return r.model;
    case UsageGroupBy::kKey:
      return r.vkey_name;
    case UsageGroupBy::kConnection:
      return r.conn_name;
    case UsageGroupBy::kAssignment:
      return std::to_string(r.assignment_id.value());
  }
  return "";
}

// Nearest rank, from the definition in store.h: the smallest of the values v
// such that at least p% of them are <= v.
double reference_percentile(std::vector<double> values, int p) {
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  for (double v : values) {
    auto at_most = std::count_if(values.begin(), values.end(), [&](double x) { return x <= v; });
    if (static_cast<double>(at_most) * 100 >= p * n) return v;
  }
  return 0;
}

std::vector<UsageGroup> reference_aggregate(const std::vector<UsageRecord>& records,
                                            const UsageQuery& q, UsageGroupBy by) {
  std::map<std::string, UsageGroup> groups;  // std::string order: byte-wise ascending
  std::map<std::string, double> latency;
  std::map<std::string, std::vector<double>> latencies;
  for (const auto& r : records) {
    if (!matches(r, q)) continue;
    std::string key = group_key(r, by);
    UsageGroup& g = groups[key];
    g.group = key;
    ++g.requests;
    if (r.status >= 400) ++g.errors;
    g.prompt_tokens += r.prompt_tokens;
    g.completion_tokens += r.completion_tokens;
    g.cost += r.cost;
    latency[key] += r.latency_ms;
    latencies[key].push_back(r.latency_ms);
  }
  std::vector<UsageGroup> out;
  for (auto& [key, g] : groups) {
    g.avg_latency_ms = latency[key] / static_cast<double>(g.requests);
    g.p50_latency_ms = reference_percentile(latencies[key], 50);
    g.p95_latency_ms = reference_percentile(latencies[key], 95);
    g.p99_latency_ms = reference_percentile(latencies[key], 99);
    out.push_back(g);
  }
  return out;
}

// Percentiles are one of the group's own latencies, so they compare exactly.
void ExpectPercentiles(const std::vector<UsageGroup>& got, const std::vector<UsageGroup>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("group " + want[i].group);
    ASSERT_EQ(got[i].group, want[i].group);
    EXPECT_EQ(got[i].p50_latency_ms, want[i].p50_latency_ms) << "p50";
    EXPECT_EQ(got[i].p95_latency_ms, want[i].p95_latency_ms) << "p95";
    EXPECT_EQ(got[i].p99_latency_ms, want[i].p99_latency_ms) << "p99";
  }
}

UsageGroup group(std::string name, std::int64_t requests, std::int64_t errors, std::int64_t prompt,
                 std::int64_t completion, double cost, double avg_latency) {
  UsageGroup g;
  g.group = std::move(name);
  g.requests = requests;
  g.errors = errors;
  g.prompt_tokens = prompt;
  g.completion_tokens = completion;
  g.cost = cost;
  g.avg_latency_ms = avg_latency;
  return g;
}

// A group's name with only its latency percentiles, for ExpectPercentiles.
UsageGroup percentiles(std::string name, double p50, double p95, double p99) {
  UsageGroup g;
  g.group = std::move(name);
  g.p50_latency_ms = p50;
  g.p95_latency_ms = p95;
  g.p99_latency_ms = p99;
  return g;
}

struct TestAbort : std::runtime_error {
  TestAbort() : std::runtime_error("test abort") {}
};

constexpr Provider kAllProviders[] = {
    Provider::kOpenAI,           Provider::kAzure,  Provider::kAnthropic, Provider::kGoogle,
    Provider::kBedrock,          Provider::kOllama, Provider::kVllm,      Provider::kLlamaCpp,
    Provider::kOpenAICompatible, Provider::kMock,
};

constexpr TokenWindow kAllWindows[] = {TokenWindow::kMinute, TokenWindow::kHour, TokenWindow::kDay,
                                       TokenWindow::kMonth, TokenWindow::kTotal};

// Limits with each field set alone, zero (a limit, not "unset"), and every
// window with and without its limit: what a stored limit set must keep.
std::vector<Limits> limit_cases() {
  std::vector<Limits> cases = {
      Limits{},
      full_limits(),
      Limits{.tps = 0.25},
      Limits{.rpm = 60},
      Limits{.rph = 1000},
      Limits{.rpd = 5'000'000'000},
      Limits{.token_limit = 5'000'000'000},
      Limits{.budget = 0.005},
      Limits{.max_parallel = 1},
      Limits{.reserve_tokens = 256},
      Limits{.tps = 0.0,
             .rpm = 0,
             .rph = 0,
             .rpd = 0,
             .token_limit = 0,
             .budget = 0.0,
             .max_parallel = 0,
             .reserve_tokens = 0},
  };
  for (TokenWindow w : kAllWindows) {
    cases.push_back(Limits{.token_window = w, .budget_window = w});
    cases.push_back(
        Limits{.token_limit = 100'000, .token_window = w, .budget = 3.5, .budget_window = w});
  }
  return cases;
}

std::vector<KeyLimits> key_limit_cases() {
  std::vector<KeyLimits> cases = {
      KeyLimits{},
      KeyLimits{.token_limit = 5'000'000'000},
      KeyLimits{.budget = 99.99},
      KeyLimits{.token_limit = 0, .budget = 0.0},
  };
  for (TokenWindow w : kAllWindows) {
    cases.push_back(KeyLimits{.token_window = w, .budget_window = w});
    cases.push_back(
        KeyLimits{.token_limit = 1'000, .token_window = w, .budget = 1.25, .budget_window = w});
  }
  return cases;
}

// ---------------------------------------------------------------------------
// The fixture: a fresh database per test, opened once as store_.

class StoreConformance : public ::testing::TestWithParam<conf::BackendFactory> {
 protected:
  void SetUp() override {
    db_ = GetParam().create();
    store_ = conf::open_test_store(db_);
  }

  void TearDown() override {
    store_.reset();
    conf::reset_test_secret();
    if (db_.cleanup) db_.cleanup();
  }

  Store& s() { return *store_; }
  const std::string& backend_name() const { return GetParam().name; }

  // Another store on the same database.
  std::unique_ptr<Store> open_again(std::string_view secret = conf::kTestSecret) {
    return conf::open_test_store(db_, secret);
  }

  // Inserts and returns the object with its new id.
  Connection add(Connection c) {
    c.id = s().insert_connection(c);
    return c;
  }
  ProviderModel add(ProviderModel m) {
    m.id = s().insert_model(m);
    return m;
  }
  VirtualKey add(VirtualKey k) {
    k.id = s().insert_vkey(k);
    return k;
  }
  Assignment add(Assignment a) {
    a.id = s().insert_assignment(a);
    return a;
  }
  Plan add(Plan p) {
    p.id = s().insert_plan(p);
    return p;
  }
  AdminUser add_admin(AdminUser u) {
    u.id = s().insert_admin_user(u);
    return u;
  }

  // Runs fn and checks that config_version went up.
  template <class Fn>
  void expect_bump(const std::string& what, Fn&& fn) {
    SCOPED_TRACE(what);
    std::int64_t before = s().config_version();
    fn();
    EXPECT_GT(s().config_version(), before) << what << " did not increase config_version";
  }

  struct State {
    std::vector<Connection> connections;
    std::vector<ProviderModel> models;
    std::vector<VirtualKey> vkeys;
    std::vector<Assignment> assignments;
    std::vector<UsageRecord> usage;
    std::vector<Plan> plans;
  };

  State state(Store& st) {
    return {st.list_connections(), st.list_models(),  st.list_vkeys(),
            st.list_assignments(), st.list_usage({}), st.list_plans()};
  }
  State state() { return state(s()); }

  static void ExpectSameState(const State& got, const State& want) {
    EXPECT_EQ(got.connections, want.connections);
    EXPECT_EQ(got.models, want.models);
    EXPECT_EQ(got.vkeys, want.vkeys);
    EXPECT_EQ(got.assignments, want.assignments);
    EXPECT_EQ(got.usage, want.usage);
    EXPECT_EQ(got.plans, want.plans);
  }

  // A little of everything.
  void populate() {
    Connection c = add(full_connection("pop-conn"));
    ProviderModel m = add(model("pop-model", c.id));
    VirtualKey k = vkey("pop-key");
    k.limits = KeyLimits{.budget = 50};
    k = add(k);
    Plan p = add(plan("pop-plan", full_limits()));
    Assignment a = add(conn_assignment(k.id, c.id, Limits{.tps = 2.5, .rpm = 60}));
    Assignment on_plan = model_assignment(k.id, m.id);
    on_plan.plan_id = p.id;
    add(on_plan);
    UsageRecord r = usage(utc(2026, 2, 1, 12), "pop-req");
    attribute(r, k, a, c);
    s().insert_usage(std::span<const UsageRecord>(&r, 1));
  }

  // Objects and a batch of n usage records that refer to them, inserted in
  // shuffled order; timestamps are distinct and span 2026-01-01..05.
  struct UsageWorld {
    std::vector<Connection> conns;
    std::vector<ProviderModel> models;
    std::vector<VirtualKey> keys;
    std::vector<Assignment> assignments;
    std::vector<UsageRecord> records;
  };

  UsageWorld make_usage_world(int n) {
    UsageWorld w;
    w.conns = {add(connection("conn-west")), add(connection("conn-east"))};
    w.models = {add(model("gamma-mini", w.conns[1].id)), add(model("alpha-chat", w.conns[1].id)),
                add(model("beta-code", w.conns[0].id))};
    w.keys = {add(vkey("key-cy")), add(vkey("key-ann")), add(vkey("key-bob"))};
    for (std::size_t i = 0; i < w.keys.size(); ++i)
      w.assignments.push_back(add(conn_assignment(w.keys[i].id, w.conns[i % 2].id)));

    std::mt19937 rng(20260102);  // mt19937's sequence is fixed by the standard
    constexpr int kStatuses[] = {200, 200, 200, 201, 399, 400, 429, 500, 503};
    for (int i = 0; i < n; ++i) {
      UsageRecord r = usage(utc(2026, 1, 1) + i * 863'917LL, "req-" + std::to_string(1000 + i));
      const ProviderModel& m = w.models[rng() % w.models.size()];
      const Connection& c = m.conn_id == w.conns[0].id ? w.conns[0] : w.conns[1];
      std::size_t who = rng() % 4;
      if (who < w.keys.size()) {
        attribute(r, w.keys[who], w.assignments[who], c);
      } else {  // the master key
        r.conn_id = c.id;
        r.conn_name = c.name;
      }
      r.model = m.name;
      r.status = kStatuses[rng() % std::size(kStatuses)];
      r.latency_ms = static_cast<double>(rng() % 20000) / 4.0 + 1;
      if (i % 2 == 0) r.ttft_ms = r.latency_ms / 2;
      r.prompt_tokens = rng() % 4000;
      r.completion_tokens = rng() % 2000;
      r.cost = (r.prompt_tokens * 2.5 + r.completion_tokens * 10.0) / 1e6;
      w.records.push_back(r);
    }
    std::vector<UsageRecord> shuffled = w.records;
    for (std::size_t i = shuffled.size(); i > 1; --i)
      std::swap(shuffled[i - 1], shuffled[rng() % i]);
    s().insert_usage(shuffled);
    return w;
  }

  conf::TestDatabase db_;
  std::unique_ptr<Store> store_;
};

// ===========================================================================
// Basics

TEST_P(StoreConformance, BackendNameAndDescription) {
  EXPECT_EQ(s().backend(), backend_name());
  EXPECT_FALSE(s().describe().empty());
  EXPECT_EQ(s().describe().find(conf::kTestSecret), std::string::npos)
      << "describe() must not reveal the secret";
}

TEST_P(StoreConformance, PingAnswers) {
  EXPECT_TRUE(s().ping());
}

TEST_P(StoreConformance, SchemaVersionIsPositive) {
  EXPECT_GT(s().schema_version(), 0);
}

TEST_P(StoreConformance, FreshStoreIsEmpty) {
  EXPECT_TRUE(s().list_connections().empty());
  EXPECT_TRUE(s().list_models().empty());
  EXPECT_TRUE(s().list_vkeys().empty());
  EXPECT_TRUE(s().list_assignments().empty());
  EXPECT_TRUE(s().list_usage({}).empty());
  EXPECT_TRUE(s().aggregate_usage({}, UsageGroupBy::kModel).empty());
  EXPECT_TRUE(s().list_admin_users().empty());
  EXPECT_TRUE(s().list_plans().empty());
  ConfigData cfg = s().load_config();
  EXPECT_TRUE(cfg.connections.empty());
  EXPECT_TRUE(cfg.models.empty());
  EXPECT_TRUE(cfg.vkeys.empty());
  EXPECT_TRUE(cfg.assignments.empty());
  EXPECT_TRUE(cfg.plans.empty());
  EXPECT_EQ(cfg.version, s().config_version());
}

TEST_P(StoreConformance, LookupsOfMissingObjectsReturnNothing) {
  EXPECT_EQ(s().get_connection(1), std::nullopt);
  EXPECT_EQ(s().find_connection("nope"), std::nullopt);
  EXPECT_EQ(s().get_model(1), std::nullopt);
  EXPECT_EQ(s().find_model("nope"), std::nullopt);
  EXPECT_EQ(s().get_vkey(1), std::nullopt);
  EXPECT_EQ(s().find_vkey("nope"), std::nullopt);
  EXPECT_EQ(s().find_vkey_by_hash(crypto::sha256_hex("nope")), std::nullopt);
  EXPECT_EQ(s().get_assignment(1), std::nullopt);
  EXPECT_FALSE(s().delete_connection(1));
  EXPECT_FALSE(s().delete_model(1));
  EXPECT_FALSE(s().delete_vkey(1));
  EXPECT_FALSE(s().delete_assignment(1));
  EXPECT_EQ(s().find_admin_user("nope"), std::nullopt);
  EXPECT_FALSE(s().delete_admin_user(1));
  EXPECT_EQ(s().get_plan(1), std::nullopt);
  EXPECT_EQ(s().find_plan("nope"), std::nullopt);
  EXPECT_FALSE(s().delete_plan(1));
}

TEST_P(StoreConformance, ReopeningRunsMigrationsIdempotently) {
  populate();
  const int schema = s().schema_version();
  const std::int64_t version = s().config_version();
  const State before = state();

  // A second store while the first is still open.
  {
    auto second = open_again();
    EXPECT_EQ(second->schema_version(), schema);
    ExpectSameState(state(*second), before);
  }
  // Closed and opened again, twice.
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE("reopen " + std::to_string(i + 1));
    store_.reset();
    store_ = open_again();
    EXPECT_EQ(s().schema_version(), schema);
    EXPECT_GE(s().config_version(), version) << "config_version went backwards on reopen";
    ExpectSameState(state(), before);
  }
}

// A database the release before plans wrote (tests/storage/backends.h lists
// its rows) is upgraded when opened: every row kept, new columns unset or at
// their type's default, and the new objects usable beside the old ones.
TEST_P(StoreConformance, UpgradeFromThePreviousSchemaKeepsItsRows) {
  const int latest = s().schema_version();
  store_.reset();
  db_.cleanup();
  db_ = GetParam().create_previous();
  store_ = open_again();
  EXPECT_EQ(s().schema_version(), latest);
  EXPECT_EQ(s().config_version(), conf::kPreviousConfigVersion);

  auto stamped = [](auto o) {
    o.created_at = conf::kPreviousCreated;
    o.updated_at = conf::kPreviousUpdated;
    return o;
  };
  auto c = s().find_connection("old-conn");
  auto m = s().find_model("old-model");
  auto k = s().find_vkey("old-key");
  ASSERT_TRUE(c && m && k);
  Connection want_c = stamped(Connection{});
  want_c.id = c->id;
  want_c.name = "old-conn";
  want_c.endpoint = "https://old.example.com/v1";
  want_c.timeout_ms = 30'000;
  EXPECT_EQ(s().list_connections(), std::vector<Connection>{want_c});
  ProviderModel want_m = stamped(ProviderModel{});
  want_m.id = m->id;
  want_m.name = "old-model";
  want_m.remote = "gpt-old";
  want_m.conn_id = c->id;
  want_m.input_price = 2.5;
  EXPECT_EQ(s().list_models(), std::vector<ProviderModel>{want_m});
  VirtualKey want_k = stamped(VirtualKey{});
  want_k.id = k->id;
  want_k.name = "old-key";
  want_k.key_hash = std::string(conf::kPreviousKeyHash);
  want_k.key_hint = "sk-ol...key";
  want_k.enabled = false;
  want_k.expires_at = conf::kPreviousExpiry;  // limits: none, default windows
  EXPECT_EQ(s().list_vkeys(), std::vector<VirtualKey>{want_k});

  auto assignments = s().list_assignments();
  ASSERT_EQ(assignments.size(), 2u);
  Assignment to_conn = stamped(conn_assignment(
      k->id, c->id,
      Limits{.tps = 2.5, .rpm = 120, .token_limit = 50'000, .token_window = TokenWindow::kHour}));
  to_conn.id = assignments[0].id;
  Assignment to_model = stamped(model_assignment(k->id, m->id));
  to_model.id = assignments[1].id;
  EXPECT_EQ(assignments, (std::vector<Assignment>{to_conn, to_model}));

  auto usage = s().list_usage({});
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].request_id, "old-req");
  EXPECT_EQ(usage[0].vkey_id, k->id);
  EXPECT_EQ(usage[0].ts, conf::kPreviousUsageTs);
  EXPECT_EQ(usage[0].completion_tokens, 20);
  auto admin = s().find_admin_user("old-admin");
  ASSERT_TRUE(admin.has_value());
  EXPECT_EQ(admin->role, AdminRole::kViewer);
  EXPECT_EQ(admin->password_hash, conf::kPreviousAdminHash);
  EXPECT_TRUE(s().list_plans().empty());

  // The new columns work on the old rows.
  Plan p = add(plan("upgraded", full_limits()));
  to_model.plan_id = p.id;
  to_model.limits = Limits{.budget = 4.5, .max_parallel = 3};
  s().update_assignment(to_model);
  want_k.limits = KeyLimits{.budget = 20};
  s().update_vkey(want_k);
  store_.reset();
  store_ = open_again();  // reopening migrates nothing more
  EXPECT_EQ(s().schema_version(), latest);
  auto got = s().get_assignment(to_model.id);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->plan_id, p.id);
  EXPECT_EQ(got->limits, to_model.limits);
  EXPECT_EQ(s().get_vkey(k->id).value().limits, want_k.limits);
  EXPECT_EQ(s().get_plan(p.id), p);
  EXPECT_TRUE(s().delete_plan(p.id));
  EXPECT_EQ(s().get_assignment(to_model.id).value().plan_id, std::nullopt);
}

// ===========================================================================
// Connections

TEST_P(StoreConformance, ConnectionInsertReturnsDistinctPositiveIds) {
  std::set<Id> ids;
  for (const char* name : {"c1", "c2", "c3", "c4", "c5"}) {
    Id id = s().insert_connection(connection(name));
    EXPECT_GT(id, 0);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 5u);
}

TEST_P(StoreConformance, ConnectionRoundTripsEveryField) {
  Connection c = add(full_connection("full"));
  EXPECT_EQ(s().get_connection(c.id), c);
  EXPECT_EQ(s().find_connection("full"), c);
  ASSERT_EQ(s().list_connections().size(), 1u);
  EXPECT_EQ(s().list_connections()[0], c);
}

TEST_P(StoreConformance, ConnectionRoundTripsEmptyFields) {
  Connection c;  // a mock connection: no endpoint, no secrets, no headers
  c.name = "bare";
  c.provider = Provider::kMock;
  c.timeout_ms = 1;
  c.created_at = kCreated;
  c.updated_at = kCreated;
  c.id = s().insert_connection(c);
  EXPECT_EQ(s().get_connection(c.id), c);
}

TEST_P(StoreConformance, ConnectionRoundTripsEveryProvider) {
  std::vector<Connection> all;
  for (Provider p : kAllProviders) {
    all.push_back(add(connection("p-" + std::string(to_string(p)), p)));
  }
  for (const Connection& c : all) {
    SCOPED_TRACE(std::string(to_string(c.provider)));
    EXPECT_EQ(s().get_connection(c.id), c);
  }
}

TEST_P(StoreConformance, ConnectionInsertIgnoresIdField) {
  Connection a = connection("a");
  Connection b = connection("b");
  a.id = b.id = 4242;
  Id ida = s().insert_connection(a);
  Id idb = s().insert_connection(b);
  EXPECT_NE(ida, idb);
  EXPECT_EQ(s().get_connection(ida)->name, "a");
  EXPECT_EQ(s().get_connection(idb)->name, "b");
}

TEST_P(StoreConformance, ConnectionDuplicateNameIsConflict) {
  add(connection("dup"));
  Connection other = connection("dup", Provider::kAnthropic);
  other.endpoint = "https://elsewhere";
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().insert_connection(other); }));
  ASSERT_EQ(s().list_connections().size(), 1u);
  EXPECT_EQ(s().list_connections()[0].provider, Provider::kOpenAI);
}

TEST_P(StoreConformance, ConnectionUpdateChangesEveryField) {
  Connection c = add(full_connection("before"));
  Connection untouched = add(connection("untouched"));

  Connection u = c;
  u.name = "after";
  u.provider = Provider::kAzure;
  u.endpoint = "https://azure.example.com";
  u.api_key = "sk-rotated";
  u.api_version = "2025-01-01";
  u.region = "";
  u.access_key_id = "";
  u.secret_access_key = "";
  u.session_token = "";
  u.headers = {{"X-Only", "one"}};
  u.timeout_ms = 5'000;
  u.updated_at = kUpdated + 1'000'000;
  const TimeMs since = wall_now();
  s().update_connection(u);

  EXPECT_TRUE(Updated(s().get_connection(c.id), u, since));
  EXPECT_TRUE(Updated(s().find_connection("after"), u, since));
  EXPECT_EQ(s().find_connection("before"), std::nullopt);
  EXPECT_EQ(s().get_connection(untouched.id), untouched);
}

TEST_P(StoreConformance, ConnectionUpdateToTakenNameIsConflict) {
  Connection a = add(connection("a"));
  Connection b = add(connection("b"));
  Connection renamed = b;
  renamed.name = "a";
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().update_connection(renamed); }));
  EXPECT_EQ(s().get_connection(a.id), a);
  EXPECT_EQ(s().get_connection(b.id), b);
}

TEST_P(StoreConformance, ConnectionUpdateOfMissingIdIsNotFound) {
  Connection c = add(connection("present"));
  Connection ghost = connection("ghost");
  ghost.id = c.id + 1000;
  EXPECT_TRUE(Throws(ErrorKind::kNotFound, [&] { s().update_connection(ghost); }));
  EXPECT_EQ(s().find_connection("ghost"), std::nullopt);
  EXPECT_EQ(s().list_connections(), std::vector<Connection>{c});
}

TEST_P(StoreConformance, ConnectionListIsOrderedById) {
  std::vector<Connection> added = {add(connection("zeta")), add(connection("alpha")),
                                   add(connection("mid"))};
  std::vector<Connection> listed = s().list_connections();
  EXPECT_EQ(listed, sorted_by_id(added));
}

TEST_P(StoreConformance, ConnectionDeleteReturnsTrueThenFalse) {
  Connection c = add(connection("gone"));
  Connection kept = add(connection("kept"));
  EXPECT_TRUE(s().delete_connection(c.id));
  EXPECT_EQ(s().get_connection(c.id), std::nullopt);
  EXPECT_EQ(s().find_connection("gone"), std::nullopt);
  EXPECT_FALSE(s().delete_connection(c.id));
  EXPECT_EQ(s().list_connections(), std::vector<Connection>{kept});
}

TEST_P(StoreConformance, ConnectionDeleteCascadesToModelsAndAssignments) {
  Connection a = add(connection("conn-a"));
  Connection b = add(connection("conn-b"));
  ProviderModel a1 = add(model("a-one", a.id));
  ProviderModel a2 = add(model("a-two", a.id));
  ProviderModel b1 = add(model("b-one", b.id));
  VirtualKey k = add(vkey("k"));
  Assignment on_a = add(conn_assignment(k.id, a.id));
  Assignment on_a1 = add(model_assignment(k.id, a1.id));
  Assignment on_b = add(conn_assignment(k.id, b.id));
  Assignment on_b1 = add(model_assignment(k.id, b1.id));

  ASSERT_TRUE(s().delete_connection(a.id));

  EXPECT_EQ(s().get_model(a1.id), std::nullopt);
  EXPECT_EQ(s().get_model(a2.id), std::nullopt);
  EXPECT_EQ(s().find_model("a-one"), std::nullopt);
  EXPECT_EQ(s().get_assignment(on_a.id), std::nullopt);
  EXPECT_EQ(s().get_assignment(on_a1.id), std::nullopt);
  EXPECT_EQ(s().list_models(), std::vector<ProviderModel>{b1});
  EXPECT_EQ(s().list_assignments(), (std::vector<Assignment>{on_b, on_b1}));
  EXPECT_EQ(s().list_vkeys(), std::vector<VirtualKey>{k});
  EXPECT_EQ(s().list_connections(), std::vector<Connection>{b});
}

// ===========================================================================
// Models

TEST_P(StoreConformance, ModelInsertReturnsDistinctPositiveIds) {
  Connection c = add(connection("c"));
  std::set<Id> ids;
  for (const char* name : {"m1", "m2", "m3", "m4", "m5"}) {
    Id id = s().insert_model(model(name, c.id));
    EXPECT_GT(id, 0);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 5u);
}

TEST_P(StoreConformance, ModelRoundTripsEveryField) {
  Connection c = add(connection("c"));
  ProviderModel m = model("alias", c.id);
  m.remote = "anthropic.claude-3-5-sonnet-20241022-v2:0";
  m.input_price = 0.15;
  m.output_price = 0.6;
  m.created_at = kCreated + 3;
  m.updated_at = kUpdated + 9;
  m = add(m);
  EXPECT_EQ(s().get_model(m.id), m);
  EXPECT_EQ(s().find_model("alias"), m);
  EXPECT_EQ(s().list_models(), std::vector<ProviderModel>{m});
}

TEST_P(StoreConformance, ModelPricesRoundTripSetAndUnset) {
  Connection c = add(connection("c"));
  struct Case {
    std::optional<double> in, out;
  };
  const Case cases[] = {
      {std::nullopt, std::nullopt},
      {2.5, std::nullopt},
      {std::nullopt, 10.0},
      {0.0, 0.0},  // zero is a price, not "unset"
      {0.15, 1234.5678},
  };
  std::vector<ProviderModel> added;
  int i = 0;
  for (const Case& cs : cases) {
    ProviderModel m = model("priced-" + std::to_string(i++), c.id);
    m.input_price = cs.in;
    m.output_price = cs.out;
    added.push_back(add(m));
  }
  for (const ProviderModel& m : added) {
    SCOPED_TRACE(m.name);
    EXPECT_EQ(s().get_model(m.id), m);
  }
}

TEST_P(StoreConformance, ModelDuplicateNameIsConflict) {
  Connection a = add(connection("a"));
  Connection b = add(connection("b"));
  ProviderModel m = add(model("alias", a.id));
  // Aliases are unique across connections: clients name a model by alias alone.
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().insert_model(model("alias", b.id)); }));
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().insert_model(model("alias", a.id)); }));
  EXPECT_EQ(s().list_models(), std::vector<ProviderModel>{m});
}

TEST_P(StoreConformance, ModelUpdateChangesFields) {
  Connection a = add(connection("a"));
  Connection b = add(connection("b"));
  ProviderModel m = add(model("old-alias", a.id));
  ProviderModel other = add(model("other", a.id));

  ProviderModel u = m;
  u.name = "new-alias";
  u.remote = "new-remote";
  u.conn_id = b.id;
  u.input_price = std::nullopt;
  u.output_price = 7.25;
  u.updated_at = kUpdated + 500;
  const TimeMs since = wall_now();
  s().update_model(u);

  EXPECT_TRUE(Updated(s().get_model(m.id), u, since));
  EXPECT_TRUE(Updated(s().find_model("new-alias"), u, since));
  EXPECT_EQ(s().find_model("old-alias"), std::nullopt);
  EXPECT_EQ(ids_of(s().list_models(b.id)), std::vector<Id>{m.id});
  EXPECT_EQ(ids_of(s().list_models(a.id)), std::vector<Id>{other.id});
  EXPECT_EQ(s().get_model(other.id), other);
}

TEST_P(StoreConformance, ModelUpdateToTakenNameIsConflict) {
  Connection c = add(connection("c"));
  ProviderModel a = add(model("a", c.id));
  ProviderModel b = add(model("b", c.id));
  ProviderModel renamed = b;
  renamed.name = "a";
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().update_model(renamed); }));
  EXPECT_EQ(s().get_model(a.id), a);
  EXPECT_EQ(s().get_model(b.id), b);
}

TEST_P(StoreConformance, ModelUpdateOfMissingIdIsNotFound) {
  Connection c = add(connection("c"));
  ProviderModel m = add(model("present", c.id));
  ProviderModel ghost = model("ghost", c.id);
  ghost.id = m.id + 1000;
  EXPECT_TRUE(Throws(ErrorKind::kNotFound, [&] { s().update_model(ghost); }));
  EXPECT_EQ(s().list_models(), std::vector<ProviderModel>{m});
}

TEST_P(StoreConformance, ModelListFiltersByConnectionAndIsOrderedById) {
  Connection a = add(connection("a"));
  Connection b = add(connection("b"));
  Connection empty = add(connection("empty"));
  ProviderModel z = add(model("zeta", a.id));
  ProviderModel y = add(model("yank", b.id));
  ProviderModel x = add(model("xray", a.id));
  ProviderModel w = add(model("whisky", b.id));

  EXPECT_EQ(s().list_models(), (std::vector<ProviderModel>{z, y, x, w}));
  EXPECT_EQ(s().list_models(std::nullopt), (std::vector<ProviderModel>{z, y, x, w}));
  EXPECT_EQ(s().list_models(a.id), (std::vector<ProviderModel>{z, x}));
  EXPECT_EQ(s().list_models(b.id), (std::vector<ProviderModel>{y, w}));
  EXPECT_TRUE(s().list_models(empty.id).empty());
  EXPECT_TRUE(s().list_models(empty.id + 1000).empty());
}

TEST_P(StoreConformance, ModelDeleteReturnsTrueThenFalseAndCascadesToAssignments) {
  Connection c = add(connection("c"));
  ProviderModel gone = add(model("gone", c.id));
  ProviderModel kept = add(model("kept", c.id));
  VirtualKey k = add(vkey("k"));
  Assignment on_gone = add(model_assignment(k.id, gone.id));
  Assignment on_kept = add(model_assignment(k.id, kept.id));
  Assignment on_conn = add(conn_assignment(k.id, c.id));

  EXPECT_TRUE(s().delete_model(gone.id));
  EXPECT_FALSE(s().delete_model(gone.id));
  EXPECT_EQ(s().get_model(gone.id), std::nullopt);
  EXPECT_EQ(s().find_model("gone"), std::nullopt);
  EXPECT_EQ(s().get_assignment(on_gone.id), std::nullopt);
  EXPECT_EQ(s().list_models(), std::vector<ProviderModel>{kept});
  EXPECT_EQ(s().list_assignments(), (std::vector<Assignment>{on_kept, on_conn}));
  EXPECT_EQ(s().list_connections(), std::vector<Connection>{c});
}

// ===========================================================================
// Virtual keys

TEST_P(StoreConformance, VkeyInsertReturnsDistinctPositiveIds) {
  std::set<Id> ids;
  for (const char* name : {"k1", "k2", "k3", "k4", "k5"}) {
    Id id = s().insert_vkey(vkey(name));
    EXPECT_GT(id, 0);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 5u);
}

TEST_P(StoreConformance, VkeyRoundTripsEveryField) {
  VirtualKey k = vkey("team-a");
  k.key_hint = "sk-Ab…wxyz";
  k.enabled = false;
  k.expires_at = utc(2026, 12, 31, 23, 59, 59, 999);
  k.created_at = kCreated + 11;
  k.updated_at = kUpdated + 13;
  k = add(k);
  VirtualKey plain = add(vkey("team-b"));  // enabled, never expires

  EXPECT_EQ(s().get_vkey(k.id), k);
  EXPECT_EQ(s().find_vkey("team-a"), k);
  EXPECT_EQ(s().find_vkey_by_hash(k.key_hash), k);
  EXPECT_EQ(s().get_vkey(plain.id), plain);
  EXPECT_EQ(s().find_vkey_by_hash(plain.key_hash), plain);
  EXPECT_EQ(s().list_vkeys(), (std::vector<VirtualKey>{k, plain}));
}

TEST_P(StoreConformance, VkeyFindByHashMatchesWholeHashOnly) {
  VirtualKey k = add(vkey("k"));
  EXPECT_EQ(s().find_vkey_by_hash(crypto::sha256_hex("some other key")), std::nullopt);
  EXPECT_EQ(s().find_vkey_by_hash(k.key_hash.substr(0, 32)), std::nullopt);
  EXPECT_EQ(s().find_vkey_by_hash(""), std::nullopt);
  EXPECT_EQ(s().find_vkey_by_hash(k.key_hash), k);
}

TEST_P(StoreConformance, VkeyDuplicateHashIsConflict) {
  VirtualKey k = add(vkey("first"));
  VirtualKey same_hash = vkey("second");
  same_hash.key_hash = k.key_hash;
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().insert_vkey(same_hash); }));
  EXPECT_EQ(s().list_vkeys(), std::vector<VirtualKey>{k});
}

TEST_P(StoreConformance, VkeyDuplicateNameIsConflict) {
  VirtualKey k = add(vkey("name"));
  VirtualKey same_name = vkey("name");
  same_name.key_hash = crypto::sha256_hex("a different key");
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().insert_vkey(same_name); }));
  EXPECT_EQ(s().list_vkeys(), std::vector<VirtualKey>{k});
}

TEST_P(StoreConformance, VkeyUpdateChangesFields) {
  VirtualKey k = vkey("old");
  k.expires_at = utc(2026, 6, 1, 0, 0, 0, 1);
  k = add(k);
  VirtualKey other = add(vkey("other"));

  VirtualKey u = k;
  u.name = "new";
  u.key_hash = crypto::sha256_hex("rotated key");
  u.key_hint = "sk-Ro…ated";
  u.enabled = false;
  u.expires_at = std::nullopt;
  u.updated_at = kUpdated + 77;
  const TimeMs since = wall_now();
  s().update_vkey(u);

  EXPECT_TRUE(Updated(s().get_vkey(k.id), u, since));
  EXPECT_TRUE(Updated(s().find_vkey("new"), u, since));
  EXPECT_EQ(s().find_vkey("old"), std::nullopt);
  EXPECT_TRUE(Updated(s().find_vkey_by_hash(u.key_hash), u, since));
  EXPECT_EQ(s().find_vkey_by_hash(k.key_hash), std::nullopt);
  EXPECT_EQ(s().get_vkey(other.id), other);

  // And back: enabled again, with an expiry.
  u.enabled = true;
  u.expires_at = utc(2027, 1, 1, 12, 30, 15, 250);
  s().update_vkey(u);
  EXPECT_TRUE(Updated(s().get_vkey(k.id), u, since));
}

TEST_P(StoreConformance, VkeyUpdateToTakenNameOrHashIsConflict) {
  VirtualKey a = add(vkey("a"));
  VirtualKey b = add(vkey("b"));
  VirtualKey by_name = b;
  by_name.name = "a";
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().update_vkey(by_name); }));
  VirtualKey by_hash = b;
  by_hash.key_hash = a.key_hash;
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().update_vkey(by_hash); }));
  EXPECT_EQ(s().list_vkeys(), (std::vector<VirtualKey>{a, b}));
}

TEST_P(StoreConformance, VkeyUpdateOfMissingIdIsNotFound) {
  VirtualKey k = add(vkey("present"));
  VirtualKey ghost = vkey("ghost");
  ghost.id = k.id + 1000;
  EXPECT_TRUE(Throws(ErrorKind::kNotFound, [&] { s().update_vkey(ghost); }));
  EXPECT_EQ(s().list_vkeys(), std::vector<VirtualKey>{k});
}

TEST_P(StoreConformance, VkeyListIsOrderedById) {
  std::vector<VirtualKey> added = {add(vkey("zulu")), add(vkey("alpha")), add(vkey("lima"))};
  EXPECT_EQ(s().list_vkeys(), sorted_by_id(added));
}

TEST_P(StoreConformance, VkeyDeleteReturnsTrueThenFalseAndCascadesToAssignments) {
  Connection c = add(connection("c"));
  ProviderModel m = add(model("m", c.id));
  VirtualKey gone = add(vkey("gone"));
  VirtualKey kept = add(vkey("kept"));
  Assignment g1 = add(conn_assignment(gone.id, c.id));
  Assignment g2 = add(model_assignment(gone.id, m.id));
  Assignment k1 = add(conn_assignment(kept.id, c.id));

  EXPECT_TRUE(s().delete_vkey(gone.id));
  EXPECT_FALSE(s().delete_vkey(gone.id));
  EXPECT_EQ(s().get_vkey(gone.id), std::nullopt);
  EXPECT_EQ(s().find_vkey("gone"), std::nullopt);
  EXPECT_EQ(s().find_vkey_by_hash(gone.key_hash), std::nullopt);
  EXPECT_EQ(s().get_assignment(g1.id), std::nullopt);
  EXPECT_EQ(s().get_assignment(g2.id), std::nullopt);
  EXPECT_EQ(s().list_assignments(), std::vector<Assignment>{k1});
  EXPECT_EQ(s().list_vkeys(), std::vector<VirtualKey>{kept});
  EXPECT_EQ(s().list_connections(), std::vector<Connection>{c});
  EXPECT_EQ(s().list_models(), std::vector<ProviderModel>{m});
}

TEST_P(StoreConformance, VkeyLimitsRoundTripSetAndUnset) {
  std::vector<VirtualKey> added;
  int i = 0;
  for (const KeyLimits& l : key_limit_cases()) {
    VirtualKey k = vkey("k" + std::to_string(i++));
    k.limits = l;
    added.push_back(add(k));
  }
  for (const VirtualKey& k : added) {
    SCOPED_TRACE(::testing::PrintToString(k.limits));
    EXPECT_EQ(s().get_vkey(k.id), k);
    EXPECT_EQ(s().find_vkey_by_hash(k.key_hash), k);
  }
  EXPECT_EQ(s().list_vkeys(), added);
}

TEST_P(StoreConformance, VkeyUpdateSetsAndClearsLimits) {
  VirtualKey k = add(vkey("k"));
  const TimeMs since = wall_now();
  k.limits = KeyLimits{.token_limit = 1'000'000,
                       .token_window = TokenWindow::kMonth,
                       .budget = 250.5,
                       .budget_window = TokenWindow::kTotal};
  s().update_vkey(k);
  EXPECT_TRUE(Updated(s().get_vkey(k.id), k, since));
  k.limits = KeyLimits{};
  s().update_vkey(k);
  EXPECT_TRUE(Updated(s().get_vkey(k.id), k, since));
}

// ===========================================================================
// Assignments

TEST_P(StoreConformance, AssignmentInsertReturnsDistinctPositiveIds) {
  Connection c = add(connection("c"));
  std::set<Id> ids;
  for (const char* name : {"k1", "k2", "k3", "k4", "k5"}) {
    VirtualKey k = add(vkey(name));
    Id id = s().insert_assignment(conn_assignment(k.id, c.id));
    EXPECT_GT(id, 0);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 5u);
}

TEST_P(StoreConformance, AssignmentConnectionLevelRoundTrips) {
  Connection c = add(connection("c"));
  VirtualKey k = add(vkey("k"));
  Assignment a = conn_assignment(
      k.id, c.id,
      Limits{.tps = 2.5, .rpm = 120, .token_limit = 50'000, .token_window = TokenWindow::kHour});
  a.created_at = kCreated + 21;
  a.updated_at = kUpdated + 23;
  a = add(a);
  auto got = s().get_assignment(a.id);
  EXPECT_EQ(got, a);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->conn_id, c.id);
  EXPECT_EQ(got->model_id, std::nullopt);
}

TEST_P(StoreConformance, AssignmentModelLevelRoundTrips) {
  Connection c = add(connection("c"));
  ProviderModel m = add(model("m", c.id));
  VirtualKey k = add(vkey("k"));
  Assignment a = add(model_assignment(k.id, m.id, Limits{.rpm = 10}));
  auto got = s().get_assignment(a.id);
  EXPECT_EQ(got, a);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->conn_id, std::nullopt);
  EXPECT_EQ(got->model_id, m.id);
}

TEST_P(StoreConformance, AssignmentLimitsRoundTrip) {
  Connection c = add(connection("c"));
  std::vector<Limits> cases = {
      Limits{},                                        // unlimited
      Limits{.tps = 2.5},                              // fractional rate
      Limits{.tps = 0.25},                             // slower than one per second
      Limits{.rpm = 60},                               //
      Limits{.token_limit = 5'000'000'000},            // beyond 32 bits
      Limits{.tps = 0.0, .rpm = 0, .token_limit = 0},  // zero is a limit, not "unset"
      Limits{.token_window = TokenWindow::kTotal},     // window without a limit
  };
  for (TokenWindow w : kAllWindows) {
    cases.push_back(Limits{.tps = 2.5, .rpm = 600, .token_limit = 100'000, .token_window = w});
  }
  std::vector<Assignment> added;
  int i = 0;
  for (const Limits& l : cases) {
    VirtualKey k = add(vkey("k" + std::to_string(i++)));
    added.push_back(add(conn_assignment(k.id, c.id, l)));
  }
  for (const Assignment& a : added) {
    std::ostringstream trace;
    PrintTo(a.limits, &trace);
    SCOPED_TRACE(trace.str());
    EXPECT_EQ(s().get_assignment(a.id), a);
  }
}

TEST_P(StoreConformance, AssignmentUpdateChangesFields) {
  Connection c = add(connection("c"));
  ProviderModel m = add(model("m", c.id));
  VirtualKey k = add(vkey("k"));
  VirtualKey k2 = add(vkey("k2"));
  Assignment a = add(conn_assignment(k.id, c.id, Limits{.tps = 1.5}));
  Assignment other = add(conn_assignment(k2.id, c.id));

  Assignment u = a;
  u.vkey_id = k2.id;
  u.conn_id = std::nullopt;
  u.model_id = m.id;
  u.limits = Limits{.rpm = 30, .token_limit = 999, .token_window = TokenWindow::kMonth};
  u.updated_at = kUpdated + 3;
  const TimeMs since = wall_now();
  s().update_assignment(u);
  EXPECT_TRUE(Updated(s().get_assignment(a.id), u, since));
  EXPECT_EQ(s().get_assignment(other.id), other);

  u.limits = Limits{};  // limits removed again
  s().update_assignment(u);
  EXPECT_TRUE(Updated(s().get_assignment(a.id), u, since));
}

TEST_P(StoreConformance, AssignmentUpdateOfMissingIdIsNotFound) {
  Connection c = add(connection("c"));
  VirtualKey k = add(vkey("k"));
  Assignment a = add(conn_assignment(k.id, c.id));
  Assignment ghost = conn_assignment(k.id, c.id, Limits{.rpm = 1});
  ghost.id = a.id + 1000;
  EXPECT_TRUE(Throws(ErrorKind::kNotFound, [&] { s().update_assignment(ghost); }));
  EXPECT_EQ(s().list_assignments(), std::vector<Assignment>{a});
}

TEST_P(StoreConformance, AssignmentListFiltersByVkeyAndIsOrderedById) {
  Connection c = add(connection("c"));
  ProviderModel m = add(model("m", c.id));
  VirtualKey k1 = add(vkey("k1"));
  VirtualKey k2 = add(vkey("k2"));
  VirtualKey none = add(vkey("none"));
  Assignment a = add(conn_assignment(k2.id, c.id));
  Assignment b = add(model_assignment(k1.id, m.id));
  Assignment d = add(conn_assignment(k1.id, c.id, Limits{.rpm = 5}));
  Assignment e = add(model_assignment(k2.id, m.id, Limits{.tps = 2.5}));

  EXPECT_EQ(s().list_assignments(), (std::vector<Assignment>{a, b, d, e}));
  EXPECT_EQ(s().list_assignments(std::nullopt), (std::vector<Assignment>{a, b, d, e}));
  EXPECT_EQ(s().list_assignments(k1.id), (std::vector<Assignment>{b, d}));
  EXPECT_EQ(s().list_assignments(k2.id), (std::vector<Assignment>{a, e}));
  EXPECT_TRUE(s().list_assignments(none.id).empty());
  EXPECT_TRUE(s().list_assignments(none.id + 1000).empty());
}

TEST_P(StoreConformance, AssignmentDeleteReturnsTrueThenFalse) {
  Connection c = add(connection("c"));
  VirtualKey k = add(vkey("k"));
  Assignment gone = add(conn_assignment(k.id, c.id));
  Assignment kept = add(conn_assignment(k.id, c.id, Limits{.rpm = 1}));
  EXPECT_TRUE(s().delete_assignment(gone.id));
  EXPECT_FALSE(s().delete_assignment(gone.id));
  EXPECT_EQ(s().get_assignment(gone.id), std::nullopt);
  EXPECT_EQ(s().list_assignments(), std::vector<Assignment>{kept});
  EXPECT_EQ(s().list_vkeys(), std::vector<VirtualKey>{k});
  EXPECT_EQ(s().list_connections(), std::vector<Connection>{c});
}

TEST_P(StoreConformance, AssignmentEveryLimitRoundTripsSetAndUnset) {
  Connection c = add(connection("c"));
  ProviderModel m = add(model("m", c.id));
  VirtualKey k = add(vkey("k"));
  std::vector<Assignment> added;
  bool by_model = false;
  for (const Limits& l : limit_cases()) {
    added.push_back(
        add(by_model ? model_assignment(k.id, m.id, l) : conn_assignment(k.id, c.id, l)));
    by_model = !by_model;
  }
  for (const Assignment& a : added) {
    SCOPED_TRACE(::testing::PrintToString(a.limits));
    EXPECT_EQ(s().get_assignment(a.id), a);
  }
  EXPECT_EQ(s().list_assignments(), added);
}

TEST_P(StoreConformance, AssignmentUpdateSetsAndClearsEveryLimit) {
  Connection c = add(connection("c"));
  VirtualKey k = add(vkey("k"));
  Assignment a = add(conn_assignment(k.id, c.id));
  const TimeMs since = wall_now();
  for (const Limits& l : limit_cases()) {
    SCOPED_TRACE(::testing::PrintToString(l));
    a.limits = l;
    s().update_assignment(a);
    EXPECT_TRUE(Updated(s().get_assignment(a.id), a, since));
  }
}

TEST_P(StoreConformance, AssignmentPlanIdRoundTrips) {
  Connection c = add(connection("c"));
  ProviderModel m = add(model("m", c.id));
  VirtualKey k = add(vkey("k"));
  Plan gold = add(plan("gold", full_limits()));
  Plan free = add(plan("free", Limits{.rpm = 3}));

  Assignment on_plan = conn_assignment(k.id, c.id, Limits{.rpm = 100});  // overrides the plan's
  on_plan.plan_id = gold.id;
  on_plan = add(on_plan);
  Assignment no_plan = add(model_assignment(k.id, m.id));
  EXPECT_EQ(s().get_assignment(on_plan.id), on_plan);
  EXPECT_EQ(s().get_assignment(no_plan.id), no_plan);
  EXPECT_EQ(s().list_assignments(k.id), (std::vector<Assignment>{on_plan, no_plan}));

  const TimeMs since = wall_now();
  on_plan.plan_id = free.id;  // another plan
  s().update_assignment(on_plan);
  EXPECT_TRUE(Updated(s().get_assignment(on_plan.id), on_plan, since));
  on_plan.plan_id = std::nullopt;  // none
  s().update_assignment(on_plan);
  EXPECT_TRUE(Updated(s().get_assignment(on_plan.id), on_plan, since));
  no_plan.plan_id = gold.id;  // one where there was none
  s().update_assignment(no_plan);
  EXPECT_TRUE(Updated(s().get_assignment(no_plan.id), no_plan, since));
}

// A parent that does not exist is refused alike, whether the database's
// foreign keys or the store check it: kInvalid, and nothing is written.
TEST_P(StoreConformance, AssignmentNamingAMissingParentIsInvalid) {
  Connection c = add(connection("c"));
  VirtualKey k = add(vkey("k"));
  Plan p = add(plan("p"));
  Assignment a = conn_assignment(k.id, c.id);
  a.plan_id = p.id;
  a = add(a);
  const std::int64_t version = s().config_version();
  const Id missing = 1'000'000;  // no object of any kind

  Assignment bad_plan = conn_assignment(k.id, c.id);
  bad_plan.plan_id = missing;
  EXPECT_TRUE(Throws(ErrorKind::kInvalid, [&] { s().insert_assignment(bad_plan); }));
  EXPECT_TRUE(
      Throws(ErrorKind::kInvalid, [&] { s().insert_assignment(conn_assignment(k.id, missing)); }));
  EXPECT_TRUE(
      Throws(ErrorKind::kInvalid, [&] { s().insert_assignment(model_assignment(k.id, missing)); }));
  EXPECT_TRUE(
      Throws(ErrorKind::kInvalid, [&] { s().insert_assignment(conn_assignment(missing, c.id)); }));

  Assignment u = a;
  u.plan_id = missing;
  EXPECT_TRUE(Throws(ErrorKind::kInvalid, [&] { s().update_assignment(u); }));
  u = a;
  u.conn_id = std::nullopt;
  u.model_id = missing;
  EXPECT_TRUE(Throws(ErrorKind::kInvalid, [&] { s().update_assignment(u); }));

  EXPECT_EQ(s().list_assignments(), std::vector<Assignment>{a});
  EXPECT_EQ(s().config_version(), version) << "a refused write is no change";
}

// ===========================================================================
// Plans

TEST_P(StoreConformance, PlanRoundTripsEveryField) {
  Plan full = plan("premium", full_limits());
  full.created_at = kCreated + 31;
  full.updated_at = kUpdated + 37;
  full = add(full);
  Plan empty = add(plan("free"));  // no limits at all

  EXPECT_GT(full.id, 0);
  EXPECT_NE(full.id, empty.id);
  EXPECT_EQ(s().get_plan(full.id), full);
  EXPECT_EQ(s().find_plan("premium"), full);
  EXPECT_EQ(s().get_plan(empty.id), empty);
  EXPECT_EQ(s().find_plan("free"), empty);
  EXPECT_EQ(s().find_plan("Premium"), std::nullopt);
  EXPECT_EQ(s().list_plans(), (std::vector<Plan>{full, empty}));
}

TEST_P(StoreConformance, PlanEveryLimitRoundTripsSetAndUnset) {
  std::vector<Plan> added;
  int i = 0;
  for (const Limits& l : limit_cases()) added.push_back(add(plan("p" + std::to_string(i++), l)));
  for (const Plan& p : added) {
    SCOPED_TRACE(::testing::PrintToString(p.limits));
    EXPECT_EQ(s().get_plan(p.id), p);
  }
  EXPECT_EQ(s().list_plans(), added);
}

TEST_P(StoreConformance, PlanDuplicateNameIsConflict) {
  Plan p = add(plan("standard", Limits{.rpm = 60}));
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().insert_plan(plan("standard")); }));
  EXPECT_EQ(s().list_plans(), std::vector<Plan>{p});
}

TEST_P(StoreConformance, PlanUpdateChangesEveryField) {
  Plan p = add(plan("old", Limits{.rpm = 60}));
  Plan other = add(plan("other"));
  const TimeMs since = wall_now();
  Plan u = p;
  u.name = "new";
  u.limits = full_limits();
  u.updated_at = kUpdated + 5;
  s().update_plan(u);
  EXPECT_TRUE(Updated(s().get_plan(p.id), u, since));
  EXPECT_TRUE(Updated(s().find_plan("new"), u, since));
  EXPECT_EQ(s().find_plan("old"), std::nullopt);
  EXPECT_EQ(s().get_plan(other.id), other);

  u.limits = Limits{};  // every limit removed again
  s().update_plan(u);
  EXPECT_TRUE(Updated(s().get_plan(p.id), u, since));
}

TEST_P(StoreConformance, PlanUpdateToTakenNameIsConflict) {
  Plan a = add(plan("a"));
  Plan b = add(plan("b"));
  Plan renamed = b;
  renamed.name = "a";
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().update_plan(renamed); }));
  EXPECT_EQ(s().list_plans(), (std::vector<Plan>{a, b}));
}

TEST_P(StoreConformance, PlanUpdateOfMissingIdIsNotFound) {
  Plan p = add(plan("present"));
  Plan ghost = plan("ghost");
  ghost.id = p.id + 1000;
  EXPECT_TRUE(Throws(ErrorKind::kNotFound, [&] { s().update_plan(ghost); }));
  EXPECT_EQ(s().list_plans(), std::vector<Plan>{p});
}

TEST_P(StoreConformance, PlanListIsOrderedById) {
  std::vector<Plan> added = {add(plan("zulu")), add(plan("alpha")), add(plan("lima"))};
  EXPECT_EQ(s().list_plans(), sorted_by_id(added));
}

TEST_P(StoreConformance, PlanDeleteReturnsTrueThenFalseAndDetachesItsAssignments) {
  Connection c = add(connection("c"));
  ProviderModel m = add(model("m", c.id));
  VirtualKey k = add(vkey("k"));
  Plan gone = add(plan("gone", full_limits()));
  Plan kept = add(plan("kept", Limits{.rpm = 5}));
  auto on = [&](Assignment a, const Plan& p) {
    a.plan_id = p.id;
    return add(a);
  };
  Assignment g1 = on(conn_assignment(k.id, c.id, Limits{.rpm = 7, .budget = 1.5}), gone);
  Assignment g2 = on(model_assignment(k.id, m.id), gone);
  Assignment k1 = on(conn_assignment(k.id, c.id), kept);
  Assignment none = add(model_assignment(k.id, m.id, Limits{.rph = 9}));

  EXPECT_TRUE(s().delete_plan(gone.id));
  EXPECT_FALSE(s().delete_plan(gone.id));
  EXPECT_EQ(s().get_plan(gone.id), std::nullopt);
  EXPECT_EQ(s().find_plan("gone"), std::nullopt);
  EXPECT_EQ(s().list_plans(), std::vector<Plan>{kept});

  // Detached, everything else (their own limits) as it was. Whether the
  // detach stamps updated_at the contract leaves open.
  for (Assignment want : {g1, g2}) {
    want.plan_id = std::nullopt;
    auto got = s().get_assignment(want.id);
    ASSERT_TRUE(got.has_value());
    got->updated_at = want.updated_at;
    EXPECT_EQ(got, want);
  }
  EXPECT_EQ(s().get_assignment(k1.id), k1);
  EXPECT_EQ(s().get_assignment(none.id), none);
  EXPECT_EQ(s().list_assignments().size(), 4u);
  EXPECT_EQ(s().list_vkeys(), std::vector<VirtualKey>{k});
}

TEST_P(StoreConformance, PlanDeleteRollsBackWithTheTransaction) {
  Connection c = add(connection("c"));
  VirtualKey k = add(vkey("k"));
  Plan p = add(plan("p", Limits{.rpd = 1000}));
  Assignment a = conn_assignment(k.id, c.id);
  a.plan_id = p.id;
  a = add(a);
  const State before = state();
  EXPECT_THROW(s().transaction([&] {
    ASSERT_TRUE(s().delete_plan(p.id));
    add(plan("added-then-rolled-back"));
    throw TestAbort();
  }),
               TestAbort);
  ExpectSameState(state(), before);
  EXPECT_EQ(s().get_assignment(a.id), a) << "the detach is taken back with the delete";
}

TEST_P(StoreConformance, PlansAreSeenByAnotherStoreAndSurviveReopen) {
  Plan p = add(plan("shared", full_limits()));
  EXPECT_EQ(open_again()->get_plan(p.id), p);
  store_.reset();
  store_ = open_again();
  EXPECT_EQ(s().list_plans(), std::vector<Plan>{p});
}

// ===========================================================================
// Properties shared by every kind of object

TEST_P(StoreConformance, InsertSetsTimestampsWhenZero) {
  const TimeMs before = wall_now();
  Connection c = connection("c");
  c.created_at = c.updated_at = 0;
  c.id = s().insert_connection(c);
  ProviderModel m = model("m", c.id);
  m.created_at = m.updated_at = 0;
  m.id = s().insert_model(m);
  VirtualKey k = vkey("k");
  k.created_at = k.updated_at = 0;
  k.id = s().insert_vkey(k);
  Assignment a = conn_assignment(k.id, c.id);
  a.created_at = a.updated_at = 0;
  a.id = s().insert_assignment(a);
  Plan p = plan("p");
  p.created_at = p.updated_at = 0;
  p.id = s().insert_plan(p);
  const TimeMs after = wall_now();

  auto check = [&](const char* what, TimeMs created, TimeMs updated) {
    SCOPED_TRACE(what);
    EXPECT_GE(created, before);
    EXPECT_LE(created, after);
    EXPECT_GE(updated, before);
    EXPECT_LE(updated, after);
  };
  auto gc = s().get_connection(c.id);
  auto gm = s().get_model(m.id);
  auto gk = s().get_vkey(k.id);
  auto ga = s().get_assignment(a.id);
  auto gp = s().get_plan(p.id);
  ASSERT_TRUE(gc && gm && gk && ga && gp);
  check("connection", gc->created_at, gc->updated_at);
  check("model", gm->created_at, gm->updated_at);
  check("vkey", gk->created_at, gk->updated_at);
  check("assignment", ga->created_at, ga->updated_at);
  check("plan", gp->created_at, gp->updated_at);
}

TEST_P(StoreConformance, InsertIgnoresIdField) {
  Connection c1 = connection("c1"), c2 = connection("c2");
  c1.id = c2.id = 4242;
  Id ic1 = s().insert_connection(c1), ic2 = s().insert_connection(c2);
  EXPECT_NE(ic1, ic2);

  ProviderModel m1 = model("m1", ic1), m2 = model("m2", ic1);
  m1.id = m2.id = 4242;
  Id im1 = s().insert_model(m1), im2 = s().insert_model(m2);
  EXPECT_NE(im1, im2);

  VirtualKey k1 = vkey("k1"), k2 = vkey("k2");
  k1.id = k2.id = 4242;
  Id ik1 = s().insert_vkey(k1), ik2 = s().insert_vkey(k2);
  EXPECT_NE(ik1, ik2);

  Assignment a1 = conn_assignment(ik1, ic1), a2 = conn_assignment(ik2, ic1);
  a1.id = a2.id = 4242;
  Id ia1 = s().insert_assignment(a1), ia2 = s().insert_assignment(a2);
  EXPECT_NE(ia1, ia2);

  Plan p1 = plan("p1"), p2 = plan("p2");
  p1.id = p2.id = 4242;
  EXPECT_NE(s().insert_plan(p1), s().insert_plan(p2));

  EXPECT_EQ(s().list_connections().size(), 2u);
  EXPECT_EQ(s().list_models().size(), 2u);
  EXPECT_EQ(s().list_vkeys().size(), 2u);
  EXPECT_EQ(s().list_assignments().size(), 2u);
  EXPECT_EQ(s().list_plans().size(), 2u);
}

// ===========================================================================
// Configuration version and load_config

TEST_P(StoreConformance, ConfigVersionIncreasesWithEveryConfigWrite) {
  Connection c, c2;
  ProviderModel m, m2;
  VirtualKey k, k2;
  Assignment a;
  expect_bump("insert_connection", [&] { c = add(connection("c")); });
  expect_bump("update_connection", [&] {
    c.endpoint = "https://changed.example.com";
    s().update_connection(c);
  });
  expect_bump("insert_model", [&] { m = add(model("m", c.id)); });
  expect_bump("update_model", [&] {
    m.remote = "changed";
    s().update_model(m);
  });
  expect_bump("insert_vkey", [&] { k = add(vkey("k")); });
  expect_bump("update_vkey", [&] {
    k.enabled = false;
    s().update_vkey(k);
  });
  expect_bump("insert_assignment", [&] { a = add(conn_assignment(k.id, c.id)); });
  expect_bump("update_assignment", [&] {
    a.limits.rpm = 7;
    s().update_assignment(a);
  });
  expect_bump("delete_assignment", [&] { ASSERT_TRUE(s().delete_assignment(a.id)); });
  expect_bump("delete_model", [&] { ASSERT_TRUE(s().delete_model(m.id)); });
  expect_bump("delete_vkey", [&] { ASSERT_TRUE(s().delete_vkey(k.id)); });
  expect_bump("delete_connection", [&] { ASSERT_TRUE(s().delete_connection(c.id)); });

  // A cascading delete is a change too.
  c2 = add(connection("c2"));
  m2 = add(model("m2", c2.id));
  k2 = add(vkey("k2"));
  add(model_assignment(k2.id, m2.id));
  expect_bump("cascading delete_connection", [&] { ASSERT_TRUE(s().delete_connection(c2.id)); });
}

TEST_P(StoreConformance, ConfigVersionUnchangedByUsageAndReads) {
  populate();
  const std::int64_t v = s().config_version();

  std::vector<UsageRecord> batch;
  for (int i = 0; i < 20; ++i) batch.push_back(usage(utc(2026, 3, 1) + i, "u" + std::to_string(i)));
  s().insert_usage(batch);
  EXPECT_EQ(s().config_version(), v) << "insert_usage is not a configuration change";

  s().list_usage({});
  s().aggregate_usage({}, UsageGroupBy::kDay);
  s().list_connections();
  s().list_models();
  s().list_vkeys();
  s().list_assignments();
  s().load_config();
  s().find_connection("pop-conn");
  s().ping();
  s().schema_version();
  EXPECT_EQ(s().config_version(), v) << "reads are not configuration changes";
}

TEST_P(StoreConformance, ConfigVersionSeesWritesFromAnotherStore) {
  // serve polls config_version while the CLI writes through its own store.
  auto reader = open_again();
  const std::int64_t v0 = reader->config_version();
  Connection c = add(connection("from-writer"));
  const std::int64_t v1 = reader->config_version();
  EXPECT_GT(v1, v0);
  EXPECT_EQ(reader->get_connection(c.id), c);

  reader->insert_vkey(vkey("from-reader"));
  EXPECT_GT(s().config_version(), v1);
  EXPECT_NE(s().find_vkey("from-reader"), std::nullopt);
}

TEST_P(StoreConformance, LoadConfigReturnsEverythingAtTheCurrentVersion) {
  populate();
  Connection c = add(connection("extra"));
  add(model("extra-model", c.id));
  VirtualKey k = add(vkey("extra-key"));
  add(conn_assignment(k.id, c.id, Limits{.tps = 2.5}));

  ConfigData cfg = s().load_config();
  EXPECT_EQ(cfg.version, s().config_version());
  EXPECT_EQ(sorted_by_id(cfg.connections), s().list_connections());
  EXPECT_EQ(sorted_by_id(cfg.models), s().list_models());
  EXPECT_EQ(sorted_by_id(cfg.vkeys), s().list_vkeys());
  EXPECT_EQ(sorted_by_id(cfg.assignments), s().list_assignments());
  EXPECT_EQ(sorted_by_id(cfg.plans), s().list_plans());
  EXPECT_EQ(cfg.connections.size(), 2u);
  EXPECT_EQ(cfg.models.size(), 2u);
  EXPECT_EQ(cfg.vkeys.size(), 2u);
  EXPECT_EQ(cfg.assignments.size(), 3u);
  EXPECT_EQ(cfg.plans.size(), 1u);

  s().delete_vkey(k.id);
  ConfigData after = s().load_config();
  EXPECT_GT(after.version, cfg.version);
  EXPECT_EQ(after.version, s().config_version());
  EXPECT_EQ(after.vkeys.size(), 1u);
  EXPECT_EQ(after.assignments.size(), 2u);
}

TEST_P(StoreConformance, ConfigVersionIncreasesWithEveryPlanWrite) {
  Connection c = add(connection("c"));
  VirtualKey k = add(vkey("k"));
  Plan p, detaching;
  expect_bump("insert_plan", [&] { p = add(plan("p")); });
  expect_bump("update_plan", [&] {
    p.limits.max_parallel = 4;
    s().update_plan(p);
  });
  expect_bump("delete_plan", [&] { ASSERT_TRUE(s().delete_plan(p.id)); });
  detaching = add(plan("detaching"));
  Assignment a = conn_assignment(k.id, c.id);
  a.plan_id = detaching.id;
  add(a);
  expect_bump("delete_plan detaching an assignment",
              [&] { ASSERT_TRUE(s().delete_plan(detaching.id)); });

  const std::int64_t v = s().config_version();
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] {
    add(plan("taken"));
    add(plan("taken"));
  }));
  EXPECT_GT(s().config_version(), v) << "the first insert is a change";
  const std::int64_t after_conflict = s().config_version();
  s().list_plans();
  s().find_plan("taken");
  EXPECT_EQ(s().config_version(), after_conflict) << "reads are not changes";
}

TEST_P(StoreConformance, LoadConfigReturnsPlansAndTheirAssignments) {
  Connection c = add(connection("c"));
  VirtualKey k = vkey("k");
  k.limits = KeyLimits{.token_limit = 10'000, .budget = 5, .budget_window = TokenWindow::kDay};
  k = add(k);
  Plan gold = add(plan("gold", full_limits()));
  Plan free = add(plan("free", Limits{.rpm = 3, .reserve_tokens = 64}));
  Assignment a = conn_assignment(k.id, c.id, Limits{.max_parallel = 2});
  a.plan_id = free.id;
  a = add(a);

  ConfigData cfg = s().load_config();
  EXPECT_EQ(cfg.version, s().config_version());
  EXPECT_EQ(sorted_by_id(cfg.plans), (std::vector<Plan>{gold, free}));
  EXPECT_EQ(cfg.assignments, std::vector<Assignment>{a});
  EXPECT_EQ(cfg.vkeys, std::vector<VirtualKey>{k});

  ASSERT_TRUE(s().delete_plan(free.id));
  ConfigData after = s().load_config();
  EXPECT_GT(after.version, cfg.version);
  EXPECT_EQ(after.plans, std::vector<Plan>{gold});
  ASSERT_EQ(after.assignments.size(), 1u);
  EXPECT_EQ(after.assignments[0].plan_id, std::nullopt);
  EXPECT_EQ(after.assignments[0].limits, a.limits);
}

// ===========================================================================
// Transactions

TEST_P(StoreConformance, TransactionCommitsOnSuccess) {
  const std::int64_t v = s().config_version();
  Connection c;
  VirtualKey k;
  s().transaction([&] {
    c = add(connection("tx-conn"));
    k = add(vkey("tx-key"));
    add(conn_assignment(k.id, c.id));
  });
  EXPECT_EQ(s().get_connection(c.id), c);
  EXPECT_EQ(s().get_vkey(k.id), k);
  EXPECT_EQ(s().list_assignments().size(), 1u);
  EXPECT_GT(s().config_version(), v);

  // Committed, not just visible to this store.
  auto other = open_again();
  EXPECT_EQ(other->get_connection(c.id), c);
  EXPECT_EQ(other->get_vkey(k.id), k);
}

TEST_P(StoreConformance, TransactionRollsBackEveryWriteWhenFnThrows) {
  populate();
  Connection existing = add(connection("existing"));
  VirtualKey doomed = add(vkey("would-be-deleted"));
  const State before = state();

  EXPECT_THROW(s().transaction([&] {
    Connection c = add(connection("tx-conn"));
    ProviderModel m = add(model("tx-model", c.id));
    VirtualKey k = add(vkey("tx-key"));
    add(model_assignment(k.id, m.id));
    Connection changed = existing;
    changed.api_key = "sk-changed";
    s().update_connection(changed);
    ASSERT_TRUE(s().delete_vkey(doomed.id));
    add(plan("tx-plan"));
    ASSERT_TRUE(s().delete_plan(s().find_plan("pop-plan").value().id));  // detaches
    UsageRecord r = usage(utc(2026, 4, 1), "tx-usage");
    s().insert_usage(std::span<const UsageRecord>(&r, 1));
    throw TestAbort();
  }),
               TestAbort);

  ExpectSameState(state(), before);
  EXPECT_EQ(s().find_connection("tx-conn"), std::nullopt);
  EXPECT_EQ(s().get_connection(existing.id), existing);
  EXPECT_EQ(s().get_vkey(doomed.id), doomed);
}

TEST_P(StoreConformance, TransactionPropagatesStoreErrorsAndRollsBack) {
  add(connection("taken"));
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] {
    s().transaction([&] {
      add(connection("fresh"));
      add(connection("taken"));  // conflict: the whole transaction goes
    });
  }));
  EXPECT_EQ(s().find_connection("fresh"), std::nullopt);
  EXPECT_EQ(s().list_connections().size(), 1u);
}

TEST_P(StoreConformance, NestedTransactionJoinsTheOuterOne) {
  EXPECT_THROW(s().transaction([&] {
    add(connection("outer"));
    s().transaction([&] { add(connection("inner")); });
    // The inner call returned normally, but nothing is committed until the
    // outer one is.
    throw TestAbort();
  }),
               TestAbort);
  EXPECT_EQ(s().find_connection("outer"), std::nullopt);
  EXPECT_EQ(s().find_connection("inner"), std::nullopt);
  EXPECT_TRUE(s().list_connections().empty());
}

TEST_P(StoreConformance, NestedTransactionCommitsWithTheOuterOne) {
  s().transaction([&] {
    add(connection("outer"));
    s().transaction([&] {
      add(connection("inner"));
      s().transaction([&] { add(connection("innermost")); });
    });
  });
  EXPECT_NE(s().find_connection("outer"), std::nullopt);
  EXPECT_NE(s().find_connection("inner"), std::nullopt);
  EXPECT_NE(s().find_connection("innermost"), std::nullopt);
  auto other = open_again();
  EXPECT_EQ(other->list_connections().size(), 3u);
}

TEST_P(StoreConformance, ThrowFromNestedTransactionRollsBackEverything) {
  EXPECT_THROW(s().transaction([&] {
    add(connection("outer"));
    s().transaction([&] {
      add(connection("inner"));
      throw TestAbort();
    });
  }),
               TestAbort);
  EXPECT_TRUE(s().list_connections().empty());
}

TEST_P(StoreConformance, ReadsInsideATransactionSeeItsWrites) {
  populate();
  const State before = state();
  EXPECT_THROW(s().transaction([&] {
    Connection c = add(connection("in-tx"));
    EXPECT_EQ(s().get_connection(c.id), c);
    EXPECT_EQ(s().list_connections().size(), 2u);
    // load_config is a read like any other and joins the transaction.
    try {
      ConfigData cfg = s().load_config();
      EXPECT_EQ(cfg.connections.size(), 2u);
      EXPECT_EQ(cfg.version, s().config_version());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "load_config inside a transaction threw: " << e.what();
    }
    add(vkey("after-the-read"));  // still part of the same transaction
    throw TestAbort();
  }),
               TestAbort);
  // Everything written in the transaction, before and after the reads, is gone.
  ExpectSameState(state(), before);
}

TEST_P(StoreConformance, StoreWorksNormallyAfterARollback) {
  const std::int64_t v = s().config_version();
  EXPECT_THROW(s().transaction([&] {
    add(connection("rolled-back"));
    throw TestAbort();
  }),
               TestAbort);
  // No transaction is left open: plain writes commit, and the version moves
  // past where it was before the rolled-back transaction.
  Connection c = add(connection("after"));
  EXPECT_GT(s().config_version(), v);
  auto other = open_again();
  EXPECT_EQ(other->list_connections(), std::vector<Connection>{c});

  s().transaction([&] { add(connection("next-tx")); });
  EXPECT_EQ(other->list_connections().size(), 2u);
}

// ===========================================================================
// Usage

TEST_P(StoreConformance, UsageEmptyBatchIsANoOp) {
  s().insert_usage(std::span<const UsageRecord>{});
  EXPECT_TRUE(s().list_usage({}).empty());
}

TEST_P(StoreConformance, UsageRoundTripsEveryField) {
  Connection c = add(connection("conn"));
  VirtualKey k = add(vkey("key"));
  Assignment a = add(conn_assignment(k.id, c.id));

  UsageRecord full = usage(utc(2026, 1, 2, 3, 4, 5, 678), "req-full");
  attribute(full, k, a, c);
  full.model = "alias-1";
  full.status = 429;
  full.latency_ms = 1234.5;
  full.ttft_ms = 87.25;
  full.prompt_tokens = 5'000'000'000;  // beyond 32 bits
  full.completion_tokens = 321;
  full.cost = 0.0123456789;

  UsageRecord bare = usage(utc(2026, 1, 2, 3, 4, 6), "req-bare");  // master key, nothing known
  bare.vkey_name = "";
  bare.model = "";
  bare.conn_name = "";
  bare.status = 502;
  bare.latency_ms = 0.5;
  bare.cost = 0;

  std::vector<UsageRecord> in = {full, bare};
  s().insert_usage(in);
  std::vector<UsageRecord> out = s().list_usage({});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_GT(out[0].id, 0);
  EXPECT_GT(out[1].id, 0);
  EXPECT_NE(out[0].id, out[1].id);
  EXPECT_EQ(comparable(out), comparable(in));
  EXPECT_EQ(out[0].request_id, "req-bare") << "newest first";
}

TEST_P(StoreConformance, UsageBatchIsListedNewestFirst) {
  UsageWorld w = make_usage_world(500);
  std::vector<UsageRecord> out = s().list_usage({});
  ASSERT_EQ(out.size(), 500u);
  for (std::size_t i = 1; i < out.size(); ++i) {
    ASSERT_GT(out[i - 1].ts, out[i].ts) << "not newest first at position " << i;
  }
  std::set<Id> ids;
  for (const auto& r : out) ids.insert(r.id);
  EXPECT_EQ(ids.size(), 500u) << "usage ids are not distinct";
  EXPECT_EQ(comparable(out), comparable(w.records));
}

TEST_P(StoreConformance, UsageListFilters) {
  Connection c = add(connection("c"));
  VirtualKey ka = add(vkey("ka"));
  VirtualKey kb = add(vkey("kb"));
  Assignment aa = add(conn_assignment(ka.id, c.id));
  Assignment ab = add(conn_assignment(kb.id, c.id));
  const TimeMs t0 = utc(2026, 5, 1, 12);
  std::vector<UsageRecord> in;
  for (int i = 0; i < 10; ++i) {  // r0..r9, one second apart: ka, kb, master, ka, kb, ...
    UsageRecord r = usage(t0 + i * 1000, "r" + std::to_string(i));
    if (i % 3 == 0) attribute(r, ka, aa, c);
    if (i % 3 == 1) attribute(r, kb, ab, c);
    in.push_back(r);
  }
  s().insert_usage(in);
  using V = std::vector<std::string>;
  auto ids = [&](const UsageQuery& q) { return request_ids(s().list_usage(q)); };

  EXPECT_EQ(ids({}), (V{"r9", "r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1", "r0"}));
  EXPECT_EQ(ids({.vkey_id = ka.id}), (V{"r9", "r6", "r3", "r0"}));
  EXPECT_EQ(ids({.vkey_id = kb.id}), (V{"r7", "r4", "r1"}));
  EXPECT_EQ(ids({.vkey_id = kb.id + 1000}), V{});
  EXPECT_EQ(ids({.since = t0 + 7000}), (V{"r9", "r8", "r7"})) << "since is inclusive";
  EXPECT_EQ(ids({.until = t0 + 3000}), (V{"r2", "r1", "r0"})) << "until is exclusive";
  EXPECT_EQ(ids({.since = t0 + 3000, .until = t0 + 7000}), (V{"r6", "r5", "r4", "r3"}));
  EXPECT_EQ(ids({.since = t0 + 3000, .until = t0 + 3000}), V{});
  EXPECT_EQ(ids({.since = t0 + 2500, .until = t0 + 4500}), (V{"r4", "r3"}));
  EXPECT_EQ(ids({.limit = 4}), (V{"r9", "r8", "r7", "r6"})) << "limit keeps the newest";
  EXPECT_EQ(ids({.limit = 100}).size(), 10u);
  EXPECT_EQ(ids({.vkey_id = ka.id, .since = t0 + 1, .until = t0 + 9000, .limit = 1}), V{"r6"});
  EXPECT_EQ(ids({.vkey_id = ka.id, .since = t0, .until = t0 + 9001, .limit = 0}),
            (V{"r9", "r6", "r3", "r0"}));
}

TEST_P(StoreConformance, UsageListFiltersMatchReferenceOnLargeBatch) {
  UsageWorld w = make_usage_world(500);
  const TimeMs day2 = utc(2026, 1, 2), day4 = utc(2026, 1, 4);
  const TimeMs on_record = w.records[137].ts;  // a boundary exactly on a record
  std::vector<UsageQuery> queries = {
      {},
      {.vkey_id = w.keys[0].id},
      {.vkey_id = w.keys[2].id},
      {.since = day2},
      {.until = day4},
      {.since = day2, .until = day4},
      {.since = on_record},
      {.until = on_record},
      {.limit = 7},
      {.vkey_id = w.keys[1].id, .since = day2, .until = day4, .limit = 25},
  };
  for (std::size_t i = 0; i < queries.size(); ++i) {
    SCOPED_TRACE("query " + std::to_string(i));
    std::vector<UsageRecord> got = s().list_usage(queries[i]);
    std::vector<UsageRecord> want = reference_list(w.records, queries[i]);
    EXPECT_EQ(request_ids(got), request_ids(want));
    EXPECT_EQ(comparable(got), comparable(want));
  }
}

TEST_P(StoreConformance, UsageSurvivesDeletionOfWhatItNames) {
  Connection c = add(connection("short-lived-conn"));
  VirtualKey k = add(vkey("short-lived-key"));
  Assignment a = add(conn_assignment(k.id, c.id));
  UsageRecord r = usage(utc(2026, 2, 2), "req-1");
  attribute(r, k, a, c);
  s().insert_usage(std::span<const UsageRecord>(&r, 1));

  ASSERT_TRUE(s().delete_vkey(k.id));
  ASSERT_TRUE(s().delete_connection(c.id));

  std::vector<UsageRecord> out = s().list_usage({});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].request_id, "req-1");
  EXPECT_EQ(out[0].vkey_name, "short-lived-key");
  EXPECT_EQ(out[0].conn_name, "short-lived-conn");
  EXPECT_EQ(out[0].prompt_tokens, r.prompt_tokens);
  ExpectGroups(s().aggregate_usage({}, UsageGroupBy::kKey),
               {group("short-lived-key", 1, 0, 0, 0, 0, 100)});
}

// A small data set with hand-computed aggregates.
class UsageAggregates : public StoreConformance {
 protected:
  void SetUp() override {
    StoreConformance::SetUp();
    // Created in reverse name order so that id order is not name order.
    conn_b = add(connection("conn-b"));
    conn_a = add(connection("conn-a"));
    ProviderModel mb = add(model("m-on-b", conn_b.id));
    key_y = add(vkey("key-y"));
    key_x = add(vkey("key-x"));
    a1 = add(conn_assignment(key_x.id, conn_a.id));
    a2 = add(conn_assignment(key_y.id, conn_b.id));
    a3 = add(model_assignment(key_x.id, mb.id));

    struct Row {
      const VirtualKey& k;
      const Assignment& a;
      const char* model;
      const Connection& c;
      int status;
      double latency;
      std::int64_t prompt, completion;
      double cost;
    };
    const Row rows[] = {
        {key_x, a1, "m-zeta", conn_a, 200, 100, 10, 20, 0.5},     // r1
        {key_x, a1, "m-alpha", conn_a, 500, 300, 1, 0, 0},        // r2
        {key_y, a2, "m-alpha", conn_b, 429, 50, 5, 5, 0.25},      // r3
        {key_y, a2, "m-zeta", conn_b, 399, 150, 100, 200, 1.25},  // r4
        {key_x, a3, "m-alpha", conn_b, 400, 10, 7, 3, 0.125},     // r5
        {key_y, a2, "m-zeta", conn_b, 200, 20, 0, 0, 0},          // r6
    };
    int i = 0;
    for (const Row& row : rows) {
      ++i;
      UsageRecord r = usage(t0 + i * 1000, "r" + std::to_string(i));
      attribute(r, row.k, row.a, row.c);
      r.model = row.model;
      r.status = row.status;
      r.latency_ms = row.latency;
      r.prompt_tokens = row.prompt;
      r.completion_tokens = row.completion;
      r.cost = row.cost;
      records.push_back(r);
    }
    s().insert_usage(records);
  }

  // Expected groups must come back sorted by group text.
  static std::vector<UsageGroup> by_group(std::vector<UsageGroup> v) {
    std::sort(v.begin(), v.end(),
              [](const UsageGroup& a, const UsageGroup& b) { return a.group < b.group; });
    return v;
  }

  void check(const UsageQuery& q, UsageGroupBy by, const std::vector<UsageGroup>& want) {
    ExpectGroups(reference_aggregate(records, q, by), want);  // the test's own arithmetic
    ExpectGroups(s().aggregate_usage(q, by), want);
    ExpectPercentiles(s().aggregate_usage(q, by), reference_aggregate(records, q, by));
  }

  const TimeMs t0 = utc(2026, 6, 15, 8);
  Connection conn_a, conn_b;
  VirtualKey key_x, key_y;
  Assignment a1, a2, a3;
  std::vector<UsageRecord> records;
};

TEST_P(UsageAggregates, ByModel) {
  check({}, UsageGroupBy::kModel,
        {group("m-alpha", 3, 3, 13, 8, 0.375, 120), group("m-zeta", 3, 0, 110, 220, 1.75, 90)});
}

TEST_P(UsageAggregates, ByKeyName) {
  check({}, UsageGroupBy::kKey,
        {group("key-x", 3, 2, 18, 23, 0.625, 410.0 / 3),
         group("key-y", 3, 1, 105, 205, 1.5, 220.0 / 3)});
}

TEST_P(UsageAggregates, ByConnectionName) {
  check({}, UsageGroupBy::kConnection,
        {group("conn-a", 2, 1, 11, 20, 0.5, 200), group("conn-b", 4, 2, 112, 208, 1.625, 57.5)});
}

TEST_P(UsageAggregates, ByAssignmentId) {
  check({}, UsageGroupBy::kAssignment,
        by_group({group(std::to_string(a1.id), 2, 1, 11, 20, 0.5, 200),
                  group(std::to_string(a2.id), 3, 1, 105, 205, 1.5, 220.0 / 3),
                  group(std::to_string(a3.id), 1, 1, 7, 3, 0.125, 10)}));
}

TEST_P(UsageAggregates, FiltersApply) {
  check({.vkey_id = key_x.id}, UsageGroupBy::kModel,
        {group("m-alpha", 2, 2, 8, 3, 0.125, 155), group("m-zeta", 1, 0, 10, 20, 0.5, 100)});
  check({.since = t0 + 3000}, UsageGroupBy::kConnection,  // r3..r6
        {group("conn-b", 4, 2, 112, 208, 1.625, 57.5)});
  check({.until = t0 + 3000}, UsageGroupBy::kConnection,  // r1, r2
        {group("conn-a", 2, 1, 11, 20, 0.5, 200)});
  check({.vkey_id = key_y.id, .since = t0 + 4000, .until = t0 + 6000}, UsageGroupBy::kModel,
        {group("m-zeta", 1, 0, 100, 200, 1.25, 150)});  // r4 only
  check({.since = t0 + 7000}, UsageGroupBy::kModel, {});
  check({.vkey_id = key_x.id + key_y.id + 1000}, UsageGroupBy::kKey, {});
}

TEST_P(UsageAggregates, LatencyPercentilesByModel) {
  // m-alpha: 10 (r5), 50 (r3), 300 (r2); m-zeta: 20 (r6), 100 (r1), 150 (r4).
  // Ranks for n = 3: p50 ceil(1.5) = 2, p95 ceil(2.85) = 3, p99 ceil(2.97) = 3.
  const std::vector<UsageGroup> want = {percentiles("m-alpha", 50, 300, 300),
                                        percentiles("m-zeta", 100, 150, 150)};
  ExpectPercentiles(reference_aggregate(records, {}, UsageGroupBy::kModel), want);
  ExpectPercentiles(s().aggregate_usage({}, UsageGroupBy::kModel), want);
  // Filters apply to the percentiles too: key-x has r1, r2 (m-zeta 100, m-alpha 300), r5.
  ExpectPercentiles(s().aggregate_usage({.vkey_id = key_x.id}, UsageGroupBy::kModel),
                    {percentiles("m-alpha", 10, 300, 300), percentiles("m-zeta", 100, 100, 100)});
  ExpectPercentiles(s().aggregate_usage({.since = t0 + 3000}, UsageGroupBy::kConnection),
                    {percentiles("conn-b", 20, 150, 150)});  // 10, 20, 50, 150
}

TEST_P(UsageAggregates, LimitIsIgnored) {
  ExpectGroups(s().aggregate_usage({.limit = 1}, UsageGroupBy::kModel),
               s().aggregate_usage({}, UsageGroupBy::kModel));
  EXPECT_EQ(s().aggregate_usage({.limit = 1}, UsageGroupBy::kModel).size(), 2u);
}

TEST_P(StoreConformance, UsageAggregateByDayUsesUtcDays) {
  struct Row {
    TimeMs ts;
    int status;
    double latency;
  };
  const Row rows[] = {
      {utc(2025, 12, 31, 23, 59, 59, 999), 200, 10},
      {utc(2026, 1, 1), 500, 20},
      {utc(2026, 1, 2, 9), 200, 30},
      {utc(2026, 1, 2, 23, 59, 59), 404, 40},
      {utc(2026, 1, 3), 200, 50},
      {utc(2026, 3, 5, 12), 200, 60},
  };
  std::vector<UsageRecord> in;
  int i = 0;
  for (const Row& row : rows) {
    UsageRecord r = usage(row.ts, "d" + std::to_string(i++));
    r.status = row.status;
    r.latency_ms = row.latency;
    r.prompt_tokens = 1;
    r.completion_tokens = 2;
    r.cost = 0.5;
    in.push_back(r);
  }
  s().insert_usage(in);

  const std::vector<UsageGroup> want = {
      group("2025-12-31", 1, 0, 1, 2, 0.5, 10), group("2026-01-01", 1, 1, 1, 2, 0.5, 20),
      group("2026-01-02", 2, 1, 2, 4, 1.0, 35), group("2026-01-03", 1, 0, 1, 2, 0.5, 50),
      group("2026-03-05", 1, 0, 1, 2, 0.5, 60)};
  ExpectGroups(reference_aggregate(in, {}, UsageGroupBy::kDay), want);
  // Whatever the local time zone is.
  for (const char* tz : {"UTC0", "XXX-14", "YYY+12"}) {
    SCOPED_TRACE(std::string("TZ=") + tz);
    ScopedTimeZone zone(tz);
    ExpectGroups(s().aggregate_usage({}, UsageGroupBy::kDay), want);
  }
  // Filters apply: since is inclusive, until exclusive.
  ExpectGroups(
      s().aggregate_usage({.since = utc(2026, 1, 2, 23, 59, 59), .until = utc(2026, 3, 5, 12)},
                          UsageGroupBy::kDay),
      {group("2026-01-02", 1, 1, 1, 2, 0.5, 40), group("2026-01-03", 1, 0, 1, 2, 0.5, 50)});
}

TEST_P(StoreConformance, UsageAggregatesMatchReferenceOnLargeBatch) {
  UsageWorld w = make_usage_world(500);
  const TimeMs day2 = utc(2026, 1, 2, 6), day4 = utc(2026, 1, 4, 18);
  std::vector<UsageQuery> all_keys = {
      {}, {.since = day2}, {.until = day4}, {.since = day2, .until = day4}};
  std::vector<UsageQuery> one_key = {{.vkey_id = w.keys[0].id},
                                     {.vkey_id = w.keys[1].id, .since = day2, .until = day4}};
  for (UsageGroupBy by :
       {UsageGroupBy::kDay, UsageGroupBy::kModel, UsageGroupBy::kKey, UsageGroupBy::kConnection}) {
    for (std::size_t i = 0; i < all_keys.size(); ++i) {
      SCOPED_TRACE("group by " + std::to_string(static_cast<int>(by)) + ", query " +
                   std::to_string(i));
      ExpectGroups(s().aggregate_usage(all_keys[i], by),
                   reference_aggregate(w.records, all_keys[i], by));
      ExpectPercentiles(s().aggregate_usage(all_keys[i], by),
                        reference_aggregate(w.records, all_keys[i], by));
    }
  }
  // Master-key records have no assignment, so group by assignment only where
  // every record has one.
  for (UsageGroupBy by : {UsageGroupBy::kAssignment, UsageGroupBy::kDay, UsageGroupBy::kModel}) {
    for (std::size_t i = 0; i < one_key.size(); ++i) {
      SCOPED_TRACE("group by " + std::to_string(static_cast<int>(by)) + ", key query " +
                   std::to_string(i));
      ExpectGroups(s().aggregate_usage(one_key[i], by),
                   reference_aggregate(w.records, one_key[i], by));
      ExpectPercentiles(s().aggregate_usage(one_key[i], by),
                        reference_aggregate(w.records, one_key[i], by));
    }
  }
}

TEST_P(StoreConformance, UsageLatencyPercentilesAreNearestRank) {
  // Per model, latencies inserted in shuffled order; expected values worked
  // out by hand from rank k = ceil(p * n / 100).
  std::map<std::string, std::vector<double>> by_model;
  for (int i = 1; i <= 100; ++i) by_model["hundred"].push_back(i);       // ranks 50, 95, 99
  for (int i = 1; i <= 101; ++i) by_model["hundred-one"].push_back(i);   // ranks 51, 96, 100
  for (int i = 1; i <= 20; ++i) by_model["twenty"].push_back(i + 0.25);  // ranks 10, 19, 20
  by_model["single"] = {7.5};
  by_model["ties"] = {5, 5, 100, 5, 5};                                       // ranks 3, 5, 5
  for (int i = 1; i <= 200; ++i) by_model["two-hundred"].push_back(i * 0.5);  // ranks 100, 190, 198
  const std::vector<UsageGroup> want = {
      percentiles("hundred", 50, 95, 99),         percentiles("hundred-one", 51, 96, 100),
      percentiles("single", 7.5, 7.5, 7.5),       percentiles("ties", 5, 100, 100),
      percentiles("twenty", 10.25, 19.25, 20.25), percentiles("two-hundred", 50, 95, 99)};

  std::vector<UsageRecord> records;
  for (const auto& [name, latencies] : by_model) {
    for (double latency : latencies) {
      UsageRecord r = usage(utc(2026, 4, 1) + static_cast<TimeMs>(records.size()) * 1000,
                            "p" + std::to_string(records.size()));
      r.model = name;
      r.latency_ms = latency;
      records.push_back(r);
    }
  }
  std::mt19937 rng(7);
  std::shuffle(records.begin(), records.end(), rng);
  s().insert_usage(records);

  ExpectPercentiles(reference_aggregate(records, {}, UsageGroupBy::kModel), want);
  ExpectPercentiles(s().aggregate_usage({}, UsageGroupBy::kModel), want);
  // One day: one group of all 427 latencies, ranked together.
  std::vector<UsageGroup> day = s().aggregate_usage({}, UsageGroupBy::kDay);
  ExpectPercentiles(day, reference_aggregate(records, {}, UsageGroupBy::kDay));
  ASSERT_EQ(day.size(), 1u);
  EXPECT_EQ(day[0].requests, 427);
}

// ===========================================================================
// Admin users

TEST_P(StoreConformance, AdminUserRoundTripsEveryField) {
  AdminUser u = admin_user("root", AdminRole::kViewer);
  u.id = s().insert_admin_user(u);
  EXPECT_GT(u.id, 0);
  EXPECT_EQ(s().find_admin_user("root"), u);
  ASSERT_EQ(s().list_admin_users(), std::vector<AdminUser>{u});
  // The hash comes back byte for byte.
  EXPECT_EQ(s().find_admin_user("root")->password_hash, u.password_hash);
}

TEST_P(StoreConformance, AdminUserInsertSetsTimestampsWhenZeroAndIgnoresId) {
  const TimeMs before = wall_now();
  AdminUser u = admin_user("stamped");
  u.id = 4242;
  u.created_at = 0;
  u.updated_at = 0;
  Id id = s().insert_admin_user(u);
  EXPECT_NE(id, 4242);
  auto got = s().find_admin_user("stamped");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, id);
  EXPECT_GE(got->created_at, before);
  EXPECT_LE(got->created_at, wall_now());
  EXPECT_EQ(got->updated_at, got->created_at);
}

TEST_P(StoreConformance, AdminUserListIsOrderedByUsernameBytes) {
  // Distinct ids in another order; usernames are case-sensitive.
  std::set<Id> ids;
  for (const char* name : {"zed", "bob", "Bob", "alice", "al.ice@example.com", "_x"})
    ids.insert(s().insert_admin_user(admin_user(name)));
  EXPECT_EQ(ids.size(), 6u);
  std::vector<std::string> names;
  for (const AdminUser& u : s().list_admin_users()) names.push_back(u.username);
  EXPECT_EQ(names,
            (std::vector<std::string>{"Bob", "_x", "al.ice@example.com", "alice", "bob", "zed"}));
  EXPECT_EQ(s().find_admin_user("BOB"), std::nullopt);
  EXPECT_EQ(s().find_admin_user("Bob")->username, "Bob");
}

TEST_P(StoreConformance, AdminUserDuplicateUsernameIsConflict) {
  AdminUser u = admin_user("dup");
  u.id = s().insert_admin_user(u);
  AdminUser again = admin_user("dup", AdminRole::kViewer);
  again.password_hash = "pbkdf2-sha256$600000$b3RoZXI=$b3RoZXI=";
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().insert_admin_user(again); }));
  EXPECT_EQ(s().list_admin_users(), std::vector<AdminUser>{u}) << "the first one is untouched";
}

TEST_P(StoreConformance, AdminUserUpdateChangesRoleHashAndName) {
  AdminUser u = add_admin(admin_user("before"));
  AdminUser other = add_admin(admin_user("other"));
  u.role = AdminRole::kViewer;
  u.password_hash = "pbkdf2-sha256$700000$bmV3LXNhbHQ=$bmV3LWhhc2g+Lw==";
  const TimeMs since = wall_now();
  s().update_admin_user(u);
  auto got = s().find_admin_user("before");
  ASSERT_TRUE(Updated(got, u, since));
  EXPECT_GE(got->updated_at, since) << "updated_at is the time of the update";
  EXPECT_EQ(got->created_at, kCreated);

  u.username = "after";
  s().update_admin_user(u);
  EXPECT_EQ(s().find_admin_user("before"), std::nullopt);
  ASSERT_TRUE(Updated(s().find_admin_user("after"), u, since));
  EXPECT_EQ(s().find_admin_user("other"), other);
}

TEST_P(StoreConformance, AdminUserUpdateToTakenUsernameIsConflict) {
  AdminUser a = add_admin(admin_user("a"));
  AdminUser b = add_admin(admin_user("b"));
  AdminUser renamed = b;
  renamed.username = "a";
  EXPECT_TRUE(Throws(ErrorKind::kConflict, [&] { s().update_admin_user(renamed); }));
  EXPECT_EQ(s().list_admin_users(), (std::vector<AdminUser>{a, b}));
}

TEST_P(StoreConformance, AdminUserUpdateOfMissingIdIsNotFound) {
  AdminUser u = add_admin(admin_user("present"));
  AdminUser ghost = admin_user("ghost");
  ghost.id = u.id + 1000;
  EXPECT_TRUE(Throws(ErrorKind::kNotFound, [&] { s().update_admin_user(ghost); }));
  EXPECT_EQ(s().find_admin_user("ghost"), std::nullopt);
  EXPECT_EQ(s().list_admin_users(), std::vector<AdminUser>{u});
}

TEST_P(StoreConformance, AdminUserDeleteReturnsTrueThenFalse) {
  AdminUser keep = add_admin(admin_user("keep"));
  AdminUser gone = add_admin(admin_user("gone"));
  EXPECT_TRUE(s().delete_admin_user(gone.id));
  EXPECT_FALSE(s().delete_admin_user(gone.id));
  EXPECT_EQ(s().find_admin_user("gone"), std::nullopt);
  EXPECT_EQ(s().list_admin_users(), std::vector<AdminUser>{keep});
  // The name is free again, under a new id.
  AdminUser back = add_admin(admin_user("gone"));
  EXPECT_NE(back.id, gone.id);
}

TEST_P(StoreConformance, AdminUserChangesAreNotConfigChanges) {
  const std::int64_t version = s().config_version();
  AdminUser u = add_admin(admin_user("quiet"));
  u.role = AdminRole::kViewer;
  s().update_admin_user(u);
  s().delete_admin_user(u.id);
  EXPECT_EQ(s().config_version(), version);
}

TEST_P(StoreConformance, AdminUsersRollBackWithTheTransaction) {
  AdminUser kept = add_admin(admin_user("kept"));
  EXPECT_THROW(s().transaction([&] {
    s().insert_admin_user(admin_user("rolled-back"));
    AdminUser changed = kept;
    changed.role = AdminRole::kViewer;
    s().update_admin_user(changed);
    throw TestAbort();
  }),
               TestAbort);
  EXPECT_EQ(s().list_admin_users(), std::vector<AdminUser>{kept});
}

TEST_P(StoreConformance, AdminUsersSurviveReopenAndAreSeenByAnotherStore) {
  AdminUser u = add_admin(admin_user("persistent"));
  auto second = open_again();
  EXPECT_EQ(second->find_admin_user("persistent"), u);
  store_.reset();
  store_ = open_again();
  EXPECT_EQ(s().list_admin_users(), std::vector<AdminUser>{u});
}

// ===========================================================================
// Secrets at rest

// Reads the SQLite database file and its journals as raw bytes.
std::string read_sqlite_files(const std::string& path) {
  std::string bytes;
  for (const char* suffix : {"", "-wal", "-journal"}) {
    std::ifstream in(path + suffix, std::ios::binary);
    if (!in) continue;
    bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return bytes;
}

TEST_P(StoreConformance, SqliteOnly_SecretsAreNotStoredInPlaintextInTheFile) {
  if (backend_name() != "sqlite") {
    GTEST_SKIP() << "reads the SQLite database file; does not apply to " << backend_name();
  }
  Connection c = full_connection("at-rest-conn");
  c.api_key = "sk-live-SECRET-1234567890";
  c.secret_access_key = "AWS-SECRET-ACCESS-KEY-0987654321";
  c.session_token = "AWS-SESSION-TOKEN-5555555555";
  c.headers = {{"X-Api-Key", "HEADER-SECRET-4242424242"}};
  c = add(c);
  // Secrets written by an update are sealed too.
  Connection u = add(connection("updated-conn"));
  u.api_key = "sk-live-UPDATED-1122334455";
  const TimeMs since = wall_now();
  s().update_connection(u);
  ASSERT_EQ(s().get_connection(c.id), c);
  ASSERT_TRUE(Updated(s().get_connection(u.id), u, since));
  store_.reset();  // closed, so everything is in the file

  const std::string bytes = read_sqlite_files(db_.location.target);
  // Sanity: this is the file the data went to.
  ASSERT_NE(bytes.find("at-rest-conn"), std::string::npos);
  ASSERT_NE(bytes.find("updated-conn"), std::string::npos);
  EXPECT_EQ(bytes.find("sk-live-SECRET-1234567890"), std::string::npos) << "api_key";
  EXPECT_EQ(bytes.find("AWS-SECRET-ACCESS-KEY-0987654321"), std::string::npos)
      << "secret_access_key";
  EXPECT_EQ(bytes.find("AWS-SESSION-TOKEN-5555555555"), std::string::npos) << "session_token";
  EXPECT_EQ(bytes.find("HEADER-SECRET-4242424242"), std::string::npos) << "header value";
  EXPECT_EQ(bytes.find("sk-live-UPDATED-1122334455"), std::string::npos) << "updated api_key";
}

TEST_P(StoreConformance, SecretsCannotBeReadWithAnotherSecret) {
  Connection c = full_connection("locked");
  c.api_key = "sk-live-SECRET-1234567890";
  c = add(c);
  store_.reset();

  store_ = open_again("a-different-secret");
  EXPECT_TRUE(Throws(ErrorKind::kStorage, [&] { s().get_connection(c.id); }));
  EXPECT_TRUE(Throws(ErrorKind::kStorage, [&] { s().find_connection("locked"); }));
  EXPECT_TRUE(Throws(ErrorKind::kStorage, [&] { s().list_connections(); }));
  EXPECT_TRUE(Throws(ErrorKind::kStorage, [&] { s().load_config(); }));
  store_.reset();

  // The right secret still opens everything.
  store_ = open_again();
  EXPECT_EQ(s().get_connection(c.id), c);
}

std::string backend_test_name(const ::testing::TestParamInfo<conf::BackendFactory>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance,
                         ::testing::ValuesIn(conf::conformance_backends()), backend_test_name);
INSTANTIATE_TEST_SUITE_P(Backends, UsageAggregates,
                         ::testing::ValuesIn(conf::conformance_backends()), backend_test_name);

// ===========================================================================
// Not per backend

TEST(ConformanceHelpers, UtcTimesAreEpochMilliseconds) {
  EXPECT_EQ(utc(2026, 1, 1), 1'767'225'600'000);
  EXPECT_EQ(utc(1970, 1, 1, 0, 0, 1, 5), 1005);
  EXPECT_EQ(utc_day(utc(2026, 1, 2, 23, 59, 59, 999)), "2026-01-02");
  EXPECT_EQ(utc_day(utc(2026, 1, 3)), "2026-01-03");
}

TEST(OpenStore, UnknownBackendIsInvalid) {
  EXPECT_TRUE(Throws(ErrorKind::kInvalid, [] { open_store({"cassandra", "whatever"}); }));
}

TEST(OpenStore, UnreachableSqliteFileIsStorageError) {
  conf::reset_test_secret();
  auto backends = conf::conformance_backends();
  auto sqlite = std::find_if(backends.begin(), backends.end(),
                             [](const conf::BackendFactory& b) { return b.name == "sqlite"; });
  ASSERT_NE(sqlite, backends.end());
  conf::TestDatabase db = sqlite->create();
  // A path below a regular file can never be created.
  const std::string blocker = std::filesystem::path(db.location.target).parent_path() / "file";
  std::ofstream(blocker) << "not a directory";
  EXPECT_TRUE(Throws(ErrorKind::kStorage, [&] { open_store({"sqlite", blocker + "/test.db"}); }));
  db.cleanup();
}

}  // namespace
}  // namespace llmproxy::storage
