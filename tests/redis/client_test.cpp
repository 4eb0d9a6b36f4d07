// lib/redis/client.h against real redis-server processes (tests/redis/redis_server.h)
// and, for what a real server will not do on demand (accept and never answer),
// a black hole: an Asio acceptor in the test that accepts and then says nothing.
#include "lib/redis/client.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/redis/redis_server.h"

namespace llmproxy::redis {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tcp = net::ip::tcp;
using test::RedisServer;
using test::ServerOptions;

Url must_parse(const std::string& text) {
  std::string error;
  auto url = parse_url(text, error);
  if (!url) throw std::runtime_error(error);
  return *url;
}

// Runs the loop until `done()` (at most `limit`: a test that hangs fails).
template <class Pred>
void run_until(net::io_context& ioc, Pred done, std::chrono::milliseconds limit = 20s) {
  auto deadline = Clock::now() + limit;
  ioc.restart();
  while (!done()) {
    if (Clock::now() > deadline) throw std::runtime_error("timed out waiting for a condition");
    ioc.run_one_for(20ms);
  }
}

// Runs `coro` on `ioc` to its end; rethrows what it threw.
template <class T>
T run(net::io_context& ioc, net::awaitable<T> coro) {
  std::optional<T> value;
  std::exception_ptr error;
  bool finished = false;
  net::co_spawn(ioc, std::move(coro), [&](std::exception_ptr e, T v) {
    error = e;
    if (!e) value = std::move(v);
    finished = true;
  });
  run_until(ioc, [&] { return finished; });
  if (error) std::rethrow_exception(error);
  return std::move(*value);
}

Result run_command(net::io_context& ioc, Client& client, Command cmd) {
  return run(ioc, client.command(std::move(cmd)));
}

// The reply; a transport failure ends the test with its message.
Reply must_reply(net::io_context& ioc, Client& client, Command cmd) {
  Result r = run_command(ioc, client, std::move(cmd));
  if (r.failed()) throw std::runtime_error("transport failure: " + r.failure_message());
  return std::move(r.reply());
}

// Timeouts for the tests that are not about timeouts: long enough for a
// loaded machine running the sanitizer build in parallel with other tests.
Options patient() {
  Options o;
  o.connect_timeout = 5s;
  o.command_timeout = 10s;
  return o;
}

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

ServerOptions with_password(std::string password, std::string user = "") {
  ServerOptions o;
  o.password = std::move(password);
  o.user = std::move(user);
  return o;
}

RedisServer& shared_server() {
  static RedisServer server;  // killed at exit
  return server;
}

// Accepts connections and never answers (nor reads).
struct BlackHole {
  explicit BlackHole(net::io_context& ioc)
      : acceptor(ioc, tcp::endpoint(net::ip::address_v4::loopback(), 0)) {
    accept();
  }
  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      ++accepted;
      held.push_back(std::move(s));
      accept();
    });
  }
  std::string url(const char* scheme = "redis") const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  }
  tcp::acceptor acceptor;
  std::vector<tcp::socket> held;
  int accepted = 0;
};

// ---- URLs ---------------------------------------------------------------------

TEST(RedisUrl, ParsesTheParts) {
  Url u = must_parse("redis://localhost");
  EXPECT_FALSE(u.tls);
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
  EXPECT_TRUE(u.user.empty());
  EXPECT_TRUE(u.password.empty());
  EXPECT_EQ(u.describe(), "redis://localhost:6379/0");

  u = must_parse("rediss://limits:p%40ss:w@cache.example:7000/3?cacert=/etc/x%20y/ca.pem");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.user, "limits");
  EXPECT_EQ(u.password, "p@ss:w");
  EXPECT_EQ(u.host, "cache.example");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(u.cacert, "/etc/x y/ca.pem");
  EXPECT_EQ(u.describe(), "rediss://limits@cache.example:7000/3");

  u = must_parse("REDIS://:pw@[::1]:6380/");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.describe(), "redis://[::1]:6380/0");

  u = must_parse("redis://:a@b@h/1");  // a password with an unencoded '@'
  EXPECT_EQ(u.password, "a@b");
  EXPECT_EQ(u.host, "h");
}

