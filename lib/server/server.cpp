#include "lib/server/server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "lib/observe/access_log.h"
#include "lib/limits/seed.h"
#include "lib/server/front_end.h"
#include "lib/upstream/client.h"

namespace llmproxy::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

tcp::endpoint parse_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) throw invalid("--listen must be HOST:PORT, not '" + listen + "'");
  std::string host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  unsigned long p = 0;
  try {
    std::size_t used = 0;
    p = std::stoul(port, &used);
    if (used != port.size() || p > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    throw invalid("--listen port '" + port + "' is not a port number");
  }
  beast::error_code ec;
  auto addr = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) throw invalid("--listen host '" + host + "' is not an IP address");
  return {addr, static_cast<unsigned short>(p)};
}

// One event loop, its acceptor and its upstream pool.
struct Worker {
  Worker(Context& ctx, net::ssl::context& tls) : ctx(ctx), pool(ioc, tls, deadlines) {
    deadlines.start(ioc);
    gate = std::make_unique<limits::Gate>(ctx.limiter, ioc);
  }
  // The sweeper's timer goes before the loop; the Deadlines themselves only
  // after it (the loop's destructor ends sessions that still hold entries).
  ~Worker() { deadlines.stop(); }

  void listen(const tcp::endpoint& ep) {
    acceptor.open(ep.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    int one = 1;
    ::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    beast::error_code ec;
    acceptor.bind(ep, ec);
    if (ec)
      throw Error(ErrorKind::kStorage, "cannot listen on " + ep.address().to_string() + ":" +
                                           std::to_string(ep.port()) + ": " + ec.message());
    acceptor.listen(net::socket_base::max_listen_connections);
  }

  net::awaitable<void> accept_loop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket =
          co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        if (!acceptor.is_open()) co_return;
        continue;  // e.g. EMFILE: keep serving the connections we have
      }
      net::co_spawn(ioc, run_session(std::move(socket), ctx, pool, *gate), net::detached);
    }
  }

  Context& ctx;
  util::Deadlines deadlines;
  // Before the loop: requests the loop's destruction ends still settle.
  std::unique_ptr<limits::Gate> gate;
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  upstream::Pool pool;
  std::thread thread;
};

// Polls the config version and swaps in a new snapshot when it moves.
class Watcher {
 public:
  Watcher(storage::Store& store, Context& ctx, std::int64_t version)
      : store_(store), ctx_(ctx), version_(version) {}
  ~Watcher() { stop(); }

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    store_.interrupt_wait();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // A backend that is told of changes (PostgreSQL: LISTEN/NOTIFY; MongoDB on
  // a replica set: a change stream) wakes the watcher at once; the others are
  // polled every reload_interval. Either way the version is read after each
  // wake-up, so a lost notification costs at most one interval.
  void run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      bool told = false;
      try {
        told = store_.wait_for_change(ctx_.options.reload_interval);
      } catch (const std::exception&) {
        told = false;  // the poll below reports the storage state
      }
      lock.lock();
      if (!told && cv_.wait_for(lock, ctx_.options.reload_interval, [&] { return stopping_; }))
        break;
      if (stopping_) break;
      lock.unlock();
      poll();
      lock.lock();
    }
  }

  void poll() {
    try {
      std::int64_t v = store_.config_version();
      if (!ctx_.storage_ok.exchange(true)) std::cerr << "llm-proxy: storage reachable again\n";
      if (v == version_) return;
      ConfigData data = store_.load_config();
      version_ = data.version;
      ctx_.snapshot.set(std::make_shared<const config::Snapshot>(std::move(data)));
    } catch (const std::exception& e) {
      if (ctx_.storage_ok.exchange(false))
        std::cerr << "llm-proxy: storage unreachable, serving the last config: " << e.what()
                  << "\n";
    }
  }

  storage::Store& store_;
  Context& ctx_;
  std::int64_t version_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// The access log's destination, open for as long as serve runs.
struct AccessLogFile {
  explicit AccessLogFile(const ServerOptions& o) {
    if (o.log_level == "warn" || o.log_level == "error") return;  // requests log at info
    std::FILE* out = stdout;
    if (!o.log_file.empty()) {
      file = std::fopen(o.log_file.c_str(), "a");
      if (!file)
        throw Error(ErrorKind::kStorage,
                    "cannot open --log-file " + o.log_file + ": " + std::strerror(errno));
      out = file;
    }
    log.emplace(out, o.log_format == "text" ? observe::LogFormat::kText : observe::LogFormat::kJson,
                o.log_bodies);
  }
  ~AccessLogFile() {
    if (file) std::fclose(file);
  }
  AccessLogFile(const AccessLogFile&) = delete;

