/*
 * AHCI (Serial ATA AHCI 1.3.1) host bus adapter driver for class 01/06/01 functions, whatever
 * the vendor: QEMU q35's ICH9 (8086:2922 at 00:1f.2) and bhyve's ahci (8086:2821) alike.
 * Registers are in BAR5 (ABAR), reached with 32-bit accesses only.
 *
 * Bring-up as §10.1 describes: GHC.AE, GHC.HR and wait for it to clear, GHC.AE again; CAP,
 * PI, VS; every implemented port stopped (ST, then FRE, each waited for through CR/FR), given
 * a command list and FIS receive area, PxSERR/PxIS cleared, FRE set; then for the ports whose
 * link is up (PxSSTS.DET = 3) and whose device is not busy, PxSIG read and ST set.
 * Interrupts: one MSI message when the function offers MSI (GHC.IE and PxIE), else polling
 * with INTx off. Completions are found by PxCI / PxSACT bits clearing; the interrupt count
 * only wakes the waiter (and is checked by the suite), so a lost interrupt costs latency, not
 * a hang. Every wait has a time limit.
 *
 * Commands: a host-to-device register FIS in the slot's command table, a PRDT split into
 * entries of at most `prd_max` bytes (so tests can ask for many entries), the ATAPI packet in
 * the ACMD area with the header's A bit, and NCQ (READ/WRITE FPDMA QUEUED) with tag = slot,
 * PxSACT set before PxCI. An error (PxIS.TFES or another fatal PxIS bit) or a time-out is
 * recovered the AHCI way (§6.2.2): ST cleared, CR waited for, PxSERR and PxIS cleared, a
 * COMRESET when the device stays BSY or DRQ, ST set again; every command that was outstanding
 * counts as failed.
 */
#ifndef TESTGUEST_AHCI_H
#define TESTGUEST_AHCI_H
#include <stdint.h>
#include "driver.h"

#define AHCI_MAX_PORTS 32
#define AHCI_SLOTS 32
/* One 4 KiB page per command table: 128 bytes of FIS and packet, then 248 PRDT entries. */
#define AHCI_PRDT_MAX 248
#define AHCI_PRD_BYTES_MAX (4u << 20)

/* Results of the command helpers: 0, AHCI_TIMEOUT, or AHCI_ERROR | PxTFD (ERR << 8 | STS). */
#define AHCI_TIMEOUT (-1)
#define AHCI_ERROR 0x10000
#define AHCI_TFD_STS(r) ((r) & 0xFF)
#define AHCI_TFD_ERR(r) (((r) >> 8) & 0xFF)

/* PxSIG values (ATA8-ACS signatures: count, LBA low, mid, high) */
#define AHCI_SIG_ATA 0x00000101u
#define AHCI_SIG_ATAPI 0xEB140101u

/* ATA status and error bits */
#define ATA_STS_ERR 0x01
#define ATA_STS_DRQ 0x08
#define ATA_STS_DF 0x20
#define ATA_STS_BSY 0x80
#define ATA_ERR_ABRT 0x04
#define ATA_ERR_IDNF 0x10

/* ATA commands the tests use */
#define ATA_CMD_DSM 0x06
#define ATA_CMD_READ_DMA_EXT 0x25
#define ATA_CMD_WRITE_DMA_EXT 0x35
#define ATA_CMD_READ_FPDMA 0x60
#define ATA_CMD_WRITE_FPDMA 0x61
#define ATA_CMD_PACKET 0xA0
#define ATA_CMD_IDENTIFY_PACKET 0xA1
#define ATA_CMD_IDENTIFY 0xEC
#define ATA_CMD_FLUSH_EXT 0xEA

struct ahci_cmd_header {
	uint32_t flags;		/* CFL 4:0 (FIS dwords), A 5, W 6, P 7, R 8, B 9, C 10, PMP 15:12, PRDTL 31:16 */
	uint32_t prdbc;		/* bytes transferred, written by the HBA */
	uint32_t ctba, ctbau;	/* command table, 128-byte aligned */
	uint32_t reserved[4];
};

struct ahci_prd {
	uint32_t dba, dbau, reserved;
	uint32_t dbc;		/* bytes - 1 in 21:0 (so always odd: even byte counts), I in 31 */
};

struct ahci_cmd_table {
	uint8_t cfis[64];
	uint8_t acmd[16];	/* ATAPI packet (12 bytes used) */
	uint8_t reserved[48];
	struct ahci_prd prdt[AHCI_PRDT_MAX];
};

/* What one command carries; the helpers below fill it for the common cases. */
struct ahci_cmd {
	uint8_t command;
	uint16_t features;
	uint64_t lba;		/* 48 bits; for PACKET, bits 23:8 are the PIO byte count limit */
	uint16_t count;
	uint8_t device;		/* 0x40: LBA addressing */
	uint8_t write;		/* data moves to the device (header W bit) */
	uint8_t atapi;		/* header A bit: cdb is the packet */
	uint8_t cdb[12];
	void *buf;		/* word aligned, physically contiguous (physical = virtual) */
	uint32_t len;		/* even */
	uint32_t prd_max;	/* bytes per PRDT entry at most, even; 0 = 4 MiB */
};

