import { strict as assert } from 'node:assert';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../gateway/core/log';

describe('logging', () => {
  it('redacts passwords, tokens and message bodies, keeps the rest', async () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const log = createLogger({ destination: out, level: 'info' }).child({ component: 'test', cid: 'c1' });
    log.info({ imap: { username: 'bob', password: 'hunter2' }, token: 'tok-123', text: 'Dear Bob, the contract', subjectLength: 12 }, 'account saved');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]);
    assert.equal(entry.component, 'test');
    assert.equal(entry.cid, 'c1');
    assert.equal(entry.imap.username, 'bob');
    assert.equal(entry.imap.password, '[redacted]');
    assert.equal(entry.token, '[redacted]');
    assert.equal(entry.text, '[redacted]');
    assert.equal(entry.subjectLength, 12);
    assert.doesNotMatch(lines[0], /hunter2|tok-123|contract/);
  });
});
