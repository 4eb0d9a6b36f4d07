// The stored form of every entity, for all three backends: which table it
// lives in, which columns it has, and how an object becomes fields and a row
// or document becomes an object again. Adding a column to an entity means
// changing its table, its two functions here, and one migration per backend.
//
// The *_fields functions leave out id, created_at and updated_at: the store
// sets those (storage/store_base.cpp).
#pragma once

#include "lib/crypto/secret_box.h"
#include "lib/domain/types.h"
#include "storage/rows.h"

namespace llmproxy::storage {

extern const Table kConnections;
extern const Table kModels;
extern const Table kVkeys;
extern const Table kAssignments;
extern const Table kPlans;
extern const Table kAdminUsers;
extern const Table kUsageRecords;

// Connection secrets are sealed with `box` on the way in and opened on the
// way out (storage/secrets.h).
Fields connection_fields(const Connection& c, const crypto::SecretBox& box);
Connection read_connection(const FieldReader& r, const crypto::SecretBox& box);

Fields model_fields(const ProviderModel& m);
ProviderModel read_model(const FieldReader& r);

Fields vkey_fields(const VirtualKey& k);
VirtualKey read_vkey(const FieldReader& r);

Fields assignment_fields(const Assignment& a);
Assignment read_assignment(const FieldReader& r);

Fields plan_fields(const Plan& p);
Plan read_plan(const FieldReader& r);

Fields admin_user_fields(const AdminUser& u);
AdminUser read_admin_user(const FieldReader& r);

Fields usage_fields(const UsageRecord& u);
UsageRecord read_usage(const FieldReader& r);

}  // namespace llmproxy::storage