struct ahci_port {
	int num;
	uint32_t ssts, sig;	/* at bring-up */
	int present;		/* DET = 3 and the device came out of BSY: the engine runs */
	volatile struct ahci_cmd_header *clb;	/* 32 headers, 1 KiB aligned */
	volatile uint8_t *fis;			/* receive area, 256-byte aligned */
	volatile struct ahci_cmd_table *tables[AHCI_SLOTS];
	uint32_t outstanding, ncq;		/* slots issued and not yet reaped; of those, NCQ */
	uint32_t sact_peak;			/* most PxSACT bits seen set at once */
	uint32_t recoveries, comresets;
	/* Registers as they were at the last error or time-out */
	uint32_t err_is, err_tfd, err_serr, err_ci, err_sact, err_cmd;
};

enum ahci_irq { AHCI_IRQ_POLL, AHCI_IRQ_MSI };

struct ahci {
	struct pci_function *pci;
	uintptr_t abar;
	uint32_t cap, cap2, pi, vs, ghc;
	int ports_cap;		/* CAP.NP + 1 */
	int slots;		/* CAP.NCS + 1 */
	enum ahci_irq irq;
	uint8_t vector;
	struct ahci_port port[AHCI_MAX_PORTS];
	int setup_error;	/* ahci_setup's result at probe (the HBA stays bound so the suite can report it) */
};

extern const struct pci_driver ahci_driver;
const char *ahci_irq_name(enum ahci_irq irq);

/* Resets the HBA and brings up every implemented port (see above), with MSI if `want` and offered. Returns 0 or a negative step. */
int ahci_setup(struct ahci *h, enum ahci_irq want);
/* The error recovery of §6.2.2.1 on one port. Returns 0 when the engine runs again. */
int ahci_port_recover(struct ahci *h, int port);

/* Builds slot `slot`'s header, FIS and PRDT. Returns the PRDT entries used, or -1 (too many, no memory). */
int ahci_prepare(struct ahci *h, int port, int slot, const struct ahci_cmd *c);
/* NCQ READ/WRITE FPDMA QUEUED of `sectors` (1..65536) at `lba` with tag = slot, prepared as above. */
int ahci_prepare_ncq(struct ahci *h, int port, int slot, int write, uint64_t lba, uint32_t sectors, void *buf, uint32_t prd_max);
/* Issues the prepared slots in `slots` (NCQ: PxSACT first, then PxCI). */
void ahci_issue(struct ahci *h, int port, uint32_t slots, int ncq);
/*
 * Waits until some outstanding command of `port` completed: *done gets their slots. Returns 0,
 * AHCI_TIMEOUT or AHCI_ERROR | TFD; after an error or time-out the port has been recovered and
 * nothing is outstanding any more (*done = 0: every command that was outstanding failed).
 */
int ahci_wait(struct ahci *h, int port, uint32_t *done, uint64_t timeout_ns);
/*
 * One look at `port` without waiting, for polled loops that count exits (the benchmark): PxSACT (or PxCI)
 * while nothing finishes, then PxCI and PxIS; nothing is acknowledged (polled, PxIE is 0). `errors` = 1
 * also reads PxIS when nothing finished (a failed NCQ command keeps its PxSACT bit). Returns as ahci_wait;
 * *done may be 0.
 */
int ahci_poll(struct ahci *h, int port, uint32_t *done, int errors);
/* Gives up on what is outstanding after the caller's own time limit: registers recorded, port recovered. Returns AHCI_TIMEOUT. */
int ahci_give_up(struct ahci *h, int port);
/* One command in slot 0, issued and waited for (10 s). Returns as ahci_wait. */
int ahci_exec(struct ahci *h, int port, const struct ahci_cmd *c);
/* Bytes the HBA says slot `slot`'s last command moved (PRDBC). */
uint32_t ahci_prdbc(const struct ahci *h, int port, int slot);

/* Raw access for tests that do what a driver must not: a port register (32 bits), and the port's register block in ABAR. */
uint32_t ahci_port_read(const struct ahci *h, int port, uint32_t off);
void ahci_port_write(const struct ahci *h, int port, uint32_t off, uint32_t v);
uintptr_t ahci_port_regs(const struct ahci *h, int port);
/*
 * Points `port`'s command list at `clb` (0: its own list again): ST off and CR clear, PxCLB/PxCLBU, PxSERR and
 * PxIS cleared, ST on. Returns 1 when PxCMD.ST reads back set, 0 when the HBA would not start, -1 when CR stayed set.
 */
int ahci_port_move_clb(struct ahci *h, int port, uint64_t clb);

/* READ/WRITE DMA EXT of `sectors` (1..65536) at `lba`. */
int ahci_rw(struct ahci *h, int port, int write, uint64_t lba, uint32_t sectors, void *buf, uint32_t prd_max);
/* IDENTIFY DEVICE (packet = 0) or IDENTIFY PACKET DEVICE (packet = 1) into 512 bytes at buf. */
int ahci_identify(struct ahci *h, int port, int packet, uint16_t *buf);
/* A PACKET command; dma = 1 moves data by DMA (features bit 0), else PIO with a byte count limit. */
int ahci_atapi(struct ahci *h, int port, const uint8_t cdb[12], void *buf, uint32_t len, int write, int dma);

/* An ATA string of `words` words from IDENTIFY data (two characters per word, high byte first), trimmed. */
void ahci_ata_string(const uint16_t *id, int first, int words, char *out);
/* Interrupts taken on the HBA's vector so far (0 when polled). */
uint32_t ahci_irq_count(const struct ahci *h);
#endif
