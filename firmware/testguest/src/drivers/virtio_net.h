/*
 * virtio network device driver (virtio 1.2 §5.1) over the legacy PCI transport, as bhyve's
 * virtio-net (1af4:1000) presents it: receive queue 0 kept full of 2 KiB buffers, transmit
 * queue 1, mergeable receive buffers (12-byte header) when offered, no offloads; queues on
 * MSI-X vectors when the device has MSI-X.
 */
#ifndef TESTGUEST_VIRTIO_NET_H
#define TESTGUEST_VIRTIO_NET_H
#include <stdint.h>
#include "virtio_legacy.h"

#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_RX_BUFS 64
#define VIRTIO_NET_BUF_BYTES 2048

struct virtio_net {
	struct virtio_legacy transport;
	struct virtq rx, tx;
	uint8_t rx_vector, tx_vector;	/* 0 without MSI-X */
	uint32_t host_features, features;
	uint32_t hdr_len;
	uint8_t mac[6];
	uint16_t status, mtu;
	uint8_t *rx_bufs;		/* VIRTIO_NET_RX_BUFS buffers, descriptor i <-> buffer i */
	uint8_t *tx_bufs;		/* one per transmit descriptor */
	uint32_t rx_frames, tx_frames, rx_errors;
};

extern const struct pci_driver virtio_net_driver;
/* Copies the next received frame (without the virtio header) into out; returns its length, 0 if none. */
uint32_t virtio_net_receive(struct virtio_net *n, uint8_t *out, uint32_t size);
/* Sends one frame (a zero header is put in front); returns 0, or -1 when the frame is too big or the ring is full. */
int virtio_net_send(struct virtio_net *n, const uint8_t *frame, uint32_t len);
#endif
