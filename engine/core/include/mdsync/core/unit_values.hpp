// The values of one decision unit's members, by field name, as a decision records them
// (before, proposed, after). Most units are a single field, so one entry is kept inline and
// recording a decision allocates nothing for it; groups spill to a vector, in member order.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/core/value.hpp"

namespace mdsync::core {

class UnitValues {
 public:
  using Entry = std::pair<std::string, Value>;

  UnitValues() = default;
  UnitValues(std::initializer_list<Entry> entries);
  // Converting from and to a field map keeps callers that think in maps simple.
  UnitValues(const FieldValues& values);  // NOLINT(google-explicit-constructor)
  operator FieldValues() const;           // NOLINT(google-explicit-constructor)

  void add(const std::string& field, const Value& value);

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Entry* begin() const { return size_ <= 1 ? &single_ : spill_.data(); }
  const Entry* end() const { return begin() + size_; }
  // The member's value, or nullptr when the unit has no such member.
  const Value* find(const std::string& field) const;

  friend bool operator==(const UnitValues& a, const UnitValues& b);
  friend bool operator!=(const UnitValues& a, const UnitValues& b) { return !(a == b); }

 private:
  Entry single_;
  std::vector<Entry> spill_;  // used once a second entry is added
  std::size_t size_ = 0;
};

}  // namespace mdsync::core
