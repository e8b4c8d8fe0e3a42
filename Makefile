# krg-vmm build.
#   make            builds ./krg-vmm and the test guest
#   make run        the main job: Debian's stock kernel booted to a shell on a local node
#   make check      unit + integration tests (sanitizer build)
#   make check-stock  the long test: Debian's stock kernel on 1 and 2 vCPUs (not in CI)
#   make check-cluster-long  the cluster test with 10^6-iteration coherence workloads
#   make check-stock-cluster  the stock kernel across 2 local nodes (long)
#   make bench      microbenchmarks against QEMU, see bench/RESULTS.md
#   make bench-cluster  cluster benchmarks (2 nodes on loopback), see bench/README.md
# `run` and `check` first install missing Debian packages (.ci/install-deps.sh).
CC      ?= gcc
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter -Wvla -Wpointer-arith
CSTD    := -std=c11 -D_GNU_SOURCE
INCS    := -I.
OPT     ?= -O2 -g
LIBS    := -lZydis -lZycore -llzma -lzstd -lz -llz4 -lbz2 -lsodium -lisal -ljansson -lpthread -lrt -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)

BUILD   ?= build
# V=1 shows the full commands.
Q := $(if $(V),,@)
SAN_BUILD := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Every .c under these folders belongs to the VMM library; main.c alone makes the binary.
LIB_DIRS := vmm vmm/devices vcpu dsm net guestfw storage
LIB_SRCS := $(filter-out vmm/main.c,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

lib_objs = $(patsubst %.c,$(1)/obj/%.o,$(LIB_SRCS))

.PHONY: all san deps run check check-unit check-integration check-stock check-stock-cluster check-cluster-long bench bench-cluster guest clean
all: krg-vmm guest

krg-vmm: $(BUILD)/krg-vmm
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/krg-vmm: $(call lib_objs,$(BUILD)) $(BUILD)/obj/vmm/main.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(SAN_BUILD)/krg-vmm: $(call lib_objs,$(SAN_BUILD)) $(SAN_BUILD)/obj/vmm/main.o
	$(CC) $(SANFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CSTD) $(WARN) $(OPT) $(INCS) -MMD -MP -c -o $@ $<

$(SAN_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-SAN  $<"
	$(Q)$(CC) $(CSTD) $(WARN) -O1 -g $(SANFLAGS) $(INCS) -MMD -MP -c -o $@ $<

# One executable per unit-test file, each linked against the sanitized library.
UNIT_BINS := $(patsubst tests/unit/%.c,$(SAN_BUILD)/tests/%,$(UNIT_SRCS))
$(SAN_BUILD)/tests/%: tests/unit/%.c $(call lib_objs,$(SAN_BUILD))
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	$(Q)$(CC) $(CSTD) $(WARN) -O1 -g $(SANFLAGS) $(INCS) -o $@ $^ $(CHECK_LIBS) $(LIBS)

san: $(SAN_BUILD)/krg-vmm

deps:
	.ci/install-deps.sh

check: deps
	$(MAKE) check-unit check-integration

run: deps
	$(MAKE) krg-vmm
	tests/stock/prepare.sh
	./krg-vmm launch --config configs/debian-stock.conf

check-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

check-integration: $(SAN_BUILD)/krg-vmm guest
	KRG_VMM=$(SAN_BUILD)/krg-vmm tests/integration/run-all.sh

check-stock: krg-vmm
	tests/stock/run.sh

# The stock kernel as one guest over 2 local nodes (2 vCPUs, one per node).
check-stock-cluster: krg-vmm
	KRG_STOCK_SMP=2 KRG_STOCK_NODES=2 tests/stock/run.sh

# The cluster test with the coherence workloads at 10^6 iterations each
# (store buffering 5 * 10^4: every round moves pages between nodes).
check-cluster-long: $(SAN_BUILD)/krg-vmm guest
	KRG_VMM=$(SAN_BUILD)/krg-vmm CLUSTER_ITERS=1000000 bash tests/integration/t_cluster.sh

bench: krg-vmm guest
	bench/run.sh

# Not a test and not in CI: builds its floor programs into build/bench/.
bench-cluster: krg-vmm guest
	bench/cluster.sh

-include tests/guest/guest.mk

clean:
	rm -rf $(BUILD) $(SAN_BUILD) krg-vmm

-include $(shell find $(BUILD) $(SAN_BUILD) -name '*.d' 2>/dev/null)
