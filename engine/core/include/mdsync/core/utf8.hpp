// UTF-8 text measured and cut by code points, never by bytes: a byte cut can split a
// multibyte sequence, and a string with a split sequence is no longer text (a JSON encoder
// refuses it, PostgreSQL refuses it). Every place that shortens a value for a message or a
// display goes through utf8_prefix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mdsync::core {

// Number of Unicode code points in UTF-8 text (a malformed byte counts as one).
std::size_t utf8_length(std::string_view text);

// The first `max_code_points` code points of `text`, whole; a malformed byte counts as one
// code point and is kept as it is.
std::string utf8_prefix(std::string_view text, std::size_t max_code_points);

// `text` itself when it has at most `max_code_points` code points; otherwise its prefix of
// that many followed by "..." and the full size ("... (1048577 bytes)"), for messages.
std::string utf8_abbreviated(std::string_view text, std::size_t max_code_points);

// True when `text` is well-formed UTF-8 (no stray continuation bytes, no truncated, overlong
// or surrogate sequences, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view text);

// `text` with every byte that is not part of a well-formed sequence replaced by U+FFFD.
std::string utf8_lossy(std::string_view text);

// Appends the UTF-8 sequence of `code_point` (at most U+10FFFF, not a surrogate: the caller
// has checked it, as a JSON reader does for \u escapes).
void append_utf8(std::string& out, std::uint32_t code_point);

}  // namespace mdsync::core
