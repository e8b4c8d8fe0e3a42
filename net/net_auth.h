/* Peer authentication: the cluster key file and the challenge-response
 * every connection runs before it carries anything else.
 *
 * The key proves that both ends of a connection belong to the cluster; it
 * does not encrypt traffic or protect it against an on-path attacker (see
 * net/README.md).
 *
 * Key file: at least NET_KEY_MIN bytes of secret, either as hex text (the
 * whole file, ignoring trailing whitespace, is hex digits: it must then be
 * an even number >= 64 of them; this is what net_auth__key_write produces)
 * or as raw bytes (any other content, used as is, >= 32 bytes).  A key
 * file accessible by group or others is refused, as ssh refuses such a
 * private key.
 *
 * Handshake (the lower node id dials the higher one, once per channel):
 *   C -> A  HELLO      cluster id, from, to, channel, nonce_c
 *   A -> C  HELLO_ACK  cluster id, from, to, channel, nonce_a
 *   C -> A  AUTH       HMAC-SHA256(key, "C" transcript)
 *   A -> C  AUTH       HMAC-SHA256(key, "A" transcript)   (or REJECT)
 *   C -> A  READY                                         (or REJECT)
 * The transcript is: protocol version, cluster id, connector id, acceptor
 * id, channel, nonce_c, nonce_a.  The connector proves itself first, so a
 * stranger learns nothing about the key from the acceptor; the role label
 * stops a proof from being reflected back.  Each side checks the other's
 * proof before it reports the connection up. */
#ifndef KRG_NET_AUTH_H
#define KRG_NET_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_KEY_MIN	32
#define NET_KEY_MAX	512
#define NET_NONCE_LEN	32
#define NET_MAC_LEN	32
#define NET_HELLO_LEN	48
#define NET_REJECT_MAX	200

struct net_key {
	size_t len;
	uint8_t bytes[NET_KEY_MAX];
};

enum net_auth_role { NET_AUTH_CONNECTOR, NET_AUTH_ACCEPTOR };

struct net_auth_transcript {
	uint64_t cluster_id;
	uint16_t connector;
	uint16_t acceptor;
	uint8_t channel;
	uint8_t nonce_c[NET_NONCE_LEN];
	uint8_t nonce_a[NET_NONCE_LEN];
};

/* One side of a handshake.  Inputs first; the rest is filled in. */
struct net_hs {
	const struct net_key *key;
	uint64_t cluster_id;
	uint16_t self;
	uint16_t peer;		/* connect: the node dialled; accept: out */
	uint8_t channel;	/* connect: in; accept: out */
	unsigned nr_nodes;	/* accept: valid ids are 0..nr_nodes-1 */
	unsigned timeout_ms;	/* for the whole exchange */
	/* out */
	uint64_t tx_seq;	/* the next sequence number each way */
	uint64_t rx_seq;
	bool fatal;		/* refused for a reason a retry cannot fix */
	bool authenticated;	/* accept: the peer proved the key (a failure
				 * after that is not the peer's key) */
};

/* Parses key file contents (hex or raw, as above).  -1 with a reason. */
int net_auth__key_parse(struct net_key *key, const void *data, size_t len,
			char *err, size_t errlen);
/* Loads a key file after checking it is a regular file of mode 0600 or
 * stricter. */
int net_auth__key_load(struct net_key *key, const char *path, char *err,
		       size_t errlen);
/* NET_KEY_MIN fresh random bytes. */
int net_auth__key_generate(struct net_key *key, char *err, size_t errlen);
/* Writes the key as hex to a new file of mode 0600 (never overwrites). */
int net_auth__key_write(const struct net_key *key, const char *path,
			char *err, size_t errlen);
void net_auth__key_wipe(struct net_key *key);
/* The read end of a pipe holding the key as hex (what a key file holds),
 * for a child process to read with its descriptor: keys never go on a
 * command line.  -1 with errno. */
int net_auth__key_pipe(const struct net_key *key);

/* A 64-bit cluster id from any bytes (e.g. a VM name plus a random launch
 * token), so two clusters sharing a key and host never accept each other. */
uint64_t net_auth__cluster_id(const void *data, size_t len);

void net_auth__mac(const struct net_key *key,
		   const struct net_auth_transcript *t, enum net_auth_role role,
		   uint8_t mac[NET_MAC_LEN]);
/* Constant-time comparison against the expected proof of role. */
bool net_auth__mac_ok(const struct net_key *key,
		      const struct net_auth_transcript *t,
		      enum net_auth_role role, const uint8_t mac[NET_MAC_LEN]);

/* Run the handshake on a connected blocking socket.  0 when both sides are
 * authenticated; -1 with a one-line reason otherwise (the caller closes the
 * socket).  No application data is read past the handshake. */
int net_auth__connect(int fd, struct net_hs *hs, char *err, size_t errlen);
int net_auth__accept(int fd, struct net_hs *hs, char *err, size_t errlen);

#endif
