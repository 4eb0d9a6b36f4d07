// llm-proxy serve
#include <cstdlib>

#include "cmd/cli.h"
#include "lib/domain/error.h"
#include "lib/ops/ops.h"
#include "lib/redis/client.h"
#include "lib/server/server.h"

namespace llmproxy::cli {
namespace {

// `serve --init-admin NAME`: the first admin of a fresh deployment, without a
// separate CLI step. Idempotent: once any admin user exists it does nothing,
// so it can stay in a service definition. The password comes from the
// environment, never from a flag (flags are visible in `ps`).
void create_first_admin(const storage::Location& where, const std::string& username) {
  const char* env = std::getenv("LLM_PROXY_ADMIN_PASSWORD");
  if (!env || !*env) throw invalid("--init-admin needs the password in LLM_PROXY_ADMIN_PASSWORD");
  std::string password = env;
  ::unsetenv("LLM_PROXY_ADMIN_PASSWORD");  // not inherited by anything serve starts
  auto store = storage::open_store(where);
  store->transaction([&] {
    if (store->list_admin_users().empty()) {
      ops::add_admin_user(*store, username, AdminRole::kAdmin, password);
    }
  });
}

// --default-completion-reserve and the shared-state flags into the limiter's
// options; the Redis URL may come from $LLM_PROXY_REDIS instead.
void apply_limit_options(server::ServerOptions& opts, const std::optional<std::int64_t>& reserve,
                         const std::optional<std::string>& redis,
                         const std::optional<double>& timeout_s,
                         const std::optional<double>& lease_s) {
  limits::LimiterOptions& l = opts.limits;
  if (reserve) {
    if (*reserve < 0 || *reserve > 10'000'000)
      throw CLI::ValidationError("--default-completion-reserve", "must be between 0 and 10000000");
    l.default_completion_reserve = *reserve;
  }
  if (redis) {
    l.redis_url = *redis;
  } else if (const char* env = std::getenv("LLM_PROXY_REDIS")) {
    l.redis_url = env;
  }
  if (!l.redis_url.empty()) {
    std::string error;
    if (!redis::parse_url(l.redis_url, error)) throw invalid("--redis: " + error);
  }
  if (timeout_s) {
    if (*timeout_s <= 0 || *timeout_s > 60)
      throw CLI::ValidationError("--redis-timeout", "must be > 0 and at most 60");
    l.redis_timeout_ms = static_cast<std::int64_t>(*timeout_s * 1000);
  }
  if (lease_s) {
    if (*lease_s < 0.3 || *lease_s > 3600)
      throw CLI::ValidationError("--redis-lease", "must be between 0.3 and 3600");
    l.lease_ms = static_cast<std::int64_t>(*lease_s * 1000);
  }
}

}  // namespace

void add_serve_command(CLI::App& app, Context& ctx) {
  auto opts = std::make_shared<server::ServerOptions>();
  auto master = std::make_shared<std::optional<std::string>>();
  auto max_body = std::make_shared<std::optional<std::int64_t>>();
  auto grace = std::make_shared<std::optional<double>>();
  auto threads = std::make_shared<std::optional<std::int64_t>>();
  auto read_timeout = std::make_shared<std::optional<double>>();
  auto token_ttl = std::make_shared<std::optional<double>>();
  auto usage_buffer = std::make_shared<std::optional<std::int64_t>>();
  auto init_admin = std::make_shared<std::optional<std::string>>();
  auto reserve = std::make_shared<std::optional<std::int64_t>>();
  auto redis = std::make_shared<std::optional<std::string>>();
  auto redis_timeout = std::make_shared<std::optional<double>>();
  auto redis_lease = std::make_shared<std::optional<double>>();
  CLI::App* serve = add_command(
      &app, ctx, "serve", "Run the OpenAI-compatible proxy",
      "  llm-proxy serve\n"
      "  llm-proxy serve --listen 127.0.0.1:8080 --threads 2\n"
      "  MASTER_KEY=sk-admin-... llm-proxy serve --db postgres://proxy@db/proxy\n"
      "  llm-proxy serve --log-file /var/log/llm-proxy/access.log --log-format text\n",
      [&ctx, opts, master, max_body, grace, threads, read_timeout, token_ttl, init_admin,
       usage_buffer, reserve, redis, redis_timeout, redis_lease] {
        if (*master)
          opts->master_key = **master;
        else if (const char* env = std::getenv("MASTER_KEY"))
          opts->master_key = env;
        if (*max_body) {
          if (**max_body <= 0) throw CLI::ValidationError("--max-body", "must be > 0");
          opts->max_body_bytes = static_cast<std::size_t>(**max_body);
        }
        if (*grace) {
          if (**grace < 0) throw CLI::ValidationError("--grace", "must be >= 0");
          opts->grace = std::chrono::milliseconds(static_cast<long>(**grace * 1000));
        }
        if (*read_timeout) {
          if (**read_timeout <= 0 || **read_timeout > 86400)
            throw CLI::ValidationError("--read-timeout", "must be > 0 and at most 86400");
          opts->client_read_timeout =
              std::chrono::milliseconds(static_cast<long>(**read_timeout * 1000));
        }
        if (*token_ttl) {
          if (**token_ttl < 1 || **token_ttl > 30 * 86400)
            throw CLI::ValidationError("--admin-token-ttl", "must be between 1 and 2592000");
          opts->admin_token_ttl = std::chrono::seconds(static_cast<long>(**token_ttl));
        }
        if (*usage_buffer) {
          if (**usage_buffer < 1 || **usage_buffer > 100'000'000)
            throw CLI::ValidationError("--usage-buffer", "must be between 1 and 100000000");
          opts->usage_buffer = static_cast<std::size_t>(**usage_buffer);
        }
        if (*threads) {
          if (**threads < 0 || **threads > 256)
            throw CLI::ValidationError("--threads", "must be between 0 and 256");
          opts->threads = static_cast<int>(**threads);
        }
        apply_limit_options(*opts, *reserve, *redis, *redis_timeout, *redis_lease);
        storage::Location where = storage::resolve_location(ctx.db);
        if (*init_admin) create_first_admin(where, **init_admin);
        std::exit(server::serve(where, *opts));
      });
  serve->add_option("--listen", opts->listen, "Address to listen on (default 0.0.0.0:8080)");
  serve->add_option("--log-file", opts->log_file,
                    "Append the access log to this file instead of stdout");
  serve->add_option("--log-format", opts->log_format, "Access log lines: json (default) or text")
      ->check(CLI::IsMember({"json", "text"}));
  serve
      ->add_option("--log-level", opts->log_level,
                   "debug | info (default: a line per request) | warn | error (no access log)")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  serve->add_flag("--log-bodies", opts->log_bodies,
                  "Include request and reply bodies (prompts, completions) in the access log");
  add_int(serve, "--threads", *threads, "Worker threads (default: one per core)");
  add_string(serve, "--master-key", *master, "Key that may use every model (default: $MASTER_KEY)");
  add_int(serve, "--max-body", *max_body, "Largest request body in bytes (default 10 MiB)");
  add_double(serve, "--grace", *grace, "Seconds to let requests finish on SIGTERM (default 30)");
  add_int(serve, "--usage-buffer", *usage_buffer,
          "Usage records kept in memory while the database is unreachable; beyond it the "
          "older ones are dropped and counted (default 1000000)");
  add_double(serve, "--read-timeout", *read_timeout,
             "Seconds a client has to send a whole request, or to take a reply it stalls "
             "(default 60)");
  add_string(serve, "--init-admin", *init_admin,
             "Create this admin user (password from $LLM_PROXY_ADMIN_PASSWORD) if there are "
             "no admin users yet");
  add_double(serve, "--admin-token-ttl", *token_ttl,
             "Seconds a dashboard / admin API sign-in stays valid (default 28800)");
  add_int(serve, "--default-completion-reserve", *reserve,
          "Completion tokens a request claims from token and budget limits when it sets no "
          "max_tokens (default 1024; per assignment: --reserve-tokens)");
  add_string(serve, "--redis", *redis,
             "Share limit state with every instance using this Redis: "
             "redis://[user:password@]host:port/db or rediss:// (default: $LLM_PROXY_REDIS; "
             "none: limits per instance)");
  serve->add_option("--redis-prefix", opts->limits.redis_prefix,
                    "Prefix of the Redis keys (default llmp:)");
  serve
      ->add_option_function<std::string>(
          "--redis-fail",
          [opts](const std::string& mode) { opts->limits.redis_fail_open = mode == "open"; },
          "While Redis is unreachable: open (default: limits per instance) or closed (503)")
      ->check(CLI::IsMember({"open", "closed"}));
  add_double(serve, "--redis-timeout", *redis_timeout,
             "Seconds to wait for Redis before treating it as unreachable (default 0.25)");
  add_double(serve, "--redis-lease", *redis_lease,
             "Seconds after which the claims of an instance that stopped renewing them (it "
             "died) are dropped (default 15)");
}

}  // namespace llmproxy::cli
