/* kpipe.c: the C SDK's implementation as a source file of its own, for
 * languages that link C but cannot define KPIPE_IMPLEMENTATION before
 * including kpipe.h (Zig: add it to the build command). It includes the
 * consume side (kpipe_consume.h, which includes kpipe.h), so that its
 * kpipe_dispatch_on_consume and kpipe_dispatch_deserialize are there too. */
#define KPIPE_IMPLEMENTATION
#include "kpipe_consume.h"
