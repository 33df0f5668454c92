// Why a decision went the way it did, kept as its parts and rendered to one line on demand.
// Most plans are applied without anyone reading their reasons, and composing a sentence for
// every decided field would cost more than deciding it; the audit and the CLI render them.
#pragma once

#include <cstdint>
#include <string>

#include "mdsync/core/short_string.hpp"

namespace mdsync::core {

class Reason {
 public:
  // The sentences the hot path makes; kText is any other, already written out.
  enum class Form : std::uint8_t {
    kText,           // text
    kOwns,           // "{side} owns {unit}"
    kOwnsAndWins,    // "{side} owns {unit} and wins"
    kChangedShared,  // "{side} changed shared {unit}"
    kReverted,       // "{other} owns {unit}; {side}'s write is reverted"
    kAlreadyHolds,   // "{side} already holds the golden value"
    kWroteLast,      // "{side} wrote last"
    kRanksBefore,    // "{side} ranks before {other}"
  };

  Reason() = default;
  Reason(std::string text) : text_(std::move(text)) {}  // NOLINT(google-explicit-constructor)
  Reason(const char* text) : text_(text) {}             // NOLINT(google-explicit-constructor)
  Reason(Form form, const ShortString& side, const ShortString& other = ShortString())
      : form_(form), side_(side), other_(other) {}

  // The one-line sentence; `unit` is the name of the unit the decision is about.
  std::string render(const std::string& unit) const;

 private:
  Form form_ = Form::kText;
  ShortString side_;
  ShortString other_;
  std::string text_;  // the whole sentence for kText
};

}  // namespace mdsync::core
