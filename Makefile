# agentbox: `make` builds into build/, `make check` runs every test (and again under
# ASan+UBSan), `make demo` runs the scripted tour. Both install missing Debian packages.

B ?= build
SAN ?=
CC ?= cc

WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wformat=2 -Wformat-security -Wimplicit-fallthrough -Wswitch-enum \
	-Wno-switch-default -Wundef -Wpointer-arith -Wvla -Wno-unused-parameter
HARDEN := -fstack-protector-strong -fno-strict-aliasing
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
ifeq ($(SAN),)
OPT := -O2 -D_FORTIFY_SOURCE=2 -g
LDSAN :=
else
OPT := -O1 -g -fno-omit-frame-pointer $(SANFLAGS)
LDSAN := $(SANFLAGS)
endif
CFLAGS_ALL := -std=gnu11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(OPT) -Isrc $(CFLAGS)
LDFLAGS_ALL := -Wl,-z,relro,-z,now,-z,noexecstack $(LDSAN) $(LDFLAGS)
LIBS := -lseccomp -ljson-c -lmd -lcares

LIB_SRC := $(wildcard src/shared/*.c) $(wildcard src/lib/*.c) $(wildcard src/proxy/*.c)
LIB_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC))
CLI_SRC := $(wildcard src/cli/*.c)
CLI_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(CLI_SRC))
UNIT_SRC := $(wildcard tests/unit/test-*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(B)/tests/%,$(FUZZ_SRC))
PROBE_SRC := $(wildcard tests/helpers/probe*.c)
HDRS := $(wildcard src/*/*.h tests/unit/*.h)

.PHONY: all check check-plain check-asan demo deps-build deps-test clean bench fuzz
all: $(B)/agentbox $(B)/probe $(UNIT_BIN) $(FUZZ_BIN)

$(B)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

# The seccomp tables are compiled to BPF at build time by a generator linked against the
# library without that output; the library proper then carries the ready programs.
$(B)/libagentbox-core.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/gen-seccomp-builtin: src/tools/gen-seccomp-builtin.c src/tools/no-builtins.c $(B)/libagentbox-core.a
	$(CC) $(CFLAGS_ALL) -o $@ $< src/tools/no-builtins.c $(B)/libagentbox-core.a $(LDFLAGS_ALL) $(LIBS)

$(B)/gen/seccomp-builtin.c: $(B)/gen-seccomp-builtin
	@mkdir -p $(dir $@)
	$< > $@.tmp && mv $@.tmp $@

$(B)/obj/gen/seccomp-builtin.o: $(B)/gen/seccomp-builtin.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(B)/libagentbox.a: $(LIB_OBJ) $(B)/obj/gen/seccomp-builtin.o
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/agentbox: $(CLI_OBJ) $(B)/libagentbox.a
	$(CC) -o $@ $(CLI_OBJ) $(B)/libagentbox.a $(LDFLAGS_ALL) $(LIBS)

# The probe runs inside sandboxes (also inside --rootfs trees), so it is static and
# never sanitized: it must not depend on anything the sandbox may lack.
$(B)/probe: $(PROBE_SRC) tests/helpers/probe.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -static -o $@ $(PROBE_SRC)

$(B)/tests/test-%: tests/unit/test-%.c $(B)/libagentbox.a $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libagentbox.a $(LDFLAGS_ALL) $(LIBS)

$(B)/tests/fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/driver.c $(B)/libagentbox.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< tests/fuzz/driver.c $(B)/libagentbox.a $(LDFLAGS_ALL) $(LIBS)

deps-build:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

# The whole suite on the normal build, then on the ASan+UBSan build.
check: deps-test
	$(MAKE) check-plain
	$(MAKE) check-asan
	@echo "make check: all suites passed"

check-plain: all
	tests/run-all.sh $(B)

check-asan:
	$(MAKE) B=build/asan SAN=1 all
	tests/run-all.sh build/asan

demo:
	@scripts/install-deps.sh demo
	@$(MAKE) --no-print-directory $(B)/agentbox
	@scripts/demo.sh $(B)/agentbox

bench:
	@scripts/install-deps.sh bench
	$(MAKE) all
	bench/run.sh $(B)
	bench/workspace.sh $(B)
	bench/lifecycle.sh $(B)
	bench/network.sh $(B)

# Coverage-guided fuzzing with libFuzzer (clang), beyond the fixed-seed runs of `make
# check`: `make fuzz FUZZ_SECONDS=300`. New crashes land in build/fuzz/crash-*.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer-no-link,address,undefined
fuzz: deps-build
	@command -v clang >/dev/null || { echo "agentbox: make fuzz needs clang: apt-get install -y clang libclang-rt-14-dev" >&2; exit 1; }
	@$(MAKE) --no-print-directory build/gen/seccomp-builtin.c
	@mkdir -p build/fuzz
	@for src in $(LIB_SRC) build/gen/seccomp-builtin.c; do \
		clang $(FUZZ_CFLAGS) -c -o build/fuzz/$$(basename $$src .c).o $$src || exit 1; done
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
		clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o build/fuzz/$$n $$f build/fuzz/*.o $(LIBS) || exit 1; \
		mkdir -p build/fuzz/corpus-$$n && cp tests/fuzz/corpus/$${n#fuzz-}/* build/fuzz/corpus-$$n/; \
		(cd build/fuzz && ./$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 corpus-$$n) || exit 1; \
	done

clean:
	rm -rf build
