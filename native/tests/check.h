// The C++ test programs' one assertion: counts passes and failures, prints each failure, and report() gives the line
// test/native/cpp-tests.test.ts reads ("N passed, M failed") and the exit status.
#pragma once
#include <cstdio>
#include <string>

namespace q3::test {

inline int g_passed = 0, g_failed = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) {
    g_passed++;
  } else {
    g_failed++;
    std::printf("FAIL %s\n", what.c_str());
  }
}

inline int report() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

}  // namespace q3::test
