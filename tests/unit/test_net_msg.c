/* The cluster wire format and the key/MAC primitives: pure code, no
 * sockets. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/net_auth.h"
#include "net/net_msg.h"
#include "net/net_types.h"
#include "vmm/bytes.h"

static char err[256];

/* A FAST message from node 3, seq 7, with a recognisable payload. */
static size_t make_msg(uint8_t *buf, size_t cap, uint32_t len)
{
	uint8_t payload[4096];
	struct net_hdr h;

	ck_assert_uint_le(len, sizeof(payload));
	for (uint32_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	net_msg__init(&h, NET_TYPE_DSM_FIRST + 2, NET_CH_FAST, 3, len, 7);
	return net_msg__build(buf, cap, &h, payload);
}

static struct net_msg_expect expect(void)
{
	struct net_msg_expect x = { .peer = 3, .channel = NET_CH_FAST,
				    .max_len = NET_FAST_MAX_PAYLOAD, .seq = 7 };
	return x;
}

static int check(const uint8_t *buf, size_t len)
{
	struct net_msg_expect x = expect();
	struct net_hdr h;

	err[0] = 0;
	return net_msg__validate(buf, len, &x, &h, err, sizeof(err));
}

/* After editing a header field, make the CRC right again so the check
 * under test is the one that fires. */
static void reseal(uint8_t *buf)
{
	struct iovec iov = { buf + NET_HDR_SIZE, get_le32(buf + 12) };

	net_msg__seal(buf, &iov, 1);
}

START_TEST(test_crc32c_vector)
{
	/* The standard check value of CRC-32C. */
	ck_assert_uint_eq(net_msg__crc32c(0, "123456789", 9), 0xe3069283u);
	ck_assert_uint_eq(net_msg__crc32c(net_msg__crc32c(0, "1234", 4),
					  "56789", 5), 0xe3069283u);
	ck_assert_uint_eq(net_msg__crc32c(0, "", 0), 0);
}
END_TEST

START_TEST(test_round_trip)
{
	uint8_t buf[NET_HDR_SIZE + 4096];
	struct net_msg_expect x = expect();
	struct net_hdr h;
	size_t n = make_msg(buf, sizeof(buf), 4096);

	ck_assert_uint_eq(n, NET_HDR_SIZE + 4096);
	ck_assert_int_eq(net_msg__validate(buf, n, &x, &h, err, sizeof(err)),
			 NET_MSG_OK);
	ck_assert_uint_eq(h.magic, NET_MSG_MAGIC);
	ck_assert_uint_eq(h.version, NET_PROTO_VERSION);
	ck_assert_uint_eq(h.type, NET_TYPE_DSM_FIRST + 2);
	ck_assert_uint_eq(h.sender, 3);
	ck_assert_uint_eq(h.len, 4096);
	ck_assert_uint_eq(h.seq, 7);
	ck_assert_uint_eq(h.channel, NET_CH_FAST);
	ck_assert_uint_eq(h.flags, 0);
	/* Little-endian at fixed offsets, whatever the host. */
	ck_assert_mem_eq(buf, "KRGN", 4);
	ck_assert_uint_eq(get_le64(buf + 16), 7);
	ck_assert_uint_eq(get_le32(buf + 12), 4096);
	ck_assert_uint_eq(buf[NET_HDR_SIZE + 4095], (uint8_t)(4095 * 7 + 1));
	ck_assert_uint_eq(buf[NET_HDR_SIZE + 100], (uint8_t)(100 * 7 + 1));

	/* Encode/decode is the identity. */
	{
		uint8_t raw[NET_HDR_SIZE];
		struct net_hdr back;

		net_msg__encode(raw, &h);
		ck_assert_mem_eq(raw, buf, NET_HDR_SIZE);
		net_msg__decode(raw, &back);
		ck_assert_mem_eq(&back.seq, &h.seq, sizeof(h.seq));
		ck_assert_uint_eq(back.crc, h.crc);
	}
	/* Bytes after the message belong to the next one and are fine. */
	{
		static uint8_t two[2 * (NET_HDR_SIZE + 4096)];

		memcpy(two, buf, n);
		memset(two + n, 0x5a, n);
		ck_assert_int_eq(net_msg__validate(two, sizeof(two), &x, &h,
						   err, sizeof(err)),
				 NET_MSG_OK);
	}
	/* An empty payload is a valid message. */
	n = make_msg(buf, sizeof(buf), 0);
	ck_assert_uint_eq(n, NET_HDR_SIZE);
	ck_assert_int_eq(check(buf, n), NET_MSG_OK);
	/* build refuses a buffer too small */
	ck_assert_uint_eq(make_msg(buf, NET_HDR_SIZE + 10, 11), 0);
}
END_TEST

START_TEST(test_gather_crc_equals_contiguous)
{
	uint8_t buf[NET_HDR_SIZE + 300], raw[NET_HDR_SIZE];
	struct iovec iov[3];

	make_msg(buf, sizeof(buf), 300);
	memcpy(raw, buf, NET_HDR_SIZE);
	memset(raw + 24, 0xee, 4);	/* the crc field is ignored */
	iov[0] = (struct iovec){ buf + NET_HDR_SIZE, 1 };
	iov[1] = (struct iovec){ buf + NET_HDR_SIZE + 1, 0 };
	iov[2] = (struct iovec){ buf + NET_HDR_SIZE + 1, 299 };
	ck_assert_uint_eq(net_msg__crc(raw, iov, 3), get_le32(buf + 24));
}
END_TEST

START_TEST(test_bad_magic)
{
	uint8_t buf[NET_HDR_SIZE + 64];
	size_t n = make_msg(buf, sizeof(buf), 64);

	buf[0] = 'G';
	reseal(buf);
	ck_assert_int_eq(check(buf, n), NET_MSG_BAD_MAGIC);
	/* Text on a cluster port (an HTTP probe, say). */
	memcpy(buf, "GET / HTTP/1.1\r\nHost: x\r\n\r\n    ", NET_HDR_SIZE);
	ck_assert_int_eq(check(buf, n), NET_MSG_BAD_MAGIC);
	ck_assert_ptr_nonnull(strstr(err, "magic"));
}
END_TEST

START_TEST(test_wrong_version_names_both)
{
	uint8_t buf[NET_HDR_SIZE + 64];
	size_t n = make_msg(buf, sizeof(buf), 64);
	char want[64];

	put_le16(buf + 4, NET_PROTO_VERSION + 1);
	reseal(buf);
	ck_assert_int_eq(check(buf, n), NET_MSG_BAD_VERSION);
	snprintf(want, sizeof(want), "version %u", NET_PROTO_VERSION + 1);
	ck_assert_msg(strstr(err, want), "'%s' lacks '%s'", err, want);
	snprintf(want, sizeof(want), "version %u", NET_PROTO_VERSION);
	ck_assert_msg(strstr(err, want), "'%s' lacks '%s'", err, want);
}
END_TEST

START_TEST(test_unknown_type)
{
	static const unsigned bad[] = { 0, NET_TYPE_LAST + 1, 255, 0xffff };
	uint8_t buf[NET_HDR_SIZE + 64];
	size_t n = make_msg(buf, sizeof(buf), 64);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_le16(buf + 6, (uint16_t)bad[i]);
		reseal(buf);
		ck_assert_int_eq(check(buf, n), NET_MSG_BAD_TYPE);
	}
	/* The edges of the known ranges are accepted. */
	put_le16(buf + 6, NET_TYPE_LAST);
	reseal(buf);
	ck_assert_int_eq(check(buf, n), NET_MSG_OK);
	put_le16(buf + 6, NET_TYPE_INTERNAL_FIRST);
	reseal(buf);
	ck_assert_int_eq(check(buf, n), NET_MSG_OK);
}
END_TEST

