import { strict as assert } from 'node:assert';
import { listInfoOf } from '../../gateway/mail/list-headers';

describe('mail/list-headers: which list, and how to leave it', () => {
  const h = (pairs: Record<string, string>) => Object.entries(pairs).map(([name, value]) => ({ name, value }));

  it('reads the list description or identifier (RFC 2919) and the web and mail ways out (RFC 2369)', () => {
    assert.deepEqual(listInfoOf(h({ 'List-Id': 'Customer product news <news.customer.test>', 'List-Unsubscribe': '<mailto:u@x.test?subject=unsub>, <https://x.test/u/1>' })),
      { name: 'Customer product news', unsubscribeUrl: 'https://x.test/u/1', unsubscribeMailto: 'mailto:u@x.test?subject=unsub' });
    assert.deepEqual(listInfoOf(h({ 'list-id': '"Dev list" <dev.lists.example>' }))!.name, 'Dev list');
    assert.deepEqual(listInfoOf(h({ 'List-Id': '<dev.lists.example>' }))!.name, 'dev.lists.example');
    assert.deepEqual(listInfoOf(h({ 'List-Unsubscribe': '< https://x.test/u >' })), { name: '', unsubscribeUrl: 'https://x.test/u', unsubscribeMailto: '' });
  });

  it('offers no URL of another scheme, and nothing for mail that names no list', () => {
    assert.deepEqual(listInfoOf(h({ 'List-Unsubscribe': '<javascript:alert(1)>, <data:text/html,x>, <ftp://x.test/>' })), { name: '', unsubscribeUrl: '', unsubscribeMailto: '' });
    assert.equal(listInfoOf(h({ Subject: 'hi', Precedence: 'bulk' })), null);
  });
});
