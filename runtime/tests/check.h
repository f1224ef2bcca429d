// Tiny test harness for the runtime's ctest executables (no third-party test framework needed).
#pragma once

#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace lapmask_test {

struct Failure {
  std::string message;
};

inline int& failures() {
  static int n = 0;
  return n;
}

#define LM_CHECK(cond)                                                                                   \
  do {                                                                                                   \
    if (!(cond)) {                                                                                       \
      std::ostringstream lm_os;                                                                          \
      lm_os << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed";                               \
      throw lapmask_test::Failure{lm_os.str()};                                                          \
    }                                                                                                    \
  } while (0)

#define LM_CHECK_EQ(a, b)                                                                                \
  do {                                                                                                   \
    const auto& lm_a = (a);                                                                              \
    const auto& lm_b = (b);                                                                              \
    if (!(lm_a == lm_b)) {                                                                               \
      std::ostringstream lm_os;                                                                          \
      lm_os << __FILE__ << ":" << __LINE__ << ": " #a " == " #b " failed: " << lm_a << " vs " << lm_b;   \
      throw lapmask_test::Failure{lm_os.str()};                                                          \
    }                                                                                                    \
  } while (0)

#define LM_CHECK_THROWS(expr, substring)                                                                 \
  do {                                                                                                   \
    bool lm_thrown = false;                                                                              \
    try {                                                                                                \
      (void)(expr);                                                                                      \
    } catch (const std::exception& lm_e) {                                                               \
      lm_thrown = true;                                                                                  \
      if (std::string(lm_e.what()).find(substring) == std::string::npos) {                               \
        throw lapmask_test::Failure{std::string(__FILE__) + ": " #expr " threw '" + lm_e.what() +       \
                                    "' without '" + (substring) + "'"};                                  \
      }                                                                                                  \
    }                                                                                                    \
    if (!lm_thrown) throw lapmask_test::Failure{std::string(__FILE__) + ": " #expr " did not throw"};    \
  } while (0)

// Runs one named test case; returns true on success and prints the failure otherwise.
inline bool run_case(const std::string& name, const std::function<void()>& fn) {
  try {
    fn();
    std::printf("[ ok ] %s\n", name.c_str());
    return true;
  } catch (const Failure& f) {
    std::printf("[FAIL] %s: %s\n", name.c_str(), f.message.c_str());
  } catch (const std::exception& e) {
    std::printf("[FAIL] %s: exception: %s\n", name.c_str(), e.what());
  }
  ++failures();
  return false;
}

}  // namespace lapmask_test
