// The usage text printed for -h (exit 0) and for command lines that cannot be parsed (exit 1).
export function usageText(prog: string): string {
  const pad = ' '.repeat(prog.length);
  return (
    `Usage: ${prog} [-aCDeHhPSuWwxY]\n` +
    `       ${pad} [-c [[cpus=]numcpus][,sockets=n][,cores=n][,threads=n]]\n` +
    `       ${pad} [-f [name=]name,(string|file)=value] [-G port] [-K layout]\n` +
    `       ${pad} [-k config_file] [-l lpc] [-m mem] [-n numa] [-o var=value]\n` +
    `       ${pad} [-p vcpu:hostcpu] [-s pci] [-U uuid] vmname\n` +
    '       -a: local APIC is in xAPIC mode (deprecated)\n' +
    '       -C: include guest memory in core file\n' +
    '       -c: number of CPUs and/or topology specification\n' +
    '       -D: destroy on power-off\n' +
    '       -e: exit on unhandled I/O access\n' +
    '       -f: add fw_cfg file\n' +
    '       -G: start a debug server\n' +
    '       -H: vmexit from the guest on HLT\n' +
    '       -h: help\n' +
    '       -k: key=value flat config file\n' +
    '       -K: PS2 keyboard layout\n' +
    '       -l: LPC device configuration\n' +
    '       -m: memory size\n' +
    '       -n: NUMA domain specification\n' +
    "       -o: set config 'var' to 'value'\n" +
    '       -P: vmexit from the guest on pause\n' +
    "       -p: pin 'vcpu' to 'hostcpu'\n" +
    '       -S: guest memory cannot be swapped\n' +
    '       -s: <slot,driver,configinfo> PCI slot config\n' +
    '       -U: UUID\n' +
    '       -u: RTC keeps UTC time\n' +
    '       -W: force virtio to use single-vector MSI\n' +
    '       -w: ignore unimplemented MSRs\n' +
    '       -x: local APIC is in x2APIC mode\n' +
    '       -Y: disable MPtable generation\n'
  );
}
