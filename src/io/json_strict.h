// JSON parsing for checkpoint headers and index files: nlohmann accepts
// duplicate object keys silently (last one wins), which would hide a corrupt
// header, so keys are checked while parsing.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace lwq {

// Parses `text` keeping object keys in file order. Throws lwq::Error
// "<where>: ..." on invalid JSON or on a key repeated within one object.
nlohmann::ordered_json parse_json_strict(std::string_view text, const std::string& where);

}  // namespace lwq
