/* A boot sector for the firmware-boot test (tests/integration/t_firmware.sh):
 * SeaBIOS loads it at 0x7C00 from a virtio-blk disk and jumps to it with
 * the boot drive in DL.  It says so on COM1 (by hand, port 0x3F8), once
 * through the video BIOS (int 10h, which SeaBIOS's serial console mirrors
 * on COM1, as GRUB's output is; it waits for the BIOS timer tick that
 * sends it), reads LBA 1 through the disk BIOS (int 13h
 * extended read) and prints the text the test put there, then ends the VM
 * through the isa-debug-exit port: 0x21 (exit status 67) when the read
 * worked, 0x13 (status 39) when it did not.
 *
 * Build: as --32 -o mbr.o mbr.S && ld -m elf_i386 -Ttext 0x7c00 -e _start
 *        -o mbr.elf mbr.o && objcopy -O binary mbr.elf mbr.bin  (512 bytes) */
	.code16
	.text
	.globl _start
_start:
	cli
	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	$0x7C00, %sp
	sti
	cld
	movb	%dl, drive

	movw	$msg_hello, %si
	call	puts
	movb	drive, %al
	call	puthex8
	movw	$msg_crlf, %si
	call	puts

	/* The same text through int 10h teletype: the path a boot loader's
	 * screen output takes to the serial console. */
	movw	$msg_video, %si
1:	lodsb
	testb	%al, %al
	jz	2f
	movb	$0x0E, %ah
	movw	$0x0007, %bx
	int	$0x10
	jmp	1b
	/* The serial console sends what int 10h buffered from the timer
	 * interrupt: wait three ticks of the BIOS clock (IRQ0, 18.2 Hz). */
2:	movw	0x46C, %bx
6:	hlt
	movw	0x46C, %ax
	subw	%bx, %ax
	cmpw	$3, %ax
	jb	6b
	/* LBA 1 -> 0000:8000 with an int 13h AH=42h disk address packet. */
	movw	$dap, %si
	movb	$0x42, %ah
	movb	drive, %dl
	int	$0x13
	jc	read_failed

	movw	$msg_sector, %si
	call	puts
	movw	$0x8000, %si
	movb	$0, 0x8000 + 63		/* at most 63 characters */
	call	puts
	movw	$msg_crlf, %si
	call	puts
	movb	$0x21, %al
	outb	%al, $0xF4
	jmp	halt

read_failed:
	movw	$msg_fail, %si
	call	puts
	movb	$0x13, %al
	outb	%al, $0xF4
halt:
	hlt
	jmp	halt

/* puts: the NUL-terminated string at DS:SI to COM1. */
puts:
	lodsb
	testb	%al, %al
	jz	3f
	call	putc
	jmp	puts
3:	ret

/* putc: AL to COM1 once the transmitter holding register is empty. */
putc:
	pushw	%dx
	pushw	%ax
	movw	$0x3FD, %dx
4:	inb	%dx, %al
	testb	$0x20, %al
	jz	4b
	popw	%ax
	movw	$0x3F8, %dx
	outb	%al, %dx
	popw	%dx
	ret

/* puthex8: AL as two hex digits. */
puthex8:
	pushw	%ax
	shrb	$4, %al
	call	hexdigit
	popw	%ax
	andb	$0x0F, %al
hexdigit:
	addb	$'0', %al
	cmpb	$'9', %al
	jbe	5f
	addb	$('a' - '9' - 1), %al
5:	jmp	putc

	.p2align 2
dap:	.byte	0x10, 0		/* size, reserved */
	.word	1		/* sectors */
	.word	0x8000, 0	/* offset, segment */
	.quad	1		/* LBA */
drive:	.byte	0
msg_hello:	.asciz	"krg-mbr: boot sector running, BIOS drive 0x"
msg_video:	.asciz	"krg-mbr: hello through int 10h\r\n"
msg_sector:	.asciz	"krg-mbr: sector 1 says: "
msg_fail:	.asciz	"krg-mbr: int 13h read of LBA 1 failed\r\n"
msg_crlf:	.asciz	"\r\n"

	.org	510
	.byte	0x55, 0xAA
