# iomem: build the guest firmware, set up the harness, run the tests.
#
#   make            build the firmware ELF (installs the cross toolchain if missing)
#   make test-hw    the main job: boot every profile and run the hardware tests
#                   (SHARD=i/N: only shard i of N, by the durations in .test_durations)
#   make test-durations  refresh .test_durations (runs the whole hardware suite)
#   make test       everything: lint, types, host tests, hardware tests
#   make console    interactive console on a fresh guest (PROFILE=virt-4k)
#   make bench      benchmarks: JSON + table + plots in build/bench
#   make chaos      200 guests killed, aborted, hung, crashed, starved of disk (not in CI)
#
# Every target installs what it needs on a fresh Debian machine (run as root):
# the apt packages below when their commands are missing, and .venv from pyproject.toml.

SHELL := /bin/bash
.DEFAULT_GOAL := firmware
.DELETE_ON_ERROR:
# Python may keep its bytecode (__pycache__/, ignored by git): with PYTHONDONTWRITEBYTECODE set,
# every pytest worker and every `iomem` a test starts compiled the harness and rewrote the
# tests' asserts again (a 3 s collection became 1.2 s).
unexport PYTHONDONTWRITEBYTECODE

PROFILE ?= virt-4k
V ?= 0
Q := $(if $(filter 1,$(V)),,@)
PYTEST_ARGS ?=
BUILD := build
VENV := .venv
PY := $(VENV)/bin/python

# ---------------------------------------------------------------- set-up
PICOLIBC_SPECS := /usr/lib/picolibc/aarch64-linux-gnu/picolibc.specs
DEPS_STAMP := $(BUILD)/.deps-ok
VENV_STAMP := $(VENV)/.installed

$(DEPS_STAMP):
	@missing=""; \
	command -v qemu-system-aarch64 >/dev/null || missing="$$missing qemu-system-arm"; \
	command -v aarch64-linux-gnu-gcc >/dev/null || missing="$$missing gcc-aarch64-linux-gnu"; \
	test -f $(PICOLIBC_SPECS) || missing="$$missing picolibc-aarch64-linux-gnu"; \
	command -v gcc >/dev/null || missing="$$missing gcc libc6-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
	@mkdir -p $(@D) && touch $@

$(VENV_STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "error: python3 is required" >&2; exit 1; }
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "installing: python3-venv"; apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >/dev/null; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

.PHONY: deps venv setup
deps: $(DEPS_STAMP)
venv: $(VENV_STAMP)
setup: deps venv

