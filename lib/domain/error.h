// The one error type of the control plane. The kind decides the CLI exit code
// and the admin API status, so both report the same failure the same way.
#pragma once

#include <stdexcept>
#include <string>

namespace llmproxy {

enum class ErrorKind {
  kStorage = 1,   // the database failed or is unreachable       (exit 1, HTTP 500/503)
  kInvalid = 2,   // bad input: flags, values, references        (exit 2, HTTP 400)
  kNotFound = 3,  // the named object does not exist             (exit 3, HTTP 404)
  kConflict = 4,  // duplicate name, object still in use         (exit 4, HTTP 409)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

inline Error invalid(const std::string& m) { return Error(ErrorKind::kInvalid, m); }
inline Error not_found(const std::string& m) { return Error(ErrorKind::kNotFound, m); }
inline Error conflict(const std::string& m) { return Error(ErrorKind::kConflict, m); }
inline Error storage_error(const std::string& m) { return Error(ErrorKind::kStorage, m); }

}  // namespace llmproxy
