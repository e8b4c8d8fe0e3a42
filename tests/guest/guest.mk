# The project's freestanding test guest (tests/guest/README.md).  Included
# by the top Makefile; also usable alone:
#   make -f tests/guest/guest.mk BUILD=/tmp/x guest
# Output: $(BUILD)/guest/krg-test-guest (ELF64 with multiboot v1 address
# fields, loadable by QEMU -kernel and krg-vmm) and krg-test-guest.bin
# (the same image as a flat binary, loaded at 1 MiB).
BUILD     ?= build
GUEST_DIR := tests/guest
GUEST_OUT := $(BUILD)/guest
GUEST_CC  ?= gcc
GUEST_OBJCOPY ?= objcopy

GUEST_CFLAGS := -std=c11 -O2 -g -ffreestanding -nostdlib -static \
	-mno-red-zone -mgeneral-regs-only -march=x86-64 -mtune=generic \
	-fno-pic -fno-pie -mcmodel=small -fno-stack-protector \
	-fcf-protection=none -fno-asynchronous-unwind-tables \
	-fno-unwind-tables -fno-tree-loop-distribute-patterns \
	-Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-unused-parameter -Wvla -Wpointer-arith
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,$(GUEST_DIR)/guest.ld \
	-Wl,-z,max-page-size=0x1000 -Wl,--no-warn-rwx-segments \
	-Wl,--build-id=none

GUEST_OBJS := $(patsubst $(GUEST_DIR)/%.c,$(GUEST_OUT)/%.o,$(wildcard $(GUEST_DIR)/*.c)) \
	      $(patsubst $(GUEST_DIR)/%.S,$(GUEST_OUT)/%.o,$(wildcard $(GUEST_DIR)/*.S))

.PHONY: guest
guest: $(GUEST_OUT)/krg-test-guest $(GUEST_OUT)/krg-test-guest.bin

$(GUEST_OUT)/%.o: $(GUEST_DIR)/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

$(GUEST_OUT)/%.o: $(GUEST_DIR)/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

$(GUEST_OUT)/krg-test-guest: $(GUEST_OBJS) $(GUEST_DIR)/guest.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJS) -lgcc

$(GUEST_OUT)/krg-test-guest.bin: $(GUEST_OUT)/krg-test-guest
	$(GUEST_OBJCOPY) -O binary $< $@

-include $(GUEST_OBJS:.o=.d)
