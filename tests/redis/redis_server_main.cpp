// tests/redis/redis_server.h as a command, for shell scripts and manual runs:
//
//   redis_test_server [--password P] [--user U] [--tls]
//
// Starts a test Redis server, prints `url=…`, `plain_port=…`, `ca_file=…`
// (with --tls) and `ready`, then reads commands from stdin, one a line:
// `stop`, `kill`, `restart` (each answered with `ok` or `error: …`); end of
// input or `quit` removes the server and exits.
#include <iostream>
#include <string>

#include "tests/redis/redis_server.h"

int main(int argc, char** argv) {
  using llmproxy::redis::test::RedisServer;
  llmproxy::redis::test::ServerOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--password" && i + 1 < argc)
      options.password = argv[++i];
    else if (arg == "--user" && i + 1 < argc)
      options.user = argv[++i];
    else if (arg == "--tls")
      options.tls = true;
    else {
      std::cerr << "usage: " << argv[0] << " [--password P] [--user U] [--tls]\n";
      return 2;
    }
  }
  try {
    RedisServer server(options);
    std::cout << "url=" << server.url() << "\nplain_port=" << server.plain_port() << "\n";
    if (options.tls) std::cout << "ca_file=" << server.ca_file() << "\n";
    std::cout << "ready" << std::endl;
    for (std::string line; std::getline(std::cin, line) && line != "quit";) {
      try {
        if (line == "stop")
          server.stop();
        else if (line == "kill")
          server.kill();
        else if (line == "restart")
          server.restart();
        else
          throw std::runtime_error("unknown command '" + line + "'");
        std::cout << "ok" << std::endl;
      } catch (const std::exception& e) {
        std::cout << "error: " << e.what() << std::endl;
      }
    }
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
