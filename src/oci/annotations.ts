/**
 * The OCI annotations through which an image, a `podman run --annotation` or
 * a Kubernetes pod asks for dhyve options. Every key under
 * {@linkcode ANNOTATION_PREFIX} must be one of {@linkcode ANNOTATIONS}; a
 * wrong key or value is an {@linkcode OciError} naming it. Pure.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import { parsePublish } from "../net/net_option.ts";
import {
  parseDuration,
  parseFileIsolation,
  parseMemorySize,
  UsageError,
  validateCpuCount,
  validateMemorySize,
} from "../params.ts";
import { OciError } from "./errors.ts";

/** The prefix of dhyve's annotations. */
export const ANNOTATION_PREFIX = "org.hermit-os.dhyve.";

/**
 * Written by dhyve-oci itself into a rewritten config.json: the dhyve options
 * (JSON array) that a Hermit kernel started by `runc exec` in that container
 * gets. Not for users; {@linkcode readAnnotations} skips it.
 */
export const EXEC_OPTIONS_ANNOTATION = `${ANNOTATION_PREFIX}oci.exec-options`;

/** The dhyve options the annotations asked for. */
export interface DhyveAnnotations {
  /** Guest RAM in bytes (`-m`). */
  memory?: number;
  /** vCPUs (`-c`). */
  cpus?: number;
  /** Further dhyve flags, in order (`--timeout 30s`, `--no-aslr`, …). */
  flags: string[];
  /** Landlock mode (`--file-isolation`); default `normal`. */
  fileIsolation: "none" | "normal" | "strict";
  /** The guest's network: none, or passt in the container's network namespace (`--net passt`). */
  net: "none" | "passt";
  /** `--publish` values (address always given), for `net: "passt"`. */
  publish: string[];
}

/**
 * Where a published port listens when the annotation names no address: all
 * of the container's own addresses, since the engine's port forwarding
 * (`podman run -p`) arrives at the container's interface, not its loopback.
 */
export const CONTAINER_PUBLISH_ADDRESS = "0.0.0.0";

/**
 * One entry of the `publish` annotation → dhyve's `--publish` value:
 * `PORT[/PROTO]` means `PORT:PORT`, and without an address the port is bound
 * on {@linkcode CONTAINER_PUBLISH_ADDRESS}.
 */
export function publishValue(entry: string): string {
  const text = entry.trim();
  const slash = text.indexOf("/");
  const ports = slash < 0 ? text : text.slice(0, slash);
  const proto = slash < 0 ? "" : text.slice(slash);
  const full = /^\d+$/.test(ports)
    ? `${CONTAINER_PUBLISH_ADDRESS}:${ports}:${ports}${proto}`
    : /^\d+:\d+$/.test(ports)
    ? `${CONTAINER_PUBLISH_ADDRESS}:${text}`
    : text;
  const parsed = parsePublish(full);
  if ("error" in parsed) {
    throw new UsageError(`Invalid port forward "${text}"`);
  }
  return full;
}

/** Reads a boolean annotation value. */
function parseBool(text: string): boolean {
  const v = text.trim().toLowerCase();
  if (v === "true" || v === "1" || v === "yes") return true;
  if (v === "false" || v === "0" || v === "no") return false;
  throw new UsageError(`Invalid value "${text}": use true or false`);
}

/** One annotation: what its value means, and its effect. */
interface AnnotationSpec {
  /** The value's form, for the README and error messages. */
  readonly value: string;
  /** What it does. */
  readonly meaning: string;
  /** Applies `text` to `out`; throws UsageError for a bad value. */
  apply(text: string, out: DhyveAnnotations): void;
}

function flagWhen(flag: string): (text: string, out: DhyveAnnotations) => void {
  return (text, out) => {
    if (parseBool(text)) out.flags.push(flag);
  };
}

