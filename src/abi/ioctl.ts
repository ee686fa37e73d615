/**
 * Linux ioctl request encoding and the KVM request numbers dhyve uses.
 *
 * Every request is derived once from (direction, type, number, size), the way
 * the kernel's `_IOC` macros build them, so a wrong struct size shows up as a
 * test failure here rather than as EINVAL at run time. Pure data.
 * @module
 */

import {
  KVM_CPUID2_HEADER_SIZE,
  KVM_ENABLE_CAP_SIZE,
  KVM_GUEST_DEBUG_SIZE,
  KVM_MP_STATE_SIZE,
  KVM_MSR_LIST_HEADER_SIZE,
  KVM_MSRS_HEADER_SIZE,
  KVM_PIT_CONFIG_SIZE,
  KVM_REGS_SIZE,
  KVM_SREGS_SIZE,
  KVM_USERSPACE_MEMORY_REGION_SIZE,
  KVM_VCPU_EVENTS_SIZE,
  KVM_XCRS_SIZE,
  KVM_XSAVE_SIZE,
} from "./kvm.ts";

const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

/** Builds an ioctl request number like the kernel's `_IOC(dir, type, nr, size)`. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

/** `_IO(type, nr)`: a request without a payload. */
export function io(type: number, nr: number): number {
  return ioc(IOC_NONE, type, nr, 0);
}

/** `_IOR(type, nr, size)`: the kernel writes a struct of `size` bytes. */
export function ior(type: number, nr: number, size: number): number {
  return ioc(IOC_READ, type, nr, size);
}

/** `_IOW(type, nr, size)`: the kernel reads a struct of `size` bytes. */
export function iow(type: number, nr: number, size: number): number {
  return ioc(IOC_WRITE, type, nr, size);
}

/** `_IOWR(type, nr, size)`: the struct goes both ways. */
export function iowr(type: number, nr: number, size: number): number {
  return ioc(IOC_READ | IOC_WRITE, type, nr, size);
}

const KVMIO = 0xae;

/** KVM ioctl request numbers (linux/kvm.h, x86_64). */
export const KVM_IOCTL = {
  GET_API_VERSION: io(KVMIO, 0x00),
  CREATE_VM: io(KVMIO, 0x01),
  GET_MSR_INDEX_LIST: iowr(KVMIO, 0x02, KVM_MSR_LIST_HEADER_SIZE),
  CHECK_EXTENSION: io(KVMIO, 0x03),
  GET_VCPU_MMAP_SIZE: io(KVMIO, 0x04),
  GET_SUPPORTED_CPUID: iowr(KVMIO, 0x05, KVM_CPUID2_HEADER_SIZE),
  CREATE_VCPU: io(KVMIO, 0x41),
  SET_USER_MEMORY_REGION: iow(KVMIO, 0x46, KVM_USERSPACE_MEMORY_REGION_SIZE),
  CREATE_IRQCHIP: io(KVMIO, 0x60),
  CREATE_PIT2: iow(KVMIO, 0x77, KVM_PIT_CONFIG_SIZE),
  /** struct kvm_irq_routing header is 8 bytes (entries follow). */
  SET_GSI_ROUTING: iow(KVMIO, 0x6a, 8),
  /** struct kvm_irqfd is 32 bytes. */
  IRQFD: iow(KVMIO, 0x76, 32),
  /** struct kvm_ioeventfd is 64 bytes. */
  IOEVENTFD: iow(KVMIO, 0x79, 64),
  RUN: io(KVMIO, 0x80),
  GET_REGS: ior(KVMIO, 0x81, KVM_REGS_SIZE),
  SET_REGS: iow(KVMIO, 0x82, KVM_REGS_SIZE),
  GET_SREGS: ior(KVMIO, 0x83, KVM_SREGS_SIZE),
  SET_SREGS: iow(KVMIO, 0x84, KVM_SREGS_SIZE),
  SET_MSRS: iow(KVMIO, 0x89, KVM_MSRS_HEADER_SIZE),
  SET_CPUID2: iow(KVMIO, 0x90, KVM_CPUID2_HEADER_SIZE),
  GET_MP_STATE: ior(KVMIO, 0x98, KVM_MP_STATE_SIZE),
  SET_MP_STATE: iow(KVMIO, 0x99, KVM_MP_STATE_SIZE),
  SET_GUEST_DEBUG: iow(KVMIO, 0x9b, KVM_GUEST_DEBUG_SIZE),
  GET_VCPU_EVENTS: ior(KVMIO, 0x9f, KVM_VCPU_EVENTS_SIZE),
  SET_VCPU_EVENTS: iow(KVMIO, 0xa0, KVM_VCPU_EVENTS_SIZE),
  ENABLE_CAP: iow(KVMIO, 0xa3, KVM_ENABLE_CAP_SIZE),
  GET_TSC_KHZ: io(KVMIO, 0xa3),
  GET_XSAVE: ior(KVMIO, 0xa4, KVM_XSAVE_SIZE),
  SET_XSAVE: iow(KVMIO, 0xa5, KVM_XSAVE_SIZE),
  GET_XCRS: ior(KVMIO, 0xa6, KVM_XCRS_SIZE),
  SET_XCRS: iow(KVMIO, 0xa7, KVM_XCRS_SIZE),
} as const;
