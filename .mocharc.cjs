// `npm test` passes the spec (tests/**/*.test.ts); `npx mocha FILE` runs one file.
// Tests are TypeScript run through tsx; tests/setup.ts starts the shared
// real servers (FerretDB) once for the whole run and stops them after.
module.exports = {
  require: ['tsx/cjs', 'tests/setup.ts'],
  timeout: 30000,
  slow: 2000,
  exit: true,
  reporter: 'spec',
};
