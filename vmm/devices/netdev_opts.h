/* Guest network and entropy options in QEMU's spelling, parsed by pure
 * functions (no I/O) that the command line, the config file, the VM
 * description check and the unit tests share:
 *
 *   -nic user[,id=ID][,mac=MAC][,model=virtio-net-pci][,restrict=on|off]
 *        [,hostfwd=RULE]...
 *   -nic tap[,id=ID][,ifname=NAME][,mac=MAC][,model=..][,script=no]
 *        [,downscript=no]
 *   -nic none                       (accepted: there is no default NIC)
 *   -netdev user,id=ID[,restrict=..][,hostfwd=RULE]...
 *   -netdev tap,id=ID[,ifname=NAME][,script=no][,downscript=no]
 *   -device virtio-net-pci,netdev=ID[,mac=MAC][,id=NAME]
 *   -device virtio-rng-pci[,id=NAME]
 *
 * RULE is QEMU's [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT
 * (HOSTADDR empty: every host address; GUESTADDR empty: 10.0.2.15).  MAC
 * is six hex pairs separated by ':'; without one, NIC i gets QEMU's
 * 52:54:00:12:34:56 + i.  As in QEMU ',,' inside a value is a literal
 * comma; unlike QEMU an option given twice is an error (hostfwd, which
 * repeats by design, excepted).
 *
 * A -nic is a netdev and a device at once.  -netdev and -device pair up
 * by id in any order; net_opts__validate (after every option is read)
 * insists that each device names an existing netdev and that each netdev
 * has exactly one device. */
#ifndef KRG_VMM_DEVICES_NETDEV_OPTS_H
#define KRG_VMM_DEVICES_NETDEV_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAX_NICS 4
#define NET_MAX_HOSTFWD 8
#define NET_ID_MAX 31
#define NET_IFNAME_MAX 15 /* IFNAMSIZ - 1 */

/* The user-mode network's fixed addresses (QEMU's), host byte order. */
#define NET_USER_NETWORK 0x0A000200u /* 10.0.2.0/24 */
#define NET_USER_NETMASK 0xFFFFFF00u
#define NET_USER_HOST 0x0A000202u    /* 10.0.2.2: gateway and the host */
#define NET_USER_DNS 0x0A000203u     /* 10.0.2.3 */
#define NET_USER_GUEST 0x0A00020Fu   /* 10.0.2.15: the first DHCP lease */

enum netdev_type { NETDEV_NONE, NETDEV_USER, NETDEV_TAP };

/* One hostfwd rule.  Addresses in host byte order; 0 = the default. */
struct net_hostfwd {
	uint8_t udp;
	uint8_t pad[3];
	uint32_t host_addr;
	uint32_t guest_addr;
	uint16_t host_port;
	uint16_t guest_port;
};

/* One backend: a -netdev, or the backend half of a -nic. */
struct netdev_opts {
	uint32_t type;                 /* enum netdev_type */
	char id[NET_ID_MAX + 1];
	uint8_t restricted;            /* user: restrict=on */
	uint8_t pad[3];
	uint32_t nr_hostfwd;
	struct net_hostfwd hostfwd[NET_MAX_HOSTFWD];
	char ifname[NET_IFNAME_MAX + 1]; /* tap; empty: the kernel names it */
};

/* One virtio-net-pci: a -device, or the device half of a -nic. */
struct nic_opts {
	char netdev[NET_ID_MAX + 1];
	char id[NET_ID_MAX + 1];
	uint8_t mac[6];
	uint8_t mac_set;
	uint8_t pad;
};

/* Everything net and entropy in a VM's settings: plain data (it travels
 * in the VM description). */
struct vm_net_config {
	uint32_t nr_netdevs;
	uint32_t nr_nics;
	struct netdev_opts netdevs[NET_MAX_NICS];
	struct nic_opts nics[NET_MAX_NICS];
	uint8_t rng;                   /* -device virtio-rng-pci */
	uint8_t pad[3];
	uint32_t nr_auto;              /* ids made up for -nic so far */
};

/* Each adds to c; 0, or -1 with one line in err ("-nic: ..."). */
int net_opts__parse_nic(struct vm_net_config *c, const char *text,
			char *err, size_t errlen);
int net_opts__parse_netdev(struct vm_net_config *c, const char *text,
			   char *err, size_t errlen);
int net_opts__parse_device(struct vm_net_config *c, const char *text,
			   char *err, size_t errlen);

/* Once every source was applied, and on a VM description received from
 * another node (nothing in it is trusted): counts, terminated strings,
 * hostfwd ports, and the netdev/device pairing. */
int net_opts__validate(const struct vm_net_config *c, char *err,
		       size_t errlen);
/* The netdev nic uses (after a successful validate). */
const struct netdev_opts *net_opts__netdev_of(const struct vm_net_config *c,
					      const struct nic_opts *nic);

/* Pieces, public for the unit tests.  text[0, len). */
int net_opts__parse_hostfwd(const char *text, size_t len,
			    struct net_hostfwd *out, char *err, size_t errlen);
int net_opts__parse_mac(const char *text, size_t len, uint8_t mac[6]);
/* QEMU's default for NIC index: 52:54:00:12:34:56 + index. */
void net_opts__default_mac(unsigned index, uint8_t mac[6]);
/* The MAC NIC index uses: its own, or the default. */
void net_opts__mac_of(const struct vm_net_config *c, unsigned index,
		      uint8_t mac[6]);

#endif
