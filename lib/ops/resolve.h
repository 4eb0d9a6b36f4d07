// Turning a user's reference (an id or a name) into a stored object.
#pragma once

#include <string_view>

#include "lib/domain/types.h"
#include "storage/store.h"

namespace llmproxy::ops {

// Each throws Error(kNotFound) naming what was looked for.
Connection resolve_connection(storage::Store& store, std::string_view ref);
ProviderModel resolve_model(storage::Store& store, std::string_view ref);
VirtualKey resolve_vkey(storage::Store& store, std::string_view ref);
Assignment resolve_assignment(storage::Store& store, std::string_view id);
Plan resolve_plan(storage::Store& store, std::string_view ref);

}  // namespace llmproxy::ops
