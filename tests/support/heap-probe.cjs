// Preloaded into a child Node process by a test (see heap-probe.ts):
// NODE_OPTIONS="--expose-gc --require <this file>", POSTROOM_HEAP_PROBE_DIR=<dir>.
// On SIGUSR2 it runs two full garbage collections, then writes
// process.memoryUsage() to <dir>/<pid>.json (written aside, then renamed, so
// a reader never sees half a file). Plain CommonJS: the child runs without tsx.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = process.env.POSTROOM_HEAP_PROBE_DIR;
if (dir) {
  let sequence = 0;
  process.on('SIGUSR2', () => {
    if (typeof global.gc === 'function') {
      global.gc();
      global.gc();
    }
    const file = path.join(dir, `${process.pid}.json`);
    const report = { pid: process.pid, sequence: ++sequence, gc: typeof global.gc === 'function', memory: process.memoryUsage() };
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(report));
    fs.renameSync(`${file}.tmp`, file);
  });
}
