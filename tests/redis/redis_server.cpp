#include "tests/redis/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace llmproxy::redis::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Runs a shell command in `dir`; throws with its output when it fails.
void run_in(const std::string& dir, const std::string& cmd) {
  std::string full = "cd '" + dir + "' && " + cmd + " >>tool.log 2>&1";
  if (std::system(full.c_str()) != 0) {
    std::ifstream log(dir + "/tool.log");
    std::stringstream out;
    out << log.rdbuf();
    throw std::runtime_error("test Redis server: `" + cmd + "` failed:\n" + out.str());
  }
}

// A throwaway CA (ca.pem) and a server certificate for 127.0.0.1 and
// localhost signed by it (server.pem, server.key).
void make_certificates(const std::string& dir) {
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  run_in(dir, "openssl req -x509 " + ec +
                  " -keyout ca.key -out ca.pem -days 2 -subj '/CN=llm-proxy redis test CA'"
                  " -addext basicConstraints=critical,CA:TRUE"
                  " -addext keyUsage=critical,keyCertSign,cRLSign");
  run_in(dir, "openssl req " + ec + " -keyout server.key -out server.csr -subj /CN=127.0.0.1");
  std::ofstream(dir + "/server.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                        "basicConstraints=CA:FALSE\n"
                                        "extendedKeyUsage=serverAuth\n";
  run_in(dir,
         "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
         " -out server.pem -days 2 -extfile server.ext");
}

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

ReplyPtr run_command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return ReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data())));
}

std::string render(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(r->str, r->len);
    case REDIS_REPLY_ERROR:
      return "-" + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (std::size_t i = 0; i < r->elements; ++i)
        out.append(i ? ", " : "").append(render(r->element[i]));
      return out + "]";
    }
  }
  return "?";
}

// A connection to the plain port, authenticated; null when the server is
// not (yet) answering, with the reason in `error`.
ContextPtr connect_admin(std::uint16_t port, const ServerOptions& o, std::string& error) {
  timeval tv{1, 0};
  ContextPtr c(redisConnectWithTimeout("127.0.0.1", port, tv));
  if (!c || c->err) {
    error = c ? c->errstr : "out of memory";
    return nullptr;
  }
  redisSetTimeout(c.get(), timeval{10, 0});
  if (!o.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!o.user.empty()) auth.push_back(o.user);
    auth.push_back(o.password);
    ReplyPtr r = run_command(c.get(), auth);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      error = r ? render(r.get()) : c->errstr;
      return nullptr;
    }
  }
  return c;
}

// For the user and password in a URL: everything but unreserved characters
// as %XX.
std::string percent_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

struct RedisServer::Admin {
  ContextPtr c;
};

std::string redis_server_binary() {
  if (std::string bin = env("LLM_PROXY_REDIS_SERVER"); !bin.empty()) return bin;
  std::stringstream path(env("PATH").empty() ? "/usr/bin:/usr/local/bin" : env("PATH"));
  for (std::string dir; std::getline(path, dir, ':');) {
    std::string bin = dir + "/redis-server";
    if (::access(bin.c_str(), X_OK) == 0) return bin;
  }
  throw std::runtime_error(
      "redis-server not found (PATH, $LLM_PROXY_REDIS_SERVER): install Debian's redis-server "
      "(bash packaging/install-deps.sh test)");
}

RedisServer::RedisServer(ServerOptions options) : options_(std::move(options)) {
  std::string base = env("TMPDIR").empty() ? "/tmp" : env("TMPDIR");
  std::string dir = base + "/llmproxy-redis-XXXXXX";
  if (!::mkdtemp(dir.data())) throw std::runtime_error("mkdtemp failed: " + dir);
  dir_ = dir;
  try {
    if (options_.tls) {
      make_certificates(dir_);
      ca_file_ = dir_ + "/ca.pem";
    }
    // Another process may take a port between free_port() and the server's
    // bind: then the server exits at once, and we try other ports.
    for (int attempt = 1;; ++attempt) {
      plain_port_ = free_port();
      tls_port_ = options_.tls ? free_port() : 0;
      try {
        spawn();
        wait_ready();
        return;
      } catch (const std::exception&) {
        if (pid_ > 0) kill();
        if (attempt == 5) throw;
      }
    }
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw;
  }
}