# ---------------------------------------------------------------- firmware
CROSS := aarch64-linux-gnu-
FW_CC := $(CROSS)gcc
FW_OUT := $(BUILD)/firmware
FW_ELF := $(FW_OUT)/iomem.elf
FW_LDS := firmware/arch/arm64/iomem.ld
FW_SRCS := $(sort $(wildcard $(addprefix firmware/,\
	arch/arm64/*.S arch/arm64/*.c drivers/*.c mm/*.c agent/*.c lib/*.c)))
FW_OBJS := $(patsubst firmware/%,$(FW_OUT)/%.o,$(FW_SRCS))
FW_CPPFLAGS := -Ifirmware/include -Ifirmware
FW_CFLAGS := --specs=$(PICOLIBC_SPECS) -std=c11 -O2 -g -Wall -Wextra -Werror \
	-ffreestanding -fno-common -fno-omit-frame-pointer -march=armv8-a -mno-outline-atomics \
	-MMD -MP
FW_LDFLAGS := --specs=$(PICOLIBC_SPECS) -nostartfiles -no-pie -T $(FW_LDS) \
	-Wl,--build-id=sha1 -Wl,-z,max-page-size=4096

.PHONY: firmware
firmware: $(FW_ELF)

# Linked beside and renamed into place: a test process reading the ELF while
# another one's make relinks it (a source edited during a run) sees the old
# file or the new one, never a truncated one.
$(FW_ELF): $(FW_OBJS) $(FW_LDS) | $(DEPS_STAMP)
	@echo "  LD      $@"
	$(Q)$(FW_CC) $(FW_LDFLAGS) -o $@.tmp $(FW_OBJS) -lc
	$(Q)mv -f $@.tmp $@

$(FW_OUT)/%.c.o: firmware/%.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(FW_CC) $(FW_CPPFLAGS) $(FW_CFLAGS) -c -o $@ $<

$(FW_OUT)/%.S.o: firmware/%.S | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  AS      $<"
	$(Q)$(FW_CC) $(FW_CPPFLAGS) $(FW_CFLAGS) -c -o $@ $<

-include $(FW_OBJS:.o=.d)

# ---------------------------------------------------------------- host seam
# The hardware-free parts of the firmware, built for the host as one shared
# library that tests/host loads with ctypes: same source, two builds.
HOST_OUT := $(BUILD)/host
HOST_LIB := $(HOST_OUT)/libiomem_host.so
# The protocol core (agent/{number,reply,grammar,dispatch,session,cmd_proto}.c),
# the host-only test verbs and ctypes entry points (agent/host/), lib/, and the
# hardware-free parts of mm/ (allocators, descriptor encoding, format table).
HOST_AGENT := number reply grammar dispatch session cmd_proto describe
HOST_MM := ioreturn iovmpagesize pages heap object pte formats
HOST_SRCS := $(wildcard $(addprefix firmware/,\
	$(HOST_AGENT:%=agent/%.c) agent/host/*.c lib/*.c $(HOST_MM:%=mm/%.c)))
HOST_CFLAGS := -std=c11 -O1 -g -Wall -Wextra -Werror -fPIC -shared -DIOMEM_HOST

.PHONY: host-lib
host-lib: $(HOST_LIB)

# The host half of `make bench` (issue P1): the same heap and traces, -O2, one binary
# that harness/bench.py runs against iomem and against malloc (glibc, or jemalloc /
# mimalloc through LD_PRELOAD; their Debian packages are installed when missing).
HEAPBENCH := $(HOST_OUT)/heapbench
HEAPBENCH_SRCS := bench/heapbench.c $(wildcard firmware/lib/*.c) \
	$(addprefix firmware/mm/,heap.c pages.c ioreturn.c iovmpagesize.c)
BENCH_LIBS_STAMP := $(BUILD)/.bench-libs-ok

$(HEAPBENCH): $(HEAPBENCH_SRCS) $(wildcard firmware/include/*.h firmware/*/*.h) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  HOSTCC  $@"
	$(Q)gcc -std=c11 -O2 -g -Wall -Wextra -Werror -DIOMEM_HOST $(FW_CPPFLAGS) -o $@ $(HEAPBENCH_SRCS)

$(BENCH_LIBS_STAMP):
	@missing=""; \
	test -n "$$(ldconfig -p | grep libjemalloc.so.2)" || missing="$$missing libjemalloc-dev"; \
	test -n "$$(ldconfig -p | grep libmimalloc.so.2)" || missing="$$missing libmimalloc-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
	@mkdir -p $(@D) && touch $@

.PHONY: heapbench
heapbench: $(HEAPBENCH) $(BENCH_LIBS_STAMP)

$(HOST_LIB): $(HOST_SRCS) $(wildcard firmware/include/*.h firmware/*/*.h firmware/*/*/*.h) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  HOSTCC  $@"
	$(Q)gcc $(HOST_CFLAGS) $(FW_CPPFLAGS) -o $@ $(HOST_SRCS)

# ---------------------------------------------------------------- tests
.PHONY: test test-hw test-host test-durations lint console bench clean chaos mutate

# Both use every core (pytest-xdist; the per-profile summary is exact across workers) and
# list the ten slowest tests at the end. JOBS=1 runs in one process (e.g. to profile).
# The hardware tests run two workers more than there are cores: a worker's time goes in
# hand-offs between the harness, QEMU's main loop and its vCPU thread, which leave a core
# idle between them (2 cores: 2 workers 5 min 12 s, 3 4:47, 4 4:36, 6 5:19; docs/harness.md).
JOBS ?= auto
HW_JOBS ?= $(if $(filter auto,$(JOBS)),$(shell echo $$(( $$(nproc) + 2 ))),$(JOBS))
PYTEST_PAR := $(if $(filter 1,$(JOBS)),,-n $(JOBS)) --durations=10
HW_PAR := $(if $(filter 1,$(HW_JOBS)),,-n $(HW_JOBS)) --durations=10

test-host: $(VENV_STAMP) $(HOST_LIB)
	$(VENV)/bin/pytest tests/host -q $(PYTEST_PAR) $(PYTEST_ARGS)

# SHARD=i/N runs shard i (1-based) of N: pytest-split's deterministic split by the recorded
# durations in $(DURATIONS) (tests not in it count as the average); the N shards together
# run every test exactly once (tests/hw/test_sharding.py).
DURATIONS := .test_durations
SHARD ?=
SHARD_ARGS := $(if $(SHARD),--splits $(word 2,$(subst /, ,$(SHARD))) --group $(word 1,$(subst /, ,$(SHARD))) \
	--splitting-algorithm least_duration --durations-path $(DURATIONS))

# Ends with the claims table (build/claims.json; also in build/test-hw.xml's properties).
# PYTEST_ARGS may name test paths (tests/hw/test_x.py, tests/hw/test_x.py::test_y): then only those run.
HW_PATHS = $(if $(filter tests/%,$(PYTEST_ARGS)),,tests/hw)

test-hw: $(VENV_STAMP) $(FW_ELF)
	$(VENV)/bin/pytest $(HW_PATHS) $(HW_PAR) --junitxml=$(BUILD)/test-hw.xml $(SHARD_ARGS) $(PYTEST_ARGS)

test-durations: $(VENV_STAMP) $(FW_ELF)
	$(VENV)/bin/pytest tests/hw $(HW_PAR) --store-durations --clean-durations \
	  --durations-path $(DURATIONS) $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check harness tests
	$(VENV)/bin/mypy

test: lint test-host test-hw

# 200 guests dying every way they can (harness/tools/chaos.py); CI runs one of each in test-hw.
CHAOS_GUESTS ?= 200
chaos: $(VENV_STAMP) $(FW_ELF)
	IOMEM_CHAOS_GUESTS=$(CHAOS_GUESTS) $(VENV)/bin/pytest tests/hw/test_chaos.py $(PYTEST_PAR) $(PYTEST_ARGS)

# Mutation testing of firmware/mm and the agent's parser (harness/tools/mutate.py; slow, not in CI).
MUTATE_SAMPLE ?= 20
mutate: $(VENV_STAMP) $(FW_ELF) $(HOST_LIB)
	nice -n 5 $(PY) -m harness.tools.mutate --sample $(MUTATE_SAMPLE) $(MUTATE_ARGS)

console: $(VENV_STAMP) $(FW_ELF)
	$(VENV)/bin/iomem console --profile $(PROFILE)

bench: $(VENV_STAMP) $(FW_ELF) heapbench
	$(VENV)/bin/iomem bench --out $(BUILD)/bench

clean:
	rm -rf $(BUILD)
