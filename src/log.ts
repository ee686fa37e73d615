/**
 * Logging through LogTape. Library code asks for a category logger here; only
 * `main.ts` calls {@linkcode configureLogging}, so a host program that embeds
 * dhyve stays silent unless it configures LogTape itself. Diagnostics go to
 * stderr, never to stdout (that is the guest's). Off the hot path.
 * @module
 */

import {
  configureSync,
  getLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
} from "npm:@logtape/logtape@2.4.2";

/** The logger for one part of dhyve, e.g. `logger("loader")`. */
export function logger(category: string): Logger {
  return getLogger(["dhyve", category]);
}

function formatRecord(record: LogRecord): string {
  const text = record.message.map((part) => typeof part === "string" ? part : String(part))
    .join("");
  const prefix = record.level === "warning"
    ? "warning: "
    : record.level === "error" || record.level === "fatal"
    ? "error: "
    : `[${record.level}] `;
  return `dhyve: ${prefix}${text}\n`;
}

/** Sends dhyve's log records at `level` and above to stderr (CLI use). */
export function configureLogging(level: LogLevel): void {
  const encoder = new TextEncoder();
  configureSync({
    reset: true,
    sinks: {
      stderr(record: LogRecord): void {
        try {
          Deno.stderr.writeSync(encoder.encode(formatRecord(record)));
        } catch {
          // stderr is gone: nothing sensible left to do with a diagnostic
        }
      },
    },
    loggers: [
      { category: ["dhyve"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}
