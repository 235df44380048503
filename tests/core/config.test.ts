import { strict as assert } from 'node:assert';
import { ConfigError, loadConfig } from '../../gateway/core/config';

function problemsFor(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected the configuration to be rejected');
}

describe('config', () => {
  it('starts with nothing set, using documented defaults', () => {
    const config = loadConfig({});
    assert.equal(config.smtpPort, 2525);
    assert.equal(config.adminPort, 8080);
    assert.equal(config.imapSyncCron, '* * * * *');
    assert.equal(config.imapSyncConcurrency, 4);
    assert.equal(config.imapBackfillDays, 30);
    assert.equal(config.smtpMaxMessageSize, 50 * 1024 * 1024);
    assert.equal(config.mongodbUri, undefined);
    assert.deepEqual(config.businessDomains, []);
    assert.equal(config.dnsCacheSeconds, 60);
    assert.ok(Object.isFrozen(config));
  });

  it('parses lists, sizes and keys', () => {
    const config = loadConfig({
      BUSINESS_DOMAINS: ' Acme.com, acme.co.uk , Bücher.test',
      DNS_SERVERS: '127.0.0.1:5353,1.1.1.1,[::1]:53',
      SMTP_MAX_MESSAGE_SIZE: '512KB',
      SECRET_KEY: 'ab'.repeat(32),
      MONGODB_URI: 'mongodb://mongo:27017/postroom',
    });
    assert.deepEqual(config.businessDomains, ['acme.com', 'acme.co.uk', 'xn--bcher-kva.test'], 'an internationalised domain in its A-label form');
    assert.deepEqual(config.dnsServers, ['127.0.0.1:5353', '1.1.1.1', '[::1]:53']);
    assert.equal(config.smtpMaxMessageSize, 512 * 1024);
    assert.equal(config.secretKey?.length, 32);
  });

  it('reports every bad value on its own line, naming the variable and an example', () => {
    const problems = problemsFor({
      SMTP_PORT: '99999',
      ADMIN_PORT: 'eighty',
      BUSINESS_DOMAINS: 'acme.com,not a domain',
      DNS_SERVERS: '8.8.8.8:dns',
      DNS_CACHE_SECONDS: '-5',
      SECRET_KEY: 'short',
      IMAP_SYNC_CRON: 'every minute',
      MONGODB_URI: 'postgres://x',
      LOG_LEVEL: 'loud',
    });
    assert.equal(problems.length, 9, problems.join('\n'));
    const byVar = (name: string) => problems.find((p) => p.startsWith(`${name}=`)) ?? '';
    assert.match(byVar('SMTP_PORT'), /must be 1-65535.*example: SMTP_PORT=25/);
    assert.match(byVar('ADMIN_PORT'), /ADMIN_PORT="eighty"/);
    assert.match(byVar('BUSINESS_DOMAINS'), /must be a domain name/);
    assert.match(byVar('DNS_SERVERS'), /IP address or ip:port/);
    assert.match(byVar('DNS_CACHE_SECONDS'), /must be a whole number \(digits only\).*example: DNS_CACHE_SECONDS=60/);
    assert.match(byVar('SECRET_KEY'), /openssl rand -hex 32/);
    assert.match(byVar('IMAP_SYNC_CRON'), /cron expression/);
    assert.match(byVar('MONGODB_URI'), /mongodb:\/\//);
    assert.match(byVar('LOG_LEVEL'), /example: LOG_LEVEL=info/);
  });

  it('never repeats a secret in an error message (it ends up in logs)', () => {
    const key = 'ab'.repeat(31) + 'a'; // 63 hex characters: one lost while pasting
    const problems = problemsFor({ SECRET_KEY: key, ADMIN_PASSWORD: 'MyPw123', ADMIN_EMAIL: 'it@acme.com', MONGODB_URI: 'mongo://admin:SuperSecretPw@db:27017/postroom' });
    const text = problems.join('\n');
    assert.doesNotMatch(text, new RegExp(key.slice(0, 20)));
    assert.doesNotMatch(text, /MyPw123|SuperSecretPw/);
    assert.match(text, /SECRET_KEY=<hidden, 63 characters>: must be 32 random bytes/);
    assert.match(text, /ADMIN_PASSWORD=<hidden, 7 characters>: must be at least 12 characters/);
    assert.match(text, /MONGODB_URI="mongo:\/\/\[redacted\]@db:27017\/postroom": must start with mongodb:\/\//);
  });

  it('takes whole numbers as digits only, and refuses values that cannot work', () => {
    const problems = problemsFor({
      SMTP_PORT: '0x50', // Number() reads 80
      ADMIN_PORT: '1e3',
      SMTP_MAX_MESSAGE_SIZE: '0',
      PUBLIC_URL: 'javascript:alert(1)',
      IMAP_SYNC_CONCURRENCY: '0b11',
    });
    const byVar = (name: string) => problems.find((p) => p.startsWith(`${name}=`)) ?? '';
    assert.match(byVar('SMTP_PORT'), /SMTP_PORT="0x50": must be a whole number \(digits only\)/);
    assert.match(byVar('ADMIN_PORT'), /must be a whole number/);
    assert.match(byVar('IMAP_SYNC_CONCURRENCY'), /must be a whole number/);
    assert.match(byVar('SMTP_MAX_MESSAGE_SIZE'), /must be at least 1KB/);
    assert.match(byVar('PUBLIC_URL'), /must be an http:\/\/ or https:\/\/ URL/);
    for (const url of ['ftp://x.example', 'localhost:8080']) assert.equal(problemsFor({ PUBLIC_URL: url }).length, 1, url);
    assert.deepEqual(problemsFor({ SMTP_PORT: '8080' }), ['SMTP_PORT and ADMIN_PORT are both 8080: each server needs its own port (example: SMTP_PORT=2525 ADMIN_PORT=8080)']);
    assert.equal(problemsFor({ HEALTH_PORT: '2525' }).length, 1);
    assert.equal(loadConfig({ HEALTH_PORT: '0' }).healthPort, 0);
  });

  it('points invite links at the console\'s own port unless PUBLIC_URL says otherwise', () => {
    assert.equal(loadConfig({ ADMIN_PORT: '8281' }).publicUrl, 'http://localhost:8281');
    assert.equal(loadConfig({}).publicUrl, 'http://localhost:8080');
    assert.equal(loadConfig({ ADMIN_PORT: '8281', PUBLIC_URL: 'https://postroom.acme.com/' }).publicUrl, 'https://postroom.acme.com');
  });

  it('requires SECRET_KEY and GATEWAY_DOMAIN in production and paired TLS and admin variables', () => {
    const problems = problemsFor({ NODE_ENV: 'production', TLS_CERT_FILE: '/certs/a.pem', ADMIN_EMAIL: 'it@acme.com' });
    assert.ok(problems.some((p) => p.startsWith('SECRET_KEY is required when NODE_ENV=production')));
    assert.ok(problemsFor({ NODE_ENV: 'production', SECRET_KEY: '   ' }).some((p) => p.startsWith('SECRET_KEY is required')), 'white space is no key');
    assert.ok(problems.some((p) => p.startsWith('GATEWAY_DOMAIN is required when NODE_ENV=production: forwarding addresses are issued on it')), 'no addresses on postroom.localhost in production');
    assert.equal(loadConfig({ NODE_ENV: 'production', SECRET_KEY: 'ab'.repeat(32), GATEWAY_DOMAIN: 'in.postroom.acme.com' }).gatewayDomain, 'in.postroom.acme.com');
    assert.equal(loadConfig({}).gatewayDomain, 'postroom.localhost', 'the default stays for trying it out');
    assert.ok(problems.some((p) => p.startsWith('TLS_CERT_FILE and TLS_KEY_FILE must be set together')));
    assert.ok(problems.some((p) => p.startsWith('ADMIN_EMAIL and ADMIN_PASSWORD must be set together')));
  });

  it('exits with status 78 and one line per problem when a process starts with bad config', async () => {
    const { spawnSync } = await import('node:child_process');
    const result = spawnSync(process.execPath, ['--import', 'tsx', '-e', "require('./gateway/core/config').loadConfigOrExit(); console.log('started')"], {
      env: { ...process.env, SMTP_PORT: '0', IMAP_SYNC_CONCURRENCY: '-2' },
      encoding: 'utf8',
    });
    assert.equal(result.status, 78, result.stderr);
    assert.doesNotMatch(result.stdout, /started/);
    const lines = result.stderr.trim().split('\n');
    assert.match(lines[0], /Invalid configuration/);
    assert.ok(lines.some((l) => /SMTP_PORT="0"/.test(l)));
    assert.ok(lines.some((l) => /IMAP_SYNC_CONCURRENCY="-2": must be a whole number/.test(l)));
  });
  it('refuses a setting spelt one slip away from its name (it would be ignored), and leaves the rest of the environment alone', () => {
    const problems = problemsFor({
      SMTP_PROT: '25', IMAP_SYNC_CONCURENCY: '8', smtp_port: '25', DATADIR: '/srv/postroom', LOG_LEVL: 'debug', MONGODB_URL: 'mongodb://db/postroom',
      // Not Postroom's: other programs' variables, npm's, and the compose-only ADMIN_PUBLISH.
      SSL_CERT_FILE: '/etc/ssl/cert.pem', NODE_OPTIONS: '--max-old-space-size=512', NODE_VERSION: '20.19.0', HOSTNAME: 'mx1', LOGNAME: 'node',
      npm_config_cache: '/tmp', npm_lifecycle_event: 'start', ADMIN_PUBLISH: '0.0.0.0:8080', MONGO_INITDB_DATABASE: 'postroom',
    });
    assert.deepEqual(problems, [
      'SMTP_PROT is not a Postroom setting, so it is ignored: did you mean SMTP_PORT?',
      'IMAP_SYNC_CONCURENCY is not a Postroom setting, so it is ignored: did you mean IMAP_SYNC_CONCURRENCY?',
      'smtp_port is not a Postroom setting, so it is ignored: did you mean SMTP_PORT?',
      'DATADIR is not a Postroom setting, so it is ignored: did you mean DATA_DIR?',
      'LOG_LEVL is not a Postroom setting, so it is ignored: did you mean LOG_LEVEL?',
      'MONGODB_URL is not a Postroom setting, so it is ignored: did you mean MONGODB_URI?',
    ]);
  });
});
