// Wall-clock helpers. The domain stores times as UTC epoch milliseconds.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "lib/domain/types.h"

namespace llmproxy {

TimeMs now_ms();
// "2026-12-31T23:59:59Z" (seconds precision, UTC).
std::string format_time(TimeMs t);
// "2026-12-31" (UTC).
std::string format_day(TimeMs t);

// Parses an absolute time: "2026-12-31", "2026-12-31T12:00", "2026-12-31T12:00:00Z",
// "2026-12-31 12:00:00", optionally with a "+02:00" offset. A bare date means its
// start (00:00 UTC). Returns nullopt when malformed.
std::optional<TimeMs> parse_time(std::string_view text);
// Like parse_time, but also accepts a duration back from now: "30m", "24h", "7d".
std::optional<TimeMs> parse_time_or_ago(std::string_view text, TimeMs now);

}  // namespace llmproxy