/** Every annotation dhyve-oci understands, by its name after the prefix. */
export const ANNOTATIONS: Readonly<Record<string, AnnotationSpec>> = {
  memory: {
    value: "SIZE (e.g. 256MiB)",
    meaning: "guest RAM (`-m`); must fit in the container's memory limit less dhyve's reserve",
    apply(text, out): void {
      out.memory = validateMemorySize(parseMemorySize(text));
    },
  },
  cpus: {
    value: "N",
    meaning: "vCPUs (`-c`); default: from the CPU quota or cpuset, else 1",
    apply(text, out): void {
      if (!/^\s*\d+\s*$/.test(text)) throw new UsageError(`Invalid vCPU count "${text}"`);
      out.cpus = validateCpuCount(Number(text));
    },
  },
  "file-isolation": {
    value: "normal | strict | none",
    meaning: "Landlock (`--file-isolation`); default normal",
    apply(text, out): void {
      out.fileIsolation = parseFileIsolation(text);
    },
  },
  timeout: {
    value: "DURATION (e.g. 30s)",
    meaning: "stop the guest after this long (`--timeout`, exit 85)",
    apply(text, out): void {
      parseDuration(text);
      out.flags.push("--timeout", text.trim());
    },
  },
  "max-temp-size": {
    value: "SIZE",
    meaning: "most bytes the guest may write into its temp files (`--max-temp-size`)",
    apply(text, out): void {
      parseMemorySize(text);
      out.flags.push("--max-temp-size", text.trim());
    },
  },
  aslr: {
    value: "true | false",
    meaning: "`false` loads a relocatable kernel at the lowest address (`--no-aslr`)",
    apply(text, out): void {
      if (!parseBool(text)) out.flags.push("--no-aslr");
    },
  },
  thp: {
    value: "true | false",
    meaning: "transparent huge pages (`--thp`)",
    apply: flagWhen("--thp"),
  },
  ksm: { value: "true | false", meaning: "KSM (`--ksm`)", apply: flagWhen("--ksm") },
  pit: { value: "true | false", meaning: "an in-kernel PIT (`--pit`)", apply: flagWhen("--pit") },
  "cpu-pm": {
    value: "true | false",
    meaning: "guest power management without exits (`--cpu-pm`)",
    apply: flagWhen("--cpu-pm"),
  },
  "log-level": {
    value: "error | warning | info | debug",
    meaning: "dhyve's own diagnostics on the container's stderr (`-q`, default, `-v`, `-vv`)",
    apply(text, out): void {
      const flag = { error: "-q", warning: null, info: "-v", debug: "-vv" }[
        text.trim().toLowerCase()
      ];
      if (flag === undefined) throw new UsageError(`Invalid log level "${text}"`);
      if (flag !== null) out.flags.push(flag);
    },
  },
  net: {
    value: "passt | none",
    meaning: "`passt`: the guest gets a network through passt in the container's network " +
      "namespace (`--net passt`); default none",
    apply(text, out): void {
      const v = text.trim().toLowerCase();
      if (v !== "passt" && v !== "none") throw new UsageError(`Invalid network "${text}"`);
      out.net = v;
    },
  },
  publish: {
    value: "[ADDRESS:]PORT[:GUESTPORT][/tcp|/udp] … (e.g. `80 5353/udp`)",
    meaning: "with `net=passt`: container ports passt forwards to the guest (`--publish`); " +
      "bound on all of the container's addresses unless one is given; entries are separated by " +
      "spaces, `;` or `,` (podman's `--annotation` splits at commas, so use spaces there)",
    apply(text, out): void {
      out.publish.push(...text.split(/[\s,;]+/).filter((e) => e !== "").map(publishValue));
    },
  },
};

/**
 * Reads dhyve's annotations from an OCI `annotations` object (other keys are
 * ignored).
 * @throws {OciError} (exit 64) for an unknown `org.hermit-os.dhyve.*` key or
 *   a bad value, naming the key, the value and what is allowed.
 */
export function readAnnotations(
  annotations: Readonly<Record<string, string>> | undefined,
): DhyveAnnotations {
  const out: DhyveAnnotations = { flags: [], fileIsolation: "normal", net: "none", publish: [] };
  const entries = Object.entries(annotations ?? {})
    .filter(([key]) => key.startsWith(ANNOTATION_PREFIX) && key !== EXEC_OPTIONS_ANNOTATION)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, text] of entries) {
    const spec = ANNOTATIONS[key.slice(ANNOTATION_PREFIX.length)];
    if (spec === undefined) {
      const known = Object.keys(ANNOTATIONS).map((name) => ANNOTATION_PREFIX + name);
      throw new OciError(
        `Unknown annotation "${key}": dhyve-oci understands ${known.join(", ")}`,
        EXIT_CODE.USAGE,
      );
    }
    try {
      spec.apply(String(text), out);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      throw new OciError(
        `Bad annotation ${key}="${text}": ${error.message} (expected ${spec.value})`,
        EXIT_CODE.USAGE,
        { cause: error },
      );
    }
  }
  if (out.publish.length > 0 && out.net !== "passt") {
    throw new OciError(
      `The annotation ${ANNOTATION_PREFIX}publish needs ${ANNOTATION_PREFIX}net=passt ` +
        "(passt forwards the ports to the guest)",
      EXIT_CODE.USAGE,
    );
  }
  return out;
}