TEST(RedisUrl, RefusesWhatIsNotOneWithoutShowingThePassword) {
  for (const char* bad :
       {"http://h", "redis://", "redis://:hunter2@", "redis://:hunter2@h:0",
        "redis://:hunter2@h:70000", "redis://:hunter2@h:port", "redis://:hunter2@h/db1",
        "redis://:hunter2@h/-1", "redis://:hunter2@h?cacert=/ca.pem",
        "rediss://:hunter2@h?verify=no", "rediss://:hunter2@h?cacert=", "redis://hunter2@h",
        "redis://:hunter2%zz@h", "redis://:hunter2@::1:6379", "redis://:hunter2@[::1"}) {
    std::string error;
    EXPECT_FALSE(parse_url(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
    EXPECT_EQ(error.find("hunter2"), std::string::npos) << bad << " → " << error;
  }
}

// ---- commands and replies -------------------------------------------------------

TEST(RedisClient, RepliesOfEveryType) {
  RedisServer& server = shared_server();
  net::io_context ioc;
  Client client(ioc, must_parse(server.url(1)), patient());
  run_command(ioc, client, {"FLUSHDB"});

  Reply r = must_reply(ioc, client, {"SET", "k", "v"});
  EXPECT_EQ(r.type, Reply::Type::kStatus);
  EXPECT_EQ(r.str, "OK");
  EXPECT_TRUE(run_command(ioc, client, {"SET", "k", "v"}).ok());

  r = must_reply(ioc, client, {"GET", "k"});
  EXPECT_EQ(r.type, Reply::Type::kString);
  EXPECT_EQ(r.str, "v");

  EXPECT_TRUE(must_reply(ioc, client, {"GET", "missing"}).is_nil());

  r = must_reply(ioc, client, {"INCRBY", "n", "41"});
  EXPECT_EQ(r.type, Reply::Type::kInteger);
  EXPECT_EQ(r.integer, 41);

  r = must_reply(ioc, client, {"LRANGE", "nothing", "0", "-1"});
  EXPECT_EQ(r.type, Reply::Type::kArray);
  EXPECT_TRUE(r.elements.empty());

  Result error = run_command(ioc, client, {"NOSUCHCOMMAND", "x"});
  ASSERT_TRUE(error.has_reply()) << error.to_string();  // an error reply is a reply
  EXPECT_TRUE(error->is_error());
  EXPECT_FALSE(error.ok());
  EXPECT_EQ(error->error_code(), "ERR");
  EXPECT_EQ(must_reply(ioc, client, {"LPUSH", "k", "x"}).error_code(), "WRONGTYPE");

  r = must_reply(ioc, client,
                 {"EVAL", "return {1, {2, 'x', {}}, redis.status_reply('FINE'), false}", "0"});
  EXPECT_EQ(r.to_string(), "[1, [2, \"x\", []], +FINE, nil]");

  // Binary-safe, and large enough to take several reads and writes.
  std::string binary("a\0b\r\nc$3\r\n", 11);
  std::string big(3 * 1024 * 1024 + 7, 'z');
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  EXPECT_TRUE(run_command(ioc, client, {"SET", "bin", binary}).ok());
  EXPECT_TRUE(run_command(ioc, client, {"SET", "big", big}).ok());
  EXPECT_EQ(must_reply(ioc, client, {"GET", "bin"}).str, binary);
  EXPECT_EQ(must_reply(ioc, client, {"GET", "big"}).str, big);

  // The other ways to give arguments.
  std::vector<std::string> strings{"GET", "k"};
  std::vector<std::string_view> views{"GET", "k"};
  EXPECT_EQ(run(ioc, client.command(strings))->str, "v");
  EXPECT_EQ(run(ioc, client.command(views))->str, "v");

  EXPECT_EQ(client.state(), Client::State::kConnected);
  EXPECT_TRUE(client.healthy());
  EXPECT_EQ(client.stats().connect_attempts, 1u);
  EXPECT_EQ(client.stats().connections, 1u);
  EXPECT_EQ(client.stats().transport_failures, 0u);
}

TEST(RedisClient, EmptyCommandOrNoHostFailsWithoutTouchingTheNetwork) {
  net::io_context ioc;
  Client client(ioc, must_parse(shared_server().url()), patient());
  Result r = run(ioc, client.command(std::vector<std::string>{}));
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(client.stats().connect_attempts, 0u);
  EXPECT_EQ(client.state(), Client::State::kIdle);

  Client nowhere(ioc, Url{});
  r = run(ioc, nowhere.command("PING"));
  ASSERT_TRUE(r.failed());
  EXPECT_NE(r.failure_message().find("no Redis host"), std::string::npos) << r.failure_message();
  EXPECT_EQ(nowhere.stats().connect_attempts, 0u);
  EXPECT_FALSE(nowhere.healthy());
}

net::awaitable<void> set_get_incr(Client& client, int i, int& good) {
  std::string key = "pipelined:" + std::to_string(i);
  std::string value = std::string(static_cast<std::size_t>(i % 7) * 1000, 'x') + std::to_string(i);
  Result set = co_await client.command("SET", key, value);
  Result get = co_await client.command("GET", key);
  Result incr = co_await client.command("INCRBY", "pipelined:total", std::to_string(i));
  if (set.ok() && get.ok() && get->str == value && incr->type == Reply::Type::kInteger)
    ++good;
  else
    ADD_FAILURE() << i << ": " << set.to_string() << " " << get.to_string();
}

TEST(RedisClient, PipelinesConcurrentCommandsAndMatchesTheirReplies) {
  RedisServer& server = shared_server();
  server.command({"DEL", "pipelined:total"});
  net::io_context ioc;
  Client client(ioc, must_parse(server.url()), patient());
  constexpr int kCoroutines = 400;
  int good = 0;
  // All issued before the connection exists, then more while it is up.
  for (int i = 0; i < kCoroutines / 2; ++i)
    net::co_spawn(ioc, set_get_incr(client, i, good), net::detached);
  EXPECT_EQ(client.state(), Client::State::kIdle);  // nothing ran yet
  run_until(ioc, [&] { return client.state() == Client::State::kConnected; });
  for (int i = kCoroutines / 2; i < kCoroutines; ++i)
    net::co_spawn(ioc, set_get_incr(client, i, good), net::detached);
  run_until(ioc, [&] { return good == kCoroutines || ::testing::Test::HasFailure(); });
  EXPECT_EQ(good, kCoroutines);
  EXPECT_EQ(server.command({"GET", "pipelined:total"}),
            std::to_string(kCoroutines * (kCoroutines - 1) / 2));
  EXPECT_EQ(client.stats().connect_attempts, 1u);
  EXPECT_EQ(client.stats().commands, 3u * kCoroutines);
  EXPECT_EQ(client.pending(), 0u);
}

TEST(RedisClient, CallbackFormInOrderAndFireAndForget) {
  RedisServer& server = shared_server();
  net::io_context ioc;
  Client client(ioc, must_parse(server.url()), patient());
  client.send({"SET", "cb:k", "1"});  // no callback
  std::vector<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    client.send({"INCR", "cb:k"},
                [&seen, i](Result r) { seen.push_back(std::to_string(i) + "=" + r.to_string()); });
  }
  run_until(ioc, [&] { return seen.size() == 50; });
  for (int i = 0; i < 50; ++i) EXPECT_EQ(seen[i], std::to_string(i) + "=" + std::to_string(i + 2));
}

TEST(RedisClient, AnExceptionFromACallbackLeavesTheLoopAndTheClientWorks) {
  net::io_context ioc;
  Client client(ioc, must_parse(shared_server().url()), patient());
  bool second = false;
  client.send({"PING"}, [](Result) { throw std::runtime_error("from a callback"); });
  client.send({"PING"}, [&](Result r) { second = r.ok(); });
  EXPECT_THROW(run_until(
                   ioc, [] { return false; }, 5s),
               std::runtime_error);
  run_until(ioc, [&] { return second; });
  EXPECT_EQ(must_reply(ioc, client, {"ECHO", "still"}).str, "still");
}

// ---- AUTH, ACL users, SELECT ------------------------------------------------------

TEST(RedisClient, PasswordRightAndWrong) {
  const std::string password = "pw:8f3a@1/c?77%";  // percent-encoded in the URL
  RedisServer server(with_password(password));
  net::io_context ioc;

  Client right(ioc, must_parse(server.url()), patient());
  EXPECT_EQ(must_reply(ioc, right, {"PING"}).str, "PONG");

  std::vector<std::string> changes;
  Options options = patient();
  options.on_state_change = [&](bool up, const std::string& why) {
    changes.push_back((up ? "up: " : "down: ") + why);
  };
  std::string wrong_password = "not-the-pw-8f3a";
  Client wrong(
      ioc, must_parse("redis://:" + wrong_password + "@127.0.0.1:" + std::to_string(server.port())),
      options);
  Result r = run_command(ioc, wrong, {"PING"});
  ASSERT_TRUE(r.failed()) << r.to_string();
  EXPECT_NE(r.failure_message().find("AUTH failed: WRONGPASS"), std::string::npos)
      << r.failure_message();
  EXPECT_EQ(r.failure_message().find(wrong_password), std::string::npos);
  EXPECT_EQ(r.failure_message().find(password), std::string::npos);
  EXPECT_FALSE(wrong.healthy());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].find(password), std::string::npos);

  // No password at all: the server's own refusal, as a reply.
  Client none(ioc, must_parse(server.url_without_auth()), patient());
  EXPECT_EQ(must_reply(ioc, none, {"GET", "k"}).error_code(), "NOAUTH");
  EXPECT_TRUE(none.healthy());
}

