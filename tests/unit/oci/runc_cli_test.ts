/**
 * `parseRuncArgs()`: runc's command line as dhyve-oci reads it (global
 * options, the command, the bundle) and what it passes on to runc.
 * @module
 */

import assert from "node:assert/strict";
import { parseRuncArgs } from "../../../src/oci/runc_cli.ts";

Deno.test("parseRuncArgs() reads conmon's create: log file, JSON format, bundle, id", () => {
  const argv = [
    "--root",
    "/run/runc",
    "--log=/b/oci-log",
    "--log-format=json",
    "--systemd-cgroup",
    "create",
    "--bundle",
    "/b",
    "--pid-file",
    "/b/pidfile",
    "--console-socket",
    "/tmp/sock",
    "abc123",
  ];
  const got = parseRuncArgs(argv);
  assert.deepEqual(got.runcArgs, argv);
  assert.equal(got.command, "create");
  assert.equal(got.bundle, "/b");
  assert.equal(got.containerId, "abc123");
  assert.equal(got.logFile, "/b/oci-log");
  assert.equal(got.logFormat, "json");
  assert.equal(got.runcPath, undefined);
});

Deno.test("parseRuncArgs() takes --runc out, in both forms, and keeps the rest in order", () => {
  const a = parseRuncArgs(["--runc", "/opt/runc", "--log", "/l", "state", "x"]);
  assert.equal(a.runcPath, "/opt/runc");
  assert.deepEqual(a.runcArgs, ["--log", "/l", "state", "x"]);
  assert.equal(a.logFile, "/l");
  assert.equal(a.logFormat, "text");
  assert.equal(a.bundle, undefined, "only create and run have a bundle");
  const b = parseRuncArgs(["--runc=/opt/runc", "--debug", "kill", "x", "KILL"]);
  assert.equal(b.runcPath, "/opt/runc");
  assert.deepEqual(b.runcArgs, ["--debug", "kill", "x", "KILL"]);
  assert.equal(b.command, "kill");
});

Deno.test("parseRuncArgs() finds the bundle as -b, --bundle=V, or the cwd (empty) by default", () => {
  assert.equal(parseRuncArgs(["run", "-b", "/x", "id"]).bundle, "/x");
  assert.equal(parseRuncArgs(["create", "--bundle=/y", "id"]).bundle, "/y");
  assert.equal(parseRuncArgs(["-log", "/l", "create", "-bundle", "/z", "id"]).bundle, "/z");
  const cwd = parseRuncArgs(["create", "--pid-file", "p", "--no-pivot", "id"]);
  assert.equal(cwd.bundle, "");
  assert.equal(cwd.containerId, "id");
});

Deno.test("parseRuncArgs() of --version or no command has no command", () => {
  assert.equal(parseRuncArgs(["--version"]).command, undefined);
  assert.deepEqual(parseRuncArgs([]).runcArgs, []);
});

Deno.test("parseRuncArgs() reads exec's --process file and container id, and the global options", () => {
  const got = parseRuncArgs([
    "--root",
    "/run/runc",
    "exec",
    "--detach",
    "--pid-file",
    "/p",
    "--process",
    "/tmp/process.json",
    "ctr1",
  ]);
  assert.equal(got.command, "exec");
  assert.equal(got.processFile, "/tmp/process.json");
  assert.equal(got.containerId, "ctr1");
  assert.deepEqual(got.globalArgs, ["--root", "/run/runc"]);
  assert.equal(got.bundle, undefined);
  const inline = parseRuncArgs(["exec", "-e", "A=1", "ctr2", "/bin/sh", "-c", "x"]);
  assert.equal(inline.processFile, undefined);
  assert.equal(inline.containerId, "ctr2");
});
