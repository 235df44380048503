import { strict as assert } from 'node:assert';
import { chooseFolders, type ListedFolder } from '../../gateway/sync/folders';

const entry = (path: string, flags: string[] = [], specialUse?: string, status?: ListedFolder['status']): ListedFolder => ({ path, flags: new Set(flags), delimiter: '/', specialUse, status });

describe('chooseFolders (pure)', () => {
  it('takes INBOX, the \\Sent special-use folder (whatever its name) and the picked folders', () => {
    const list = [
      entry('INBOX', [], '\\Inbox', { uidNext: 5, uidValidity: 1n, messages: 4 }),
      entry('Sent Items'), // named like a sent folder but not marked: not taken
      entry('[Gmail]/Gesendet', ['\\Sent'], '\\Sent'),
      entry('Projects/Acme'),
      entry('Trash', ['\\Trash'], '\\Trash'),
    ];
    const { folders, missing } = chooseFolders(list, ['Projects/Acme']);
    assert.deepEqual(folders.map((f) => [f.path, f.role]), [['INBOX', 'inbox'], ['[Gmail]/Gesendet', 'sent'], ['Projects/Acme', 'picked']]);
    assert.equal(folders[0].status?.uidNext, 5);
    assert.deepEqual(missing, []);
  });

  it('never takes a folder twice, matches INBOX case-insensitively and other names exactly', () => {
    const list = [entry('INBOX'), entry('Sent', [], '\\Sent'), entry('projects')];
    const { folders, missing } = chooseFolders(list, ['inbox', 'Sent', 'Projects']);
    assert.deepEqual(folders.map((f) => f.path), ['INBOX', 'Sent']);
    assert.deepEqual(missing, ['Projects']);
  });

  it('skips \\Noselect placeholders and reports picked folders the server no longer has', () => {
    const list = [entry('INBOX'), entry('Archive', ['\\Noselect']), entry('Gone', ['\\NonExistent'])];
    const { folders, missing, parents } = chooseFolders(list, ['Archive', 'Gone', 'Deleted']);
    assert.deepEqual(folders.map((f) => f.path), ['INBOX']);
    assert.deepEqual(missing, ['Archive', 'Gone', 'Deleted']);
    assert.deepEqual(parents, []);
  });

  it('tells a parent that holds only other folders from a missing one, naming its subfolders', () => {
    const list = [
      entry('INBOX'),
      entry('Clients', ['\\NonExistent', '\\HasChildren', '\\Noselect']),
      entry('Clients/Acme', ['\\NonExistent', '\\HasChildren', '\\Noselect']),
      entry('Clients/Acme/2026', ['\\HasNoChildren']),
      entry('Clients/Beta', ['\\HasNoChildren']),
      entry('ClientsOld', ['\\HasNoChildren']),
    ];
    const { folders, missing, parents } = chooseFolders(list, ['Clients', 'Clients/Acme/2026']);
    assert.deepEqual(folders.map((f) => f.path), ['INBOX', 'Clients/Acme/2026']);
    assert.deepEqual(missing, []);
    assert.deepEqual(parents, [{ path: 'Clients', subfolders: ['Clients/Acme/2026', 'Clients/Beta'] }]);
  });

  it('syncs INBOX even when the server does not list it, and ignores a STATUS error', () => {
    const { folders } = chooseFolders([entry('Work', [], undefined, { error: new Error('NO') })], ['Work']);
    assert.deepEqual(folders.map((f) => f.path), ['INBOX', 'Work']);
    assert.equal(folders[1].status, undefined);
  });

  it('suggests the folder a missing name most likely means: other case, separator or namespace prefix, never a guess', () => {
    const list = [entry('INBOX'), entry('INBOX.Archive'), entry('INBOX.Projects.Acme'), entry('Rechnungen')];
    const { folders, missing, suggestions } = chooseFolders(list, ['Archive', 'projects/acme', 'rechnungen', 'Invoices'], 'INBOX.');
    assert.deepEqual(folders.map((f) => f.path), ['INBOX']);
    assert.deepEqual(missing, ['Archive', 'projects/acme', 'rechnungen', 'Invoices']);
    assert.deepEqual([...suggestions], [['Archive', 'INBOX.Archive'], ['projects/acme', 'INBOX.Projects.Acme'], ['rechnungen', 'Rechnungen']]);
  });
});
