#pragma once
// Command-line flags of trellis-sim: `--name value` and `--switch`, read by name. Every flag given must
// be read by the command, so a misspelt flag is an error (with the command's usage), never ignored.

#include <cstddef>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace trellis_sim {

/// A bad command line: the message says what is wrong; main prints it with the usage.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class arguments {
 public:
  /// Parses argv[first..argc): "--name value" (the value does not start with "--") or a lone "--switch".
  arguments(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      const std::string_view token = argv[i];
      if (token.size() < 3 || token.substr(0, 2) != "--") throw usage_error("unexpected argument '" + std::string(token) + "'");
      const std::string name(token.substr(2));
      if (values_.count(name)) throw usage_error("--" + name + " is given twice");
      const bool has_value = i + 1 < argc && std::string_view(argv[i + 1]).substr(0, 2) != "--";
      values_[name] = has_value ? argv[++i] : std::string();
      if (!has_value) switches_.insert(name);
    }
  }

  bool has(const std::string& name) {
    used_.insert(name);
    return values_.count(name) != 0;
  }
  /// A switch: present or not; it takes no value.
  bool flag(const std::string& name) {
    if (!has(name)) return false;
    if (!switches_.count(name)) throw usage_error("--" + name + " takes no value");
    return true;
  }
  std::string text(const std::string& name, const std::string& fallback) {
    if (!has(name)) return fallback;
    return value(name);
  }
  std::size_t size(const std::string& name, std::size_t fallback) {
    if (!has(name)) return fallback;
    return parse_size(name, value(name));
  }
  std::size_t required_size(const std::string& name) {
    if (!has(name)) throw usage_error("--" + name + " is required");
    return parse_size(name, value(name));
  }
  /// A comma-separated list of positive sizes ("16,2,8"); `fallback` when absent.
  std::vector<std::size_t> sizes(const std::string& name, std::vector<std::size_t> fallback) {
    if (!has(name)) return fallback;
    std::vector<std::size_t> out;
    const std::string v = value(name);
    for (std::size_t at = 0; at <= v.size();) {
      const std::size_t comma = std::min(v.find(',', at), v.size());
      out.push_back(parse_size(name, v.substr(at, comma - at)));
      at = comma + 1;
    }
    return out;
  }
  /// After the command has read its flags: any flag it did not read is unknown to it.
  void reject_unknown(const std::string& command) const {
    for (const auto& [name, value] : values_)
      if (!used_.count(name)) throw usage_error("unknown flag --" + name + " for '" + command + "'");
  }

 private:
  std::string value(const std::string& name) const {
    if (switches_.count(name)) throw usage_error("--" + name + " needs a value");
    return values_.at(name);
  }
  static std::size_t parse_size(const std::string& name, const std::string& text) {
    std::size_t pos = 0, v = 0;
    try {
      v = std::stoul(text, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (text.empty() || pos != text.size() || text[0] == '-' || v == 0)
      throw usage_error("--" + name + " expects a positive integer (or a comma-separated list of them), got '" + text + "'");
    return v;
  }

  std::map<std::string, std::string> values_;
  std::set<std::string> switches_;
  std::set<std::string> used_;
};

}  // namespace trellis_sim
