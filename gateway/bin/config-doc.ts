/**
 * Prints the configuration reference generated from gateway/core/config.ts,
 * so README.md and .env.example never drift from what the code validates:
 *
 *   npm run config-doc -- env       # .env.example body
 *   npm run config-doc -- markdown  # README table
 */
import { VARIABLES } from '../core/config';

type Spec = { example: string; description: string; default?: string };

export function envExample(): string {
  const lines = [
    '# Postroom configuration: copy to .env and uncomment what you change.',
    '# For docker compose set at least SECRET_KEY, GATEWAY_DOMAIN, BUSINESS_DOMAINS,',
    '# ADMIN_EMAIL, ADMIN_PASSWORD and PUBLIC_URL. Commented lines show the default (or an example).',
    '# Generated from gateway/core/config.ts by `npm run config-doc -- env`.',
    '',
    '# docker compose only: where the host publishes the console (plain HTTP). The default, the',
    '# loopback interface, is for a reverse proxy with TLS on the same host; 0.0.0.0:8080 publishes',
    '# it on every interface.',
    '# ADMIN_PUBLISH=127.0.0.1:8080',
    '',
  ];
  for (const [name, spec] of Object.entries(VARIABLES) as Array<[string, Spec]>) {
    lines.push(`# ${spec.description}`);
    lines.push(`# ${name}=${spec.default !== undefined && spec.default !== '' ? spec.default : spec.example}`);
    lines.push('');
  }
  return lines.join('\n');
}

export function markdownTable(): string {
  const rows = ['| Variable | Default | Example | Meaning |', '| --- | --- | --- | --- |'];
  for (const [name, spec] of Object.entries(VARIABLES) as Array<[string, Spec]>) {
    const cell = (value: string) => value.replace(/\|/g, '\\|');
    rows.push(`| \`${name}\` | ${spec.default === undefined ? '—' : spec.default === '' ? '(empty)' : `\`${cell(spec.default)}\``} | \`${cell(spec.example)}\` | ${cell(spec.description)} |`);
  }
  return rows.join('\n');
}

if (require.main === module) {
  const kind = process.argv[2];
  if (kind === 'env') process.stdout.write(envExample());
  else if (kind === 'markdown') process.stdout.write(`${markdownTable()}\n`);
  else {
    process.stderr.write('usage: config-doc env|markdown\n');
    process.exit(2);
  }
}
