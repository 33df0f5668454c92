#include "mdsync/core/unit_values.hpp"

namespace mdsync::core {

UnitValues::UnitValues(std::initializer_list<Entry> entries) {
  for (const Entry& e : entries) add(e.first, e.second);
}

UnitValues::UnitValues(const FieldValues& values) {
  for (const auto& [field, value] : values) add(field, value);
}

UnitValues::operator FieldValues() const {
  FieldValues out;
  for (const Entry& e : *this) out.emplace(e.first.str(), e.second);
  return out;
}

void UnitValues::add_spilled(const ShortString& field, const Value& value) {
  if (size_ == 1) spill_.push_back(std::move(single_));
  spill_.emplace_back(field, value);
  ++size_;
}

const Value* UnitValues::find(std::string_view field) const {
  for (const Entry& e : *this)
    if (e.first.view() == field) return &e.second;
  return nullptr;
}

bool operator==(const UnitValues& a, const UnitValues& b) {
  if (a.size_ != b.size_) return false;
  // Entries follow member order when built by the core, but a map-built one is sorted, so
  // match by name rather than by position.
  for (const UnitValues::Entry& e : a) {
    const Value* other = b.find(e.first);
    if (other == nullptr || *other != e.second) return false;
  }
  return true;
}

}  // namespace mdsync::core
