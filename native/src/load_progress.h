// How a weight loader reports progress, whatever the backend: the stage ("repacking layers") and the fraction done.
#pragma once
#include <functional>

namespace q3 {

using ProgressFn = std::function<void(const char* stage, double fraction)>;

}  // namespace q3
