/**
 * Lexical cleaning of guest paths, shared by the file map (`sandbox/`) and the
 * Hermit image reader (`loader/`), so both agree on what a path names. Pure;
 * imports nothing.
 * @module
 */

/**
 * Cleans a guest path lexically: drops empty and `.` components, lets `..`
 * remove the previous one, and never climbs above the root. Returns the
 * components joined by `/` with no leading `/` (`""` is the root), so
 * `"/a/b"`, `"a/b"`, `"//a/./c/../b/"` all give `"a/b"` (hermit-abi App. B.1).
 *
 * One difference from uhyve 0.8: a relative path that starts with `..`
 * (`"../x"`) is read from the root (`"x"`); uhyve keeps the `..` and then
 * finds nothing. Either way nothing outside the map is reachable.
 */
export function cleanGuestPath(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return out.join("/");
}
