// How alike two key values are, for fuzzy match keys: Jaro-Winkler similarity by Unicode code
// point, in thousandths, so that a threshold, a comparison and the number a steward reads in a
// possible_duplicate's reason are the same integer everywhere (no float rounding in between).
#pragma once

#include <string>
#include <string_view>

namespace mdsync::mapping {

// 1000 for equal text, 0 for text with nothing in common; symmetric. Jaro similarity, raised by
// Winkler's bonus for a common prefix (up to 4 code points, 0.1 each) when it is above 0.7,
// rounded to the nearest thousandth. Text that is not UTF-8 is compared byte by byte where it
// is malformed (keys are normalized first, so they always are UTF-8).
int similarity_permille(std::string_view a, std::string_view b);

// 862 -> "0.862", 1000 -> "1.000".
std::string permille_text(int permille);

}  // namespace mdsync::mapping
