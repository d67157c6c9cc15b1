#include "suite.h"
#include "../lib/string.h"

extern const struct suite suite_platform, suite_uart, suite_rtc, suite_pmtimer, suite_hpet,
	suite_irq, suite_msi, suite_power, suite_fault, suite_virtio_rng,
	suite_pwrbtn, suite_virtio_blk, suite_virtio_blk_durable, suite_nvme, suite_nvme_durable,
	suite_ahci, suite_ahci_durable, suite_virtio_net, suite_virtio_console, suite_xhci, suite_fbuf;

const struct suite *const suites[] = {
	&suite_platform,
	&suite_uart,
	&suite_rtc,
	&suite_pmtimer,
	&suite_hpet,
	&suite_irq,
	&suite_msi,
	&suite_virtio_rng,
	&suite_virtio_blk,
	&suite_virtio_blk_durable,
	&suite_nvme,
	&suite_nvme_durable,
	&suite_ahci,
	&suite_ahci_durable,
	&suite_virtio_net,
	&suite_virtio_console,
	&suite_xhci,
	&suite_fbuf,
	&suite_pwrbtn,
	&suite_power,
	&suite_fault,
	0,
};

const struct suite *suite_find(const char *name) {
	for (int i = 0; suites[i]; i++)
		if (strcmp(suites[i]->name, name) == 0) return suites[i];
	return 0;
}
