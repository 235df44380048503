import { strict as assert } from 'node:assert';
import v8 from 'node:v8';
import vm from 'node:vm';
import { LoginThrottle, throttleIpKey, type LoginAttempt } from '../../gateway/accounts';

describe('accounts: LoginThrottle', () => {
  let now: number;
  let throttle: LoginThrottle;
  beforeEach(() => {
    now = Date.parse('2026-01-01T00:00:00Z');
    throttle = new LoginThrottle(() => new Date(now));
  });

  it('allows 5 free failures per account, then locks 30 s, doubling per further failure up to 15 min', () => {
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(throttle.check('bob@acme.test', `10.0.0.${i}`), { allowed: true });
      throttle.recordFailure('bob@acme.test', `10.0.0.${i}`);
    }
    assert.deepEqual(throttle.check('bob@acme.test', '10.0.0.9'), { allowed: true });
    throttle.recordFailure('bob@acme.test', '10.0.0.9');
    assert.deepEqual(throttle.check('BOB@acme.test', '10.0.1.1'), { allowed: false, retryAfterSeconds: 30, scope: 'account' });
    now += 30_000;
    throttle.recordFailure('bob@acme.test', '10.0.1.1');
    assert.equal((throttle.check('bob@acme.test', '10.0.1.2') as { retryAfterSeconds: number }).retryAfterSeconds, 60);
    for (let i = 0; i < 20; i++) throttle.recordFailure('bob@acme.test', `10.1.${i}.1`);
    assert.equal((throttle.check('bob@acme.test', '10.0.1.2') as { retryAfterSeconds: number }).retryAfterSeconds, 900);
  });

  it('a success clears the account but not the IP', () => {
    for (let i = 0; i < 21; i++) throttle.recordFailure(`user${i}@acme.test`, '192.0.2.7');
    throttle.recordSuccess('user0@acme.test');
    const verdict = throttle.check('user0@acme.test', '192.0.2.7');
    assert.deepEqual(verdict, { allowed: false, retryAfterSeconds: 60, scope: 'ip' });
    assert.deepEqual(throttle.check('user0@acme.test', '192.0.2.8'), { allowed: true });
  });

  it('keeps memory bounded when the email field carries huge text: sign-ins sprayed with 100 KB "addresses"', () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage().heapUsed;
    const filler = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 1000; i++) throttle.recordFailure(`${i}${filler}@acme.test`, `10.${i >> 8}.${i & 255}.1`);
    gc();
    const grownMb = (process.memoryUsage().heapUsed - before) / 1024 / 1024;
    // Each key is at most an address's length (or a hash): 1,000 of them are a few hundred KB, not 100 MB.
    assert.ok(grownMb < 10, `the throttle holds ${grownMb.toFixed(1)} MB after 1,000 failures`);
    // Still counted per (long) key: the same text is locked after its free failures.
    for (let i = 0; i < 5; i++) throttle.recordFailure(`0${filler}@acme.test`, `192.0.2.${i}`);
    assert.equal(throttle.check(`0${filler}@ACME.test`, '192.0.2.9').allowed, false);
    assert.equal(throttle.check(`1${filler}@acme.test`, '192.0.2.9').allowed, true);
  });

  it('forgets old failures after an hour without any', () => {
    for (let i = 0; i < 5; i++) throttle.recordFailure('bob@acme.test', '192.0.2.1');
    now += 61 * 60_000;
    throttle.recordFailure('bob@acme.test', '192.0.2.1');
    assert.deepEqual(throttle.check('bob@acme.test', '192.0.2.1'), { allowed: true });
  });
  it('counts attempts in flight: past the free failures one attempt at a time, and a slot frees once decided', () => {
    const attempts: LoginAttempt[] = [];
    for (let i = 0; i < 5; i++) {
      const verdict = throttle.begin('bob@acme.test', '192.0.2.1');
      assert.equal(verdict.allowed, true);
      if (verdict.allowed) attempts.push(verdict.attempt);
    }
    assert.deepEqual(throttle.begin('bob@acme.test', '192.0.2.2'), { allowed: false, retryAfterSeconds: 1, scope: 'account' });
    attempts[0].succeeded();
    attempts[0].failed(); // ended already: no failure recorded
    const next = throttle.begin('bob@acme.test', '192.0.2.2');
    assert.equal(next.allowed, true);
    for (const attempt of attempts.slice(1)) attempt.failed();
    if (next.allowed) next.attempt.release();
    // Four failures: one left free, so one attempt at a time again.
    const one = throttle.begin('bob@acme.test', '192.0.2.3');
    assert.equal(one.allowed, true);
    assert.equal(throttle.begin('bob@acme.test', '192.0.2.3').allowed, false);
    if (one.allowed) one.attempt.failed();
    assert.equal(throttle.begin('bob@acme.test', '192.0.2.3').allowed, true);
  });
  it('keys IPv6 clients by their /64 and IPv4-mapped addresses by the IPv4 address', () => {
    const table: Array<[string, string]> = [
      ['192.0.2.7', '192.0.2.7'],
      ['::ffff:192.0.2.7', '192.0.2.7'],
      ['2001:db8:7:1:aaaa:bbbb:cccc:dddd', '2001:db8:7:1::/64'],
      ['2001:0db8:0007:0001::1', '2001:db8:7:1::/64'],
      ['2001:db8:7:2::1', '2001:db8:7:2::/64'],
      ['unknown', 'unknown'],
    ];
    for (const [ip, key] of table) assert.equal(throttleIpKey(ip), key, ip);
  });
});
