// A real redis-server for tests: started on free loopback ports in a
// temporary directory of its own (like tests/storage/pg_cluster.h's private
// cluster), with stop, kill -9 and restart on the same ports for fault tests.
// Optionally with a password (requirepass), an ACL user (the default user is
// then switched off) and TLS (a throwaway CA and a server certificate for
// 127.0.0.1 and localhost, made with the openssl CLI).
//
// Besides the port the client under test uses, the server always listens on
// a plain TCP port for the test's own look behind the client (command(),
// with hiredis' blocking client): with TLS, that is a second port.
//
// redis-server comes from $LLM_PROXY_REDIS_SERVER, else PATH; its absence is
// an error saying what to install, not a reason to skip. The server dies
// with the process that started it (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llmproxy::redis::test {

struct ServerOptions {
  std::string password;  // requirepass, or the ACL user's password
  std::string user;      // an ACL user with every right; the default user is then off
  bool tls = false;
};

class RedisServer {
 public:
  // Starts the server and waits until it answers PING. Throws
  // std::runtime_error (with the end of its log) when it does not start.
  explicit RedisServer(ServerOptions options = {});
  ~RedisServer();  // kills the server and removes its directory
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // The URL for the client under test: redis://[user:password@]127.0.0.1:port/db
  // (user and password percent-encoded), or rediss://…?cacert=<the test CA> with TLS.
  std::string url(int db = 0) const;
  // The same without credentials (for wrong-password tests, add your own).
  std::string url_without_auth(int db = 0) const;
  std::uint16_t port() const { return options_.tls ? tls_port_ : plain_port_; }
  std::uint16_t plain_port() const { return plain_port_; }
  const std::string& ca_file() const { return ca_file_; }  // "" without TLS
  const std::string& dir() const { return dir_; }
  const ServerOptions& options() const { return options_; }

  void stop();     // SIGTERM (a clean shutdown), waits for the exit
  void kill();     // SIGKILL, waits for the exit: gone as in a crash
  void restart();  // after stop() or kill(): starts again on the same ports
  bool running() const { return pid_ > 0; }

  // Runs one command over the plain port (one connection, kept, and opened
  // again after a restart; authenticated as configured) and renders the reply: a string or status
  // as itself, an integer in decimal, nil as "(nil)", an error as "-ERR …", an array as "[a, b]".
  // Throws std::runtime_error when the server cannot be reached.
  std::string command(const std::vector<std::string>& args) const;
  // `calls` of `cmd` in INFO commandstats (e.g. "evalsha", "script|load"); 0 if never called.
  long long calls(const std::string& cmd) const;
  // total_connections_received in INFO stats: the connections the server
  // accepted (command()'s own, opened once per start, included).
  long long connections_received() const;

 private:
  void spawn();
  void wait_ready();
  void wait_exit(int signal);
  std::string log_tail() const;

  struct Admin;
  mutable std::unique_ptr<Admin> admin_;  // command()'s connection

  ServerOptions options_;
  std::string dir_;
  std::string ca_file_;
  std::uint16_t plain_port_ = 0;
  std::uint16_t tls_port_ = 0;
  pid_t pid_ = -1;
};

// The redis-server binary to run; throws with what to install when there is none.
std::string redis_server_binary();

}  // namespace llmproxy::redis::test
