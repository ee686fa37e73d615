/**
 * Unit tests of `src/sandbox/fd_table.ts`: numbering from 3, lowest-free
 * reuse, the EMFILE limit, lookups of bad numbers and snapshots. Runs with no
 * permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { DEFAULT_MAX_OPEN_FILES, FdTable } from "../../../src/sandbox/fd_table.ts";

Deno.test("FdTable.insert() hands out 3, 4, 5 … and get() finds the values", () => {
  const table = new FdTable<{ n: number }>();
  const values = [{ n: 0 }, { n: 1 }, { n: 2 }];
  assert.deepEqual(values.map((v) => table.insert(v)), [3, 4, 5]);
  assert.equal(table.size, 3);
  assert.equal(table.get(3), values[0]);
  assert.equal(table.get(5), values[2]);
});

Deno.test("FdTable.insert() reuses the lowest free number", () => {
  const table = new FdTable<{ n: number }>();
  for (let i = 0; i < 6; i++) table.insert({ n: i }); // 3..8
  table.remove(6);
  table.remove(4);
  table.remove(8);
  assert.equal(table.insert({ n: 10 }), 4);
  assert.equal(table.insert({ n: 11 }), 6);
  assert.equal(table.insert({ n: 12 }), 8);
  assert.equal(table.insert({ n: 13 }), 9);
  table.remove(9);
  table.remove(8);
  table.remove(3);
  assert.equal(table.insert({ n: 14 }), 3);
  assert.equal(table.insert({ n: 15 }), 8);
});

Deno.test("FdTable.insert() returns −EMFILE at the limit, and works again after a remove", () => {
  const table = new FdTable<object>({ limit: 2 });
  assert.equal(table.insert({}), 3);
  assert.equal(table.insert({}), 4);
  assert.equal(table.insert({}), -ERRNO.EMFILE);
  assert.equal(table.size, 2);
  table.remove(3);
  assert.equal(table.insert({}), 3);
  assert.equal(new FdTable<object>().limit, DEFAULT_MAX_OPEN_FILES);
});

Deno.test("FdTable.get() and remove() return undefined for numbers not in use", () => {
  const table = new FdTable<object>();
  table.insert({});
  for (const fd of [-1, 0, 1, 2, 4, 1000, 3.5, NaN, Infinity, -Infinity, 2 ** 53]) {
    assert.equal(table.get(fd), undefined, String(fd));
    assert.equal(table.remove(fd), undefined, String(fd));
  }
  assert.equal(table.size, 1);
  const v = table.remove(3);
  assert.ok(v !== undefined);
  assert.equal(table.remove(3), undefined);
  assert.equal(table.size, 0);
});

Deno.test("FdTable.entries() is a snapshot, safe to remove from while iterating", () => {
  const table = new FdTable<{ n: number }>({ first: 10 });
  table.insert({ n: 1 });
  table.insert({ n: 2 });
  table.insert({ n: 3 });
  table.remove(11);
  const seen: number[] = [];
  for (const [fd, value] of table.entries()) {
    seen.push(fd, value.n);
    table.remove(fd);
  }
  assert.deepEqual(seen, [10, 1, 12, 3]);
  assert.equal(table.size, 0);
  assert.deepEqual(table.entries(), []);
});

Deno.test("FdTable.clear() frees every number", () => {
  const table = new FdTable<object>({ limit: 3 });
  table.insert({});
  table.insert({});
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.get(3), undefined);
  assert.equal(table.insert({}), 3);
});

Deno.test("FdTable rejects a bad limit or first fd", () => {
  for (const limit of [0, -1, 1.5, NaN, Infinity]) {
    assert.throws(() => new FdTable<object>({ limit }), RangeError, String(limit));
  }
  for (const first of [-1, 0.5, NaN]) {
    assert.throws(() => new FdTable<object>({ first }), RangeError, String(first));
  }
});
