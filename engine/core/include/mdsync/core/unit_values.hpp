// The values of one decision unit's members, by field name, as a decision records them
// (before, proposed, after). Most units are a single field, so one entry is kept inline and
// recording a decision allocates nothing for it; groups spill to a vector, in member order.
// Names are ShortStrings: a decision copies each three times.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdsync/core/short_string.hpp"
#include "mdsync/core/value.hpp"

namespace mdsync::core {

class UnitValues {
 public:
  using Entry = std::pair<ShortString, Value>;

  UnitValues() = default;
  UnitValues(const UnitValues& o) : size_(o.size_) { copy_entries(o); }
  UnitValues(UnitValues&&) noexcept = default;
  UnitValues& operator=(const UnitValues& o) {
    if (this != &o) {
      size_ = o.size_;
      copy_entries(o);
    }
    return *this;
  }
  UnitValues& operator=(UnitValues&&) noexcept = default;
  UnitValues(std::initializer_list<Entry> entries);
  // Converting from and to a field map keeps callers that think in maps simple.
  UnitValues(const FieldValues& values);  // NOLINT(google-explicit-constructor)
  operator FieldValues() const;           // NOLINT(google-explicit-constructor)

  void add(const ShortString& field, const Value& value) {
    if (size_ != 0) return add_spilled(field, value);
    single_.first = field;  // assigning reuses the entry's buffers: no temporaries
    single_.second = value;
    size_ = 1;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Entry* begin() const { return size_ <= 1 ? &single_ : spill_.data(); }
  const Entry* end() const { return begin() + size_; }
  // The member's value, or nullptr when the unit has no such member.
  const Value* find(std::string_view field) const;

  friend bool operator==(const UnitValues& a, const UnitValues& b);
  friend bool operator!=(const UnitValues& a, const UnitValues& b) { return !(a == b); }

 private:
  void add_spilled(const ShortString& field, const Value& value);
  // The single entry is assigned rather than the whole: its buffers are reused, and a unit of
  // one field never touches the (empty) vector.
  void copy_entries(const UnitValues& o) {
    if (o.size_ <= 1) {
      single_ = o.single_;
      spill_.clear();
    } else {
      spill_ = o.spill_;
    }
  }

  Entry single_;
  std::vector<Entry> spill_;  // used once a second entry is added
  std::size_t size_ = 0;
};

}  // namespace mdsync::core
