/**
 * Connection presets for the mail services people use, so the console can
 * fill host/port/TLS with one choice. Ports: 993 is IMAP over implicit TLS
 * (RFC 8314 §3.3, preferred over STARTTLS), 465 is SMTP submission over
 * implicit TLS (RFC 8314 §3.3), 587 is submission with STARTTLS (RFC 6409).
 */
export type TlsMode = 'implicit' | 'starttls' | 'none';

export interface ServerPreset {
  host: string;
  port: number;
  tls: TlsMode;
}

export interface ServicePreset {
  id: string;
  label: string;
  imap: ServerPreset | null;
  smtp: ServerPreset | null;
  /** Mailbox domains that belong to this service (used to suggest a preset). */
  domains: string[];
  /** Short note for the IMAP form: most providers want an app password. */
  passwordHint: string;
  /** Step-by-step instructions to forward mail to the forwarding address. */
  forwardingSteps: string[];
}

export const SERVICE_PRESETS: readonly ServicePreset[] = Object.freeze([
  {
    id: 'gmail',
    label: 'Gmail / Google Workspace',
    imap: { host: 'imap.gmail.com', port: 993, tls: 'implicit' },
    smtp: { host: 'smtp.gmail.com', port: 465, tls: 'implicit' },
    domains: ['gmail.com', 'googlemail.com'],
    passwordHint: 'Use an app password (Google Account → Security → 2-Step Verification → App passwords).',
    forwardingSteps: [
      'In Gmail, open Settings (gear icon) → See all settings → Forwarding and POP/IMAP.',
      'Click "Add a forwarding address" and paste the forwarding address shown above.',
      'Gmail sends a confirmation code to that address; it appears on this page within a few seconds. Copy it back into Gmail and click Verify.',
      'Choose "Forward a copy of incoming mail to" the forwarding address and "keep Gmail\'s copy in the Inbox", then Save Changes.',
      'No "Add a forwarding address" button, or "disabled by your administrator"? Your Google Workspace admin has turned automatic forwarding off (Admin console → Apps → Google Workspace → Gmail → End User Access → Automatic forwarding): ask them to allow it, or turn on IMAP Support below instead.',
    ],
  },
  {
    id: 'outlook',
    label: 'Outlook / Microsoft 365',
    imap: { host: 'outlook.office365.com', port: 993, tls: 'implicit' },
    smtp: { host: 'smtp.office365.com', port: 587, tls: 'starttls' },
    domains: ['outlook.com', 'hotmail.com', 'live.com', 'msn.com'],
    // Microsoft turned basic authentication off for IMAP: Exchange Online in 2022, Outlook.com in September 2024.
    passwordHint: 'Microsoft 365 and Outlook.com no longer accept a password (not even an app password) for IMAP: use "Sign in with Microsoft" above; if that button is missing, ask your Postroom admin to set it up under Preferences → Business. Your Microsoft 365 admin may also have to turn IMAP on for your mailbox.',
    forwardingSteps: [
      'In Outlook on the web, open Settings → Mail → Forwarding.',
      'Turn on "Enable forwarding", paste the forwarding address shown above and tick "Keep a copy of forwarded messages".',
      'Click Save. If your organisation blocks external forwarding (error 5.7.520), ask your Microsoft 365 administrator to allow it, or turn on IMAP Support below instead.',
    ],
  },
  {
    id: 'yahoo',
    label: 'Yahoo Mail',
    imap: { host: 'imap.mail.yahoo.com', port: 993, tls: 'implicit' },
    smtp: { host: 'smtp.mail.yahoo.com', port: 465, tls: 'implicit' },
    domains: ['yahoo.com', 'ymail.com', 'rocketmail.com'],
    passwordHint: 'Generate an app password under Account Info → Account Security.',
    forwardingSteps: [
      'Automatic forwarding needs Yahoo Mail Plus: free Yahoo accounts cannot forward (since 2021), so turn on IMAP Support below instead.',
      'In Yahoo Mail, open Settings → More Settings → Mailboxes and select your mailbox.',
      'Under Forwarding, paste the forwarding address shown above and click Verify.',
      'Yahoo sends a verification link to that address; it appears on this page. Open it to confirm.',
    ],
  },
  {
    id: 'icloud',
    label: 'iCloud Mail',
    imap: { host: 'imap.mail.me.com', port: 993, tls: 'implicit' },
    smtp: { host: 'smtp.mail.me.com', port: 587, tls: 'starttls' },
    domains: ['icloud.com', 'me.com', 'mac.com'],
    passwordHint: 'Create an app-specific password at appleid.apple.com; the user name is the part before @icloud.com for some accounts.',
    forwardingSteps: [
      'On icloud.com/mail, click the gear icon → Settings → General.',
      'Tick "Forward my email to", paste the forwarding address shown above and keep "Delete messages after forwarding" unticked.',
      'Click Done.',
    ],
  },
  {
    id: 'zoho',
    label: 'Zoho Mail',
    imap: { host: 'imap.zoho.com', port: 993, tls: 'implicit' },
    smtp: { host: 'smtp.zoho.com', port: 465, tls: 'implicit' },
    domains: ['zoho.com', 'zohomail.com'],
    passwordHint: 'Enable IMAP access in Zoho Mail settings and use an application-specific password when 2FA is on.',
    forwardingSteps: [
      'In Zoho Mail, open Settings → Mail Forwarding and POP/IMAP.',
      'Click "Add forwarding address", paste the forwarding address shown above and keep a copy in Zoho.',
      'Zoho sends a confirmation email with a link to that address. Postroom cannot vouch for Zoho\'s notices, so it is held in Quarantine (refused, if the business policy is reject: switch it to quarantine while you set this up): open it there and follow its link.',
    ],
  },
  {
    id: 'fastmail',
    label: 'Fastmail',
    imap: { host: 'imap.fastmail.com', port: 993, tls: 'implicit' },
    smtp: { host: 'smtp.fastmail.com', port: 465, tls: 'implicit' },
    domains: ['fastmail.com', 'fastmail.fm'],
    passwordHint: 'Create an app password under Settings → Privacy & Security → Integrations.',
    forwardingSteps: [
      'In Fastmail, open Settings → Filters & Rules → Forwarding (or "Send a copy to").',
      'Paste the forwarding address shown above and keep a copy in your inbox.',
      'Save.',
    ],
  },
  {
    id: 'aol',
    label: 'AOL Mail',
    imap: { host: 'imap.aol.com', port: 993, tls: 'implicit' },
    smtp: { host: 'smtp.aol.com', port: 465, tls: 'implicit' },
    domains: ['aol.com'],
    passwordHint: 'Generate an app password under Account Security.',
    forwardingSteps: [
      'AOL Mail does not offer automatic forwarding for every account: turn on IMAP Support below so Postroom fetches your mail instead.',
      'Where forwarding is offered (Settings → More Settings → Mailboxes), paste the forwarding address shown above.',
    ],
  },
  {
    id: 'custom',
    label: 'Custom (other provider)',
    imap: null,
    smtp: null,
    domains: [],
    passwordHint: 'Use the password or app password your provider gives for IMAP.',
    forwardingSteps: [
      'In your mail provider\'s settings, find "Forwarding" (sometimes under Rules or Filters).',
      'Forward a copy of all incoming mail to the forwarding address shown above, keeping a copy in your mailbox.',
      'If the provider sends a confirmation message to the forwarding address, look for it in Quarantine (Postroom reads only Gmail\'s and Yahoo\'s on this page; with the business policy reject it is refused, so switch to quarantine while you set this up).',
    ],
  },
]);

export const SERVICE_IDS = SERVICE_PRESETS.map((preset) => preset.id);

export function findPreset(id: string): ServicePreset | undefined {
  return SERVICE_PRESETS.find((preset) => preset.id === id);
}

/** The preset whose domains include the mailbox's domain, else 'custom'. */
export function suggestPreset(email: string): ServicePreset {
  const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
  return SERVICE_PRESETS.find((preset) => preset.domains.includes(domain)) ?? findPreset('custom')!;
}
