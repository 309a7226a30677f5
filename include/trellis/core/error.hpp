#pragma once
// trellis::error and the no-exceptions handler (DESIGN.md §2).
//
// Every invalid call reports one message of the form "<op>: <argument>: expected <what>, got
// <what>". With exceptions enabled it is thrown as trellis::error; in -fno-exceptions builds it
// goes to a settable handler, which prints and aborts by default (a handler that returns is
// followed by std::abort()).

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "trellis/core/config.hpp"

namespace trellis {

/// Thrown for every invalid argument or option combination; nothing has been written when it is
/// thrown.
class error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Receives the message of an error in builds without exceptions. Must not return (if it does,
/// Trellis aborts).
using error_handler = void (*)(const char* message);

namespace error_detail {
inline void default_error_handler(const char* message) {
  std::fprintf(stderr, "trellis::error: %s\n", message);
  std::fflush(stderr);
  std::abort();
}
inline std::atomic<error_handler>& error_handler_slot() {
  static std::atomic<error_handler> slot{&default_error_handler};
  return slot;
}
}  // namespace error_detail

/// Installs `handler` for builds without exceptions and returns the previous one (nullptr restores
/// the default).
inline error_handler set_error_handler(error_handler handler) noexcept {
  return error_detail::error_handler_slot().exchange(
      handler ? handler : &error_detail::default_error_handler);
}

/// Reports an error: throws trellis::error, or calls the handler then aborts when exceptions are
/// off.
[[noreturn]] inline void raise_error(const std::string& message) {
#if TRELLIS_HAS_EXCEPTIONS
  throw error(message);
#else
  error_detail::error_handler_slot().load()(message.c_str());
  std::abort();
#endif
}

}  // namespace trellis
