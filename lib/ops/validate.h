// Input validation shared by the operations. Each check throws
// Error(kInvalid) with a message that names the offending field.
#pragma once

#include <string>
#include <string_view>

#include "lib/domain/types.h"

namespace llmproxy::ops {

// Names: non-empty, at most 128 bytes, no control characters, not all digits
// (so that an id and a name can never be confused). Connection names also
// exclude '/', which separates them from remote names in "<conn>/<model>".
void check_name(std::string_view field, std::string_view name, bool allow_slash = true,
                bool allow_space = false);
// http:// or https:// with a host, an optional port and path, no whitespace.
void check_url(std::string_view field, std::string_view url);
// "Name: value" → header; the name must be an HTTP token.
Header parse_header(std::string_view text);
void check_non_negative(std::string_view field, double v);
// True when text is a decimal id (all digits).
bool looks_like_id(std::string_view text);

struct LimitsSpec;
// The limit flags given (ops.h) onto `l`: unset keeps a limit, 0 removes it;
// each value and window checked. For assignments and plans alike.
void apply_limits(Limits& l, const LimitsSpec& s);

}  // namespace llmproxy::ops
