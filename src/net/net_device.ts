/**
 * The virtio-net device's host resources and lifetime: opens the host end (a
 * TAP interface, or passt's socket, starting passt if asked) and the
 * eventfds before the guest boots (so every failure is one clear line and an
 * exit code), starts the net Worker (the data path), gives each vCPU thread
 * its register file, and stops it all at the end. The KVM side (ioeventfd,
 * irqfd) is registered by `vm.ts` with the fds from here.
 * @module
 */

import { ERRNO } from "../errno.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { CSUM_FEATURES, NET_MTU, OFFERED_FEATURES } from "../virtio/layout.ts";
import { NetRegisters } from "../virtio/net_registers.ts";
import { createNetState, WORD } from "../virtio/net_state.ts";
import { closeFd, createEventFd, openTap, signalEventFd, TapError } from "./host_io.ts";
import { PASST_GUEST_MAC, type PasstNetOption, TUN_DEVICE } from "./net_option.ts";
import type { NetWorkerInit, NetWorkerMessage } from "./net_data_path.ts";
import { NetSetupError } from "./net_setup_error.ts";
import { attachPasst, type PasstConnection, settlesWithin, startPasst } from "./passt.ts";
import { workerUrl } from "../locations.ts";

/** What a vCPU thread needs to build its register file (structured-clone friendly). */
export interface NetShared {
  /** The shared device state. */
  state: SharedArrayBuffer;
  /** Wakes the net Worker. */
  wakeFd: number;
  /** Raises the device interrupt. */
  irqFd: number;
  /** Receive-queue notifications. */
  rxNotifyFd: number;
  /** Transmit-queue notifications. */
  txNotifyFd: number;
}

export { NetSetupError };

/** One line, with the fix, for a TAP that cannot be opened. */
export function describeTapError(name: string, error: TapError): NetSetupError {
  const e = error.errno;
  const create = `ip tuntap add dev ${name} mode tap`;
  if (error.step === "open") {
    if (e === ERRNO.ENOENT || e === ERRNO.ENODEV) {
      return new NetSetupError(
        `${TUN_DEVICE} does not exist: load the TUN/TAP driver (modprobe tun) to use --net`,
        EXIT_CODE.HOST_ERROR,
        { cause: error },
      );
    }
    if (e === ERRNO.EACCES || e === ERRNO.EPERM) {
      return new NetSetupError(
        `Cannot open ${TUN_DEVICE}: permission denied; run dhyve as root, or give this user ` +
          `read/write access to ${TUN_DEVICE}`,
        EXIT_CODE.PERMISSION,
        { cause: error },
      );
    }
  } else {
    if (e === ERRNO.EPERM || e === ERRNO.EACCES) {
      return new NetSetupError(
        `Not allowed to use TAP device "${name}" (it does not exist, or belongs to another ` +
          `user, and creating it needs CAP_NET_ADMIN): create it for this user with ` +
          `"${create} user $(id -un)" and bring it up`,
        EXIT_CODE.PERMISSION,
        { cause: error },
      );
    }
    if (e === ERRNO.EBUSY) {
      return new NetSetupError(
        `TAP device "${name}" is busy: another process has it open, or it was not created ` +
          `as a TAP without packet information; stop that process or use another device ` +
          `("${create}")`,
        EXIT_CODE.HOST_ERROR,
        { cause: error },
      );
    }
    if (e === ERRNO.EINVAL) {
      return new NetSetupError(
        `"${name}" is not a TAP device: pick another name, or create one with "${create}"`,
        EXIT_CODE.HOST_ERROR,
        { cause: error },
      );
    }
  }
  return new NetSetupError(
    `Cannot use TAP device "${name}": ${error.message}; check it with "ip link show ${name}"`,
    EXIT_CODE.HOST_ERROR,
    { cause: error },
  );
}

/**
 * The guest's MAC: the TAP interface's own address with the "locally
 * administered" bit set and the last bit flipped, so it is stable for a
 * given TAP, unicast, and differs from the host end.
 */
export function guestMacFor(tapMac: Uint8Array): Uint8Array {
  const mac = tapMac.slice(0, 6);
  if (mac.every((b) => b === 0)) mac.set([0x02, 0, 0, 0, 0, 0]);
  mac[0] = (mac[0]! | 0x02) & ~0x01;
  mac[5] = mac[5]! ^ 0x01;
  return mac;
}

/** Builds a register file for this thread over the shared device state. */
export function netRegisters(shared: NetShared, mem: GuestMemory): NetRegisters {
  return new NetRegisters(new Int32Array(shared.state), mem, {
    wake: () => signalEventFd(shared.wakeFd),
    interrupt: () => {
      Atomics.add(new Int32Array(shared.state), WORD.INTERRUPTS, 1);
      signalEventFd(shared.irqFd);
    },
    notify: (queue) => {
      if (queue === 0) signalEventFd(shared.rxNotifyFd);
      else if (queue === 1) signalEventFd(shared.txNotifyFd);
    },
  });
}