START_TEST(test_flags_reserved_channel)
{
	uint8_t buf[NET_HDR_SIZE + 64];
	size_t n = make_msg(buf, sizeof(buf), 64);

	put_le16(buf + 8, 0x8000);
	reseal(buf);
	ck_assert_int_eq(check(buf, n), NET_MSG_BAD_FLAGS);
	n = make_msg(buf, sizeof(buf), 64);
	buf[31] = 1;
	reseal(buf);
	ck_assert_int_eq(check(buf, n), NET_MSG_BAD_FLAGS);
	n = make_msg(buf, sizeof(buf), 64);
	buf[28] = NET_CH_BULK;
	reseal(buf);
	ck_assert_int_eq(check(buf, n), NET_MSG_BAD_CHANNEL);
}
END_TEST

START_TEST(test_oversized)
{
	uint8_t buf[NET_HDR_SIZE + 64];
	struct net_msg_expect x = expect();
	struct net_hdr h;

	make_msg(buf, sizeof(buf), 64);
	/* A length beyond the channel's maximum is refused from the header
	 * alone, before anyone would read or allocate the payload. */
	put_le32(buf + 12, NET_FAST_MAX_PAYLOAD + 1);
	ck_assert_int_eq(net_msg__check_hdr(buf, &h, &x, err, sizeof(err)),
			 NET_MSG_TOO_LONG);
	put_le32(buf + 12, 0xffffffffu);
	ck_assert_int_eq(net_msg__check_hdr(buf, &h, &x, err, sizeof(err)),
			 NET_MSG_TOO_LONG);
	/* The same length is fine on BULK. */
	x.channel = NET_CH_BULK;
	x.max_len = net_msg__max_payload(NET_CH_BULK);
	buf[28] = NET_CH_BULK;
	put_le32(buf + 12, NET_FAST_MAX_PAYLOAD + 1);
	ck_assert_int_eq(net_msg__check_hdr(buf, &h, &x, err, sizeof(err)),
			 NET_MSG_OK);
	put_le32(buf + 12, NET_BULK_MAX_PAYLOAD + 1);
	ck_assert_int_eq(net_msg__check_hdr(buf, &h, &x, err, sizeof(err)),
			 NET_MSG_TOO_LONG);
	ck_assert_uint_eq(net_msg__max_payload(NET_CH_FAST), 65536);
	ck_assert_uint_eq(net_msg__max_payload(NET_CH_BULK), 4u << 20);
}
END_TEST

