/* kpipe.c: the C SDK's implementation as a source file of its own, for
 * languages that link C but cannot define KPIPE_IMPLEMENTATION before
 * including kpipe.h (Zig: add it to the build command). */
#define KPIPE_IMPLEMENTATION
#include "kpipe.h"
