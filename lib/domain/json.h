// The JSON shape of every domain object, shared by the CLI's --json output and
// the admin API so that both speak the same field names (the long flag names
// in snake_case). Secrets never appear: provider keys are masked, virtual keys
// are represented only by their hint.
#pragma once

#include <nlohmann/json.hpp>

#include "lib/domain/types.h"
#include "storage/store.h"

namespace llmproxy {

// "****wxyz": enough to tell two keys apart, nothing to use.
std::string mask_secret(std::string_view secret);

nlohmann::ordered_json to_json(const Connection& c);
nlohmann::ordered_json to_json(const ProviderModel& m);
nlohmann::ordered_json to_json(const VirtualKey& k);
nlohmann::ordered_json to_json(const UsageRecord& r);
nlohmann::ordered_json to_json(const storage::UsageGroup& g);

}  // namespace llmproxy
