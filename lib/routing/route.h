// Which connection and remote model a request goes to, and under which
// assignment (whose limits apply). No storage access.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lib/auth/authenticate.h"
#include "lib/config/snapshot.h"

namespace llmproxy::routing {

struct Route {
  const Connection* connection = nullptr;
  const ProviderModel* model = nullptr;      // null for "<connection>/<remote>" addressing
  const Assignment* assignment = nullptr;    // null for the master key
  std::string remote;                        // the model name the provider knows
};

enum class RouteStatus { kOk, kNotFound, kForbidden };

struct RouteResult {
  RouteStatus status = RouteStatus::kNotFound;
  Route route;
};

// Resolves `model` (an alias, or "<connection-name>/<remote-model>" where the
// key holds a connection-level assignment). A model-level assignment wins over
// a connection-level one.
RouteResult resolve(const config::Snapshot& snapshot, const auth::Principal& who,
                    std::string_view model);

// Every alias the principal may use, for GET /v1/models.
std::vector<config::ModelEntry> visible_models(const config::Snapshot& snapshot,
                                               const auth::Principal& who);

}  // namespace llmproxy::routing