RedisServer::~RedisServer() {
  if (pid_ > 0) kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RedisServer::url(int db) const {
  std::string auth;
  if (!options_.password.empty())
    auth = percent_encode(options_.user) + ":" + percent_encode(options_.password) + "@";
  std::string out = (options_.tls ? "rediss://" : "redis://") + auth +
                    "127.0.0.1:" + std::to_string(port()) + "/" + std::to_string(db);
  if (options_.tls) out += "?cacert=" + ca_file_;
  return out;
}

std::string RedisServer::url_without_auth(int db) const {
  std::string out = (options_.tls ? "rediss://" : "redis://") + std::string("127.0.0.1:") +
                    std::to_string(port()) + "/" + std::to_string(db);
  if (options_.tls) out += "?cacert=" + ca_file_;
  return out;
}

void RedisServer::spawn() {
  std::vector<std::string> args = {redis_server_binary(),
                                   "--port",
                                   std::to_string(plain_port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_,
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   dir_ + "/redis.log",
                                   "--enable-debug-command",
                                   "local"};
  if (!options_.user.empty()) {
    args.insert(args.end(), {"--user", options_.user, "on", ">" + options_.password, "~*", "&*",
                             "+@all", "--user", "default", "off"});
  } else if (!options_.password.empty()) {
    args.insert(args.end(), {"--requirepass", options_.password});
  }
  if (options_.tls) {
    args.insert(args.end(), {"--tls-port", std::to_string(tls_port_), "--tls-cert-file",
                             dir_ + "/server.pem", "--tls-key-file", dir_ + "/server.key",
                             "--tls-ca-cert-file", ca_file_, "--tls-auth-clients", "no"});
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string out = dir_ + "/redis.out";  // what it prints before its log file is open

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test
    if (::getppid() != parent) ::_exit(1);
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
}

void RedisServer::wait_ready() {
  auto deadline = Clock::now() + std::chrono::seconds(20);
  std::string error;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited at start:\n" + log_tail());
    }
    if (auto c = connect_admin(plain_port_, options_, error)) {
      ReplyPtr r = run_command(c.get(), {"PING"});
      if (r && render(r.get()) == "PONG") return;
      error = r ? render(r.get()) : c->errstr;
    }
    if (Clock::now() > deadline) {
      throw std::runtime_error("redis-server did not answer PING within 20 s (" + error + "):\n" +
                               log_tail());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling for a condition
  }
}

void RedisServer::wait_exit(int signal) {
  admin_.reset();
  if (pid_ <= 0) return;
  ::kill(pid_, signal);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  pid_ = -1;
}

void RedisServer::stop() {
  wait_exit(SIGTERM);
}

void RedisServer::kill() {
  wait_exit(SIGKILL);
}

void RedisServer::restart() {
  if (pid_ > 0) throw std::logic_error("RedisServer::restart: the server is running");
  spawn();
  wait_ready();
}

std::string RedisServer::command(const std::vector<std::string>& args) const {
  // The kept connection may be one to a server since restarted: then once more.
  for (int attempt = 0;; ++attempt) {
    std::string error;
    if (!admin_ || admin_->c->err) {
      admin_.reset();
      ContextPtr c = connect_admin(plain_port_, options_, error);
      if (!c) throw std::runtime_error("test Redis server not reachable: " + error);
      admin_ = std::make_unique<Admin>(Admin{std::move(c)});
    }
    if (ReplyPtr r = run_command(admin_->c.get(), args)) return render(r.get());
    error = admin_->c->errstr;
    admin_.reset();
    if (attempt == 1) throw std::runtime_error("test Redis server: " + error);
  }
}

long long RedisServer::calls(const std::string& cmd) const {
  std::string info = command({"INFO", "commandstats"});
  std::string key = "cmdstat_" + cmd + ":calls=";
  auto at = info.find(key);
  return at == std::string::npos ? 0 : std::atoll(info.c_str() + at + key.size());
}

long long RedisServer::connections_received() const {
  std::string info = command({"INFO", "stats"});
  std::string key = "total_connections_received:";
  auto at = info.find(key);
  return at == std::string::npos ? -1 : std::atoll(info.c_str() + at + key.size());
}

std::string RedisServer::log_tail() const {
  std::string out;
  for (const char* name : {"/redis.out", "/redis.log"}) {
    std::ifstream in(dir_ + name);
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    if (text.size() > 4000) text = "…" + text.substr(text.size() - 4000);
    out += text;
  }
  return out;
}

}  // namespace llmproxy::redis::test
