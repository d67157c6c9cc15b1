/*
 * bench=virtio-net,tx[,size=N][,ms=1000][,inflight=N]: the first virtio-net card transmits UDP/IPv4 frames
 * of N bytes on the wire (60..1514, default 64: minimum-size frames for packets per second;
 * 1514 for bytes per second) as fast as the ring lets it for `ms` milliseconds. Frames go to
 * the broadcast MAC from 10.79.1.2:1024 to 10.79.1.1:9 (discard), so the host side needs no
 * ARP: the receiver counts them at its interface. The ring is kept full: every used
 * descriptor is refilled at once and the doorbell rung once per batch (only when the device
 * has not asked for quiet), completions polled with interrupts suppressed. inflight= caps the frames
 * handed to the device and not yet returned (default: the ring size), to compare devices whose
 * rings differ in size at the same depth.
 * Prints: TESTGUEST-BENCH device=virtio-net workload=tx size=N frames=N total_ns=N pps=N
 *         mbps=X.YY queue_size=N inflight=N kicks=N
 */
#include "bench.h"
#include "../arch/x86.h"
#include "../drivers/virtio_net.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* An Ethernet + IPv4 + UDP frame of `size` bytes (without FCS) with correct IP checksum (UDP checksum 0). */
static void build_frame(uint8_t *f, uint32_t size, const uint8_t *src_mac) {
	memset(f, 0, size);
	memset(f, 0xFF, 6);
	memcpy(f + 6, src_mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14;
	uint16_t ip_len = (uint16_t)(size - 14);
	ip[0] = 0x45;
	put16(ip + 2, ip_len);
	ip[8] = 64;
	ip[9] = 17;
	const uint8_t src[4] = { 10, 79, 1, 2 }, dst[4] = { 10, 79, 1, 1 };
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	uint32_t sum = 0;
	for (int i = 0; i < 20; i += 2) sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
	put16(ip + 10, (uint16_t)~sum);
	uint8_t *udp = ip + 20;
	put16(udp, 1024);
	put16(udp + 2, 9);
	put16(udp + 4, (uint16_t)(ip_len - 20));
	for (uint32_t i = 42; i < size; i++) f[i] = (uint8_t)i;
}

static int run(const char *workload, const char *options) {
	if (workload[0] && strcmp(workload, "tx") != 0) {
		print("TESTGUEST-BENCH device=virtio-net workload=%s error=unknown-workload\n", workload);
		return 1;
	}
	uint32_t size = (uint32_t)optlist_get_u64(options, "size", 64);
	uint64_t ms = optlist_get_u64(options, "ms", 1000);
	if (size < 60) size = 60;
	if (size > 1514) size = 1514;
	uint64_t inflight = optlist_get_u64(options, "inflight", 0);
	struct pci_function *f = driver_device("virtio-net", 0);
	if (!f) {
		print("TESTGUEST-BENCH device=virtio-net workload=tx error=no-device\n");
		return 1;
	}
	struct virtio_net *n = f->driver_state;
	struct virtq *q = &n->tx;
	if (inflight == 0 || inflight > q->size) inflight = q->size;
	/* Interrupts would only cost this guest time: completions are polled. */
	q->avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	for (uint16_t d = 0; d < q->size; d++) {
		uint8_t *b = n->tx_bufs + (uint32_t)d * VIRTIO_NET_BUF_BYTES;
		memset(b, 0, n->hdr_len);
		build_frame(b + n->hdr_len, size, n->mac);
		q->desc[d].addr = (uint64_t)(uintptr_t)b;
		q->desc[d].len = n->hdr_len + size;
		q->desc[d].flags = 0;
		q->desc[d].next = 0;
	}
	uint64_t frames = 0, kicks = 0, posted = 0;
	uint64_t t0 = rdtsc(), limit = ms * (tsc_hz / 1000), end = t0 + limit;
	uint32_t id, len;
	int stopping = 0;
	for (;;) {
		while (virtq_take_used_id(q, &id, &len)) frames++;
		uint64_t now = rdtsc();
		if (!stopping && now >= end) stopping = 1;
		if (stopping) {
			if (posted == frames) break;
			if (now - end > 5 * tsc_hz) break;	/* the device stopped returning buffers */
			cpu_relax();
			continue;
		}
		int batch = 0;
		/* Refill every free descriptor (descriptor d always holds buffer d). */
		while ((uint16_t)(q->next_avail - q->last_used) < q->size && posted - frames < inflight) {
			virtq_publish(q, (uint16_t)(q->next_avail % q->size));
			posted++;
			batch++;
		}
		if (batch) {
			uint16_t before = *(volatile uint16_t *)q->used;
			virtq_kick(&n->transport, q);
			if (!(before & VIRTQ_USED_F_NO_NOTIFY)) kicks++;
		} else {
			cpu_relax();
		}
	}
	uint64_t ns = tsc_to_ns(rdtsc() - t0);
	uint64_t pps = ns ? frames * 1000000000ULL / ns : 0;
	uint64_t mbps_100 = ns ? frames * size * 8ULL * 100ULL * 1000ULL / ns : 0;	/* Mbit/s x 100 */
	print("TESTGUEST-BENCH device=virtio-net workload=tx size=%u frames=%lu total_ns=%lu pps=%lu mbps=%lu.%02lu queue_size=%u inflight=%lu kicks=%lu\n",
	      size, frames, ns, pps, mbps_100 / 100, mbps_100 % 100, q->size, inflight, kicks);
	return 0;
}

const struct bench bench_virtio_net = { "virtio-net", "virtio-net transmit: packets and bytes per second", run };