TEST(RedisClient, AclUser) {
  RedisServer server(with_password("user-pw-1", "limits"));
  net::io_context ioc;
  Client client(ioc, must_parse(server.url()), patient());
  EXPECT_EQ(must_reply(ioc, client, {"ACL", "WHOAMI"}).str, "limits");

  Client wrong(ioc,
               must_parse("redis://limits:other-pw@127.0.0.1:" + std::to_string(server.port())));
  Result r = run_command(ioc, wrong, {"ACL", "WHOAMI"});
  ASSERT_TRUE(r.failed());
  EXPECT_NE(r.failure_message().find("AUTH failed"), std::string::npos);
  EXPECT_EQ(r.failure_message().find("other-pw"), std::string::npos);
}

TEST(RedisClient, SelectsTheDatabase) {
  RedisServer& server = shared_server();
  net::io_context ioc;
  Client client(ioc, must_parse(server.url(5)), patient());
  run_command(ioc, client, {"SET", "in-db-5", "yes"});
  EXPECT_NE(must_reply(ioc, client, {"CLIENT", "INFO"}).str.find(" db=5 "), std::string::npos);
  EXPECT_EQ(server.command({"EXISTS", "in-db-5"}), "0");
  server.command({"SELECT", "5"});
  EXPECT_EQ(server.command({"GET", "in-db-5"}), "yes");
  server.command({"SELECT", "0"});

  Client bad(ioc, must_parse(server.url(99)), patient());
  Result r = run_command(ioc, bad, {"PING"});
  ASSERT_TRUE(r.failed());
  EXPECT_NE(r.failure_message().find("SELECT failed"), std::string::npos) << r.failure_message();
}

