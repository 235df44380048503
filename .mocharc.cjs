// Tests are TypeScript run through tsx; tests/setup.ts starts the shared
// real servers (FerretDB) once for the whole run and stops them after.
module.exports = {
  require: ['tsx/cjs', 'tests/setup.ts'],
  spec: ['tests/**/*.test.ts'],
  ignore: ['tests/robustness/**'],
  timeout: 30000,
  slow: 2000,
  exit: true,
  reporter: 'spec',
};
