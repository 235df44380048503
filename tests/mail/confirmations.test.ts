import { strict as assert } from 'node:assert';
import { recognizeConfirmation, recognizeForwardingBlocked } from '../../gateway/mail/confirmations';
import type { ParsedMessage } from '../../gateway/mail/parse';
import { gmailConfirmationText } from '../support/mail-auth';

function parsed(overrides: Partial<ParsedMessage>): ParsedMessage {
  return {
    messageId: 'x@google.com', subject: '', date: null, from: { address: 'forwarding-noreply@google.com', name: 'Gmail Team' }, sender: null,
    to: [], cc: [], bcc: [], replyTo: [], inReplyTo: '', references: [], headers: [], text: '', html: '', attachedText: '', attachments: [], parseError: '', truncated: false,
    ...overrides,
  };
}

const FORWARDING = 'bob-acme-com.k7f3q9zz@in.postroom.test';
const LINK = 'https://mail-settings.google.com/mail/vf-%5BANGjdJ9xLm%5D-QbL3kT2uF0sWZ8';
const GATEWAY = ['in.postroom.test'];

describe('forwarding confirmations', () => {
  it('reads code, link and requester from Gmail\'s English confirmation', () => {
    const found = recognizeConfirmation(
      parsed({ subject: '(#587463729) Gmail Forwarding Confirmation - Receive Mail from bob@acme.com', text: gmailConfirmationText('bob@acme.com', '587463729', FORWARDING, LINK) }),
      'google',
      GATEWAY,
    );
    assert.deepEqual(found, { provider: 'google', code: '587463729', link: LINK, requester: 'bob@acme.com' });
  });

  it('reads a German confirmation the same way (no English words needed)', () => {
    const text = [
      'bob@acme.com hat angefordert, E-Mails automatisch an Ihre E-Mail-Adresse',
      `${FORWARDING} weiterzuleiten.`,
      'Bestätigungscode: 123456789',
      '',
      'Klicken Sie auf den folgenden Link, um die Anfrage zu bestätigen:',
      LINK,
    ].join('\n');
    const found = recognizeConfirmation(parsed({ subject: '(#123456789) Bestätigung der Gmail-Weiterleitung – E-Mails von bob@acme.com empfangen', text }), 'google', GATEWAY);
    assert.equal(found?.code, '123456789');
    assert.equal(found?.requester, 'bob@acme.com');
    assert.equal(found?.link, LINK);
  });

  it('finds the code in the body when the subject has none, and ignores digits inside URLs', () => {
    const text = `Código de confirmación: 246813579\n${LINK}\nhttp://support.google.com/mail/bin/answer.py?answer=184973\nbob@acme.com`;
    const found = recognizeConfirmation(parsed({ subject: 'Confirmación de reenvío de Gmail', text }), 'google', GATEWAY);
    assert.equal(found?.code, '246813579');
  });

  it('never takes digits in an address (the requester\'s, the forwarding address) for the code', () => {
    // Gmail's link-only confirmation: no code anywhere, but numbers in both addresses.
    const forwarding = 'jsmith1987-gmail-com.q9k3238854m7zzab@in.postroom.test';
    const text = [
      'jsmith198712@gmail.com has requested to automatically forward mail to your email', `address ${forwarding}.`,
      'To allow it, please click the link below to confirm the request:', LINK,
    ].join('\n');
    const linkOnly = recognizeConfirmation(parsed({ subject: 'Gmail Forwarding Confirmation - Receive Mail from jsmith198712@gmail.com', text }), 'google', GATEWAY);
    assert.equal(linkOnly?.code, '', 'no code: the link is shown instead');
    assert.equal(linkOnly?.link, LINK);
    assert.equal(linkOnly?.requester, 'jsmith198712@gmail.com');
    const withCode = recognizeConfirmation(parsed({ subject: 'Confirmación de reenvío de Gmail', text: `${text}\nCódigo de confirmación: 246813579` }), 'google', GATEWAY);
    assert.equal(withCode?.code, '246813579');
  });

  it('reads an HTML-only confirmation (link from the href)', () => {
    const html = `<p><b>bob@acme.com</b> has requested to forward to ${FORWARDING}.</p><p>Confirmation code: 975318642</p><a href="${LINK.replace(/&/g, '&amp;')}">Confirm</a>`;
    const found = recognizeConfirmation(parsed({ subject: '(#975318642) Gmail Forwarding Confirmation', html }), 'google', GATEWAY);
    assert.deepEqual(found, { provider: 'google', code: '975318642', link: LINK, requester: 'bob@acme.com' });
  });

  it('reports no requester when the notice names several other mailboxes', () => {
    const text = gmailConfirmationText('bob@acme.com', '587463729', FORWARDING, LINK) + '\nalso mallory@evil.test';
    const found = recognizeConfirmation(parsed({ text }), 'google', GATEWAY);
    assert.equal(found?.requester, '');
  });

  it('is not a confirmation without the provider\'s confirmation link', () => {
    assert.equal(recognizeConfirmation(parsed({ subject: '(#587463729) Gmail Forwarding Confirmation', text: 'Confirmation code: 587463729 from bob@acme.com' }), 'google', GATEWAY), null);
    assert.equal(recognizeConfirmation(parsed({ text: `bob@acme.com\nhttps://mail-settings.google.com.evil.test/mail/vf-abc` }), 'google', GATEWAY), null);
  });

  it('only knows the providers that send confirmations', () => {
    assert.equal(recognizeConfirmation(parsed({ text: gmailConfirmationText('bob@acme.com', '587463729', FORWARDING, LINK) }), 'microsoft', GATEWAY), null);
  });

  it('reads Yahoo\'s link-only verification', () => {
    const link = 'https://login.yahoo.com/account/mail/forward/verify?code=Zx81kLq';
    const found = recognizeConfirmation(
      parsed({ from: { address: 'no-reply@cc.yahoo-inc.com', name: 'Yahoo' }, text: `carol@yahoo.com wants to forward mail to ${FORWARDING}.\n${link}` }),
      'yahoo',
      GATEWAY,
    );
    assert.deepEqual(found, { provider: 'yahoo', code: '', link, requester: 'carol@yahoo.com' });
  });

  describe('Microsoft 365 external-forwarding-blocked bounce', () => {
    it('recognises 5.7.520 in a forwarded NDR in any language', () => {
      assert.equal(recognizeForwardingBlocked(parsed({ subject: 'WG: Unzustellbar: Angebot', text: "Remote Server returned '550 5.7.520 Access denied, Your organization does not allow external forwarding.'" })), true);
      assert.equal(recognizeForwardingBlocked(parsed({ html: '<p>Diagnostic: <b>5.7.520</b></p>' })), true);
    });

    it('does not match other codes or numbers containing it', () => {
      assert.equal(recognizeForwardingBlocked(parsed({ text: '550 5.7.52 something; version 15.7.5201; 5.7.5200' })), false);
      assert.equal(recognizeForwardingBlocked(parsed({ text: '550 5.7.1 relaying denied' })), false);
    });
  });
});
