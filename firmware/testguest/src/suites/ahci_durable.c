/*
 * test=ahci-durable[,seed=N][,records=N][,batch=4][,port=N]: numbered 4 KiB records (record i at sector 8i, the
 * LBA-stamped pattern under `seed`) written as batches of 1..batch NCQ writes in flight together, each batch
 * followed by FLUSH CACHE EXT (ACS-3: when it completes, the data of every write completed before it is on the
 * media). Only then does the guest print
 *   TESTGUEST durable flushed=N         (records 0..N-1 are on stable storage)
 * The host kills the VMM at a random moment and checks every record so reported is in the file.
 */
#include "suite.h"
#include "../drivers/ahci.h"
#include "../drivers/blk_pattern.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"

#define RECORD_SECTORS 8u
#define MAX_BATCH 8
#define SECOND 1000000000ULL

static void run(const char *options) {
	struct pci_function *f = driver_device("ahci", 0);
	if (!check(f != 0, "AHCI HBA bound to its driver")) return;
	struct ahci *h = f->driver_state;
	if (!check(h->setup_error == 0, "HBA up (step %d)", h->setup_error)) return;
	int port = (int)optlist_get_u64(options, "port", AHCI_MAX_PORTS);
	if (port >= AHCI_MAX_PORTS)
		for (int p = 0; p < h->ports_cap && port >= AHCI_MAX_PORTS; p++)
			if (h->port[p].present && h->port[p].sig == AHCI_SIG_ATA) port = p;
	if (!check(port < AHCI_MAX_PORTS && h->port[port].present, "a disk port (%d)", port)) return;
	static uint16_t id[256];
	if (!check(ahci_identify(h, port, 0, id) == 0, "IDENTIFY DEVICE")) return;
	uint64_t sectors = (uint64_t)id[100] | (uint64_t)id[101] << 16 | (uint64_t)id[102] << 32 | (uint64_t)id[103] << 48;
	uint64_t records = sectors / RECORD_SECTORS;
	uint64_t want = optlist_get_u64(options, "records", records);
	if (want < records) records = want;
	uint64_t batch_max = optlist_get_u64(options, "batch", 4);
	if (batch_max < 1) batch_max = 1;
	if (batch_max > MAX_BATCH) batch_max = MAX_BATCH;
	static uint8_t *buf[MAX_BATCH];
	for (int i = 0; i < MAX_BATCH; i++)
		if (!buf[i]) buf[i] = dma_alloc(RECORD_SECTORS * 512);
	uint32_t seed = (uint32_t)optlist_get_u64(options, "seed", 1);
	print("TESTGUEST durable INFO records=%lu batch<=%lu seed=%u port=%d\n", records, batch_max, seed, port);
	uint32_t rng = seed * 2654435761u + 1;
	uint64_t next = 0;
	uint32_t errors = 0;
	while (next < records && !errors) {
		rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5;
		uint32_t n = 1 + rng % (uint32_t)batch_max;
		if (n > records - next) n = (uint32_t)(records - next);
		uint32_t slots = 0;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t sector = (next + i) * RECORD_SECTORS;
			blk_pattern_fill(buf[i], sector, RECORD_SECTORS, seed);
			if (ahci_prepare_ncq(h, port, (int)i, 1, sector, RECORD_SECTORS, buf[i], 0) < 0) { errors++; break; }
			slots |= 1u << i;
		}
		if (errors) break;
		ahci_issue(h, port, slots, 1);
		while (slots) {
			uint32_t done = 0;
			if (ahci_wait(h, port, &done, 10 * SECOND) != 0) { errors++; break; }
			slots &= ~done;
		}
		if (errors) break;
		struct ahci_cmd flush = { .command = 0xEA, .device = 0x40 };
		if (ahci_exec(h, port, &flush) != 0) { errors++; break; }
		next += n;
		print("TESTGUEST durable flushed=%lu\n", next);
	}
	check(errors == 0, "%lu records written and flushed", next);
}

const struct suite suite_ahci_durable = { "ahci-durable",
	"numbered records by NCQ, each batch flushed then reported (TESTGUEST durable flushed=N) (seed= records= batch= port=)", run };
