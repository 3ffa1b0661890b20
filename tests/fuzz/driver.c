/* Runs a libFuzzer entry point as an ordinary test: every file of the corpus and
 * reproducer directories given on the command line, then a bounded number of inputs
 * mutated from them with a fixed seed, so a run is repeatable and always ends. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (64 * 1024)
#define MAX_SEEDS 256

static uint8_t *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static size_t n_seeds;

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	size_t n;

	if (!f)
		return;
	buf = malloc(FUZZ_MAX_INPUT);
	if (!buf) {
		fclose(f);
		return;
	}
	n = fread(buf, 1, FUZZ_MAX_INPUT, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	if (n_seeds < MAX_SEEDS) {
		seeds[n_seeds] = buf;
		seed_len[n_seeds++] = n;
	} else {
		free(buf);
	}
}

static void run_path(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (stat(path, &st) < 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char full[4096];
		if (de->d_name[0] == '.')
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
		run_file(full);
	}
	closedir(d);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	static uint8_t buf[FUZZ_MAX_INPUT];
	long iterations = 20000;
	const char *env = getenv("AB_FUZZ_ITERATIONS");

	if (env)
		iterations = atol(env);
	for (int i = 1; i < argc; i++)
		run_path(argv[i]);
	for (long it = 0; it < iterations; it++) {
		size_t len = 0;
		if (n_seeds) {
			size_t s = next_random() % n_seeds;
			len = seed_len[s];
			memcpy(buf, seeds[s], len);
		}
		int edits = 1 + (int)(next_random() % 8);
		for (int e = 0; e < edits; e++) {
			uint64_t r = next_random();
			switch (r % 4) {
			case 0: /* flip a byte */
				if (len)
					buf[(r >> 8) % len] ^= (uint8_t)(1u << ((r >> 4) % 8));
				break;
			case 1: /* insert a byte */
				if (len < FUZZ_MAX_INPUT) {
					size_t at = len ? (r >> 8) % (len + 1) : 0;
					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = (uint8_t)(r >> 32);
					len++;
				}
				break;
			case 2: /* delete a byte */
				if (len) {
					size_t at = (r >> 8) % len;
					memmove(buf + at, buf + at + 1, len - at - 1);
					len--;
				}
				break;
			default: /* truncate */
				if (len)
					len = (r >> 8) % (len + 1);
				break;
			}
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	for (size_t i = 0; i < n_seeds; i++)
		free(seeds[i]);
	printf("fuzz: %zu corpus inputs, %ld mutated inputs, no crash\n", n_seeds, iterations);
	return 0;
}
