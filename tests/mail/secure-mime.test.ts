import { strict as assert } from 'node:assert';
import { secureMimeOf } from '../../gateway/mail/secure-mime';

describe('mail/secure-mime: signed and encrypted mail by its Content-Type', () => {
  const cases: Array<[string, string, ReturnType<typeof secureMimeOf>]> = [
    ['plain text', 'text/plain; charset=utf-8', null],
    ['S/MIME clear-signed (RFC 8551 §3.5.3)', 'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="x"', { state: 'signed', scheme: 'S/MIME' }],
    ['S/MIME clear-signed, old x- type', 'multipart/signed; boundary=x; protocol="application/x-pkcs7-signature"', { state: 'signed', scheme: 'S/MIME' }],
    ['PGP/MIME signed (RFC 3156 §5)', 'multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="x"', { state: 'signed', scheme: 'OpenPGP' }],
    ['multipart/signed of an unknown protocol', 'multipart/signed; protocol="application/unknown"; boundary=x', null],
    ['S/MIME encrypted', 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"', { state: 'encrypted', scheme: 'S/MIME' }],
    ['S/MIME encrypted without smime-type', 'application/x-pkcs7-mime; name=smime.p7m', { state: 'encrypted', scheme: 'S/MIME' }],
    ['S/MIME opaque-signed', 'application/pkcs7-mime; smime-type="signed-data"; name=smime.p7m', { state: 'wrapped', scheme: 'S/MIME' }],
    ['PGP/MIME encrypted (RFC 3156 §4)', 'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="x"', { state: 'encrypted', scheme: 'OpenPGP' }],
  ];
  for (const [label, contentType, expected] of cases) {
    it(`${label} → ${expected ? `${expected.state} ${expected.scheme}` : 'ordinary'}`, () => {
      assert.deepEqual(secureMimeOf([{ name: 'Subject', value: 'x' }, { name: 'Content-Type', value: contentType }, { name: 'content-type', value: 'text/plain' }]), expected);
    });
  }
});
