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

// The longest value a `pattern` is checked on. std::regex matches by recursion, one frame or
// more per character: a hostile value of some thousands of characters overflows the stack
// (the engine would crash on every pass), so a longer value fails the pattern instead.
inline constexpr std::size_t kMaxPatternInputBytes = 1000;

// Why `pattern` could take exponential time on a hostile value (a quantified group that holds
// a quantifier: "(a+)*", "(\w+\s?)+"), or nullopt. The rules reader refuses such patterns.
std::optional<std::string> pattern_hazard(const std::string& pattern);

// nullopt when `value` passes; otherwise a one-line reason naming the failed check. `compare`
// is the unit's compare mode: `required` rejects a value that is empty as the unit compares
// it (blank text under `trim` and `case_insensitive`).
std::optional<std::string> validate(const Validation& rules, FieldType type, const Value& value,
                                    Compare compare = Compare::kExact);

}  // namespace mdsync::core
