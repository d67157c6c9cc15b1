#!/usr/bin/env node
// Runs every test file with tape (TypeScript through tsx), streams the TAP output and ends with one
// summary line "N passed, N failed" taken from tape's own counts. Exits non-zero on any failure.
// Usage: node scripts/test.mjs [glob ...]   (default: every test/**/*.test.ts)
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const tape = join(dirname(require.resolve('tape/package.json')), 'bin', 'tape');
const globs = process.argv.slice(2);
if (globs.length === 0) globs.push('test/**/*.test.ts');

const child = spawn(process.execPath, ['--import', 'tsx', tape, ...globs], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let pass = 0;
let fail = 0;
let sawSummary = false;
let buf = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  buf += chunk.toString('utf8');
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    let m;
    if ((m = /^# pass\s+(\d+)/.exec(line))) { pass = Number(m[1]); sawSummary = true; }
    else if ((m = /^# fail\s+(\d+)/.exec(line))) fail = Number(m[1]);
  }
});
child.on('close', (code, signal) => {
  if (!sawSummary || (code !== 0 && fail === 0)) {
    // tape died before its summary (a crash or an unhandled error): count that as a failure.
    console.log(`# test runner ended abnormally (code ${code}, signal ${signal})`);
    fail += 1;
  }
  console.log(`${pass} passed, ${fail} failed`);
  process.exit(fail > 0 ? 1 : 0);
});
