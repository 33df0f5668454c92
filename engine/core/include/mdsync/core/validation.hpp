// Field validation from the rules (`required`, `max_length`, `pattern`, `min`, `max`,
// `one_of`) and the engine's own value limit. A failing value is never propagated; the core
// turns the message returned here into an invalid_value conflict.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/utf8.hpp"
#include "mdsync/core/value.hpp"

namespace mdsync::core {

// The largest value the engine copies between sides: a larger one is an invalid value of its
// field, whatever the rules say, so one runaway value cannot be written to every side.
inline constexpr std::size_t kMaxValueBytes = std::size_t{1} << 20;

// nullopt when `value` passes; otherwise a one-line reason naming the failed check. `compare`
// is the unit's compare mode: `required` rejects a value that is empty as the unit compares
// it (blank text under `trim` and `case_insensitive`).
std::optional<std::string> validate(const Validation& rules, FieldType type, const Value& value,
                                    Compare compare = Compare::kExact);

}  // namespace mdsync::core
