// Field validation from the rules (`required`, `max_length`, `pattern`, `min`, `max`,
// `one_of`). A failing value is never propagated; the core turns the message returned here
// into an invalid_value conflict.
#pragma once

#include <optional>
#include <string>

#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/value.hpp"

namespace mdsync::core {

// nullopt when `value` passes; otherwise a one-line reason naming the failed check.
std::optional<std::string> validate(const Validation& rules, FieldType type, const Value& value);

// Number of Unicode code points in UTF-8 text (a malformed byte counts as one).
std::size_t utf8_length(const std::string& text);

}  // namespace mdsync::core
