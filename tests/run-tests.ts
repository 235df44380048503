/**
 * `npm test`: prepares what must exist before Node starts (a throwaway test
 * CA, trusted through NODE_EXTRA_CA_CERTS — the normal Node mechanism, so
 * product code never disables certificate checks), builds the embedded
 * FerretDB once (cached), then runs mocha. Arguments are passed to mocha;
 * with none, the whole suite runs:
 *
 *   npm test                                  # everything
 *   npm test -- tests/mail/ingest.test.ts     # one file
 */
import { spawn } from 'node:child_process';
import { createLogger } from '../gateway/core/log';
import { ensureFerretdbBinary } from '../gateway/store/embedded-ferretdb';
import { prepareTestEnvironment } from './support/prepare-env';

const args = process.argv.slice(2);
const specs = args.some((arg) => !arg.startsWith('-')) ? [] : ['tests/**/*.test.ts'];

if (!process.env.MONGODB_URI) {
  const started = Date.now();
  ensureFerretdbBinary(createLogger({ level: 'info' }));
  const took = Date.now() - started;
  if (took > 1000) console.log(`embedded FerretDB built in ${(took / 1000).toFixed(1)} s (cached for later runs)`);
}

const environment = prepareTestEnvironment();
const mocha = spawn(process.execPath, [require.resolve('mocha/bin/mocha.js'), ...specs, ...args], {
  stdio: 'inherit',
  env: { ...process.env, ...environment.env },
});

const forward = (signal: NodeJS.Signals) => mocha.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);

mocha.on('exit', (code, signal) => {
  environment.cleanup();
  process.exit(code ?? (signal ? 1 : 0));
});
