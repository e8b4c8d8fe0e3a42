/* The cluster key and the HMAC proofs; the handshake that carries them is
 * in net_handshake.c. */
#include "net/net_auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/net_msg.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"

/* Room for the longest hex key plus whitespace; anything bigger is not a
 * key file. */
#define KEY_FILE_MAX	(NET_KEY_MAX * 2 + 64)

static int sodium_ready(char *err, size_t errlen)
{
	if (sodium_init() < 0) {
		errf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	return 0;
}

static bool all_hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit(p[i]))
			return false;
	return true;
}

int net_auth__key_parse(struct net_key *key, const void *data, size_t len,
			char *err, size_t errlen)
{
	const uint8_t *p = data;
	size_t n = len, out_len;

	while (n && isspace(p[n - 1]))
		n--;
	/* Text of hex digits is always read as hex, so a short hex key is an
	 * error rather than silently used as its ASCII bytes; random raw
	 * bytes are never all hex digits in practice. */
	if (n && all_hex(p, n)) {
		if (n < 2 * NET_KEY_MIN || n % 2) {
			errf(err, errlen,
			     "hex key has %zu digits; an even number of at least %d is needed",
			     n, 2 * NET_KEY_MIN);
			return -1;
		}
		if (n / 2 > NET_KEY_MAX) {
			errf(err, errlen, "hex key of %zu bytes is longer than %d",
			     n / 2, NET_KEY_MAX);
			return -1;
		}
		if (sodium_hex2bin(key->bytes, sizeof(key->bytes),
				   (const char *)p, n, NULL, &out_len, NULL) ||
		    out_len != n / 2) {
			errf(err, errlen, "malformed hex key");
			return -1;
		}
		key->len = out_len;
		return 0;
	}
	if (len < NET_KEY_MIN) {
		errf(err, errlen,
		     "key has %zu bytes; at least %d are needed (or %d hex digits)",
		     len, NET_KEY_MIN, 2 * NET_KEY_MIN);
		return -1;
	}
	if (len > NET_KEY_MAX) {
		errf(err, errlen, "raw key of %zu bytes is longer than %d", len,
		     NET_KEY_MAX);
		return -1;
	}
	memcpy(key->bytes, p, len);
	key->len = len;
	return 0;
}

int net_auth__key_load(struct net_key *key, const char *path, char *err,
		       size_t errlen)
{
	uint8_t buf[KEY_FILE_MAX + 1];
	struct stat st;
	size_t len = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		errf(err, errlen, "cluster key file %s: %s", path,
		     strerror(errno));
		return -1;
	}
	/* fstat on the open file: the mode checked is that of the bytes read. */
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		errf(err, errlen, "cluster key file %s is not a regular file",
		     path);
		close(fd);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		errf(err, errlen,
		     "cluster key file %s has mode %04o: it must not be accessible by group or others (chmod 600 %s)",
		     path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			errf(err, errlen, "cluster key file %s: %s", path,
			     strerror(errno));
			close(fd);
			sodium_memzero(buf, sizeof(buf));
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > KEY_FILE_MAX) {
		errf(err, errlen, "cluster key file %s is too large for a key",
		     path);
		sodium_memzero(buf, sizeof(buf));
		return -1;
	}
	r = net_auth__key_parse(key, buf, len, err, errlen);
	sodium_memzero(buf, sizeof(buf));
	if (r) {
		char why[160];

		snprintf(why, sizeof(why), "%s", err ? err : "");
		errf(err, errlen, "cluster key file %s: %s", path, why);
	}
	return r;
}

int net_auth__key_generate(struct net_key *key, char *err, size_t errlen)
{
	if (sodium_ready(err, errlen))
		return -1;
	randombytes_buf(key->bytes, NET_KEY_MIN);
	key->len = NET_KEY_MIN;
	return 0;
}

