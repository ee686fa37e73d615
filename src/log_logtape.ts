/**
 * dhyve's log records into LogTape, for programs that embed dhyve (`mod.ts`
 * imports this; the CLI does not, so a plain run never loads LogTape).
 * Records arrive under the category `["dhyve", <part>]`; LogTape drops them
 * unless the host program configured it.
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@2.4.2";
import { type LogLevel, setLogSink } from "./log.ts";

const METHOD = {
  debug: "debug",
  info: "info",
  warning: "warn",
  error: "error",
} as const satisfies Record<LogLevel, string>;

/** Routes dhyve's diagnostics to LogTape from now on. */
export function logToLogTape(): void {
  setLogSink((level, category, message) => {
    // A "{message}" template: braces in the text itself are not placeholders.
    getLogger(["dhyve", category])[METHOD[level]]("{message}", { message });
  });
}
