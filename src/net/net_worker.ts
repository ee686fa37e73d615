/**
 * The net Worker's entry point: maps guest RAM by address (as the vCPU
 * Workers do), reports "ready", runs the data path until the VM stops.
 * @module
 */

/// <reference lib="deno.worker" />

import { GuestMemory } from "../memory/guest_memory.ts";
import { HostRam } from "../host/mappings.ts";
import { NetDataPath, type NetWorkerInit, type NetWorkerMessage } from "./net_data_path.ts";

function post(message: NetWorkerMessage): void {
  self.postMessage(message);
}

function guestRam(init: NetWorkerInit): GuestMemory {
  // UNSAFE: the main thread keeps guest RAM mapped until this Worker has ended.
  return new GuestMemory(new HostRam(init.memAddress, init.memSize), init.guestAddress);
}

self.onmessage = (event: MessageEvent<NetWorkerInit>): void => {
  try {
    const init = event.data;
    const path = new NetDataPath(init, guestRam(init), init.memAddress);
    post({ type: "ready" });
    path.run();
    post({ type: "done" });
  } catch (error) {
    post({ type: "fatal", message: error instanceof Error ? error.message : String(error) });
  }
  self.close();
};