START_TEST(test_truncated)
{
	uint8_t buf[NET_HDR_SIZE + 64];
	size_t n = make_msg(buf, sizeof(buf), 64);

	for (size_t len = 0; len < n; len++)
		ck_assert_int_eq(check(buf, len), NET_MSG_TRUNCATED);
	ck_assert_int_eq(check(buf, n), NET_MSG_OK);
}
END_TEST

START_TEST(test_wrong_sender)
{
	uint8_t buf[NET_HDR_SIZE + 64];
	size_t n = make_msg(buf, sizeof(buf), 64);
	struct net_msg_expect x = expect();
	struct net_hdr h;

	put_le16(buf + 10, 4);
	reseal(buf);
	ck_assert_int_eq(check(buf, n), NET_MSG_BAD_SENDER);
	/* Before the peer is known (first handshake message) any sender. */
	x.peer = NET_NODE_ANY;
	ck_assert_int_eq(net_msg__validate(buf, n, &x, &h, err, sizeof(err)),
			 NET_MSG_OK);
}
END_TEST

START_TEST(test_sequence)
{
	uint8_t buf[NET_HDR_SIZE + 64];
	size_t n = make_msg(buf, sizeof(buf), 64);
	struct net_msg_expect x = expect();
	struct net_hdr h;

	/* Replay: the receiver already took seq 7. */
	x.seq = 8;
	ck_assert_int_eq(net_msg__validate(buf, n, &x, &h, err, sizeof(err)),
			 NET_MSG_BAD_SEQ);
	ck_assert_ptr_nonnull(strstr(err, "replay"));
	/* A gap: seq 6 never arrived. */
	x.seq = 6;
	ck_assert_int_eq(net_msg__validate(buf, n, &x, &h, err, sizeof(err)),
			 NET_MSG_BAD_SEQ);
	ck_assert_ptr_nonnull(strstr(err, "lost"));
	x.seq = 7;
	ck_assert_int_eq(net_msg__validate(buf, n, &x, &h, err, sizeof(err)),
			 NET_MSG_OK);
}
END_TEST

