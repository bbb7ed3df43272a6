// Header values as HTTP reads them: names and tokens compare without case,
// optional whitespace (space, tab) around values is not part of them.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace thaw {

std::string AsciiLower(std::string_view text);
bool AsciiIEquals(std::string_view a, std::string_view b);
// Without leading spaces and tabs, and trailing spaces, tabs and CR.
std::string_view TrimHeaderSpace(std::string_view text);

}  // namespace thaw
