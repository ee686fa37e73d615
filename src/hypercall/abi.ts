/**
 * The uhyve hypercall interface (v1, v2 and the v2 ports uhyve 0.9.1 added
 * for interface v3) as data: port numbers and the parameter-struct layouts
 * the guest passes (hermit-abi.md §5; uhyve-interface/src/v2/parameters.rs at
 * v0.9.1 for Getdents, FileStat, FileFstat and Mkdir). Pure.
 * @module
 */

/** Interface v1 ports; the 32-bit OUT value is the parameter's guest-physical address. */
export const V1 = {
  FILE_WRITE: 0x400,
  FILE_OPEN: 0x440,
  FILE_CLOSE: 0x480,
  FILE_READ: 0x500,
  EXIT: 0x540,
  FILE_LSEEK: 0x580,
  NET_WRITE: 0x640,
  NET_READ: 0x680,
  NET_STAT: 0x700,
  CMDSIZE: 0x740,
  CMDVAL: 0x780,
  UART: 0x800,
  FILE_UNLINK: 0x840,
  SERIAL_BUFFER_WRITE: 0x880,
} as const;

/** Interface v2 addresses, used as I/O ports on x86_64; RDI carries the argument. */
export const V2 = {
  EXIT: 0x1010,
  SERIAL_WRITE_BYTE: 0x1020,
  SERIAL_WRITE_BUFFER: 0x1030,
  SERIAL_READ_BYTE: 0x1040,
  SERIAL_READ_BUFFER: 0x1050,
  FILE_WRITE: 0x1100,
  FILE_OPEN: 0x1110,
  FILE_CLOSE: 0x1120,
  FILE_READ: 0x1130,
  FILE_LSEEK: 0x1140,
  FILE_UNLINK: 0x1150,
  /** uhyve 0.9.1 (interface v3): directory entries of a directory fd. */
  GETDENTS: 0x1160,
  /** uhyve 0.9.1: stat or lstat of a path. */
  FILE_STAT: 0x1170,
  /** uhyve 0.9.1: fstat of a guest fd. */
  FILE_FSTAT: 0x1180,
  /** uhyve 0.9.1: create a directory. */
  MKDIR: 0x1190,
  SHARED_MEM_OPEN: 0x1200,
  SHARED_MEM_CLOSE: 0x1210,
} as const;

/** The serial port the boot info announces, per interface version (v3 as v2, uhyve 0.9.1). */
export const SERIAL_PORT_BASE = {
  1: V1.UART,
  2: V2.SERIAL_WRITE_BUFFER,
  3: V2.SERIAL_WRITE_BUFFER,
} as const;

/** A struct layout: field offsets and the total size the host reads. */
export interface StructLayout {
  /** Bytes the host touches, checked against guest memory before use. */
  readonly size: number;
}

