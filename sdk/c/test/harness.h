/* harness.h: what the native C SDK tests share, included after kpipe.h or
 * kpipe_consume.h with KPIPE_IMPLEMENTATION: stubs of the host functions
 * that record the last error, pass/fail counting, and reading a test vector
 * from the directory given on the command line (dir).
 *
 * KPIPE_TEST_GRANTED is the mask of feature bits the stub host grants
 * (default: all three of ABI section 8.1). */
#ifndef KPIPE_TEST_HARNESS_H
#define KPIPE_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KPIPE_TEST_GRANTED
#define KPIPE_TEST_GRANTED 7
#endif

/* Natively, the host functions are stubs that record the last error. */
static char last_error[256];
int32_t kpipe_host_config_get(uint8_t *buf, int32_t limit) { (void)buf; (void)limit; return 0; }
int32_t kpipe_host_log_enabled(int32_t level) { return level >= KPIPE_LOG_INFO; }
void kpipe_host_log(int32_t level, const uint8_t *p, int32_t n) { fprintf(stderr, "log %d: %.*s\n", level, n, (const char *)p); }
void kpipe_host_set_error(const uint8_t *p, int32_t n) { snprintf(last_error, sizeof last_error, "%.*s", n, (const char *)p); }
int64_t kpipe_host_enable_features(int64_t f) { return f & KPIPE_TEST_GRANTED; }

static int passed, failed;
static const char *dir;

static void check(int ok, const char *what, const char *name) {
	if (ok) {
		passed++;
	} else {
		failed++;
		printf("FAIL %s: %s %s\n", name, what, last_error);
	}
}

/* slurp returns the bytes of dir/rel (exits 2 if it cannot be read). */
static uint8_t *slurp(const char *rel, uint32_t *len) {
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("cannot open %s\n", path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(n ? (size_t)n : 1);
	if (fread(b, 1, (size_t)n, f) != (size_t)n) exit(2);
	fclose(f);
	*len = (uint32_t)n;
	return b;
}

#endif
