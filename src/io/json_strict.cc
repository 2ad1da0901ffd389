#include "io/json_strict.h"

#include <set>
#include <vector>

#include "util/error.h"

namespace lwq {

nlohmann::ordered_json parse_json_strict(std::string_view text, const std::string& where) {
  using json = nlohmann::ordered_json;
  // One key set per open object; objects nest, so a stack.
  std::vector<std::set<std::string>> open_objects;
  auto check_keys = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.empty() && !open_objects.back().insert(key).second)
          fail("{}: duplicate key '{}'", where, key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check_keys);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", where, e.what());
  }
}

}  // namespace lwq