/** Counters of the data path, for diagnostics and benchmarks. */
export interface NetCounters {
  /** Frames delivered to the guest. */
  rxPackets: number;
  /** Frames the guest sent. */
  txPackets: number;
  /** Bytes delivered / sent (frames only, without the virtio header). */
  rxBytes: number;
  /** Bytes sent. */
  txBytes: number;
  /** Frames lost (TAP write failures, read errors, no guest buffer large enough). */
  dropped: number;
  /** Frames from passt dropped for their length prefix (over the MTU, runt, corrupt). */
  badLength: number;
  /** The link is up (false once passt closed its socket or sent a corrupt length). */
  linkUp: boolean;
  /** Interrupts raised. */
  interrupts: number;
  /** Microseconds the data path was busy (moving frames, not waiting). */
  serviceUs: number;
  /** Device status byte at the end. */
  status: number;
  /** DEVICE_ERROR code if the device entered NEEDS_RESET, else 0. */
  error: number;
}

/** How long the net Worker gets to report after being asked to stop. */
const STOP_MS = 2000;

/** The host end of the device, opened. */
interface HostEnd {
  /** The fd the data path reads and writes. */
  fd: number;
  /** How frames travel on it. */
  backend: NonNullable<NetWorkerInit["backend"]>;
  /** Closes it (and stops passt). */
  close(): Promise<void>;
}

/** The device: host end, eventfds, shared state, and the Worker once started. */
export class NetDevice {
  /** What the host end is, for messages: `TAP tap10`, `passt (pid 123)`, `passt at SOCKET`. */
  readonly hostName: string;
  /** The guest's MAC address. */
  readonly mac: Uint8Array;
  /** False when the TAP did not exist and attaching made a temporary one. */
  readonly persistent: boolean;
  /** Shared with every vCPU thread. */
  readonly shared: NetShared;
  readonly #host: HostEnd;
  #worker: Worker | null;
  readonly #started: Promise<void>;
  readonly #done: Promise<void>;
  #posted = false;
  #warn: (message: string) => void = () => {};

