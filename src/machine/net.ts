/**
 * The network steps of a run (`--net`): open the TAP or passt before KVM (a problem
 * is one line and an exit code), wire the device into the VM (IOAPIC-only
 * interrupt line, irqfd, ioeventfds) and start its data path; the summary
 * line at the end.
 * @module
 */

import type { VmFd } from "../kvm.ts";
import { logger } from "../log.ts";
import { type NetCounters, NetDevice } from "../net/net_device.ts";
import type { NetOption } from "../net/net_option.ts";
import { NET_IRQ_LINE, NET_MMIO_BASE, NOTIFY_OFF_MULTIPLIER, REGION } from "../virtio/layout.ts";

const log = logger("vm");

/**
 * Opens the host end for `--net`: the TAP (warning when attaching made a
 * temporary interface), or passt (started, or attached to).
 */
export async function openNetDevice(
  option: NetOption,
  tempDir: string | undefined,
): Promise<NetDevice> {
  if (option.mode === "passt") return await NetDevice.openPasst(option, tempDir);
  const name = option.name;
  const net = NetDevice.open(name, option.mac);
  if (!net.persistent) {
    log.warn(
      `TAP device "${name}" did not exist: dhyve made a temporary one, without an address and ` +
        `gone when dhyve exits; create it with "ip tuntap add dev ${name} mode tap"`,
    );
  }
  return net;
}

/**
 * Wires the network device into KVM and starts its data path: its interrupt
 * line reaches the IOAPIC only, the irqfd raises it, and guest writes to the
 * two notify registers signal eventfds inside the kernel (ioeventfd).
 */
export async function connectNetDevice(
  vm: VmFd,
  net: NetDevice,
  ram: { address: number; size: number; guestAddress: number },
): Promise<void> {
  vm.setIoapicOnlyRouting([NET_IRQ_LINE]);
  vm.irqfd(net.shared.irqFd, NET_IRQ_LINE);
  [net.shared.rxNotifyFd, net.shared.txNotifyFd].forEach((fd, q) => {
    const err = vm.ioeventfd(NET_MMIO_BASE + REGION.NOTIFY + NOTIFY_OFF_MULTIPLIER * q, fd);
    // Without ioeventfd the notify write exits, and the run loop signals the same eventfd.
    if (err !== 0) log.debug(`KVM_IOEVENTFD refused (errno ${err}); notifications will exit`);
  });
  await net.start(ram, (message) => log.warn(message));
  const mac = [...net.mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
  log.debug(`--net: ${net.hostName}, guest MAC ${mac}`);
}

/** The `-v` line about the network at the end of a run. */
export function netSummary(c: NetCounters): string {
  const frames = c.rxPackets + c.txPackets;
  const perFrame = frames === 0 ? 0 : c.serviceUs / frames;
  return `--net: ${c.rxPackets} frames to the guest, ${c.txPackets} from it, ${c.dropped} ` +
    `dropped, ${c.interrupts} interrupts; data path busy ${perFrame.toFixed(1)} µs per frame` +
    (c.badLength > 0 ? `; ${c.badLength} frames from passt with a bad length` : "") +
    (c.linkUp ? "" : "; the link went down (passt closed its socket)");
}
