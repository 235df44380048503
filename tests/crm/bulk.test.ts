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
  ];
  for (const [label, headers, bulk] of cases) {
    it(`${label} → ${bulk ? 'bulk' : 'not bulk'}`, () => {
      const verdict = detectBulk(h(headers));
      assert.equal(verdict.bulk, bulk);
      assert.equal(verdict.reason === '', !bulk);
    });
  }
});
