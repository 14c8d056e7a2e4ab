// Transparent huge page advice for streamed buffers (see huge_pages.h).
#include "huge_pages.h"

#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace q3 {

void advise_huge_pages(void* p, size_t bytes) {
#ifdef __linux__
  const uintptr_t huge = 2u << 20;
  uintptr_t begin = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + bytes) & ~(huge - 1);
  if (end > begin) madvise((void*)begin, end - begin, MADV_HUGEPAGE);  // advisory: failure only costs speed
#else
  (void)p, (void)bytes;
#endif
}

}  // namespace q3
