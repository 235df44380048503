/**
 * Which folders of a mailbox the syncer reads: INBOX, the folder the server
 * marks \Sent (RFC 6154 special-use), and the folders the user picked in
 * the console. Pure: it works on the LIST answer.
 */

/** The STATUS items the syncer asks for (RFC 3501 §6.3.10, RFC 7162 HIGHESTMODSEQ). */
export interface FolderStatus {
  messages?: number;
  uidNext?: number;
  uidValidity?: bigint;
  highestModseq?: bigint;
}

/** What the syncer needs of one LIST entry (imapflow's ListResponse fits). */
export interface ListedFolder {
  path: string;
  flags: Set<string>;
  /** The hierarchy separator (RFC 3501 §6.3.8), such as '/' or '.'. */
  delimiter?: string;
  specialUse?: string;
  status?: FolderStatus | { error: unknown };
}

export type FolderRole = 'inbox' | 'sent' | 'picked';

export interface ChosenFolder {
  path: string;
  role: FolderRole;
  specialUse: string;
  /** From LIST-STATUS (RFC 5819) or STATUS; absent when the server gave none. */
  status?: FolderStatus;
}

export interface FolderChoice {
  folders: ChosenFolder[];
  /** Folders the user picked that the server does not list (renamed or deleted, or misspelt). */
  missing: string[];
  /** For a missing folder, the server's folder it most likely means (other case, separator or namespace prefix). */
  suggestions: Map<string, string>;
  /**
   * Folders the user picked that exist only as the parent of other folders
   * (\Noselect / \NonExistent with children, RFC 3501 §7.2.2, RFC 5258 §3):
   * they hold no messages, their subfolders do.
   */
  parents: Array<{ path: string; subfolders: string[] }>;
}

/** \Noselect / \NonExistent entries are hierarchy placeholders that cannot be opened (RFC 3501 §7.2.2, RFC 5258). */
function selectable(entry: ListedFolder): boolean {
  return !entry.flags.has('\\Noselect') && !entry.flags.has('\\NonExistent');
}

/** INBOX is case-insensitive (RFC 3501 §5.1); every other name is exact. */
function samePath(a: string, b: string): boolean {
  return a.toUpperCase() === 'INBOX' ? b.toUpperCase() === 'INBOX' : a === b;
}

function statusOf(entry: ListedFolder): FolderStatus | undefined {
  const status = entry.status;
  if (!status || 'error' in status) return undefined;
  return status;
}

/**
 * A folder name reduced to what people get wrong when they type it: case,
 * the hierarchy separator ('/' on one server, '.' on another), the personal
 * namespace prefix their mail program hides ("INBOX." on Courier, Cyrus and
 * many hosting Dovecots, RFC 2342), Unicode composition.
 */
function looseName(name: string, namespacePrefix: string): string {
  let loose = name.normalize('NFC').trim();
  if (namespacePrefix && loose.toUpperCase().startsWith(namespacePrefix.toUpperCase())) loose = loose.slice(namespacePrefix.length);
  return loose.toLowerCase().replace(/[/.\\]/g, '/');
}

export function chooseFolders(list: readonly ListedFolder[], picked: readonly string[], namespacePrefix = ''): FolderChoice {
  const folders: ChosenFolder[] = [];
  const add = (entry: ListedFolder, role: FolderRole) => {
    if (!selectable(entry) || folders.some((f) => samePath(f.path, entry.path))) return;
    folders.push({ path: entry.path, role, specialUse: entry.specialUse ?? '', status: statusOf(entry) });
  };

  const inbox = list.find((entry) => samePath(entry.path, 'INBOX'));
  if (inbox) add(inbox, 'inbox');
  else folders.push({ path: 'INBOX', role: 'inbox', specialUse: '\\Inbox' }); // always exists (RFC 3501 §5.1), even if not listed

  const sent = list.find((entry) => entry.specialUse === '\\Sent' && selectable(entry));
  if (sent) add(sent, 'sent');

  const missing: string[] = [];
  const suggestions = new Map<string, string>();
  const parents: FolderChoice['parents'] = [];
  for (const name of picked) {
    const entry = list.find((candidate) => samePath(candidate.path, name));
    if (entry && selectable(entry)) add(entry, 'picked');
    else if (folders.some((f) => samePath(f.path, name))) continue;
    else {
      const subfolders = entry?.delimiter ? list.filter((other) => other.path.startsWith(entry.path + entry.delimiter) && selectable(other)).map((other) => other.path) : [];
      if (subfolders.length > 0) parents.push({ path: name, subfolders });
      else {
        missing.push(name);
        const likely = list.find((other) => selectable(other) && looseName(other.path, namespacePrefix) === looseName(name, namespacePrefix));
        if (likely) suggestions.set(name, likely.path);
      }
    }
  }
  return { folders, missing, suggestions, parents };
}
