import { escapeRegex } from '../core/regex';

/**
 * Accent-insensitive search without a folded copy of every message: the
 * typed text becomes a pattern in which each Latin letter matches itself
 * with any accent, precomposed (é) or decomposed (e + U+0301), so "muller"
 * finds "Müller", "Muller" and "Mu\u0308ller", and "Müller" finds "Muller".
 * The stored text stays as the mail had it; no index or migration is needed.
 *
 * Which letters carry which base comes from Unicode's own canonical
 * decompositions (String.prototype.normalize), over the Latin blocks. The
 * few letters that have none but are read as their base letter by everyone
 * who types without them (ł in Łódź, ø, đ, the dotless ı) are listed.
 */

/** Letters with no canonical decomposition that people type as their base letter. */
const WITHOUT_DECOMPOSITION: Record<string, string> = { ł: 'l', Ł: 'l', ø: 'o', Ø: 'o', đ: 'd', Đ: 'd', ı: 'i', ħ: 'h', Ħ: 'h', ŧ: 't', Ŧ: 't', ŀ: 'l', Ŀ: 'l' };

/** Combining diacritical marks (U+0300–U+036F): those of decomposed Latin letters. */
const MARK = /[\u0300-\u036f]/;
const MARKS = '[\u0300-\u036f]*';

const LATIN_BLOCKS: Array<[number, number]> = [
  [0x00c0, 0x024f], // Latin-1 Supplement letters, Latin Extended-A and -B
  [0x1e00, 0x1eff], // Latin Extended Additional (Vietnamese among others)
];

/** The base letter (a–z) a character is an accented form of, or '' when it is not a Latin letter. */
function baseLetter(char: string): string {
  if (/^[a-z]$/i.test(char)) return char.toLowerCase();
  const listed = WITHOUT_DECOMPOSITION[char];
  if (listed) return listed;
  const decomposed = char.normalize('NFD');
  if (/^[a-z]$/i.test(decomposed[0]) && [...decomposed.slice(1)].every((c) => MARK.test(c))) return decomposed[0].toLowerCase();
  return '';
}

/**
 * Every lower-case form of each base letter: the character class a typed
 * letter becomes. The pattern is used case-insensitively (both stores fold
 * case by Unicode: Go's RE2 in FerretDB, PCRE2 in UTF mode in MongoDB), so
 * upper-case forms would only make it longer.
 */
const CLASSES: Map<string, string> = (() => {
  const forms = new Map<string, Set<string>>();
  const add = (char: string) => {
    const base = baseLetter(char);
    if (!base) return;
    if (!forms.has(base)) forms.set(base, new Set([base]));
    const lower = char.toLowerCase();
    // İ lower-cases to i + U+0307 and folds to nothing by case: it is kept as itself.
    forms.get(base)!.add([...lower].length === 1 && lower.toUpperCase() === char ? lower : char);
  };
  for (const [from, to] of LATIN_BLOCKS) for (let code = from; code <= to; code++) add(String.fromCodePoint(code));
  for (const char of Object.keys(WITHOUT_DECOMPOSITION)) add(char);
  return new Map([...forms].map(([base, set]) => [base, `[${[...set].join('')}]`]));
})();

/**
 * Longer text is matched as typed: each letter becomes about a hundred bytes
 * of pattern, and a pasted paragraph is matched by its words anyway. This
 * keeps a pattern far below the stores' limits (MongoDB refuses a regular
 * expression of 32 KB).
 */
export const ACCENT_FOLDING_MAX_LENGTH = 64;

/**
 * A pattern for `text` (to be used case-insensitively) in which every Latin
 * letter matches any accented form of it, each followed by any combining
 * marks. Other characters are matched literally; combining marks typed on
 * their own (a decomposed query) are dropped, since the letter before them
 * already allows any. Text longer than ACCENT_FOLDING_MAX_LENGTH is matched
 * literally.
 */
export function accentInsensitive(text: string): string {
  if ([...text].length > ACCENT_FOLDING_MAX_LENGTH) return escapeRegex(text);
  let pattern = '';
  for (const char of text) {
    if (MARK.test(char)) continue;
    const base = baseLetter(char);
    pattern += base ? `${CLASSES.get(base) ?? escapeRegex(char)}${MARKS}` : escapeRegex(char);
  }
  return pattern;
}
