/**
 * Signed and encrypted mail, told from the message's own Content-Type, so
 * the console can say what it is instead of showing an empty page: the
 * text of signed mail is readable as it is (the signature is one more part),
 * while encrypted mail, and S/MIME signed in the wrapped form, has its text
 * inside a part that only the recipient's mail client, holding the key, can
 * open. Postroom never holds that key and does not verify signatures.
 *
 * - S/MIME (RFC 8551): multipart/signed with protocol
 *   application/pkcs7-signature (§3.5.3); application/pkcs7-mime with
 *   smime-type enveloped-data or authEnveloped-data (encrypted, §3.3) or
 *   signed-data (the wrapped "opaque" signature, §3.5.2); the x- types of
 *   older clients (§3.1).
 * - OpenPGP (RFC 3156): multipart/signed with protocol
 *   application/pgp-signature (§5); multipart/encrypted with protocol
 *   application/pgp-encrypted (§4).
 */

export type SecureMimeScheme = 'S/MIME' | 'OpenPGP';

export interface SecureMime {
  /** signed: the text is readable; encrypted or wrapped: it is not. */
  state: 'signed' | 'encrypted' | 'wrapped';
  scheme: SecureMimeScheme;
}

interface HeaderPair {
  name?: string | null;
  value?: string | null;
}

function parameter(contentType: string, name: string): string {
  return new RegExp(`;\\s*${name}\\s*=\\s*"?([^";\\s]+)`, 'i').exec(contentType)?.[1]?.toLowerCase() ?? '';
}

/** What the message's top-level Content-Type says of signing and encryption; null for ordinary mail. */
export function secureMimeOf(headers: readonly HeaderPair[]): SecureMime | null {
  // The first Content-Type is the message's own (stored headers are the top-level header block, in order).
  const header = headers.find((h) => (h.name ?? '').toLowerCase() === 'content-type');
  const contentType = (header?.value ?? '').trim();
  const type = contentType.split(';')[0].trim().toLowerCase();
  if (type === 'multipart/signed') {
    const protocol = parameter(contentType, 'protocol');
    if (protocol === 'application/pgp-signature') return { state: 'signed', scheme: 'OpenPGP' };
    if (protocol === 'application/pkcs7-signature' || protocol === 'application/x-pkcs7-signature') return { state: 'signed', scheme: 'S/MIME' };
    return null;
  }
  if (type === 'multipart/encrypted') return { state: 'encrypted', scheme: 'OpenPGP' };
  if (type === 'application/pkcs7-mime' || type === 'application/x-pkcs7-mime') {
    const smimeType = parameter(contentType, 'smime-type');
    // Without smime-type, the common case is encryption (the parameter is optional, RFC 8551 §3.2.2).
    return { state: smimeType === 'signed-data' || smimeType === 'compressed-data' ? 'wrapped' : 'encrypted', scheme: 'S/MIME' };
  }
  return null;
}

/**
 * Whether a described part is the sealed body of an encrypted message (S/MIME pkcs7-mime, the PGP/MIME
 * version part): enough for a list, which reads the parts' descriptions but not the headers.
 */
export function isSealedPartType(contentType: string | null | undefined): boolean {
  return /^application\/(?:x-)?pkcs7-mime$|^application\/pgp-encrypted$/.test((contentType ?? '').trim().toLowerCase());
}
