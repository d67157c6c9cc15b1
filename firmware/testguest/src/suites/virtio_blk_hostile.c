/*
 * test=virtio-blk,hostile=1[,allow_silent=1]: requests a correct driver never makes
 * (virtio 1.2 §2.7.5.3.1 and §2.7.13 list what drivers MUST NOT do). The device may fail
 * such a request, ignore it, or stop and set DEVICE_NEEDS_RESET (§2.1.2); it must not write
 * where it may only read, and afterwards it must serve good requests, directly or after the
 * driver resets it. Each case prints what came back and checks:
 *   - the outcome: "served" (the next good request works), "needs-reset" (status has 0x40;
 *     the guest resets and continues) or "silent" (the device stopped without saying so: a
 *     FAIL unless allow_silent=1, for legacy devices such as QEMU's that cannot set
 *     NEEDS_RESET through the legacy status register);
 *   - a good read after recovery returns the right data.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../drivers/blk_pattern.h"
#include "../drivers/virtio_blk.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define MS 1000000ULL
#define GOOD_SECTORS 8u

void virtio_blk_hostile(struct virtio_blk *b, uint32_t seed, const char *options);

static uint8_t *good_buf, *data_buf, *indirect;

static void put(struct virtio_blk *b, uint16_t i, const volatile void *addr, uint32_t len, uint16_t flags, uint16_t next) {
	b->q.desc[i] = (struct virtq_desc){ (uint64_t)(uintptr_t)addr, len, flags, next };
}

static void header(struct virtio_blk *b, uint32_t type, uint64_t sector) {
	b->headers[0] = (struct vblk_header){ type, 0, sector };
	b->status[0] = VIRTIO_BLK_S_PENDING;
}

/* Returns the used elements that came back within `ms` of the kick. */
static int drain(struct virtio_blk *b, uint64_t ms) {
	int n = 0;
	uint64_t t0 = timer_now_ns();
	while (timer_now_ns() - t0 < ms * MS) {
		if (vblk_reap(b) >= 0) n++;
		else cpu_relax();
	}
	return n;
}

/* One good read of lba 0-7, checked against the pattern. 1 = served right. */
static int good_read(struct virtio_blk *b, uint32_t seed) {
	while (vblk_reap(b) >= 0) {}
	memset(good_buf, 0, GOOD_SECTORS * VIRTIO_BLK_SECTOR);
	int st = vblk_request(b, VIRTIO_BLK_T_IN, 0, good_buf, GOOD_SECTORS * VIRTIO_BLK_SECTOR, 500 * MS, 0);
	return st == VIRTIO_BLK_S_OK && blk_pattern_check(good_buf, 0, GOOD_SECTORS, seed) == 0;
}

/* After a hostile request: what the device did, and a good request served afterwards. */
static void recover(struct virtio_blk *b, const char *name, uint32_t seed, int allow_silent, int must_reset) {
	int used = drain(b, 200);
	uint8_t st = b->status[0];
	uint8_t dev = virtio_legacy_status(&b->t);
	const char *outcome;
	int served = 0;
	if (dev & VIRTIO_STATUS_NEEDS_RESET) outcome = "needs-reset";
	else if (!must_reset && good_read(b, seed)) { outcome = "served"; served = 1; }
	else outcome = must_reset ? "reset-by-driver" : "silent";
	print("TESTGUEST virtio-blk INFO hostile %s: %d used, status byte 0x%02x, device status 0x%02x -> %s\n", name, used, st,
	      dev, outcome);
	check(strcmp(outcome, "silent") != 0 || allow_silent, "hostile %s: device %s", name,
	      served ? "kept serving" : dev & VIRTIO_STATUS_NEEDS_RESET ? "set DEVICE_NEEDS_RESET" :
	      must_reset ? "survived (driver state reset by design)" : "stopped without DEVICE_NEEDS_RESET");
	if (!served) {
		int up = vblk_setup(b, b->irq) == 0;
		served = up && good_read(b, seed);
	}
	check(served, "hostile %s: good read of lba 0-%u correct afterwards", name, GOOD_SECTORS - 1);
}

