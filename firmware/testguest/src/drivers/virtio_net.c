#include "virtio_net.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../lib/string.h"

static struct virtio_net devices[2];
static int device_count;

static int match(const struct pci_function *f) { return f->vendor == 0x1AF4 && f->device == 0x1000; }

static void post_rx(struct virtio_net *n, uint16_t i) {
	struct virtq *q = &n->rx;
	q->desc[i].addr = (uint64_t)(uintptr_t)(n->rx_bufs + (uint32_t)i * VIRTIO_NET_BUF_BYTES);
	q->desc[i].len = VIRTIO_NET_BUF_BYTES;
	q->desc[i].flags = VIRTQ_DESC_F_WRITE;
	q->desc[i].next = 0;
	virtq_publish(q, i);
}

static int probe(struct pci_function *f) {
	if (device_count == (int)(sizeof devices / sizeof devices[0])) return -1;
	struct virtio_net *n = &devices[device_count];
	memset(n, 0, sizeof *n);
	if (virtio_legacy_begin(&n->transport, f) != 0) return -1;
	n->host_features = virtio_legacy_host_features(&n->transport);
	n->features = virtio_legacy_negotiate(&n->transport, (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_MRG_RXBUF) |
								     (1u << VIRTIO_NET_F_STATUS) | (1u << VIRTIO_NET_F_MTU));
	n->hdr_len = (n->features & (1u << VIRTIO_NET_F_MRG_RXBUF)) ? 12 : 10;
	int msix = pci_msix_table_size(f) >= 3;
	if (virtio_legacy_queue(&n->transport, &n->rx, 0, msix ? 1 : -1) != 0) goto fail;
	n->rx_vector = n->transport.vector;
	if (virtio_legacy_queue(&n->transport, &n->tx, 1, msix ? 2 : -1) != 0) goto fail;
	n->tx_vector = n->transport.vector;
	n->rx_bufs = dma_alloc((uint64_t)VIRTIO_NET_RX_BUFS * VIRTIO_NET_BUF_BYTES);
	n->tx_bufs = dma_alloc((uint64_t)n->tx.size * VIRTIO_NET_BUF_BYTES);
	if (!n->rx_bufs || !n->tx_bufs || n->rx.size < VIRTIO_NET_RX_BUFS) goto fail;
	uint16_t cfg = virtio_legacy_config_port(&n->transport);
	for (int i = 0; i < 6; i++) n->mac[i] = inb((uint16_t)(cfg + i));
	n->status = inw((uint16_t)(cfg + 6));
	n->mtu = inw((uint16_t)(cfg + 10));
	for (uint16_t i = 0; i < VIRTIO_NET_RX_BUFS; i++) post_rx(n, i);
	virtio_legacy_driver_ok(&n->transport);
	virtq_kick(&n->transport, &n->rx);
	device_count++;
	f->driver_state = n;
	return 0;
fail:
	outb(n->transport.io + VIRTIO_DEVICE_STATUS, VIRTIO_STATUS_FAILED);
	return -1;
}

uint32_t virtio_net_receive(struct virtio_net *n, uint8_t *out, uint32_t size) {
	uint32_t id, len;
	while (virtq_take_used_id(&n->rx, &id, &len)) {
		uint32_t got = 0;
		if (id < VIRTIO_NET_RX_BUFS && len > n->hdr_len && len <= VIRTIO_NET_BUF_BYTES) {
			const uint8_t *b = n->rx_bufs + id * VIRTIO_NET_BUF_BYTES;
			/* 2 KiB buffers hold any frame of a 1500-byte MTU: num_buffers must be 1. */
			uint16_t nbuf = n->hdr_len == 12 ? (uint16_t)(b[10] | b[11] << 8) : 1;
			got = len - n->hdr_len;
			if (nbuf != 1 || got > size) got = 0;
			else memcpy(out, b + n->hdr_len, got);
		}
		if (got) n->rx_frames++;
		else n->rx_errors++;
		if (id < VIRTIO_NET_RX_BUFS) post_rx(n, (uint16_t)id);
		virtq_kick(&n->transport, &n->rx);
		if (got) return got;
	}
	return 0;
}

int virtio_net_send(struct virtio_net *n, const uint8_t *frame, uint32_t len) {
	struct virtq *q = &n->tx;
	uint32_t id, used;
	while (virtq_take_used_id(q, &id, &used)) {
	}
	if (len + n->hdr_len > VIRTIO_NET_BUF_BYTES) return -1;
	if ((uint16_t)(q->next_avail - q->last_used) >= q->size) return -1;
	uint16_t d = q->next_avail % q->size;
	uint8_t *b = n->tx_bufs + (uint32_t)d * VIRTIO_NET_BUF_BYTES;
	memset(b, 0, n->hdr_len);
	memcpy(b + n->hdr_len, frame, len);
	q->desc[d].addr = (uint64_t)(uintptr_t)b;
	q->desc[d].len = n->hdr_len + len;
	q->desc[d].flags = 0;
	q->desc[d].next = 0;
	virtq_publish(q, d);
	virtq_kick(&n->transport, q);
	n->tx_frames++;
	return 0;
}

const struct pci_driver virtio_net_driver = { "virtio-net", match, probe };
