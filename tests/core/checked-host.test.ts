import { strict as assert } from 'node:assert';
import { BlockedHostError, checkedLookup, resolveChecked } from '../../gateway/core/checked-host';
import { parseNetworkList } from '../../gateway/core/network-list';

describe('core/checked-host: one resolution, every address checked', () => {
  const list = parseNetworkList('127.0.0.0/8,169.254.0.0/16,::1/128');
  const policy = (address: string) => list.match(address);

  it('takes an address typed as it is, brackets and all, and refuses it when blocked', async () => {
    assert.deepEqual(await resolveChecked('[2001:db8::5]', { policy }), { host: '2001:db8::5', addresses: [{ address: '2001:db8::5', family: 6 }] });
    await assert.rejects(resolveChecked('::ffff:127.0.0.1', { policy }), (err: unknown) =>
      err instanceof BlockedHostError && err.blocked[0]?.reason === '127.0.0.0/8');
  });

  it('refuses a name when any of its addresses is blocked, naming each', async () => {
    const lookup = async () => [{ address: '192.0.2.1', family: 4 }, { address: '127.0.0.1', family: 4 }, { address: '169.254.169.254', family: 4 }];
    await assert.rejects(resolveChecked('mail.example.test.', { policy, lookup }), (err: unknown) => {
      assert.ok(err instanceof BlockedHostError);
      assert.equal(err.host, 'mail.example.test');
      assert.deepEqual(err.blocked, [{ address: '127.0.0.1', reason: '127.0.0.0/8' }, { address: '169.254.169.254', reason: '169.254.0.0/16' }]);
      return true;
    });
  });

  it('keeps the name for TLS and every address in the resolver order for the connection', async () => {
    const addresses = [{ address: '2001:db8::1', family: 6 }, { address: '192.0.2.1', family: 4 }];
    const checked = await resolveChecked('mail.example.test', { policy, lookup: async () => addresses });
    assert.deepEqual(checked, { host: 'mail.example.test', addresses, servername: 'mail.example.test' });
    const lookup = checkedLookup(checked);
    const ask = (options: object) => new Promise<[unknown, unknown]>((resolve) => lookup('mail.example.test', options, (err, address) => resolve([err, address])));
    assert.deepEqual(await ask({ all: true }), [null, addresses]);
    assert.deepEqual(await ask({ family: 4 }), [null, '192.0.2.1']);
    assert.deepEqual(await ask({ family: 6 }), [null, '2001:db8::1']);
    const onlyV4 = checkedLookup({ host: 'v4.test', addresses: [{ address: '192.0.2.1', family: 4 }], servername: 'v4.test' });
    const missing = await new Promise<NodeJS.ErrnoException | null>((resolve) => onlyV4('v4.test', { family: 6 }, (e) => resolve(e)));
    assert.equal(missing?.code, 'ENOTFOUND');
  });

  it('names a name without addresses, and a resolver that never answers, as DNS failures', async () => {
    await assert.rejects(resolveChecked('empty.test', { policy, lookup: async () => [] }), { code: 'ENOTFOUND', message: 'empty.test has no address' });
    await assert.rejects(resolveChecked('slow.test', { policy, lookup: () => new Promise(() => undefined), timeoutMs: 50 }), { code: 'EAI_AGAIN', message: 'DNS lookup of slow.test took longer than 50 ms' });
  });
});
