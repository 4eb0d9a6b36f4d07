#include "storage/mongo/documents.h"

namespace llmproxy::storage::mongo {

std::string field_name(std::string_view column) {
  return column == "id" ? "_id" : std::string(column);
}

std::int64_t DocReader::i64(std::string_view c) const {
  return get_i64(d_, field_name(c).c_str());
}
std::optional<std::int64_t> DocReader::opt_i64(std::string_view c) const {
  return get_opt_i64(d_, field_name(c).c_str());
}
double DocReader::real(std::string_view c) const {
  return get_dbl(d_, field_name(c).c_str());
}
std::optional<double> DocReader::opt_real(std::string_view c) const {
  return get_opt_dbl(d_, field_name(c).c_str());
}
std::string DocReader::text(std::string_view c) const {
  return get_str(d_, field_name(c).c_str());
}
bool DocReader::boolean(std::string_view c) const {
  return get_bool(d_, field_name(c).c_str());
}

namespace {

void append_value(Doc& d, const char* k, const Value& v) {
  if (const auto* n = std::get_if<std::int64_t>(&v)) {
    d.i64(k, *n);
  } else if (const auto* x = std::get_if<double>(&v)) {
    d.dbl(k, *x);
  } else if (const auto* s = std::get_if<std::string>(&v)) {
    d.str(k, *s);
  } else if (const auto* b = std::get_if<bool>(&v)) {
    d.boolean(k, *b);
  } else {
    d.null(k);
  }
}

}  // namespace

void append_fields(Doc& d, const Fields& f) {
  for (const Field& field : f.list())
    append_value(d, field_name(field.column).c_str(), field.value);
}

void append_match(Doc& filter, const Match& m) {
  if (m.column) append_value(filter, field_name(m.column).c_str(), m.value);
}

}  // namespace llmproxy::storage::mongo
