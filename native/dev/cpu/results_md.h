// What the dev harnesses that write a results file share: the median over rounds, a number in printf format, and the
// results file's date-and-load line.
#pragma once
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

namespace q3::dev {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

inline std::string fmt(const char* f, double v) {
  char s[48];
  std::snprintf(s, sizeof s, f, v);
  return s;
}

// "- date: 2026-12-02 14:39:36 UTC; load average 0.80 / 0.54 / 0.32\n" (now, from /proc/loadavg).
inline std::string date_and_load_line() {
  double load[3] = {-1, -1, -1};
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
    std::fclose(f);
  }
  char date[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return "- date: " + std::string(date) + "; load average " + fmt("%.2f", load[0]) + " / " + fmt("%.2f", load[1]) +
         " / " + fmt("%.2f", load[2]) + "\n";
}

}  // namespace q3::dev
