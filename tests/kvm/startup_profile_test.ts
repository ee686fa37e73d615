/**
 * The start-up profile (`scripts/startup_profile.json`, see
 * `scripts/startup_profile.ts`) must still name what a plain run executes:
 * the build marks only its functions for eager compilation, so a profile
 * that drifted from the sources leaves the start-up files' functions to be
 * compiled on every run's first call (slower, never wrong). This records a
 * noop run as `deno task profile` does (an unmarked bundle under V8's
 * coverage) and fails when more than a few of the functions it executed
 * are missing from the committed profile. Nothing is timed. Needs /dev/kvm
 * and gcc.
 * @module
 */

import assert from "node:assert/strict";
import { recordStartupProfile } from "../../scripts/profile_startup.ts";
import { PROFILE_FILE, readProfile } from "../../scripts/startup_profile.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { REPO_ROOT } from "../_helpers/repo.ts";

/** The share of a noop run's functions the profile may miss (edited lines, new code). */
const ALLOWED_MISSING = 0.05;

kvmTest(
  "the start-up profile names what a noop run executes (else: deno task profile)",
  async () => {
    const committed = readProfile(`${REPO_ROOT}/${PROFILE_FILE}`);
    assert.ok(committed !== null, `${PROFILE_FILE} is missing: run \`deno task profile\``);
    const recording = await recordStartupProfile([{
      guest: "noop",
      build: { iface: 2, pie: true },
    }]);
    // The recording itself works: a noop run executes a few hundred functions of those files.
    assert.ok(recording.functions.size > 200, `only ${recording.functions.size} recorded`);
    const known = new Set(committed.functions);
    const missing = [...recording.functions].filter((key) => !known.has(key));
    assert.ok(
      missing.length <= ALLOWED_MISSING * recording.functions.size,
      `${missing.length} of the ${recording.functions.size} functions a noop run executes are not ` +
        `in ${PROFILE_FILE}; run \`deno task profile\` and \`deno task build\`. The first:\n` +
        missing.slice(0, 10).join("\n"),
    );
  },
);
