/*
 * test=virtio-net,ip=A.B.C.D,peer=A.B.C.D[,mac=M][,mtu=N][,secs=N]
 *
 * The network device end to end (virtio 1.2 §5.1) with a tiny IPv4 host on top: after the
 * identity checks (MAC and MTU against the options, link up) the guest resolves `peer` by
 * ARP and sends it UDP datagrams "TESTGUEST-HELLO" to port 9999 (every 0.5 s until the peer
 * sends its first datagram to port 7), and meanwhile serves for up to
 * `secs` seconds (default 60): ARP requests for `ip` get replies, ICMP echo requests get
 * echo replies, UDP datagrams to port 7 are echoed back. Every received IPv4, ICMP and UDP
 * checksum is verified; the replies carry correct ones. A datagram "TESTGUEST-QUIT" to
 * port 7 ends the serving (and is echoed first, so the sender knows). Then: at least one of
 * each exchange happened and nothing arrived malformed.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../drivers/virtio_net.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

static uint8_t frame_in[2048], frame_out[2048];
static uint32_t my_ip, peer_ip;
static uint8_t peer_mac[6];
static int peer_known;
static struct {
	uint32_t arp_replies, icmp_replies, udp_echoes, bad, quit;
} seen;

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* RFC 1071 ones' complement sum, folded, starting from `sum`. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, uint32_t len) {
	for (uint32_t i = 0; i + 1 < len; i += 2) sum += be16(p + i);
	if (len & 1) sum += (uint32_t)p[len - 1] << 8;
	return sum;
}
static uint16_t csum_fold(uint32_t sum) {
	while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)~sum;
}
/* The UDP pseudo-header sum (RFC 768). */
static uint32_t pseudo(uint32_t src, uint32_t dst, uint16_t len) {
	uint8_t b[12];
	put32(b, src);
	put32(b + 4, dst);
	b[8] = 0;
	b[9] = 17;
	put16(b + 10, len);
	return csum_add(0, b, 12);
}

static int parse_ip(const char *s, uint32_t *out) {
	uint32_t v = 0;
	for (int part = 0; part < 4; part++) {
		uint32_t n = 0;
		int digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4) n = n * 10 + (uint32_t)(*s++ - '0'), digits++;
		if (!digits || n > 255) return 0;
		v = v << 8 | n;
		if (part < 3 && *s++ != '.') return 0;
	}
	*out = v;
	return *s == 0;
}

static void eth_header(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type) {
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	put16(f + 12, type);
}

static void arp(struct virtio_net *n, uint16_t op, const uint8_t *tha, uint32_t tpa) {
	static const uint8_t bcast[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
	uint8_t *f = frame_out;
	memset(f, 0, 60);
	eth_header(f, op == 1 ? bcast : tha, n->mac, 0x0806);
	uint8_t *a = f + 14;
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, n->mac, 6);
	put32(a + 14, my_ip);
	if (op == 2) memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	virtio_net_send(n, f, 60);	/* padded to the Ethernet minimum */
}

/* Builds an IPv4 header for `payload` bytes of `proto` to `dst` in front of frame_out+34. */
static uint32_t ipv4(struct virtio_net *n, const uint8_t *dst_mac, uint32_t dst, uint8_t proto, uint32_t payload) {
	uint8_t *f = frame_out;
	eth_header(f, dst_mac, n->mac, 0x0800);
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(20 + payload));
	put16(ip + 4, 0x1234);
	put16(ip + 6, 0x4000);	/* DF */
	ip[8] = 64;
	ip[9] = proto;
	put16(ip + 10, 0);
	put32(ip + 12, my_ip);
	put32(ip + 16, dst);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	uint32_t len = 14 + 20 + payload;
	if (len < 60) {
		memset(f + len, 0, 60 - len);
		len = 60;
	}
	return len;
}

static void udp_send(struct virtio_net *n, const uint8_t *dst_mac, uint32_t dst, uint16_t sport, uint16_t dport,
		     const uint8_t *data, uint32_t len) {
	uint8_t *u = frame_out + 34;
	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, (uint16_t)(8 + len));
	put16(u + 6, 0);
	memmove(u + 8, data, len);
	uint16_t c = csum_fold(csum_add(pseudo(my_ip, dst, (uint16_t)(8 + len)), u, 8 + len));
	put16(u + 6, c ? c : 0xFFFF);
	virtio_net_send(n, frame_out, ipv4(n, dst_mac, dst, 17, 8 + len));
}

