#include "lib/limits/claim.h"

#include <algorithm>
#include <cmath>

#include "lib/limits/limiter.h"

namespace llmproxy::limits {

void Admission::refuse(std::size_t index, Slot slot, std::optional<double> wait) {
  if (ok()) {
    refusal = refusal_of(slot);
    failed = static_cast<int>(index);
  }
  if (!wait) endless = true;
  if (endless) {
    retry_after_s.reset();
  } else if (!retry_after_s || *wait > *retry_after_s) {
    retry_after_s = wait;
  }
}

std::string_view refusal_type(Refusal r) {
  switch (r) {
    case Refusal::kRate:
      return "rate_limit_exceeded";
    case Refusal::kTokens:
      return "tokens_exceeded";
    case Refusal::kBudget:
      return "budget_exceeded";
    case Refusal::kConcurrency:
      return "concurrency_exceeded";
    case Refusal::kUnavailable:
      return "limits_unavailable";
    case Refusal::kNone:
      break;
  }
  return "";
}

Kind kind_of(Slot s) {
  switch (s) {
    case Slot::kTps:
    case Slot::kRpm:
      return Kind::kBucket;
    case Slot::kParallel:
      return Kind::kParallel;
    default:
      return Kind::kWindow;
  }
}

Refusal refusal_of(Slot s) {
  switch (s) {
    case Slot::kTokens:
      return Refusal::kTokens;
    case Slot::kBudget:
      return Refusal::kBudget;
    case Slot::kParallel:
      return Refusal::kConcurrency;
    default:
      return Refusal::kRate;
  }
}

std::string_view slot_name(Slot s) {
  switch (s) {
    case Slot::kTps:
      return "tps";
    case Slot::kRpm:
      return "rpm";
    case Slot::kRph:
      return "rph";
    case Slot::kRpd:
      return "rpd";
    case Slot::kTokens:
      return "tok";
    case Slot::kBudget:
      return "usd";
    case Slot::kParallel:
      return "par";
  }
  return "";
}

std::int64_t nano_usd(const ProviderModel* model, std::int64_t prompt_tokens,
                      std::int64_t completion_tokens) {
  if (!model) return 0;
  // Prices are USD per million tokens: a token costs price * 1000 nano-USD.
  double nano = (static_cast<double>(prompt_tokens) * model->input_price.value_or(0) +
                 static_cast<double>(completion_tokens) * model->output_price.value_or(0)) *
                1000.0;
  return static_cast<std::int64_t>(std::ceil(nano));
}

namespace {

void add_bucket(Claim& c, Scope scope, Id owner, Slot slot, double capacity, double rate) {
  Check& k = c.add();
  k.scope = scope;
  k.owner = owner;
  k.slot = slot;
  k.limit = capacity;
  k.rate = rate;
}

void add_window(Claim& c, Scope scope, Id owner, Slot slot, double limit, TokenWindow w,
                std::int64_t want, TimeMs now) {
  Check& k = c.add();
  k.scope = scope;
  k.owner = owner;
  k.slot = slot;
  k.limit = limit;
  std::tie(k.window_start, k.window_end) = window_bounds(w, now);
  k.want = want;
}

}  // namespace

void build_claim(const ClaimInput& in, Claim& out) {
  out = Claim{};
  std::int64_t tokens = in.estimate.total();
  std::int64_t cost = nano_usd(in.model, in.estimate.prompt_tokens, in.estimate.completion_tokens);
  if (const Assignment* a = in.assignment) {
    const Limits& l = a->limits;
    constexpr Scope s = Scope::kAssignment;
    // A tps bucket holds one second's worth, and at least one request.
    if (l.tps) add_bucket(out, s, a->id, Slot::kTps, std::max(1.0, *l.tps), *l.tps);
    if (l.rpm) add_bucket(out, s, a->id, Slot::kRpm, static_cast<double>(*l.rpm), *l.rpm / 60.0);
    if (l.rph)
      add_window(out, s, a->id, Slot::kRph, static_cast<double>(*l.rph), TokenWindow::kHour, 1,
                 in.now);
    if (l.rpd)
      add_window(out, s, a->id, Slot::kRpd, static_cast<double>(*l.rpd), TokenWindow::kDay, 1,
                 in.now);
    if (l.token_limit) {
      add_window(out, s, a->id, Slot::kTokens, static_cast<double>(*l.token_limit), l.token_window,
                 tokens, in.now);
    }
    if (l.budget) {
      add_window(out, s, a->id, Slot::kBudget, std::floor(*l.budget * kNanoPerUsd), l.budget_window,
                 cost, in.now);
    }
    if (l.max_parallel) {
      Check& k = out.add();
      k.scope = s;
      k.owner = a->id;
      k.slot = Slot::kParallel;
      k.limit = static_cast<double>(*l.max_parallel);
    }
  }
  if (const VirtualKey* key = in.key) {
    const KeyLimits& l = key->limits;
    constexpr Scope s = Scope::kKey;
    if (l.token_limit) {
      add_window(out, s, key->id, Slot::kTokens, static_cast<double>(*l.token_limit),
                 l.token_window, tokens, in.now);
    }
    if (l.budget) {
      add_window(out, s, key->id, Slot::kBudget, std::floor(*l.budget * kNanoPerUsd),
                 l.budget_window, cost, in.now);
    }
  }
}

}  // namespace llmproxy::limits
