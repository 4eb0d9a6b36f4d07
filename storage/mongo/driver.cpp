#include "storage/mongo/driver.h"

#include <mutex>

namespace llmproxy::storage::mongo {

void init_driver_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    mongoc_init();
    // Driver chatter (server selection retries, …) is not ours to print; real
    // failures come back as errors.
    mongoc_log_set_handler(nullptr, nullptr);
  });
}

namespace {

// libmongoc initialises itself as it is loaded, before main() and whatever
// the backend, and may log then: where a killed process left its statistics
// file /dev/shm/mongoc-<pid> behind and this process got the same pid, it
// prints "Falling back to malloc for counters." on stderr ahead of anything
// llm-proxy says. So the driver is silenced before any shared library
// initialises: the executable's .preinit_array runs first. (Only in an
// executable; this object is always linked into one.)
void silence_driver_at_load(int, char**, char**) {
  mongoc_log_set_handler(nullptr, nullptr);
}
using PreInit = void (*)(int, char**, char**);
[[gnu::section(".preinit_array"), gnu::used]] const PreInit silence_at_load =
    silence_driver_at_load;

}  // namespace

}  // namespace llmproxy::storage::mongo
