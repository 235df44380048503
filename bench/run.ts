/**
 * `npm run bench` (full, under 15 minutes) and `npm run bench -- --quick`
 * (under 2 minutes). Like tests/run-tests.ts, this wrapper prepares what must
 * exist before Node starts — the throwaway test CA trusted through
 * NODE_EXTRA_CA_CERTS (Dovecot's certificate), the embedded FerretDB binary —
 * then runs bench/main.ts in a child process with that environment.
 *
 *   npm run bench -- --quick                 # every section, small counts
 *   npm run bench -- --only=smtp,console     # some sections
 *   npm run bench -- --gate                  # exit 1 when a judged goal is missed
 */
import { spawn } from 'node:child_process';
import { createLogger } from '../gateway/core/log';
import { ensureFerretdbBinary } from '../gateway/store/embedded-ferretdb';
import { prepareTestEnvironment } from '../tests/support/prepare-env';

if (!process.env.MONGODB_URI) ensureFerretdbBinary(createLogger({ level: 'info' }));
const environment = prepareTestEnvironment();
const child = spawn(process.execPath, ['--require', 'tsx/cjs', require.resolve('./main.ts'), ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, ...environment.env },
});
const forward = (signal: NodeJS.Signals) => child.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
child.on('exit', (code, signal) => {
  environment.cleanup();
  process.exit(code ?? (signal ? 1 : 0));
});
