// qwen3 CLI (stub; being written).
#include <cstdio>
int main() { std::fprintf(stderr, "qwen3: not built yet\n"); return 1; }