/** v1 ExitParams (packed): i32 arg. */
export const EXIT_V1 = { size: 4, arg: 0 } as const;
/** v1 SerialWriteBufferParams (packed): u64 buf, u64 len. */
export const SERIAL_BUFFER_V1 = { size: 16, buf: 0, len: 8 } as const;
/** v2 SerialWriteBufferParams: u64 len, u64 buf (order swapped against v1). */
export const SERIAL_BUFFER_V2 = { size: 16, len: 0, buf: 8 } as const;
/** v2 SerialReadBufferParams: u64 maxlen, u64 len, u64 buf. */
export const SERIAL_READ_BUFFER_V2 = { size: 24, maxlen: 0, len: 8, buf: 16 } as const;
/** OpenParams (v1 and v2, packed): u64 name, i32 flags, i32 mode, i32 ret. */
export const OPEN = { size: 20, name: 0, flags: 8, mode: 12, ret: 16 } as const;
/** CloseParams (v1 and v2, packed): i32 fd, i32 ret. */
export const CLOSE = { size: 8, fd: 0, ret: 4 } as const;
/** UnlinkParams (v1 and v2, packed): u64 name, i32 ret. */
export const UNLINK = { size: 12, name: 0, ret: 8 } as const;
/** v1 WriteParams (packed): i32 fd, u64 buf (guest-virtual), u64 len; no result field. */
export const WRITE_V1 = { size: 20, fd: 0, buf: 4, len: 12 } as const;
/** v1 ReadParams (packed): i32 fd, u64 buf (guest-virtual), u64 len, i64 ret. */
export const READ_V1 = { size: 28, fd: 0, buf: 4, len: 12, ret: 20 } as const;
/** v1 LseekParams (packed): i32 fd, i64 offset (in/out), i32 whence. */
export const LSEEK_V1 = { size: 16, fd: 0, offset: 4, whence: 12 } as const;
/** v2 WriteParams / ReadParams: u64 len, i64 ret, u64 buf (guest-physical), i32 fd. */
export const READ_WRITE_V2 = { size: 28, len: 0, ret: 8, buf: 16, fd: 24 } as const;
/** v2 LseekParams: i64 offset (in/out), u32 whence, i32 fd. */
export const LSEEK_V2 = { size: 16, offset: 0, whence: 8, fd: 12 } as const;
/** v1 CmdsizeParams: i32 argc, i32 argsz[128], i32 envc, i32 envsz[128]. */
export const CMDSIZE = { size: 1032, argc: 0, argsz: 4, envc: 516, envsz: 520 } as const;
/** v1 CmdvalParams: u64 argv (array of u64 guest-physical pointers), u64 envp. */
export const CMDVAL = { size: 16, argv: 0, envp: 8 } as const;

/** Most arguments or environment entries Cmdsize can describe (uhyve's MAX_ARGC_ENVC). */
export const MAX_ARGC_ENVC = 128;

/**
 * GetdentParams (repr(C), 40 bytes): i32 fd, u64 buf (guest-physical), u64
 * len, then GetdentResult: u32 tag at 24 and its payload at 32 (u64 bytes for
 * Success, i32 errno for Error; the union is 8-aligned).
 */
export const GETDENTS = { size: 40, fd: 0, buf: 8, len: 16, tag: 24, value: 32 } as const;
/** GetdentResult tags. */
export const GETDENTS_RESULT = { NONE: 0, SUCCESS: 1, END_OF_DIRECTORY: 2, ERROR: 3 } as const;

/**
 * StatParams (repr(C), 32 bytes): u64 name, u32 kind (StatKind), u64 attr
 * (guest-physical FileAttr), then StatResult: u32 tag at 24, i32 errno at 28.
 */
export const STAT = { size: 32, name: 0, kind: 8, attr: 16, tag: 24, errno: 28 } as const;
/** StatKind values: follow the last symlink or not. */
export const STAT_KIND = { STAT: 0, LSTAT: 1 } as const;
/** FstatParams (repr(C), 24 bytes): i32 fd, u64 attr, then StatResult (tag 16, errno 20). */
export const FSTAT = { size: 24, fd: 0, attr: 8, tag: 16, errno: 20 } as const;
/** MkdirParams (repr(C), 24 bytes): u64 path, u64 len (unused), then MkdirResult (tag 16, errno 20). */
export const MKDIR = { size: 24, path: 0, len: 8, tag: 16, errno: 20 } as const;
/** StatResult and MkdirResult tags (the same three). */
export const STATUS_RESULT = { NONE: 0, SUCCESS: 1, ERROR: 2 } as const;

/**
 * FileAttr (repr(C), 120 bytes): u64 dev, ino, nlink; u32 mode, uid, gid; u64
 * rdev at 40; i64 size, blksize, blocks; then atime, mtime, ctime, each a
 * Timespec {i64 sec, i32 nsec, 4 bytes padding} of 16 bytes.
 */
export const FILE_ATTR = {
  size: 120,
  dev: 0,
  ino: 8,
  nlink: 16,
  mode: 24,
  uid: 28,
  gid: 32,
  rdev: 40,
  sizeField: 48,
  blksize: 56,
  blocks: 64,
  atime: 72,
  mtime: 88,
  ctime: 104,
} as const;