// ---- TLS ------------------------------------------------------------------------------

TEST(RedisClient, TlsWithATestCa) {
  ServerOptions tls = with_password("tls-pw");
  tls.tls = true;
  RedisServer server(tls);
  net::io_context ioc;

  Client client(ioc, must_parse(server.url(2)),
                patient());  // rediss://:tls-pw@127.0.0.1:port/2?cacert=…
  EXPECT_EQ(must_reply(ioc, client, {"PING"}).str, "PONG");
  EXPECT_EQ(must_reply(ioc, client, {"SET", "over-tls", std::string(200000, 't')}).str, "OK");
  EXPECT_NE(must_reply(ioc, client, {"CLIENT", "INFO"}).str.find(" db=2 "), std::string::npos);

  // A host name: SNI and the certificate's DNS name; the CA from the options.
  Options with_ca = patient();
  with_ca.ca_file = server.ca_file();
  Client by_name(ioc,
                 must_parse("rediss://:tls-pw@localhost:" + std::to_string(server.port()) + "/2"),
                 with_ca);
  EXPECT_EQ(must_reply(ioc, by_name, {"STRLEN", "over-tls"}).integer, 200000);

  // Without the test CA, the system store does not know the server.
  Client untrusted(ioc, must_parse("rediss://:tls-pw@127.0.0.1:" + std::to_string(server.port())),
                   patient());
  Result r = run_command(ioc, untrusted, {"PING"});
  ASSERT_TRUE(r.failed());
  EXPECT_NE(r.failure_message().find("TLS handshake failed"), std::string::npos)
      << r.failure_message();
  EXPECT_NE(r.failure_message().find("certificate"), std::string::npos) << r.failure_message();

  // A CA file that is not there: every command says so.
  Client missing(ioc, must_parse(server.url() + "-missing"));
  r = run_command(ioc, missing, {"PING"});
  ASSERT_TRUE(r.failed());
  EXPECT_NE(r.failure_message().find("CA file"), std::string::npos) << r.failure_message();
  EXPECT_FALSE(missing.healthy());
}

