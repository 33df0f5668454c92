// Field values as the core sees them: canonical text or SQL NULL, tagged by the field's type.
// Text keeps every byte; numeric and integer values are exact decimals kept as digit strings,
// so money never passes through a double. Comparison follows the field's `compare` mode.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "mdsync/core/ruleset.hpp"

namespace mdsync::core {

std::optional<FieldType> field_type_from_string(std::string_view word);

// nullopt is SQL NULL, distinct from the empty string.
using Value = std::optional<std::string>;
using FieldValues = std::map<std::string, Value>;

std::string show(const Value& v);  // NULL, or the value in double quotes, for plans and logs
// One field's value as show() gives it, several as {field="value", ...} in field order.
std::string show(const FieldValues& v);

// Canonical decimal text ("-12.5", "0", "10"): no '+', no leading zeros, no trailing
// fractional zeros. nullopt if `text` is not a plain decimal number.
std::optional<std::string> canonical_decimal(std::string_view text);
// Exact comparison of two canonical decimals: <0, 0, >0.
int compare_decimal(std::string_view a, std::string_view b);

// Normalizes a value read from a side into the core's canonical form for its type
// (decimals canonical, booleans "true"/"false"). nullopt: the value does not convert, and
// the caller reports it; the raw text is never silently altered otherwise.
std::optional<Value> canonicalize(FieldType type, const Value& raw);

// Equality under the field's type and compare mode ("10.0" equals "10.00" for numbers).
bool values_equal(FieldType type, Compare mode, const Value& a, const Value& b);

}  // namespace mdsync::core