START_TEST(test_every_bit_flip_detected)
{
	uint8_t buf[NET_HDR_SIZE + 48];
	size_t n = make_msg(buf, sizeof(buf), 48);

	/* Any single flipped bit, header or payload, is rejected by some
	 * check; in the payload it is the CRC. */
	for (size_t bit = 0; bit < n * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_msg(check(buf, n) != NET_MSG_OK, "bit %zu", bit);
		if (bit >= NET_HDR_SIZE * 8)
			ck_assert_int_eq(check(buf, n), NET_MSG_BAD_CRC);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	ck_assert_int_eq(check(buf, n), NET_MSG_OK);
}
END_TEST

START_TEST(test_type_ranges)
{
	ck_assert(!net_type__known(0));
	ck_assert(net_type__internal(NET_T_HELLO));
	ck_assert(!net_type__user(NET_T_GOODBYE));
	ck_assert(net_type__user(NET_TYPE_CONTROL_FIRST));
	ck_assert(net_type__user(NET_TYPE_MIGRATE_LAST));
	ck_assert(!net_type__user(NET_TYPE_MIGRATE_LAST + 1));
	ck_assert_str_eq(net_type__range_name(NET_TYPE_DSM_FIRST), "dsm");
	ck_assert_str_eq(net_type__range_name(NET_TYPE_IRQ_LAST), "irq");
	ck_assert_str_eq(net_type__range_name(NET_TYPE_IO_FIRST), "io");
	ck_assert_str_eq(net_type__range_name(NET_TYPE_CONTROL_LAST), "control");
	ck_assert_str_eq(net_type__range_name(NET_TYPE_MIGRATE_FIRST), "migrate");
	ck_assert_str_eq(net_type__range_name(200), "unknown");
	/* Ranges tile 1..191 with no gap or overlap. */
	ck_assert_int_eq(NET_TYPE_CONTROL_FIRST, NET_TYPE_INTERNAL_LAST + 1);
	ck_assert_int_eq(NET_TYPE_DSM_FIRST, NET_TYPE_CONTROL_LAST + 1);
	ck_assert_int_eq(NET_TYPE_IRQ_FIRST, NET_TYPE_DSM_LAST + 1);
	ck_assert_int_eq(NET_TYPE_IO_FIRST, NET_TYPE_IRQ_LAST + 1);
	ck_assert_int_eq(NET_TYPE_MIGRATE_FIRST, NET_TYPE_IO_LAST + 1);
}
END_TEST

/* ---- key and MAC ---- */

START_TEST(test_key_parse)
{
	static const char hex[] =
		"00112233445566778899aabbccddeeff"
		"00112233445566778899AABBCCDDEEFF\n";
	uint8_t raw[40];
	struct net_key k;

	ck_assert_int_eq(net_auth__key_parse(&k, hex, strlen(hex), err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(k.len, 32);
	ck_assert_uint_eq(k.bytes[0], 0x00);
	ck_assert_uint_eq(k.bytes[31], 0xff);
	/* Short hex is an error, not 40 raw ASCII bytes. */
	ck_assert_int_eq(net_auth__key_parse(&k, hex, 40, err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "hex"));
	/* Odd digit count. */
	ck_assert_int_eq(net_auth__key_parse(&k, hex, 63, err, sizeof(err)),
			 -1);
	/* Raw bytes: any content that is not all hex digits. */
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(0x80 + i);
	ck_assert_int_eq(net_auth__key_parse(&k, raw, sizeof(raw), err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(k.len, 40);
	ck_assert_mem_eq(k.bytes, raw, 40);
	ck_assert_int_eq(net_auth__key_parse(&k, raw, 31, err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "32"));
}
END_TEST

static void tmp_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "/tmp/krg-test-netkey-%d-%s", (int)getpid(), name);
	unlink(out);
}

START_TEST(test_key_file_modes)
{
	char path[128];
	struct net_key k, back;
	int fd;

	ck_assert_int_eq(net_auth__key_generate(&k, err, sizeof(err)), 0);
	ck_assert_uint_eq(k.len, NET_KEY_MIN);
	tmp_path(path, sizeof(path), "a");
	ck_assert_int_eq(net_auth__key_write(&k, path, err, sizeof(err)), 0);
	/* never overwrites */
	ck_assert_int_eq(net_auth__key_write(&k, path, err, sizeof(err)), -1);
	ck_assert_int_eq(net_auth__key_load(&back, path, err, sizeof(err)), 0);
	ck_assert_uint_eq(back.len, k.len);
	ck_assert_mem_eq(back.bytes, k.bytes, k.len);

	/* Readable by group or others: refused, with the fix in the text. */
	chmod(path, 0640);
	ck_assert_int_eq(net_auth__key_load(&back, path, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "0640"));
	ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
	chmod(path, 0604);
	ck_assert_int_eq(net_auth__key_load(&back, path, err, sizeof(err)), -1);
	chmod(path, 0400);
	ck_assert_int_eq(net_auth__key_load(&back, path, err, sizeof(err)), 0);
	unlink(path);

	/* A raw key file. */
	tmp_path(path, sizeof(path), "raw");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\x01\x02zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 36),
			 36);
	close(fd);
	ck_assert_int_eq(net_auth__key_load(&back, path, err, sizeof(err)), 0);
	ck_assert_uint_eq(back.len, 36);
	unlink(path);

	ck_assert_int_eq(net_auth__key_load(&back, path, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_int_eq(net_auth__key_load(&back, "/tmp", err, sizeof(err)),
			 -1);
}
END_TEST

START_TEST(test_mac)
{
	struct net_auth_transcript t = { .cluster_id = 0x1234, .connector = 0,
					 .acceptor = 2, .channel = NET_CH_BULK };
	struct net_key k1, k2;
	uint8_t mac[NET_MAC_LEN];

	net_auth__key_generate(&k1, err, sizeof(err));
	net_auth__key_generate(&k2, err, sizeof(err));
	memset(t.nonce_c, 1, sizeof(t.nonce_c));
	memset(t.nonce_a, 2, sizeof(t.nonce_a));
	net_auth__mac(&k1, &t, NET_AUTH_CONNECTOR, mac);
	ck_assert(net_auth__mac_ok(&k1, &t, NET_AUTH_CONNECTOR, mac));
	/* Wrong key, reflected to the other role, or any transcript field
	 * changed: refused. */
	ck_assert(!net_auth__mac_ok(&k2, &t, NET_AUTH_CONNECTOR, mac));
	ck_assert(!net_auth__mac_ok(&k1, &t, NET_AUTH_ACCEPTOR, mac));
	t.cluster_id++;
	ck_assert(!net_auth__mac_ok(&k1, &t, NET_AUTH_CONNECTOR, mac));
	t.cluster_id--;
	t.channel = NET_CH_FAST;
	ck_assert(!net_auth__mac_ok(&k1, &t, NET_AUTH_CONNECTOR, mac));
	t.channel = NET_CH_BULK;
	t.acceptor = 1;
	ck_assert(!net_auth__mac_ok(&k1, &t, NET_AUTH_CONNECTOR, mac));
	t.acceptor = 2;
	t.nonce_a[31] ^= 1;
	ck_assert(!net_auth__mac_ok(&k1, &t, NET_AUTH_CONNECTOR, mac));
	t.nonce_a[31] ^= 1;
	ck_assert(net_auth__mac_ok(&k1, &t, NET_AUTH_CONNECTOR, mac));
	/* Cluster ids differ for different inputs and are stable. */
	ck_assert_uint_eq(net_auth__cluster_id("vm-a", 4),
			  net_auth__cluster_id("vm-a", 4));
	ck_assert_uint_ne(net_auth__cluster_id("vm-a", 4),
			  net_auth__cluster_id("vm-b", 4));
}
END_TEST

static Suite *net_msg_suite(void)
{
	Suite *s = suite_create("net_msg");
	TCase *tc = tcase_create("wire");
	TCase *ta = tcase_create("auth");

	tcase_add_test(tc, test_crc32c_vector);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_gather_crc_equals_contiguous);
	tcase_add_test(tc, test_bad_magic);
	tcase_add_test(tc, test_wrong_version_names_both);
	tcase_add_test(tc, test_unknown_type);
	tcase_add_test(tc, test_flags_reserved_channel);
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_wrong_sender);
	tcase_add_test(tc, test_sequence);
	tcase_add_test(tc, test_every_bit_flip_detected);
	tcase_add_test(tc, test_type_ranges);
	suite_add_tcase(s, tc);
	tcase_add_test(ta, test_key_parse);
	tcase_add_test(ta, test_key_file_modes);
	tcase_add_test(ta, test_mac);
	suite_add_tcase(s, ta);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(net_msg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
