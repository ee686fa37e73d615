/**
 * Error lines in runc's log format, for the file an engine passes with
 * `--log FILE --log-format json|text`: Podman (conmon) and containerd read
 * the last `error` entry from there to explain a failed `create`. Pure.
 * @module
 */

/**
 * One log entry as runc (logrus) writes it: JSON
 * `{"level":"error","msg":"…","time":"…"}` or text
 * `time="…" level=error msg="…"`, with a trailing newline.
 */
export function formatLogLine(
  format: "text" | "json",
  entry: { level: "error" | "warning"; msg: string; time: Date },
): string {
  const time = entry.time.toISOString();
  if (format === "json") {
    return `${JSON.stringify({ level: entry.level, msg: entry.msg, time })}\n`;
  }
  return `time=${JSON.stringify(time)} level=${entry.level} msg=${JSON.stringify(entry.msg)}\n`;
}
