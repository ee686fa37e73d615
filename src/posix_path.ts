/**
 * The few POSIX path functions dhyve needs, with `node:path/posix`'s
 * semantics (checked against it in `tests/unit/posix_path_test.ts`), and
 * `fileUrlToPath` for `node:url`'s `fileURLToPath` on `file:` URLs. Importing
 * any `node:` module starts Deno's Node compatibility layer, which a plain run
 * would pay for in start-up time and memory; these are a few lines. Pure.
 * @module
 */

/** Whether `path` starts at the root. */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/** Resolves `.` and `..` segments of the segments of `path` (no leading slash). */
function normalizeSegments(path: string, absolute: boolean): string {
  const out: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
    } else {
      out.push(segment);
    }
  }
  return out.join("/");
}

/** `path` with `.`/`..` resolved and repeated slashes collapsed; a trailing slash stays. */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = isAbsolute(path);
  const trailing = path.endsWith("/");
  let body = normalizeSegments(path, absolute);
  if (body === "" && !absolute) body = ".";
  if (body !== "" && trailing) body += "/";
  return absolute ? `/${body}` : body;
}

/** The non-empty parts joined with "/" and normalized ("." when all are empty). */
export function join(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}

/**
 * The absolute path that `paths` lead to, read right to left up to the first
 * absolute one (from the current directory if none is), normalized, without
 * a trailing slash.
 */
export function resolve(...paths: string[]): string {
  let resolved = "";
  for (let i = paths.length - 1; i >= 0 && !isAbsolute(resolved); i--) {
    const p = paths[i]!;
    if (p !== "") resolved = resolved === "" ? p : `${p}/${resolved}`;
  }
  if (!isAbsolute(resolved)) resolved = `${Deno.cwd()}/${resolved}`;
  return `/${normalizeSegments(resolved, true)}`;
}

/** The directory part of `path` (node's rules: "/" for "/a", "." for "a"). */
export function dirname(path: string): string {
  if (path === "") return ".";
  const hasRoot = path.startsWith("/");
  let end = -1;
  let matchedSlash = true;
  for (let i = path.length - 1; i >= 1; i--) {
    if (path[i] === "/") {
      if (!matchedSlash) {
        end = i;
        break;
      }
    } else {
      matchedSlash = false;
    }
  }
  if (end === -1) return hasRoot ? "/" : ".";
  if (hasRoot && end === 1) return "//";
  return path.slice(0, end);
}

/** The last segment of `path`, trailing slashes ignored ("" for "/"). */
export function basename(path: string): string {
  let end = path.length;
  while (end > 0 && path[end - 1] === "/") end--;
  return path.slice(path.lastIndexOf("/", end - 1) + 1, end);
}

/**
 * The local path of a `file:` URL (percent-decoded).
 * @throws {TypeError} for another scheme, a host, or an encoded "/".
 */
export function fileUrlToPath(url: URL): string {
  return fileHrefToPath(url.href);
}

/**
 * {@linkcode fileUrlToPath} of a URL's text as Deno writes `import.meta.url`
 * (normalised, percent-encoded): `file:///a/b%20c` → `/a/b c`. Reads the
 * text without the URL parser, whose first use in a process costs ~0.2 ms.
 * @throws {TypeError} for anything but a local `file:` URL, or an encoded `/`.
 */
export function fileHrefToPath(href: string): string {
  const local = href.startsWith("file:///")
    ? href.slice("file://".length)
    : href.startsWith("file://localhost/")
    ? href.slice("file://localhost".length)
    : null;
  if (local === null) {
    const what = href.startsWith("file:")
      ? "A file: URL with a host is not a local path"
      : "Not a file: URL";
    throw new TypeError(`${what}: ${href}`);
  }
  const path = local.replace(/[?#].*$/s, "");
  if (/%2f/i.test(path)) {
    throw new TypeError(`A file: URL path must not contain an encoded "/": ${href}`);
  }
  return decodeURIComponent(path);
}
