/**
 * Unit tests of `--hermit-image-mode` (uhyve 0.9.1): the flag, the
 * `[uhyve] hermit_image_mode` config key, how they merge, and one clear line
 * for a bad value (uhyve panics). Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { parseCommandLine } from "../../src/cli.ts";
import type { CliEnvironment } from "../../src/cli.ts";
import { ConfigError, loadTomlParser, parseConfig } from "../../src/config.ts";
import { parseHermitImageMode, UsageError, type VmParams } from "../../src/params.ts";

// parseConfig() needs the TOML parser, which main.ts loads only when a config file exists.
await loadTomlParser();

/** An environment with no variables and, when `config` is given, `/work/uhyve.toml` holding it. */
function environment(config?: string): CliEnvironment {
  return {
    env: () => undefined,
    envAll: () => [],
    readTextFile: (path) => {
      if (config !== undefined && path === "/work/uhyve.toml") return config;
      throw new Error(`no file ${path}`);
    },
    exists: (path) => config !== undefined && path === "/work/uhyve.toml",
    cwd: () => "/work",
  };
}

/** The run parameters for `argv` with an optional `uhyve.toml`. */
function params(argv: string[], config?: string): VmParams {
  const request = parseCommandLine(argv, environment(config));
  assert.ok(request.kind === "run");
  return request.params;
}

Deno.test("parseHermitImageMode() takes external and internal in any case, as uhyve", () => {
  assert.equal(parseHermitImageMode("external"), "external");
  assert.equal(parseHermitImageMode("internal"), "internal");
  assert.equal(parseHermitImageMode("Internal"), "internal");
  assert.equal(parseHermitImageMode("EXTERNAL"), "external");
  for (const bad of ["", "intern", "internal ", "none", "initrd"]) {
    assert.throws(() => parseHermitImageMode(bad), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.equal(e.message, `Invalid --hermit-image-mode "${bad}": use external or internal`);
      return true;
    });
  }
});

Deno.test("--hermit-image-mode sets the run's mode; without it the library default applies", () => {
  assert.equal(params(["--hermit-image-mode", "internal", "k"]).hermitImageMode, "internal");
  assert.equal(params(["--hermit-image-mode=external", "k"]).hermitImageMode, "external");
  assert.equal(params(["k"]).hermitImageMode, undefined);
});

Deno.test("--hermit-image-mode with a bad value or none is one usage line (exit 64)", () => {
  for (const argv of [["--hermit-image-mode", "bogus", "k"], ["k", "--hermit-image-mode"]]) {
    assert.throws(() => parseCommandLine(argv, environment()), (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.ok(!e.message.includes("\n"));
      assert.match(e.message, /hermit-image-mode/);
      return true;
    });
  }
});

Deno.test("[uhyve] hermit_image_mode is read from uhyve.toml; the command line wins", () => {
  const toml = "[uhyve]\nhermit_image_mode = 'internal'\n";
  assert.deepEqual(parseConfig(toml, "u.toml").options, { hermitImageMode: "internal" });
  assert.equal(params(["k"], toml).hermitImageMode, "internal");
  assert.equal(params(["--hermit-image-mode", "external", "k"], toml).hermitImageMode, "external");
});

Deno.test("a bad hermit_image_mode in uhyve.toml names the file and line (exit 78)", () => {
  for (
    const [value, what] of [["'inside'", /use external or internal/], ["1", /string/]] as const
  ) {
    const text = `[uhyve]\nstats = true\nhermit_image_mode = ${value}\n`;
    assert.throws(() => parseConfig(text, "u.toml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.line, 3);
      assert.match(e.message, /^u\.toml:3: /);
      assert.match(e.message, what);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});
