#include "mdsync/core/reason.hpp"

namespace mdsync::core {

std::string Reason::render(const std::string& unit) const {
  const std::string side(side_.view()), other(other_.view());
  switch (form_) {
    case Form::kText:
      return text_;
    case Form::kOwns:
      return side + " owns " + unit;
    case Form::kOwnsAndWins:
      return side + " owns " + unit + " and wins";
    case Form::kChangedShared:
      return side + " changed shared " + unit;
    case Form::kReverted:
      return other + " owns " + unit + "; " + side + "'s write is reverted";
    case Form::kAlreadyHolds:
      return side + " already holds the golden value";
    case Form::kWroteLast:
      return side + " wrote last";
    case Form::kRanksBefore:
      return side + " ranks before " + other;
  }
  return text_;
}

}  // namespace mdsync::core
