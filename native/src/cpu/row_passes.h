// Rows 0 .. M-1 of a skinny matmul in passes of R rows, the last one shorter, each pass size its own fixed-row
// kernel: the CPU kernels' (int4, fp16, screened head) way of keeping every row count's accumulators in registers.
#pragma once
#include <type_traits>
#include <utility>

namespace q3 {

namespace row_passes_detail {
template <int... i, class Pass>
void last_pass(int rest, int m, Pass& pass, std::integer_sequence<int, i...>) {
  ((rest == i + 1 ? pass(std::integral_constant<int, i + 1>{}, m) : void()), ...);
}
}  // namespace row_passes_detail

// pass(rows, m) runs rows m .. m+rows-1, rows a std::integral_constant<int, 1..R>.
template <int R, class Pass>
void row_passes(int M, Pass pass) {
  int m = 0;
  for (; m + R <= M; m += R) pass(std::integral_constant<int, R>{}, m);
  row_passes_detail::last_pass(M - m, m, pass, std::make_integer_sequence<int, R - 1>{});
}

}  // namespace q3
