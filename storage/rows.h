// What the common layer (storage/store_base.h, storage/mappers.h) and the
// backends hand each other: the stored fields of one object on the way in, a
// row or document to read on the way out, the tables, and the unique
// violation a write may run into. Backend-neutral: columns are named as the
// SQL schemas name them, and MongoDB documents use the same names (`id` is
// MongoDB's `_id`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "lib/domain/error.h"

namespace llmproxy::storage {

// A stored value; std::monostate is NULL.
using Value = std::variant<std::monostate, std::int64_t, double, std::string, bool>;

// The type of a column, also when its value is NULL (PostgreSQL's array
// parameters need it).
enum class Kind { kInt, kReal, kText, kBool };

struct Field {
  const char* column = nullptr;
  Kind kind = Kind::kInt;
  Value value;
};

// The fields a write stores, in the order they were added.
class Fields {
 public:
  // Room for the widest write (an assignment: 14 columns and its two
  // timestamps) without regrowing.
  Fields() { list_.reserve(16); }
  Fields& i64(const char* column, std::int64_t v) { return add(column, Kind::kInt, v); }
  Fields& opt_i64(const char* column, const std::optional<std::int64_t>& v) {
    return v ? i64(column, *v) : add(column, Kind::kInt, std::monostate());
  }
  Fields& real(const char* column, double v) { return add(column, Kind::kReal, v); }
  Fields& opt_real(const char* column, const std::optional<double>& v) {
    return v ? real(column, *v) : add(column, Kind::kReal, std::monostate());
  }
  Fields& text(const char* column, std::string v) { return add(column, Kind::kText, std::move(v)); }
  Fields& boolean(const char* column, bool v) { return add(column, Kind::kBool, v); }

  const std::vector<Field>& list() const { return list_; }

 private:
  // The value is constructed in place: moving a whole Value (a variant
  // holding a string) makes GCC 12 warn of an uninitialized string length.
  template <class T>
  Fields& add(const char* column, Kind kind, T&& v) {
    Field& f = list_.emplace_back();
    f.column = column;
    f.kind = kind;
    f.value.emplace<std::decay_t<T>>(std::forward<T>(v));
    return *this;
  }
  std::vector<Field> list_;
};

// One stored object being read, by column name: a SQL row or a MongoDB
// document.
class FieldReader {
 public:
  virtual ~FieldReader() = default;
  virtual std::int64_t i64(std::string_view column) const = 0;
  virtual std::optional<std::int64_t> opt_i64(std::string_view column) const = 0;
  virtual double real(std::string_view column) const = 0;
  virtual std::optional<double> opt_real(std::string_view column) const = 0;
  virtual std::string text(std::string_view column) const = 0;
  virtual bool boolean(std::string_view column) const = 0;
};

// A table (SQL) or collection (MongoDB) and every column a read selects, id
// first.
struct Table {
  const char* name;
  std::vector<const char*> columns;
};

// Rows that match `column = value`; every row when column is null.
struct Match {
  const char* column = nullptr;
  Value value;
};

// The order of a read. `bytes`: a text column, compared byte for byte.
struct Order {
  const char* column = "id";
  bool bytes = false;
};

// A write broke a unique constraint or index. `detail` is whatever the
// database says about which one (a constraint name, an index name, a
// message): the common layer turns it into the contract's message.
class UniqueViolation : public Error {
 public:
  UniqueViolation(std::string detail, const std::string& message)
      : Error(ErrorKind::kConflict, message), detail_(std::move(detail)) {}
  const std::string& detail() const { return detail_; }

 private:
  std::string detail_;
};

}  // namespace llmproxy::storage