int net_auth__key_write(const struct net_key *key, const char *path,
			char *err, size_t errlen)
{
	char hex[NET_KEY_MAX * 2 + 2];
	size_t len, off = 0;
	int fd;

	if (key->len < NET_KEY_MIN || key->len > NET_KEY_MAX) {
		errf(err, errlen, "refusing to write a key of %zu bytes",
		     key->len);
		return -1;
	}
	sodium_bin2hex(hex, sizeof(hex) - 1, key->bytes, key->len);
	len = strlen(hex);
	hex[len++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		errf(err, errlen, "cluster key file %s: %s", path,
		     strerror(errno));
		sodium_memzero(hex, sizeof(hex));
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, hex + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errf(err, errlen, "cluster key file %s: %s", path,
			     strerror(errno));
			close(fd);
			unlink(path);
			sodium_memzero(hex, sizeof(hex));
			return -1;
		}
		off += (size_t)n;
	}
	sodium_memzero(hex, sizeof(hex));
	if (close(fd)) {
		errf(err, errlen, "cluster key file %s: %s", path,
		     strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

void net_auth__key_wipe(struct net_key *key)
{
	sodium_memzero(key, sizeof(*key));
}

uint64_t net_auth__cluster_id(const void *data, size_t len)
{
	uint8_t h[8];

	if (sodium_init() < 0)
		return 0;
	crypto_generichash(h, sizeof(h), data, len, NULL, 0);
	return get_le64(h);
}

/* The bytes both sides MAC: fixed layout, so both compute the same thing
 * whatever their struct padding. */
#define TRANSCRIPT_LEN	(8 + 2 + 8 + 2 + 2 + 1 + 2 * NET_NONCE_LEN)

void net_auth__mac(const struct net_key *key,
		   const struct net_auth_transcript *t, enum net_auth_role role,
		   uint8_t mac[NET_MAC_LEN])
{
	static const char label_c[8] = "krgnet-C", label_a[8] = "krgnet-A";
	crypto_auth_hmacsha256_state st;
	uint8_t b[TRANSCRIPT_LEN];
	uint8_t *p = b;

	memcpy(p, role == NET_AUTH_CONNECTOR ? label_c : label_a, 8);
	p += 8;
	put_le16(p, NET_PROTO_VERSION);
	p += 2;
	put_le64(p, t->cluster_id);
	p += 8;
	put_le16(p, t->connector);
	p += 2;
	put_le16(p, t->acceptor);
	p += 2;
	*p++ = t->channel;
	memcpy(p, t->nonce_c, NET_NONCE_LEN);
	p += NET_NONCE_LEN;
	memcpy(p, t->nonce_a, NET_NONCE_LEN);

	/* The init/update form takes a key of any length (HMAC hashes long
	 * keys), so the whole key file counts. */
	crypto_auth_hmacsha256_init(&st, key->bytes, key->len);
	crypto_auth_hmacsha256_update(&st, b, sizeof(b));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

bool net_auth__mac_ok(const struct net_key *key,
		      const struct net_auth_transcript *t,
		      enum net_auth_role role, const uint8_t mac[NET_MAC_LEN])
{
	uint8_t want[NET_MAC_LEN];
	bool ok;

	net_auth__mac(key, t, role, want);
	ok = sodium_memcmp(want, mac, NET_MAC_LEN) == 0;
	sodium_memzero(want, sizeof(want));
	return ok;
}

int net_auth__key_pipe(const struct net_key *key)
{
	char hex[NET_KEY_MAX * 2 + 1];
	size_t len;
	int p[2];

	sodium_bin2hex(hex, sizeof(hex), key->bytes, key->len);
	len = strlen(hex);
	if (pipe(p) < 0)
		return -1;
	/* A pipe buffer holds far more than a key: this never blocks. */
	if (write(p[1], hex, len) != (ssize_t)len) {
		sodium_memzero(hex, sizeof(hex));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	sodium_memzero(hex, sizeof(hex));
	close(p[1]);
	return p[0];
}
