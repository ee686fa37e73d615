/**
 * dhyve's diagnostics. Library code asks for a category logger here; where
 * the records go is set once per isolate:
 *
 * - the CLI (`main.ts`) calls {@linkcode configureLogging}: one plain
 *   `dhyve: warning: …` line on stderr per record at or above a level, and no
 *   logging library is loaded (that would cost every run start-up time);
 * - `mod.ts`, the library entry, sends them to LogTape (`log_logtape.ts`)
 *   under the category `["dhyve", …]`, so a host program that embeds dhyve
 *   stays silent unless it configures LogTape itself.
 *
 * With neither, records are dropped. Diagnostics never go to stdout (that is
 * the guest's). Off the hot path.
 * @module
 */

import { encodeUtf8 } from "./utf8.ts";

/** A record's severity, lowest first. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Where records go: called with the level, the category ("vm", …) and the text. */
export type LogSink = (level: LogLevel, category: string, message: string) => void;

/** A message: a plain string, or a tagged template (`` log.warn`… ${x}` ``). */
type LogCall = (message: string | TemplateStringsArray, ...values: unknown[]) => void;

/** A category logger. */
export interface Logger {
  /** Detail for `-vv`. */
  debug: LogCall;
  /** Notes for `-v`. */
  info: LogCall;
  /** Something the user should know; shown by default. */
  warn: LogCall;
  /** A failure. */
  error: LogCall;
}

let sink: LogSink | null = null;

/** Sends every record to `to` from now on (null: drop them). */
export function setLogSink(to: LogSink | null): void {
  sink = to;
}

function render(message: string | TemplateStringsArray, values: readonly unknown[]): string {
  if (typeof message === "string") return message;
  let text = message[0] ?? "";
  for (let i = 0; i < values.length; i++) text += String(values[i]) + (message[i + 1] ?? "");
  return text;
}

/** The logger for one part of dhyve, e.g. `logger("loader")`. */
export function logger(category: string): Logger {
  const at = (level: LogLevel): LogCall => (message, ...values) => {
    if (sink !== null) sink(level, category, render(message, values));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warning"), error: at("error") };
}

const RANK: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warning: 2, error: 3 };

/** One stderr line for a record, as the CLI prints it. */
export function formatLogLine(level: LogLevel, message: string): string {
  const prefix = level === "warning" ? "warning: " : level === "error" ? "error: " : `[${level}] `;
  return `dhyve: ${prefix}${message}\n`;
}

/** Sends dhyve's log records at `level` and above to stderr (CLI use). */
export function configureLogging(level: LogLevel): void {
  const lowest = RANK[level];
  setLogSink((recordLevel, _category, message) => {
    if (RANK[recordLevel] < lowest) return;
    try {
      Deno.stderr.writeSync(encodeUtf8(formatLogLine(recordLevel, message)));
    } catch {
      // stderr is gone: nothing sensible left to do with a diagnostic
    }
  });
}
