/* eslint-disable no-restricted-properties -- this test wraps AbortSignal.any to count what is linked to which signal */
/**
 * A syncer runs for months: a pass must leave nothing behind on what lives
 * as long as the process. On Node 20, every AbortSignal.any() stays listed
 * on each of its sources until that source aborts (nodejs/node#55351), so
 * a signal combined with the syncer's own stop signal once per mailbox and
 * pass grew the process by an entry per pass for as long as it ran.
 */
import { strict as assert } from 'node:assert';
import { getEventListeners } from 'node:events';
import { silentLogger } from '../../gateway/core/log';
import { linkedAbort } from '../../gateway/core/linked-abort';
import { startSyncer } from '../../gateway/sync/schedule';
import { startDovecot, type DovecotServer } from '../support/dovecot';
import { shared } from '../support/shared';
import { openTestStore } from '../support/store';
import { createImapAccount, fillInbox, testConfig, testSecrets } from './helpers';

describe('IMAP syncer over many passes', function () {
  this.timeout(60_000);
  let store: Awaited<ReturnType<typeof openTestStore>>;
  let dovecot: DovecotServer;

  before(async () => {
    store = await openTestStore('sync_long_running');
    dovecot = await shared('dovecot', () => startDovecot());
  });
  after(async () => store.drop());

  it('leaves nothing on a signal that lives longer than a pass: what a pass links to it, it unlinks', async () => {
    const account = await createImapAccount(store, dovecot);
    await fillInbox(dovecot, account, 2);
    // Per signal: the passes that linked something to it, and how many links are still there
    // (an abort listener until removed; an AbortSignal.any() until the source aborts, on Node 20).
    const links = new Map<AbortSignal, { passes: Set<number>; held: number }>();
    let pass = 0;
    const linkTo = (signal: AbortSignal, change: number) => {
      const entry = links.get(signal) ?? { passes: new Set<number>(), held: 0 };
      if (change > 0) entry.passes.add(pass);
      entry.held += change;
      links.set(signal, entry);
    };
    const any = AbortSignal.any;
    const { addEventListener, removeEventListener } = AbortSignal.prototype;
    AbortSignal.any = (signals: AbortSignal[]) => {
      for (const signal of signals) linkTo(signal, 1);
      return any.call(AbortSignal, signals);
    };
    AbortSignal.prototype.addEventListener = function (this: AbortSignal, type: string, ...rest: unknown[]) {
      if (type === 'abort') linkTo(this, 1);
      return (addEventListener as (...args: unknown[]) => void).call(this, type, ...rest);
    };
    AbortSignal.prototype.removeEventListener = function (this: AbortSignal, type: string, ...rest: unknown[]) {
      if (type === 'abort') linkTo(this, -1);
      return (removeEventListener as (...args: unknown[]) => void).call(this, type, ...rest);
    };
    const syncer = startSyncer({ config: testConfig(), log: silentLogger, store, secretBox: testSecrets, associate: null, schedule: false });
    try {
      for (pass = 1; pass <= 4; pass++) {
        const report = await syncer.runPassNow();
        assert.equal(report.accounts.find((a) => a.accountId === account.id)?.outcome, 'synced');
      }
    } finally {
      AbortSignal.any = any;
      Object.assign(AbortSignal.prototype, { addEventListener, removeEventListener });
      await syncer.stop();
    }
    const growing = [...links.values()].filter((entry) => entry.passes.size > 1 && entry.held > 0);
    assert.deepEqual(growing.map((entry) => entry.held), [], 'a signal that outlives the passes kept a link from each of them (one more per mailbox and pass, for as long as the syncer runs)');
  });

  it('linkedAbort: following a process-long signal many times leaves nothing on it, and still aborts', () => {
    const lifetime = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      const pass = new AbortController();
      const linked = linkedAbort([lifetime.signal, pass.signal]);
      if (i % 2) pass.abort(new Error('lease lost'));
      assert.equal(linked.signal.aborted, Boolean(i % 2));
      linked.dispose();
    }
    assert.equal(getEventListeners(lifetime.signal, 'abort').length, 0, 'no listener left on the long-lived signal');

    const held = linkedAbort([lifetime.signal, new AbortController().signal]);
    lifetime.abort(new Error('stopping'));
    assert.equal(held.signal.aborted, true);
    assert.equal((held.signal.reason as Error).message, 'stopping');
    assert.equal(linkedAbort([lifetime.signal]).signal.aborted, true, 'a source aborted already aborts it at once');
  });
});
