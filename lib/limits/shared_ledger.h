// The claim/settle arithmetic of claim.h kept in Redis, shared by every serve
// instance that names the same Redis (serve --redis). Each admission and each
// settlement is one Lua script run atomically by Redis (EVALSHA): one round
// trip on the worker's event loop, no thread waits.
//
// Keys (prefix --redis-prefix, default "llmp:"):
//   <p>b:<scope><id>:<slot>               bucket: "<level>:<last ms>"; expires
//                                         once it would be full again
//   <p>w:<scope><id>:<slot>:<start>       window: hash {s spent, c claimed};
//                                         expires at the window's end
//   <p>w:<scope><id>:<slot>:<start>:l     its live claims: zset of
//                                         "<claim>:<amount>" → lease expiry
//   <p>p:<scope><id>                      parallel: zset claim → lease expiry
// Leases make the claims of an instance that died expire: each gate renews
// its requests' leases every lease/3 in one script call; expired claims are
// dropped by the next admission that looks at their window. Time for buckets
// and leases is Redis's own clock (TIME), so instances' clocks do not matter;
// calendar windows are named by their start as each instance computes it.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <memory>
#include <optional>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "lib/limits/claim.h"

namespace llmproxy::limits {

class Limiter;

class SharedLedger {
 public:
  SharedLedger(Limiter& limiter, boost::asio::io_context& ioc);
  ~SharedLedger();

  // Admits or refuses in Redis; nullopt when Redis did not answer in time.
  boost::asio::awaitable<std::optional<Admission>> admit(Claim& claim);
  // Settles in Redis; if it cannot be reached the settlement is kept and sent
  // again once it answers (bounded), and the claims' leases expire meanwhile.
  void settle(const Claim& claim, const Actual& actual);
  // See Gate::close.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmproxy::limits