void virtio_blk_hostile(struct virtio_blk *b, uint32_t seed, const char *options) {
	int allow_silent = (int)optlist_get_u64(options, "allow_silent", 0);
	good_buf = dma_alloc(GOOD_SECTORS * VIRTIO_BLK_SECTOR);
	data_buf = dma_alloc(4096);
	indirect = dma_alloc(16 * ((uint32_t)b->q.size + 16));
	blk_pattern_fill(good_buf, 0, GOOD_SECTORS, seed);
	int st = vblk_request(b, VIRTIO_BLK_T_OUT, 0, good_buf, GOOD_SECTORS * VIRTIO_BLK_SECTOR, 5000 * MS, 0);
	if (!check(st == VIRTIO_BLK_S_OK && good_read(b, seed), "baseline: lba 0-%u written and read back", GOOD_SECTORS - 1))
		return;
	uint16_t size = b->q.size;

	/* 1. A loop: the status descriptor chains back to the header (§2.7.5.3.1: no loops). */
	header(b, VIRTIO_BLK_T_IN, 0);
	put(b, 0, &b->headers[0], 16, VIRTQ_DESC_F_NEXT, 1);
	put(b, 1, data_buf, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put(b, 2, &b->status[0], 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	virtq_publish(&b->q, 0);
	vblk_kick(b);
	recover(b, "descriptor-loop", seed, allow_silent, 0);

	/* 2. A chain longer than the queue, through an indirect table of size + 2 entries. */
	if (b->features & (1u << VIRTIO_F_RING_INDIRECT_DESC)) {
		struct virtq_desc *t = (struct virtq_desc *)indirect;
		uint16_t n = (uint16_t)(size + 2);
		header(b, VIRTIO_BLK_T_IN, 0);
		t[0] = (struct virtq_desc){ (uint64_t)(uintptr_t)&b->headers[0], 16, VIRTQ_DESC_F_NEXT, 1 };
		for (uint16_t i = 1; i + 1 < n; i++)
			t[i] = (struct virtq_desc){ (uint64_t)(uintptr_t)data_buf, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
						    (uint16_t)(i + 1) };
		t[n - 1] = (struct virtq_desc){ (uint64_t)(uintptr_t)&b->status[0], 1, VIRTQ_DESC_F_WRITE, 0 };
		put(b, 0, indirect, 16u * n, VIRTQ_DESC_F_INDIRECT, 0);
		virtq_publish(&b->q, 0);
		vblk_kick(b);
		recover(b, "chain-longer-than-queue", seed, allow_silent, 0);
	} else {
		/* Without indirect tables: every descriptor of the queue in one chain that closes on itself. */
		header(b, VIRTIO_BLK_T_IN, 0);
		put(b, 0, &b->headers[0], 16, VIRTQ_DESC_F_NEXT, 1);
		for (uint16_t i = 1; i < size; i++)
			put(b, i, data_buf, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, (uint16_t)((i + 1) % size));
		virtq_publish(&b->q, 0);
		vblk_kick(b);
		recover(b, "chain-longer-than-queue", seed, allow_silent, 0);
	}

	/* 3. Data past the end of guest RAM (1 TiB). */
	header(b, VIRTIO_BLK_T_IN, 0);
	put(b, 0, &b->headers[0], 16, VIRTQ_DESC_F_NEXT, 1);
	b->q.desc[1] = (struct virtq_desc){ 1ULL << 40, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2 };
	put(b, 2, &b->status[0], 1, VIRTQ_DESC_F_WRITE, 0);
	virtq_publish(&b->q, 0);
	vblk_kick(b);
	recover(b, "address-past-ram", seed, allow_silent, 0);

	/* 4. A read into a device-readable buffer: the device must not write it (§2.7.4). */
	memset(data_buf, 0x5A, 4096);
	header(b, VIRTIO_BLK_T_IN, 0);
	put(b, 0, &b->headers[0], 16, VIRTQ_DESC_F_NEXT, 1);
	put(b, 1, data_buf, 4096, VIRTQ_DESC_F_NEXT, 2);
	put(b, 2, &b->status[0], 1, VIRTQ_DESC_F_WRITE, 0);
	virtq_publish(&b->q, 0);
	vblk_kick(b);
	drain(b, 100);
	uint32_t changed = 0;
	for (int i = 0; i < 4096; i++) changed += data_buf[i] != 0x5A;
	check(changed == 0, "hostile read-into-readonly-descriptor: %u bytes of the device-readable buffer changed", changed);
	recover(b, "read-into-readonly-descriptor", seed, allow_silent, 0);

	/* 5. A status descriptor of length 0. */
	header(b, VIRTIO_BLK_T_IN, 0);
	put(b, 0, &b->headers[0], 16, VIRTQ_DESC_F_NEXT, 1);
	put(b, 1, data_buf, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put(b, 2, &b->status[0], 0, VIRTQ_DESC_F_WRITE, 0);
	virtq_publish(&b->q, 0);
	vblk_kick(b);
	recover(b, "zero-length-status", seed, allow_silent, 0);

	/* 6. An indirect table holding another indirect descriptor (§2.7.5.3.1 forbids nesting). */
	if (b->features & (1u << VIRTIO_F_RING_INDIRECT_DESC)) {
		struct virtq_desc *outer = (struct virtq_desc *)indirect, *inner = outer + 8;
		header(b, VIRTIO_BLK_T_IN, 0);
		inner[0] = (struct virtq_desc){ (uint64_t)(uintptr_t)&b->headers[0], 16, VIRTQ_DESC_F_NEXT, 1 };
		inner[1] = (struct virtq_desc){ (uint64_t)(uintptr_t)data_buf, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2 };
		inner[2] = (struct virtq_desc){ (uint64_t)(uintptr_t)&b->status[0], 1, VIRTQ_DESC_F_WRITE, 0 };
		outer[0] = (struct virtq_desc){ (uint64_t)(uintptr_t)inner, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0 };
		put(b, 0, outer, 16, VIRTQ_DESC_F_INDIRECT, 0);
		virtq_publish(&b->q, 0);
		vblk_kick(b);
		recover(b, "nested-indirect", seed, allow_silent, 0);
	} else {
		print("TESTGUEST virtio-blk INFO hostile nested-indirect skipped: VIRTIO_F_RING_INDIRECT_DESC not offered\n");
	}

	/* 7. The avail index jumps by more than the queue size (§2.7.13.3 keeps it within). */
	header(b, VIRTIO_BLK_T_IN, 0);
	put(b, 0, &b->headers[0], 16, VIRTQ_DESC_F_NEXT, 1);
	put(b, 1, data_buf, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put(b, 2, &b->status[0], 1, VIRTQ_DESC_F_WRITE, 0);
	for (uint16_t i = 0; i < size; i++) b->q.avail[2 + i] = 0;
	b->q.avail[1] = (uint16_t)(b->q.next_avail + size + 7);
	vblk_kick(b);
	/* The driver's own index no longer matches what it published: it must reset either way. */
	recover(b, "avail-index-jump", seed, allow_silent, 1);
}
