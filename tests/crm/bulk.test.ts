import { strict as assert } from 'node:assert';
import { detectBulk } from '../../gateway/crm/bulk';

describe('crm/bulk: bulk and automated mail', () => {
  const h = (pairs: Record<string, string>) => Object.entries(pairs).map(([name, value]) => ({ name, value }));
  const cases: Array<[string, Record<string, string>, boolean]> = [
    ['plain mail', { From: 'a@b.test', Subject: 'hi' }, false],
    ['List-Id (RFC 2919)', { 'List-Id': '<news.acme.test>' }, true],
    ['list-id in lower case', { 'list-id': 'x' }, true],
    ['List-Unsubscribe alone (a sales sequence)', { 'List-Unsubscribe': '<mailto:u@x.test>' }, false],
    ['List-Unsubscribe + Precedence: bulk', { 'List-Unsubscribe': '<mailto:u@x.test>', Precedence: 'bulk' }, true],
    ['List-Unsubscribe + Precedence: list', { 'List-Unsubscribe': '<mailto:u@x.test>', Precedence: 'List' }, true],
    ['Precedence: bulk without List-Unsubscribe', { Precedence: 'bulk' }, false],
    ['Auto-Submitted: no', { 'Auto-Submitted': 'no' }, false],
    ['Auto-Submitted: auto-replied (RFC 3834)', { 'Auto-Submitted': 'auto-replied' }, true],
    ['Auto-Submitted: auto-generated with parameters', { 'Auto-Submitted': 'auto-generated; owner-email="x@y.test"' }, true],
    ['an Exchange bounce (multipart/report, RFC 3464) without Auto-Submitted', { 'Content-Type': 'multipart/report; report-type=delivery-status;\r\n boundary="b"' }, true],
    ['an Outlook read receipt (RFC 8098) without Auto-Submitted', { 'Content-Type': 'Multipart/Report; report-type="disposition-notification"; boundary=x' }, true],
    ['an abuse report (RFC 5965)', { 'Content-Type': 'multipart/report; report-type=feedback-report; boundary=x' }, true],
    ['multipart/mixed', { 'Content-Type': 'multipart/mixed; boundary="report"' }, false],
    ['X-Autoreply: yes (vacation without Auto-Submitted)', { 'X-Autoreply': 'yes' }, true],
    ['X-Autorespond', { 'X-Autorespond': 'Out of office' }, true],
    ['X-Autoreply: no', { 'X-Autoreply': 'no' }, false],
    ['Precedence: junk', { Precedence: 'junk' }, true],
    ['Precedence: auto_reply', { Precedence: 'auto_reply' }, true],
    ['X-Auto-Response-Suppress (Outlook sets it on person-to-person mail)', { 'X-Auto-Response-Suppress': 'All' }, false],
  ];
  for (const [label, headers, bulk] of cases) {
    it(`${label} → ${bulk ? 'bulk' : 'not bulk'}`, () => {
      const verdict = detectBulk(h(headers));
      assert.equal(verdict.bulk, bulk);
      assert.equal(verdict.reason === '', !bulk);
      assert.equal(verdict.kind === '', !bulk);
    });
  }

  it('names the kind, a report before the Auto-Submitted that Postfix also puts on its bounces', () => {
    const kind = (pairs: Record<string, string>) => detectBulk(h(pairs)).kind;
    assert.equal(kind({ 'List-Id': 'x', 'Auto-Submitted': 'auto-generated' }), 'list');
    assert.equal(kind({ 'Content-Type': 'multipart/report; report-type=delivery-status', 'Auto-Submitted': 'auto-replied' }), 'delivery-report');
    assert.equal(kind({ 'Content-Type': 'multipart/report; report-type=disposition-notification' }), 'read-receipt');
    assert.equal(kind({ 'Auto-Submitted': 'auto-replied' }), 'auto-reply');
    assert.equal(kind({ 'Auto-Submitted': 'auto-generated' }), 'automated');
    assert.equal(kind({ 'X-Autoreply': 'yes' }), 'auto-reply');
  });
});
