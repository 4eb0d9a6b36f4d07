// The immutable, indexed view of the configuration that serve answers from.
// Built off the hot path from storage (ConfigData) and swapped in atomically;
// in-flight requests keep the snapshot they started with.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lib/domain/types.h"

namespace llmproxy::config {

struct KeyEntry {
  VirtualKey vkey;
  // A model-level assignment is more specific than a connection-level one.
  std::unordered_map<Id, const Assignment*> by_model;
  std::unordered_map<Id, const Assignment*> by_connection;
};

struct ModelEntry {
  const ProviderModel* model;
  const Connection* connection;
};

class Snapshot {
 public:
  explicit Snapshot(ConfigData data);
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  std::int64_t version() const { return data_.version; }
  // The configuration, with each assignment's limits the effective ones
  // (its plan's where it sets none).
  const ConfigData& data() const { return data_; }

  const KeyEntry* key_by_hash(std::string_view hash) const;
  const ModelEntry* model_by_name(std::string_view name) const;
  const Connection* connection_by_name(std::string_view name) const;

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <class V>
  using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

  ConfigData data_;
  StringMap<KeyEntry> keys_;
  StringMap<ModelEntry> models_;
  StringMap<const Connection*> connections_by_name_;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

// The current snapshot, readable from any thread without blocking writers.
class SnapshotHolder {
 public:
  explicit SnapshotHolder(SnapshotPtr initial) : current_(std::move(initial)) {}
  SnapshotPtr get() const { return current_.load(std::memory_order_acquire); }
  void set(SnapshotPtr next) { current_.store(std::move(next), std::memory_order_release); }

 private:
  std::atomic<SnapshotPtr> current_;
};

}  // namespace llmproxy::config
