# krg-vmm build.
#   make            builds ./krg-vmm and the test guest
#   make run        the main job: Debian's stock kernel booted to a shell across 2 local nodes
#   make check      unit + integration tests (sanitizer build)
#   make check-stock  the long test: Debian's stock kernel on 1 and 2 vCPUs (not in CI)
#   make check-cluster-long  the cluster test with 10^6-iteration coherence workloads
#   make check-blk-load  virtio-blk under load alone (also in make check): 4 vCPUs x 128 MiB
#   make check-stock-cluster  the stock kernel across 2 local nodes (long)
#   make check-stock-migrate  the stock kernel: vCPU migration, checkpoint, restore (long)
#   make check-firmware-long  the Debian image through SeaBIOS and GRUB (long)
#   make image      the Debian disk image (tests/image/, cached; downloads)
#   make check-image  that image booted with -kernel drive:/vmlinuz (long)
#   make bench      microbenchmarks against QEMU, see bench/RESULTS.md
#   make bench-cluster  cluster benchmarks (2 nodes on loopback), see bench/README.md
# `run` and `check` first install missing Debian packages (.ci/install-deps.sh).
CC      ?= gcc
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter -Wvla -Wpointer-arith
CSTD    := -std=c11 -D_GNU_SOURCE
INCS    := -I.
OPT     ?= -O2 -g
LIBS    := -lZydis -lZycore -llzma -lzstd -lz -llz4 -lbz2 -lsodium -lisal -ljansson -luring -lnbd -lext2fs -lcom_err -lslirp -lpthread -lrt -lm
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

.PHONY: all san deps run check check-unit check-integration check-stock check-stock-cluster check-stock-migrate check-cluster-long bench bench-cluster guest clean
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
	$(MAKE) check-unit check-fuzz check-integration

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

# The Debian image (tests/image/) booted through SeaBIOS and GRUB, stage by
# stage, next to QEMU TCG with the same firmware (tests/firmware/long.sh).
.PHONY: check-firmware-long
check-firmware-long: krg-vmm
	tests/firmware/long.sh

# The Debian bookworm disk image (tests/image/): built from Debian's
# archive without mounts, cached in /var/cache/krg-vmm/images, rebuilt only
# when build-image.sh changes; not part of check (it downloads ~200 MB).
# check-image boots it with -kernel drive:/vmlinuz -initrd drive:/initrd.img
# on 1 node, then the same disk on 2 nodes, which must find the file the
# first boot wrote (long: hours per boot under PVM).
.PHONY: image check-image
image:
	tests/image/build-image.sh

check-image: krg-vmm
	tests/image/boot-direct.sh

# The stock kernel as one guest over 2 local nodes (2 vCPUs, one per node).
check-stock-cluster: krg-vmm
	KRG_STOCK_SMP=2 KRG_STOCK_NODES=2 tests/stock/run.sh

# The stock kernel on 2 nodes: vCPU migration under a shell loop, then a
# checkpoint restored on 2 and on 1 node (long; keeps work/idle.snap).
check-stock-migrate: krg-vmm
	tests/stock/migrate-checkpoint.sh

# The cluster test with the coherence workloads at 10^6 iterations each
# (store buffering 5 * 10^4: every round moves pages between nodes).
check-cluster-long: $(SAN_BUILD)/krg-vmm guest
	KRG_VMM=$(SAN_BUILD)/krg-vmm CLUSTER_ITERS=1000000 bash tests/integration/t_cluster.sh

# virtio-blk under load: test=blk on 4 vCPUs at once, 512 MiB written and
# read back, raw on 1 and 2 nodes and qcow2, images checked on the host.
.PHONY: check-blk-load
check-blk-load: $(SAN_BUILD)/krg-vmm guest
	KRG_VMM=$(SAN_BUILD)/krg-vmm bash tests/integration/t_blk_load.sh

bench: krg-vmm guest
	bench/run.sh

# Not a test and not in CI: builds its floor programs into build/bench/.
bench-cluster: krg-vmm guest
	bench/cluster.sh

-include tests/guest/guest.mk

clean:
	rm -rf $(BUILD) $(SAN_BUILD) krg-vmm

-include $(shell find $(BUILD) $(SAN_BUILD) -name '*.d' 2>/dev/null)

# libFuzzer targets (clang).  `fuzz` builds them into build-fuzz/; `check-fuzz`
# runs each for FUZZ_RUNS inputs from its seed corpus (tests/fuzz/corpus/,
# regenerated by tests/fuzz/gen_corpus.py); `fuzz-long` for FUZZ_SECONDS each.
# New inputs and crash artifacts go to build-fuzz/, never into the tree.
FUZZ_BUILD := build-fuzz
FUZZ_CC ?= clang
FUZZ_RUNS ?= 200000
FUZZ_SECONDS ?= 600
FUZZ_FLAGS := $(CSTD) $(WARN) $(INCS) -g -O1 -fno-omit-frame-pointer \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZERS := virtq fw_cfg vnet
FUZZ_SRCS_virtq := $(filter-out vmm/devices/virtio_pci%,$(wildcard vmm/devices/virtio*.c)) vmm/state_blob.c vmm/errf.c vmm/guest_mem.c
FUZZ_SRCS_fw_cfg := vmm/devices/fw_cfg.c vmm/guest_mem.c
FUZZ_SRCS_vnet := $(FUZZ_SRCS_virtq)
# -close_fd_mask=2 silences the devices' one-line guest-error logs;
# libFuzzer and the sanitizers still report on their own descriptor.
FUZZ_RUN = set -e; for f in $(FUZZERS); do mkdir -p $(FUZZ_BUILD)/corpus-$$f; \
	echo "== fuzz_$$f $(1)"; \
	if ! $(FUZZ_BUILD)/fuzz_$$f $(1) -close_fd_mask=2 -artifact_prefix=$(FUZZ_BUILD)/ \
		$(FUZZ_BUILD)/corpus-$$f tests/fuzz/corpus/$$f >$(FUZZ_BUILD)/fuzz_$$f.log 2>&1; then \
		tail -n 60 $(FUZZ_BUILD)/fuzz_$$f.log; exit 1; fi; \
	grep -E '^Done|cov:' $(FUZZ_BUILD)/fuzz_$$f.log | tail -n 2; done

.PHONY: fuzz check-fuzz fuzz-long
fuzz: $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZERS))

define FUZZ_RULE
$(FUZZ_BUILD)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1))
	@mkdir -p $(FUZZ_BUILD)
	@echo "  FUZZ    $$@"
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $$@ $$^ -lz -lpthread
endef
$(foreach f,$(FUZZERS),$(eval $(call FUZZ_RULE,$(f))))

check-fuzz: fuzz
	@$(call FUZZ_RUN,-runs=$(FUZZ_RUNS))

fuzz-long: fuzz
	@$(call FUZZ_RUN,-max_total_time=$(FUZZ_SECONDS))