  std::FILE* file = nullptr;
  std::optional<observe::AccessLog> log;
};

}  // namespace

int serve(const storage::Location& where, const ServerOptions& options) {
  // Caught from the very start, so a supervisor's SIGTERM that races the
  // startup line still means "drain and exit 0"; it is acted on once running.
  net::io_context signals_ioc;
  net::signal_set signals(signals_ioc, SIGINT, SIGTERM);

  // Separate store handles: the watcher's polls never wait behind a usage batch.
  auto config_store = storage::open_store(where);
  auto usage_store = storage::open_store(where);
  ConfigData data = config_store->load_config();
  std::int64_t version = data.version;
  auto snapshot = std::make_shared<const config::Snapshot>(std::move(data));

  // Observers first: the sink shows them outcomes until it is destroyed.
  observe::Metrics metrics;
  AccessLogFile access_log(options);
  usage::UsageSink::Options usage_options;
  usage_options.max_queued = options.usage_buffer;
  usage::UsageSink sink(*usage_store, usage_options);
  sink.add_observer(metrics);
  if (access_log.log) sink.add_observer(*access_log.log);
  Context ctx(snapshot, sink, metrics, options);
  ctx.storage_backend = std::string(config_store->backend());
  // The admin API's thread and store (declared after the store: the pool
  // joins its thread before the store goes).
  auto admin_store = storage::open_store(where);
  // Login tokens are signed with a key derived from the storage secret, so
  // they survive restarts and work on every instance sharing the database.
  admin::Api admin_api(
      *admin_store, {.master_key = options.master_key,
                     .token_key = storage::secret_box_for(where).derive("llm-proxy admin token v1"),
                     .token_ttl = options.admin_token_ttl});
  net::thread_pool admin_pool(1);
  ctx.admin = AdminPort{admin_pool.get_executor(), &admin_api};
  limits::seed_windows(*config_store, *snapshot, ctx.limiter, now_ms());

  int threads = options.threads > 0
                    ? options.threads
                    : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto tls = upstream::make_tls_context();
  std::vector<std::unique_ptr<Worker>> workers;
  tcp::endpoint ep = parse_listen(options.listen);
  for (int i = 0; i < threads; ++i) {
    workers.push_back(std::make_unique<Worker>(ctx, *tls));
    workers.back()->listen(ep);
    // With port 0 the first bind picks the port; the others share it.
    if (i == 0) ep.port(workers[0]->acceptor.local_endpoint().port());
  }

  sink.start();
  Watcher watcher(*config_store, ctx, version);
  watcher.start();
  for (auto& w : workers) {
    net::co_spawn(w->ioc, w->accept_loop(), net::detached);
    w->thread = std::thread([&w] { w->ioc.run(); });
  }

  const auto& d = snapshot->data();
  std::cerr << "llm-proxy: listening on " << ep.address().to_string() << ":" << ep.port()
            << " storage=" << config_store->describe() << " connections=" << d.connections.size()
            << " models=" << d.models.size() << " keys=" << d.vkeys.size() << " threads=" << threads
            << std::endl;

  // Wait for SIGTERM/SIGINT on this thread.
  signals.async_wait([](const beast::error_code&, int) {});
  signals_ioc.run();

  // Drain: stop accepting, let in-flight requests (streams included) finish.
  ctx.draining = true;
  for (auto& w : workers) net::post(w->ioc, [&w] { w->acceptor.close(); });
  auto deadline = std::chrono::steady_clock::now() + options.grace;
  while (ctx.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int abandoned = ctx.in_flight.load();
  for (auto& w : workers) w->ioc.stop();
  for (auto& w : workers) w->thread.join();
  // Destroying the loops ends the requests cut at the grace period; each
  // still leaves its usage record (status 499) before the sink flushes.
  admin_pool.join();  // an admin call in progress finishes before the loops go
  for (auto& w : workers) w->gate->close();
  workers.clear();
  watcher.stop();
  sink.stop();
  std::cerr << "llm-proxy: stopped (" << sink.written() << " usage records written"
            << (abandoned ? ", " + std::to_string(abandoned) + " requests cut at the grace period"
                          : std::string())
            << ")" << std::endl;
  return 0;
}

}  // namespace llmproxy::server