// ---- scripts --------------------------------------------------------------------------

TEST(RedisClient, EvalShaLoadsTheScriptOnNoscript) {
  RedisServer& server = shared_server();
  server.command({"SCRIPT", "FLUSH"});
  server.command({"CONFIG", "RESETSTAT"});
  net::io_context ioc;
  Client client(ioc, must_parse(server.url()), patient());
  Script script("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}");
  EXPECT_EQ(Script("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  run_command(ioc, client, {"DEL", "script:n"});

  // Not loaded yet: EVALSHA, NOSCRIPT, SCRIPT LOAD + EVALSHA.
  Result r = run(ioc, client.eval(script, {"script:n"}, {"a"}));
  EXPECT_EQ(r.to_string(), "[\"script:n\", \"a\", 1]");
  EXPECT_EQ(server.calls("evalsha"), 2);
  EXPECT_EQ(server.calls("script|load"), 1);

  // Loaded: one EVALSHA.
  r = run(ioc, client.eval(script, {"script:n"}, {"b"}));
  EXPECT_EQ(r.to_string(), "[\"script:n\", \"b\", 2]");
  EXPECT_EQ(server.calls("evalsha"), 3);
  EXPECT_EQ(server.calls("script|load"), 1);

  // The cache flushed (as by a restart): once more the fallback, transparently.
  server.command({"SCRIPT", "FLUSH"});
  std::vector<std::string> keys{"script:n"}, args{"c"};
  r = run(ioc, client.eval(script, keys, args));
  EXPECT_EQ(r.to_string(), "[\"script:n\", \"c\", 3]");
  EXPECT_EQ(server.calls("script|load"), 2);

  // The callback form, after another flush; several at once.
  server.command({"SCRIPT", "FLUSH"});
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    client.send_eval(script, {"script:n"}, {std::to_string(i)},
                     [&](Result r) { seen.push_back(r.to_string()); });
  }
  run_until(ioc, [&] { return seen.size() == 3; });
  EXPECT_EQ(seen[0], "[\"script:n\", \"0\", 4]");
  EXPECT_EQ(seen[1], "[\"script:n\", \"1\", 5]");
  EXPECT_EQ(seen[2], "[\"script:n\", \"2\", 6]");

  // A script that does not compile: the load's error, not NOSCRIPT.
  r = run(ioc, client.eval(Script("return {"), {}, {}));
  ASSERT_TRUE(r.has_reply());
  EXPECT_TRUE(r->is_error());
  EXPECT_NE(r->str.find("compil"), std::string::npos) << r->str;
  // One that fails when it runs: its error.
  r = run(ioc, client.eval(Script("return redis.call('NOSUCHCOMMAND')"), {}, {}));
  ASSERT_TRUE(r.has_reply());
  EXPECT_TRUE(r->is_error()) << r.to_string();
  EXPECT_TRUE(client.healthy());
}

TEST(RedisClient, PreloadedScriptsAreLoadedOnEveryNewConnection) {
  RedisServer server;
  net::io_context ioc;
  Script script("return ARGV[1] .. '!'");
  Options options = patient();
  options.preload = {script, Script("return {")};  // one that does not compile: no harm
  Client client(ioc, must_parse(server.url()), options);
  EXPECT_EQ(run(ioc, client.eval(script, {}, {"a"}))->str, "a!");
  EXPECT_EQ(server.calls("evalsha"), 1);  // no NOSCRIPT
  EXPECT_EQ(server.calls("script|load"), 2);

  // The server restarts between commands (its script cache is empty): the
  // new connection loads them again, ahead of the EVALSHA.
  server.stop();
  run_until(ioc, [&] { return client.state() == Client::State::kIdle; });
  server.restart();
  EXPECT_EQ(run(ioc, client.eval(script, {}, {"b"}))->str, "b!");
  EXPECT_EQ(server.calls("evalsha"), 1);
  EXPECT_EQ(server.calls("script|load"), 2);
  EXPECT_EQ(client.stats().commands, 2u);  // the loads are not the caller's commands
}

// ---- timeouts, failures, backoff -------------------------------------------------------

TEST(RedisClient, NoReplyTimesOutAndFailsEverythingPending) {
  net::io_context ioc;
  BlackHole hole(ioc);
  Options options;
  options.command_timeout = 200ms;
  options.retry_interval = 400ms;
  Client client(ioc, must_parse(hole.url()), options);

  std::vector<std::pair<Result, std::chrono::milliseconds>> results;
  auto start = Clock::now();
  for (int i = 0; i < 3; ++i)
    client.send({"PING"}, [&](Result r) { results.emplace_back(std::move(r), since(start)); });
  run_until(ioc, [&] { return results.size() == 3; });
  for (auto& [r, elapsed] : results) {
    EXPECT_TRUE(r.failed());
    EXPECT_NE(r.failure_message().find("no reply within 200 ms"), std::string::npos)
        << r.failure_message();
    EXPECT_GE(elapsed, 195ms);
    EXPECT_LT(elapsed, 1500ms);  // ~200 ms; the margin is for a loaded machine
  }
  EXPECT_EQ(hole.accepted, 1);
  EXPECT_FALSE(client.healthy());
  EXPECT_EQ(client.state(), Client::State::kDown);

  // Backing off: immediate failures, no connect attempt.
  ASSERT_TRUE(client.backing_off());
  auto before = Clock::now();
  for (int i = 0; i < 100; ++i) {
    Result r = run_command(ioc, client, {"PING"});
    EXPECT_TRUE(r.failed());
  }
  EXPECT_LT(since(before), 1s);  // in practice ~1 ms: nothing leaves the process
  EXPECT_EQ(client.stats().connect_attempts, 1u);
  EXPECT_EQ(client.stats().transport_failures, 103u);

  // After the interval, the next command connects again (and times out again).
  run_until(ioc, [&] { return !client.backing_off(); });
  Result r = run_command(ioc, client, {"PING"});
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(client.stats().connect_attempts, 2u);
  run_until(ioc, [&] { return hole.accepted == 2; });
}

TEST(RedisClient, TlsHandshakeWithASilentServerTimesOut) {
  net::io_context ioc;
  BlackHole hole(ioc);
  Options options;
  options.connect_timeout = 150ms;
  options.command_timeout = 5s;
  Client client(ioc, must_parse(hole.url("rediss")), options);
  auto start = Clock::now();
  Result r = run_command(ioc, client, {"PING"});
  auto elapsed = since(start);
  ASSERT_TRUE(r.failed());
  EXPECT_NE(r.failure_message().find("timed out connecting (150 ms)"), std::string::npos)
      << r.failure_message();
  EXPECT_GE(elapsed, 145ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST(RedisClient, SlowServerTimesOutAndALateReplyIsNotMistakenForAnother) {
  RedisServer server;
  net::io_context ioc;
  Options options;
  options.command_timeout = 300ms;
  options.retry_interval = 300ms;
  Client client(ioc, must_parse(server.url()), options);
  must_reply(ioc, client, {"SET", "slow", "value"});
  long long connections = server.connections_received();

  auto start = Clock::now();
  Result r = run_command(ioc, client, {"DEBUG", "SLEEP", "1.5"});
  EXPECT_TRUE(r.failed());
  EXPECT_NE(r.failure_message().find("no reply within 300 ms"), std::string::npos)
      << r.failure_message();
  EXPECT_LT(since(start), 1400ms);  // ~300 ms; before the server wakes up in any case
  EXPECT_TRUE(client.backing_off());
  EXPECT_TRUE(run_command(ioc, client, {"GET", "slow"}).failed());

  // Once the server answers again, each reply is its own command's: the late
  // +OK went to the connection the timeout closed.
  Client waiting(ioc, must_parse(server.url()), patient());
  EXPECT_EQ(must_reply(ioc, waiting, {"GET", "slow"}).str, "value");
  run_until(ioc, [&] { return !client.backing_off(); });
  EXPECT_EQ(must_reply(ioc, client, {"GET", "slow"}).str, "value");
  EXPECT_EQ(client.stats().connect_attempts, 2u);
  EXPECT_EQ(server.connections_received(), connections + 2);  // client's second, waiting's
}

TEST(RedisClient, KilledServerFailsAtOnceBacksOffAndRecoversAfterARestart) {
  RedisServer server;
  net::io_context ioc;
  std::vector<std::string> changes;
  Options options;
  options.command_timeout = 10s;  // what fails below fails long before
  options.retry_interval = 300ms;
  options.on_state_change = [&](bool up, const std::string& why) {
    changes.push_back(std::string(up ? "up" : "down") + ": " + why);
  };
  Client client(ioc, must_parse(server.url()), options);
  EXPECT_EQ(must_reply(ioc, client, {"PING"}).str, "PONG");
  EXPECT_TRUE(changes.empty());  // healthy from the start: no news

  // A command pending when the server dies fails then, not at its timeout.
  std::optional<Result> blocked;
  client.send({"BLPOP", "never", "0"}, [&](Result r) { blocked = std::move(r); });
  run_until(ioc, [&] {
    return server.command({"CLIENT", "LIST", "TYPE", "normal"}).find("cmd=blpop") !=
           std::string::npos;
  });
  auto start = Clock::now();
  server.kill();
  run_until(ioc, [&] { return blocked.has_value(); });
  EXPECT_LT(since(start), 1s);
  ASSERT_TRUE(blocked->failed());
  EXPECT_NE(blocked->failure_message().find("redis://127.0.0.1:"), std::string::npos)
      << blocked->failure_message();
  EXPECT_FALSE(client.healthy());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].rfind("down: ", 0), 0u) << changes[0];

  // Down: every command fails at once, without a connection attempt.
  std::uint64_t attempts = client.stats().connect_attempts;
  start = Clock::now();
  for (int i = 0; i < 200; ++i) EXPECT_TRUE(run_command(ioc, client, {"PING"}).failed());
  EXPECT_LT(since(start), 1s);  // in practice ~1 ms
  EXPECT_EQ(client.stats().connect_attempts, attempts);

  // Still dead after the interval: one attempt (refused), then backing off again.
  run_until(ioc, [&] { return !client.backing_off(); });
  Result r = run_command(ioc, client, {"PING"});
  EXPECT_TRUE(r.failed());
  EXPECT_NE(r.failure_message().find("cannot connect"), std::string::npos) << r.failure_message();
  EXPECT_EQ(client.stats().connect_attempts, attempts + 1);
  EXPECT_TRUE(client.backing_off());
  EXPECT_EQ(changes.size(), 1u);  // said once

  server.restart();
  run_until(ioc, [&] { return !client.backing_off(); });
  EXPECT_EQ(must_reply(ioc, client, {"PING"}).str, "PONG");
  EXPECT_TRUE(client.healthy());
  EXPECT_EQ(client.state(), Client::State::kConnected);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1].rfind("up: ", 0), 0u) << changes[1];
}