static void handle(struct virtio_net *n, uint8_t *f, uint32_t len) {
	if (len < 14) { seen.bad++; return; }
	uint16_t type = be16(f + 12);
	if (type == 0x0806 && len >= 42) {
		uint8_t *a = f + 14;
		if (be16(a) != 1 || be16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4) { seen.bad++; return; }
		uint16_t op = be16(a + 6);
		uint32_t spa = be32(a + 14), tpa = be32(a + 24);
		if (spa == peer_ip) {
			memcpy(peer_mac, a + 8, 6);
			peer_known = 1;
		}
		if (op == 1 && tpa == my_ip) {
			uint8_t sha[6];
			memcpy(sha, a + 8, 6);
			arp(n, 2, sha, spa);
			seen.arp_replies++;
		}
		return;
	}
	if (type != 0x0800) return;	/* IPv6 and the rest: not ours */
	uint8_t *ip = f + 14;
	if (len < 34 || (ip[0] >> 4) != 4) { seen.bad++; return; }
	uint32_t ihl = (uint32_t)(ip[0] & 15) * 4, total = be16(ip + 2);
	if (ihl < 20 || total < ihl || 14 + total > len || csum_fold(csum_add(0, ip, ihl)) != 0) { seen.bad++; return; }
	if (be32(ip + 16) != my_ip) return;
	uint32_t src = be32(ip + 12);
	uint8_t *p = ip + ihl;
	uint32_t plen = total - ihl;
	uint8_t src_mac[6];
	memcpy(src_mac, f + 6, 6);
	if (ip[9] == 1 && plen >= 8) {
		if (csum_fold(csum_add(0, p, plen)) != 0) { seen.bad++; return; }
		if (p[0] != 8) return;	/* only echo requests */
		uint8_t *icmp = frame_out + 34;
		memmove(icmp, p, plen);
		icmp[0] = 0;	/* echo reply, same id, sequence and data */
		put16(icmp + 2, 0);
		put16(icmp + 2, csum_fold(csum_add(0, icmp, plen)));
		virtio_net_send(n, frame_out, ipv4(n, src_mac, src, 1, plen));
		seen.icmp_replies++;
		return;
	}
	if (ip[9] == 17 && plen >= 8) {
		uint32_t ulen = be16(p + 4);
		if (ulen < 8 || ulen > plen) { seen.bad++; return; }
		if (be16(p + 6) != 0 && csum_fold(csum_add(pseudo(src, my_ip, (uint16_t)ulen), p, ulen)) != 0) {
			seen.bad++;
			return;
		}
		if (be16(p + 2) != 7) return;
		uint16_t sport = be16(p);
		uint32_t dlen = ulen - 8;
		int quit = dlen == 14 && memcmp(p + 8, "TESTGUEST-QUIT", 14) == 0;
		static uint8_t data[1600];
		memcpy(data, p + 8, dlen);
		udp_send(n, src_mac, src, 7, sport, data, dlen);
		seen.udp_echoes++;
		if (quit) seen.quit = 1;
	}
}

static void run(const char *options) {
	char v[32];
	struct pci_function *f = driver_device("virtio-net", 0);
	if (!check(f != 0, "virtio-net device bound to its driver")) return;
	struct virtio_net *n = f->driver_state;
	uint8_t st = virtio_legacy_status(&n->transport);
	check(st == (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK),
	      "%02x:%02x.%x status=0x%x features host=0x%08x accepted=0x%08x header=%u", f->bus, f->dev, f->fn, st,
	      n->host_features, n->features, n->hdr_len);
	check(n->rx_vector && n->tx_vector, "receive and transmit queues on msi-x vectors 0x%x, 0x%x", n->rx_vector, n->tx_vector);
	print("TESTGUEST virtio-net INFO mac %02x:%02x:%02x:%02x:%02x:%02x\n", n->mac[0], n->mac[1], n->mac[2], n->mac[3],
	      n->mac[4], n->mac[5]);
	if (optlist_get(options, "mac", v, sizeof v)) {
		char m[18];
		format(m, sizeof m, "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
		check(strcmp(m, v) == 0, "mac %s as configured (%s)", m, v);
	}
	check((n->status & 1) != 0, "link up (status 0x%x)", n->status);
	if (n->features & (1u << VIRTIO_NET_F_MTU)) check(n->mtu == optlist_get_u64(options, "mtu", 1500), "mtu %u", n->mtu);
	if (!optlist_get(options, "ip", v, sizeof v) || !check(parse_ip(v, &my_ip), "address %s", v)) return;
	if (!optlist_get(options, "peer", v, sizeof v) || !check(parse_ip(v, &peer_ip), "peer %s", v)) return;

	uint64_t secs = optlist_get_u64(options, "secs", 60);
	uint64_t t0 = timer_now_ns(), next_arp = 0, next_hello = 0;
	int hello_sent = 0;
	print("TESTGUEST virtio-net INFO serving\n");
	while (!seen.quit && timer_now_ns() - t0 < secs * 1000000000ULL) {
		uint32_t len = virtio_net_receive(n, frame_in, sizeof frame_in);
		if (len) {
			handle(n, frame_in, len);
			continue;
		}
		if (!peer_known && timer_now_ns() >= next_arp) {
			arp(n, 1, 0, peer_ip);
			next_arp = timer_now_ns() + 200000000ULL;
		}
		/* Repeated until the peer starts the exchange: it may not be listening yet. */
		if (peer_known && !seen.udp_echoes && timer_now_ns() >= next_hello) {
			udp_send(n, peer_mac, peer_ip, 9999, 9999, (const uint8_t *)"TESTGUEST-HELLO", 15);
			hello_sent++;
			next_hello = timer_now_ns() + 500000000ULL;
		}
		cpu_relax();
	}
	check(peer_known, "peer's MAC by ARP %02x:%02x:%02x:%02x:%02x:%02x", peer_mac[0], peer_mac[1], peer_mac[2],
	      peer_mac[3], peer_mac[4], peer_mac[5]);
	check(hello_sent > 0, "sent UDP datagrams to the peer (%d until it answered)", hello_sent);
	check(seen.quit, "the peer ended the exchange (after %lu ms)", (unsigned long)((timer_now_ns() - t0) / 1000000));
	check(seen.arp_replies >= 1, "answered %u ARP requests", seen.arp_replies);
	check(seen.icmp_replies >= 1, "answered %u ICMP echo requests", seen.icmp_replies);
	check(seen.udp_echoes >= 2, "echoed %u UDP datagrams", seen.udp_echoes);
	check(seen.bad == 0 && n->rx_errors == 0, "no malformed frame or checksum (%u bad, %u receive errors)", seen.bad,
	      n->rx_errors);
	print("TESTGUEST virtio-net INFO frames rx=%u tx=%u\n", n->rx_frames, n->tx_frames);
}

const struct suite suite_virtio_net = { "virtio-net", "network device: ARP, ICMP echo and UDP echo over a tap", run };