  private constructor(
    hostName: string,
    host: HostEnd,
    shared: NetShared,
    options: { mac: Uint8Array; persistent: boolean },
  ) {
    this.hostName = hostName;
    this.#host = host;
    this.shared = shared;
    this.mac = options.mac;
    this.persistent = options.persistent;
    // The Worker loads its modules while the VM is being built; start() hands it guest RAM.
    const worker = new Worker(workerUrl("net"), { type: "module" });
    this.#worker = worker;
    let running = false;
    let ready: () => void = () => {};
    let failed: (e: Error) => void = () => {};
    this.#started = new Promise<void>((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    this.#started.catch(() => {}); // reported by start(), or moot if the run ends before it
    this.#done = new Promise<void>((resolve) => {
      const fail = (message: string): void => {
        if (running) this.#warn(`${message}; the guest's network is down`);
        failed(new NetSetupError(message, EXIT_CODE.INTERNAL));
        resolve();
      };
      worker.onmessage = (event: MessageEvent<NetWorkerMessage>): void => {
        const m = event.data;
        if (m.type === "ready") {
          running = true;
          ready();
        } else if (m.type === "done") resolve();
        else fail(`The network Worker failed: ${m.message}`);
      };
      worker.onerror = (event: ErrorEvent): void => {
        event.preventDefault();
        fail(`The network Worker failed: ${event.message}`);
      };
    });
  }

  /**
   * Opens TAP interface `tapName` and the eventfds, and starts loading the
   * net Worker. The TAP carries a virtio-net header where it accepts one, and
   * then the device offers checksum offload; the MTU is the interface's.
   * @throws {NetSetupError} with a one-line message and exit code.
   */
  static open(tapName: string, guestMac?: Uint8Array): NetDevice {
    let tap;
    try {
      tap = openTap(tapName);
    } catch (error) {
      if (error instanceof TapError) throw describeTapError(tapName, error);
      throw error;
    }
    const fd = tap.fd;
    const host: HostEnd = {
      fd,
      backend: tap.vnetHdr ? "tap-vnet" : "tap",
      close: () => Promise.resolve(closeFd(fd)),
    };
    return NetDevice.#assemble(`TAP ${tapName}`, host, {
      mac: guestMac?.slice(0, 6) ?? guestMacFor(tap.mac),
      persistent: tap.persistent,
      offeredLow: OFFERED_FEATURES[0] | (tap.csumOffload ? CSUM_FEATURES : 0),
      mtu: tap.mtu,
    });
  }

  /**
   * User-mode networking (`--net passt[:SOCKET]`): starts passt (or attaches
   * to a running one), then opens the eventfds and starts loading the net
   * Worker. `socketParent` is where a started passt's socket directory goes.
   * @throws {NetSetupError} with a one-line message and exit code.
   */
  static async openPasst(option: PasstNetOption, socketParent?: string): Promise<NetDevice> {
    const connection: PasstConnection = option.socket !== undefined
      ? attachPasst(option.socket)
      : await startPasst({
        publish: option.publish ?? [],
        mtu: NET_MTU,
        ...(socketParent !== undefined ? { parent: socketParent } : {}),
      });
    const name = option.socket !== undefined
      ? `passt at ${option.socket}`
      : `passt (pid ${connection.pid})`;
    const host: HostEnd = { fd: connection.fd, backend: "stream", close: () => connection.close() };
    return NetDevice.#assemble(name, host, {
      mac: option.mac?.slice(0, 6) ?? PASST_GUEST_MAC.slice(),
      persistent: true,
      offeredLow: OFFERED_FEATURES[0],
      mtu: NET_MTU,
    });
  }

  /** Opens the eventfds and the shared state around an open host end (closed on failure). */
  static #assemble(
    hostName: string,
    host: HostEnd,
    options: { mac: Uint8Array; persistent: boolean; offeredLow: number; mtu: number },
  ): NetDevice {
    const fds: number[] = [];
    try {
      for (let i = 0; i < 4; i++) fds.push(createEventFd());
    } catch (error) {
      for (const fd of fds) closeFd(fd);
      void host.close();
      throw new NetSetupError(
        error instanceof Error ? error.message : String(error),
        EXIT_CODE.HOST_ERROR,
      );
    }
    const state = createNetState(options.mac, { offeredLow: options.offeredLow, mtu: options.mtu });
    Atomics.store(state, WORD.LINK, 1); // the host end is open: link up
    const shared: NetShared = {
      state: state.buffer as SharedArrayBuffer,
      wakeFd: fds[0]!,
      irqFd: fds[1]!,
      rxNotifyFd: fds[2]!,
      txNotifyFd: fds[3]!,
    };
    return new NetDevice(hostName, host, shared, options);
  }

  /**
   * Starts the data path over guest RAM; resolves once the Worker runs. A
   * Worker that fails later is reported through `warn` (the guest's network
   * is then down, the VM runs on).
   */
  start(
    mem: { address: number; size: number; guestAddress: number },
    warn: (message: string) => void,
  ): Promise<void> {
    this.#warn = warn;
    const init: NetWorkerInit = {
      state: this.shared.state,
      memAddress: mem.address,
      memSize: mem.size,
      guestAddress: mem.guestAddress,
      tapFd: this.#host.fd,
      backend: this.#host.backend,
      rxNotifyFd: this.shared.rxNotifyFd,
      txNotifyFd: this.shared.txNotifyFd,
      wakeFd: this.shared.wakeFd,
      irqFd: this.shared.irqFd,
    };
    this.#worker?.postMessage(init);
    this.#posted = true;
    return this.#started;
  }

  /** The data path's counters now. */
  counters(): NetCounters {
    const s = new Int32Array(this.shared.state);
    return {
      rxPackets: Atomics.load(s, WORD.RX_PACKETS) >>> 0,
      txPackets: Atomics.load(s, WORD.TX_PACKETS) >>> 0,
      rxBytes: Atomics.load(s, WORD.RX_BYTES) >>> 0,
      txBytes: Atomics.load(s, WORD.TX_BYTES) >>> 0,
      dropped: Atomics.load(s, WORD.DROPPED) >>> 0,
      badLength: Atomics.load(s, WORD.BAD_LENGTH) >>> 0,
      linkUp: Atomics.load(s, WORD.LINK) !== 0,
      interrupts: Atomics.load(s, WORD.INTERRUPTS) >>> 0,
      serviceUs: Atomics.load(s, WORD.SERVICE_US) >>> 0,
      status: Atomics.load(s, WORD.STATUS),
      error: Atomics.load(s, WORD.ERROR),
    };
  }

  /**
   * Stops the Worker (waits briefly for it), then closes every fd and stops
   * passt if dhyve started it. Guest RAM must still be mapped.
   */
  async close(): Promise<void> {
    const s = new Int32Array(this.shared.state);
    Atomics.store(s, WORD.STOP, 1);
    signalEventFd(this.shared.wakeFd);
    if (this.#worker !== null) {
      if (this.#posted) await settlesWithin(this.#done, STOP_MS);
      this.#worker.terminate();
      this.#worker = null;
    }
    const { wakeFd, irqFd, rxNotifyFd, txNotifyFd } = this.shared;
    for (const fd of [wakeFd, irqFd, rxNotifyFd, txNotifyFd]) closeFd(fd);
    await this.#host.close();
  }
}