TEST(RedisClient, AnIdleConnectionTheServerClosesIsNotAFailure) {
  RedisServer server;
  net::io_context ioc;
  bool changed = false;
  Options options;
  options.on_state_change = [&](bool, const std::string&) { changed = true; };
  Client client(ioc, must_parse(server.url()), options);
  Result id = run_command(ioc, client, {"CLIENT", "ID"});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(server.command({"CLIENT", "KILL", "ID", std::to_string(id->integer)}), "1");
  run_until(ioc, [&] { return client.state() == Client::State::kIdle; });
  EXPECT_TRUE(client.healthy());
  EXPECT_FALSE(client.backing_off());
  EXPECT_EQ(must_reply(ioc, client, {"PING"}).str, "PONG");  // at once, on a new connection

  // A restart between commands: the same.
  server.stop();
  run_until(ioc, [&] { return client.state() == Client::State::kIdle; });
  server.restart();
  EXPECT_EQ(must_reply(ioc, client, {"PING"}).str, "PONG");
  EXPECT_EQ(client.stats().connect_attempts, 3u);
  EXPECT_EQ(client.stats().transport_failures, 0u);
  EXPECT_FALSE(changed);
}

// ---- destruction ------------------------------------------------------------------------

net::awaitable<void> await_into(Client& client, Command cmd, std::optional<Result>& out) {
  out = co_await client.command(std::move(cmd));
}

