#include "mdsync/core/reason.hpp"

namespace mdsync::core {

std::string Reason::render(const std::string& unit) const {
  const std::string& other = text_;
  switch (form_) {
    case Form::kText:
      return text_;
    case Form::kOwns:
      return side_ + " owns " + unit;
    case Form::kOwnsAndWins:
      return side_ + " owns " + unit + " and wins";
    case Form::kChangedShared:
      return side_ + " changed shared " + unit;
    case Form::kReverted:
      return other + " owns " + unit + "; " + side_ + "'s write is reverted";
    case Form::kAlreadyHolds:
      return side_ + " already holds the golden value";
    case Form::kWroteLast:
      return side_ + " wrote last";
    case Form::kRanksBefore:
      return side_ + " ranks before " + other;
  }
  return text_;
}

}  // namespace mdsync::core
