// Stored objects as MongoDB documents: the fields are the SQL columns of
// storage/mappers.h under the same names, except that `id` is `_id`.
#pragma once

#include <string>
#include <string_view>

#include "storage/mongo/driver.h"
#include "storage/rows.h"

namespace llmproxy::storage::mongo {

// The document field that holds a column.
std::string field_name(std::string_view column);

// Reads a document for the shared mappers.
class DocReader final : public FieldReader {
 public:
  explicit DocReader(const bson_t* d) : d_(d) {}
  std::int64_t i64(std::string_view c) const override;
  std::optional<std::int64_t> opt_i64(std::string_view c) const override;
  double real(std::string_view c) const override;
  std::optional<double> opt_real(std::string_view c) const override;
  std::string text(std::string_view c) const override;
  bool boolean(std::string_view c) const override;

 private:
  const bson_t* d_;
};

// Appends every field of f to d (NULL as BSON null).
void append_fields(Doc& d, const Fields& f);
// Appends `column: value` to a filter; nothing when m matches every document.
void append_match(Doc& filter, const Match& m);

}  // namespace llmproxy::storage::mongo