TEST(RedisClient, DestroyingTheClientFailsWhatIsPending) {
  RedisServer& server = shared_server();
  net::io_context ioc;
  Options options;
  options.command_timeout = 10s;
  auto client = std::make_unique<Client>(ioc, must_parse(server.url()), options);

  // Waiting in the server (BLPOP), from a callback and from a coroutine.
  std::optional<Result> by_callback, by_coroutine;
  client->send({"BLPOP", "destroy:never", "0"}, [&](Result r) { by_callback = std::move(r); });
  net::co_spawn(ioc, await_into(*client, {"BLPOP", "destroy:never", "0"}, by_coroutine),
                net::detached);
  run_until(ioc,
            [&] { return client->pending() == 2 && client->state() == Client::State::kConnected; });
  client.reset();
  ASSERT_TRUE(by_callback.has_value());  // inside the destructor
  ASSERT_TRUE(by_coroutine.has_value());
  EXPECT_TRUE(by_callback->failed());
  EXPECT_TRUE(by_coroutine->failed());
  EXPECT_NE(by_callback->failure_message().find("destroyed"), std::string::npos);
  ioc.restart();
  ioc.poll();  // the aborted socket operations complete: nothing may touch the client

  // Destroyed while still connecting, with a command waiting to be written.
  client = std::make_unique<Client>(ioc, must_parse(server.url()), options);
  std::optional<Result> queued;
  client->send({"PING"}, [&](Result r) { queued = std::move(r); });
  EXPECT_EQ(client->state(), Client::State::kConnecting);
  client.reset();
  ASSERT_TRUE(queued.has_value());
  EXPECT_TRUE(queued->failed());
  ioc.restart();
  ioc.poll();

  // A refusal's callback is posted: it runs after the client is gone.
  BlackHole hole(ioc);
  options.command_timeout = 50ms;
  client = std::make_unique<Client>(ioc, must_parse(hole.url()), options);
  EXPECT_TRUE(run_command(ioc, *client, {"PING"}).failed());
  std::optional<Result> refused;
  client->send({"PING"}, [&](Result r) { refused = std::move(r); });
  EXPECT_FALSE(refused.has_value());
  client.reset();
  run_until(ioc, [&] { return refused.has_value(); });
  EXPECT_TRUE(refused->failed());
}

}  // namespace
}  // namespace llmproxy::redis
