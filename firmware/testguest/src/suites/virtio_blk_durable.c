/*
 * test=virtio-blk-durable[,seed=N][,records=N][,batch=4]: numbered 4 KiB records (record i at
 * LBA 8i, the LBA-stamped pattern under `seed`) written in batches of 1..batch requests in
 * flight, each batch followed by a FLUSH (virtio 1.2 §5.2.6: completed writes are stable once
 * a FLUSH completes). Only after the FLUSH completes does the guest print
 *   TESTGUEST durable flushed=N         (records 0..N-1 are on stable storage)
 * The host kills the VMM at a random moment and checks every record so reported is in the file.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../drivers/blk_pattern.h"
#include "../drivers/virtio_blk.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../platform/timer.h"

#define RECORD_SECTORS 8u
#define MAX_BATCH 8
#define SECOND 1000000000ULL

static void run(const char *options) {
	struct pci_function *f = driver_device("virtio-blk", 0);
	if (!check(f != 0, "virtio-blk device bound to its driver")) return;
	struct virtio_blk *b = f->driver_state;
	if (!check(b->features & (1u << VIRTIO_BLK_F_FLUSH), "device offers VIRTIO_BLK_F_FLUSH")) return;
	uint32_t seed = (uint32_t)optlist_get_u64(options, "seed", 1);
	uint64_t records = b->capacity / RECORD_SECTORS;
	uint64_t want = optlist_get_u64(options, "records", records);
	if (want < records) records = want;
	uint64_t batch_max = optlist_get_u64(options, "batch", 4);
	if (batch_max < 1) batch_max = 1;
	if (batch_max > MAX_BATCH) batch_max = MAX_BATCH;
	if ((int)batch_max > b->slots) batch_max = (uint64_t)b->slots;
	static uint8_t *buf[MAX_BATCH];
	for (int i = 0; i < MAX_BATCH; i++)
		if (!buf[i]) buf[i] = dma_alloc(RECORD_SECTORS * VIRTIO_BLK_SECTOR);
	print("TESTGUEST durable INFO records=%lu batch<=%lu seed=%u\n", records, batch_max, seed);
	uint32_t rng = seed * 2654435761u + 1;
	uint64_t next = 0;
	uint32_t errors = 0;
	while (next < records && !errors) {
		rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5;
		uint32_t n = 1 + rng % (uint32_t)batch_max;
		if (n > records - next) n = (uint32_t)(records - next);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t lba = (next + i) * RECORD_SECTORS;
			blk_pattern_fill(buf[i], lba, RECORD_SECTORS, seed);
			vblk_submit(b, (int)i, VIRTIO_BLK_T_OUT, lba, buf[i], RECORD_SECTORS * VIRTIO_BLK_SECTOR);
		}
		vblk_kick(b);
		for (uint32_t done = 0; done < n;) {
			uint64_t t0 = timer_now_ns();
			int s;
			while ((s = vblk_reap(b)) < 0 && timer_now_ns() - t0 < 5 * SECOND) cpu_relax();
			if (s < 0 || b->status[s] != VIRTIO_BLK_S_OK) { errors++; break; }
			done++;
		}
		if (errors) break;
		if (vblk_request(b, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 10 * SECOND, 0) != VIRTIO_BLK_S_OK) { errors++; break; }
		next += n;
		print("TESTGUEST durable flushed=%lu\n", next);
	}
	check(errors == 0, "%lu records written and flushed", next);
}

const struct suite suite_virtio_blk_durable = { "virtio-blk-durable",
	"numbered records, each batch flushed then reported (TESTGUEST durable flushed=N)", run };
