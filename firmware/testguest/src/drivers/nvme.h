/*
 * NVMe controller driver (NVM Express 1.4) for class 01/08/02 functions: bhyve's FB5D:0A0A and
 * QEMU's 1B36:0010 alike. Bring-up as §7.6.1 describes: CC.EN = 0 and wait for !RDY, admin
 * queue (AQA/ASQ/ACQ), CC.EN = 1 with 64/16-byte entries, wait for RDY, Identify, Number of
 * Queues, then I/O queue pairs (CQ first), each CQ on its own MSI-X entry (or all on MSI /
 * polling). Optionally Doorbell Buffer Config first (shadow doorbells with EventIdx, §5.8).
 *
 * Commands carry PRP1/PRP2; a transfer touching more than two pages gets a PRP list in the
 * slot's own list pages (chained through the last entry when longer than 511 entries).
 * Completions are taken by their phase tag; the CQ head doorbell is rung once per batch (nvme_cq_ring).
 *
 * Slots: command id = slot, so up to `slots` commands per queue are in flight at once.
 */
#ifndef TESTGUEST_NVME_H
#define TESTGUEST_NVME_H
#include <stdint.h>
#include "driver.h"

#define NVME_MAX_IOQ 16
#define NVME_SLOTS 32
#define NVME_TIMEOUT (-1)

/* NVM opcodes and status codes (SCT << 8 | SC) the tests use */
#define NVME_OP_FLUSH 0x00
#define NVME_OP_WRITE 0x01
#define NVME_OP_READ 0x02
#define NVME_OP_COMPARE 0x05
#define NVME_OP_WRITE_ZEROES 0x08
#define NVME_OP_DSM 0x09
#define NVME_SC_SUCCESS 0x000
#define NVME_SC_INVALID_OPCODE 0x001
#define NVME_SC_INVALID_FIELD 0x002
#define NVME_SC_INVALID_NS 0x00B
#define NVME_SC_LBA_RANGE 0x080

struct nvme_cmd {
	uint32_t cdw0;	/* opcode, flags, command id (set by the driver) */
	uint32_t nsid;
	uint64_t rsvd;
	uint64_t mptr;
	uint64_t prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct nvme_cqe {
	uint32_t dw0, dw1;
	uint16_t sq_head, sq_id;
	uint16_t cid, status;	/* status: phase in bit 0, then SC, SCT, CRD, M, DNR */
};

enum nvme_irq { NVME_IRQ_POLL, NVME_IRQ_MSIX, NVME_IRQ_MSI };

struct nvme_queue {
	uint16_t qid, entries;
	volatile struct nvme_cmd *sq;
	volatile struct nvme_cqe *cq;
	uint16_t sq_tail, cq_head, last_sq_doorbell, last_cq_doorbell, last_cq_rung;
	uint8_t phase;
	uint8_t vector;		/* CPU vector of its interrupt (0 when polled) */
	uint64_t *prp_pages[NVME_SLOTS];	/* two PRP list pages per slot */
	uint32_t doorbells;	/* doorbell register writes made */
	uint32_t pending;	/* slots in flight */
};

struct nvme {
	struct pci_function *pci;
	uintptr_t regs;
	uint64_t cap;
	uint32_t vs;
	uint32_t mqes;		/* entries per queue at most (CAP.MQES + 1) */
	uint32_t dstrd;		/* doorbell stride in bytes */
	struct nvme_queue admin;
	struct nvme_queue io[NVME_MAX_IOQ + 1];	/* io[1..nio] */
	int nio;
	uint32_t queues_granted;	/* from Number of Queues: I/O SQs (and CQs) the controller gave */
	/* Identify */
	uint8_t *id_ctrl, *id_ns, *scratch;
	char serial[21], model[41];
	uint8_t mdts;
	uint16_t oacs, oncs;
	uint8_t vwc;
	uint32_t nn;
	uint64_t nsze;
	uint32_t lba_bytes;
	uint64_t eui64;
	/* interrupts */
	enum nvme_irq irq;
	uint8_t vectors[NVME_MAX_IOQ + 1];
	/* shadow doorbells (when dbbuf is on) */
	volatile uint32_t *shadow, *eventidx;
	int dbbuf;
	int setup_error;	/* nvme_setup's result at probe (the device stays bound so suites can report it) */
};

extern const struct pci_driver nvme_driver;
const char *nvme_irq_name(enum nvme_irq irq);

/*
 * Resets the controller and brings it up with `nio` I/O queue pairs of `entries` entries,
 * interrupts `irq` (MSI-X falls back to MSI when absent), and shadow doorbells if `dbbuf` and
 * the controller supports them. Returns 0, or a negative step number on failure.
 */
int nvme_setup(struct nvme *c, enum nvme_irq irq, int nio, uint32_t entries, int dbbuf);
/* CC.EN = 0 and waits for RDY to clear; the driver forgets its I/O queues. Returns 0 if it cleared. */
int nvme_disable(struct nvme *c);
/* One admin command, polled. Returns the status (SCT << 8 | SC) or NVME_TIMEOUT; *dw0 may be NULL. */
int nvme_admin(struct nvme *c, struct nvme_cmd *cmd, uint32_t *dw0);
/*
 * Places an I/O command in slot `slot` of queue `qid` with PRPs for `len` bytes at `buf` (any
 * dword-aligned address; physical = virtual). Does not ring. Returns 0.
 */
int nvme_queue_cmd(struct nvme *c, int qid, int slot, struct nvme_cmd *cmd, void *buf, uint32_t len);
/* Rings queue `qid`'s SQ tail doorbell (with shadow doorbells: only when EventIdx asks). */
void nvme_ring(struct nvme *c, int qid);
/* Takes one completion of queue `qid`: returns its slot (cid) and *status, or -1 when none. */
int nvme_reap(struct nvme *c, int qid, int *status);
/* Tells the controller how far the CQ was consumed (its head doorbell), once per batch of reaps as Linux does. */
void nvme_cq_ring(struct nvme *c, int qid);
/* An NVM command on `qid` in slot 0, submitted and polled. Returns the status or NVME_TIMEOUT. */
int nvme_io(struct nvme *c, int qid, uint8_t opcode, uint64_t slba, uint32_t nlb, void *buf, uint32_t len);
/* Interrupts taken so far on queue `qid`'s vector. */
uint32_t nvme_irq_count(const struct nvme *c, int qid);
/* Writes a raw doorbell register (hostile tests): offset 0x1000 + ... */
void nvme_doorbell_raw(struct nvme *c, uint32_t offset, uint32_t value);
/* Raw SQE placement without PRP help (hostile tests); returns the cid used. */
int nvme_queue_raw(struct nvme *c, int qid, int slot, const struct nvme_cmd *cmd);
static inline int nvme_status(const volatile struct nvme_cqe *e) { return (e->status >> 1) & 0x7FF; }
#endif
