import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../gateway/core/config';
import { SecretBox } from '../../gateway/core/crypto';
import { AppError } from '../../gateway/core/errors';
import { silentLogger } from '../../gateway/core/log';
import {
  clientSecretContext, getOAuthSettings, listProviders, mergeProvider, providerForPreset, resolveProvider, updateOAuthSettings, type OAuthDeps,
} from '../../gateway/oauth';
import { getBusinessSettings } from '../../gateway/accounts';
import { loadCrmSettings } from '../../gateway/crm/settings';
import { createBusinessPolicyLoader } from '../../gateway/mail/business-policy';
import { openTestStore } from '../support/store';
import { TEST_SECRET_KEY } from './helpers';

const baseEnv = { NODE_ENV: 'test', SECRET_KEY: TEST_SECRET_KEY.toString('hex'), PUBLIC_URL: 'https://postroom.acme.com/' };

describe('oauth provider registry', () => {
  describe('built-in defaults, environment, then stored settings (pure merge)', () => {
    const cases: Array<{ name: string; id: 'google' | 'microsoft' | 'oidc'; env: Record<string, unknown>; stored: Record<string, unknown>; expect: Record<string, unknown> }> = [
      {
        name: 'Google defaults: endpoints, the one mail scope, offline access forced',
        id: 'google', env: { clientId: 'g-id', clientSecret: 'g-secret' }, stored: {},
        expect: {
          issuer: 'https://accounts.google.com', authorizationUrl: 'https://accounts.google.com/o/oauth2/v2/auth', tokenUrl: 'https://oauth2.googleapis.com/token',
          revocationUrl: 'https://oauth2.googleapis.com/revoke', scopes: ['https://mail.google.com/'], extraAuthParams: { access_type: 'offline', prompt: 'consent' },
          clientId: 'g-id', clientSecret: 'g-secret', discover: false, configured: true, label: 'Google', credentialsFrom: 'OAUTH_GOOGLE_CLIENT_ID, OAUTH_GOOGLE_CLIENT_SECRET',
        },
      },
      {
        name: 'Microsoft defaults: IMAP + SMTP + offline_access on the common tenant, no revocation endpoint',
        id: 'microsoft', env: { clientId: 'm-id', tenant: 'common' }, stored: {},
        expect: {
          issuer: 'https://login.microsoftonline.com/common/v2.0', authorizationUrl: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
          tokenUrl: 'https://login.microsoftonline.com/common/oauth2/v2.0/token', revocationUrl: '',
          scopes: ['https://outlook.office.com/IMAP.AccessAsUser.All', 'https://outlook.office.com/SMTP.Send', 'offline_access'], clientSecret: '', configured: true,
          credentialsFrom: 'OAUTH_MICROSOFT_CLIENT_ID (no client secret is set)',
        },
      },
      {
        name: 'a stored tenant changes the Microsoft endpoints',
        id: 'microsoft', env: { clientId: 'm-id', tenant: 'common' }, stored: { tenant: 'acme.onmicrosoft.com' },
        expect: { tokenUrl: 'https://login.microsoftonline.com/acme.onmicrosoft.com/oauth2/v2.0/token', issuer: 'https://login.microsoftonline.com/acme.onmicrosoft.com/v2.0' },
      },
      {
        name: 'no client id: not configured',
        id: 'google', env: {}, stored: {}, expect: { configured: false, clientId: '' },
      },
      {
        name: 'another issuer drops the default endpoints and discovers them',
        id: 'google', env: { clientId: 'x', issuer: 'https://sso.acme.com' }, stored: {},
        expect: { issuer: 'https://sso.acme.com', authorizationUrl: '', tokenUrl: '', revocationUrl: '', discover: true, configured: true },
      },
      {
        name: 'stored settings win over the environment, field by field',
        id: 'oidc', env: { clientId: 'env-id', clientSecret: 'env-secret', issuer: 'https://env.acme.com', label: 'Env SSO' },
        stored: { clientId: 'stored-id', scopes: ['openid', 'offline_access', 'mail'], label: 'Acme SSO' },
        expect: {
          clientId: 'stored-id', clientSecret: 'env-secret', issuer: 'https://env.acme.com', scopes: ['openid', 'offline_access', 'mail'], label: 'Acme SSO', discover: true,
          credentialsFrom: 'OAUTH_OIDC_CLIENT_SECRET, Preferences → Business',
        },
      },
      {
        name: 'generic provider with explicit endpoints needs no discovery',
        id: 'oidc', env: { clientId: 'id', authorizationUrl: 'https://idp.acme.com/auth', tokenUrl: 'https://idp.acme.com/token' }, stored: {},
        expect: { issuer: '', discover: false, configured: true, scopes: ['openid', 'offline_access'], extraAuthParams: { prompt: 'consent' } },
      },
      {
        name: 'generic provider without issuer or endpoints is not configured',
        id: 'oidc', env: { clientId: 'id' }, stored: {}, expect: { configured: false },
      },
    ];
    for (const testCase of cases) {
      it(testCase.name, () => {
        const resolved = mergeProvider(testCase.id, testCase.env, testCase.stored) as unknown as Record<string, unknown>;
        for (const [key, value] of Object.entries(testCase.expect)) assert.deepEqual(resolved[key], value, key);
      });
    }
  });

  it('maps connection presets to providers', () => {
    assert.equal(providerForPreset('gmail'), 'google');
    assert.equal(providerForPreset('outlook'), 'microsoft');
    assert.equal(providerForPreset('yahoo'), null);
  });

  describe('environment variables', () => {
    it('reads OAUTH_* into config.oauth', () => {
      const config = loadConfig({
        ...baseEnv,
        OAUTH_GOOGLE_CLIENT_ID: 'gid', OAUTH_GOOGLE_CLIENT_SECRET: 'gsecret', OAUTH_MICROSOFT_TENANT: 'organizations',
        OAUTH_OIDC_ISSUER: 'http://localhost:9000/realms/mail', OAUTH_OIDC_SCOPES: 'openid, offline_access  mail',
      });
      assert.deepEqual(config.oauth.google, { clientId: 'gid', clientSecret: 'gsecret' });
      assert.equal(config.oauth.microsoft.tenant, 'organizations');
      assert.deepEqual(config.oauth.oidc.scopes, ['openid', 'offline_access', 'mail']);
      assert.equal(config.oauth.oidc.issuer, 'http://localhost:9000/realms/mail');
      assert.equal(config.oauth.oidc.label, 'single sign-on');
    });

    it('refuses plain http to a remote host and bad scopes, naming each variable', () => {
      assert.throws(() => loadConfig({ ...baseEnv, OAUTH_GOOGLE_TOKEN_URL: 'http://evil.example/token', OAUTH_OIDC_SCOPES: 'openid "mail"' }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const text = err.problems.join('\n');
        assert.match(text, /OAUTH_GOOGLE_TOKEN_URL="http:\/\/evil.example\/token": must be an https:\/\/ URL/);
        assert.match(text, /OAUTH_OIDC_SCOPES=.*printable ASCII/);
        return true;
      });
    });
    it('refuses a misspelt provider variable, naming the one meant, instead of leaving the button missing without a word', () => {
      assert.throws(() => loadConfig({ ...baseEnv, OAUTH_GOOGLE_CLIENTID: 'gid', OAUTH_GOOGLE_CLIENT_SECRET: 'gsecret', OAUTH_OIDC_CLIENT: 'x', OAUTH_TOKEN: 'not ours' }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, [
          'OAUTH_GOOGLE_CLIENTID is not a Postroom setting: did you mean OAUTH_GOOGLE_CLIENT_ID?',
          'OAUTH_OIDC_CLIENT is not a Postroom setting: the ones starting OAUTH_OIDC_ are OAUTH_OIDC_CLIENT_ID, OAUTH_OIDC_CLIENT_SECRET, OAUTH_OIDC_ISSUER, '
            + 'OAUTH_OIDC_AUTHORIZATION_URL, OAUTH_OIDC_TOKEN_URL, OAUTH_OIDC_REVOCATION_URL, OAUTH_OIDC_SCOPES, OAUTH_OIDC_LABEL',
        ]);
        return true;
      });
    });
  });

  describe('Preferences → Business settings (store)', () => {
    let store: Awaited<ReturnType<typeof openTestStore>>;
    let deps: OAuthDeps;
    const secretBox = new SecretBox(TEST_SECRET_KEY);

    before(async () => {
      store = await openTestStore('oauth_providers');
      const config = loadConfig({ ...baseEnv, OAUTH_GOOGLE_CLIENT_ID: 'env-google-id' });
      deps = { store, log: silentLogger, secretBox, config };
    });
    after(async () => store.drop());

    it('lists which providers are usable', async () => {
      const providers = await listProviders(deps);
      assert.deepEqual(providers.map((p) => [p.id, p.configured]), [['google', true], ['microsoft', false], ['oidc', false]]);
    });

    it('throws a clear "not set up" error for an unconfigured provider', async () => {
      const microsoft = await resolveProvider(deps, 'microsoft');
      assert.equal(microsoft.configured, false);
      await assert.rejects(resolveProvider(deps, 'yahoo' as never), (err: unknown) => err instanceof AppError && err.code === 'OAUTH_UNKNOWN_PROVIDER' && err.status === 400);
    });

    it('keeps BUSINESS_DOMAINS in force when OAuth clients are the first settings an admin saves', async () => {
      assert.equal(await store.models.BusinessSettings.exists({ _id: 'business' }), null, 'nothing saved yet');
      try {
        await updateOAuthSettings({ ...deps, actor: { email: 'admin@acme.com' } }, 'oidc', { issuer: 'https://sso.acme.com' });
        // The settings document now exists, without domains: authentication and CRM linking went on with none.
        const env = { businessDomains: ['acme.com'] };
        assert.deepEqual((await getBusinessSettings(store, env)).domains, ['acme.com']);
        assert.deepEqual((await loadCrmSettings(store, env)).businessDomains, ['acme.com']);
        assert.deepEqual((await createBusinessPolicyLoader({ store, defaultDomains: ['acme.com'] })()).domains, ['acme.com']);
      } finally {
        await store.models.BusinessSettings.deleteOne({ _id: 'business' });
      }
    });

    it('seals the client secret, never shows it, and resolves it for the flow', async () => {
      const actor = { email: 'admin@acme.com' };
      const view = await updateOAuthSettings({ ...deps, actor }, 'microsoft', { clientId: 'ms-client', clientSecret: 'ms-very-secret-value', tenant: 'organizations' });
      assert.equal(view.configured, true);
      assert.equal(view.stored.clientSecretSet, true);
      assert.equal(view.effective.tokenUrl, 'https://login.microsoftonline.com/organizations/oauth2/v2.0/token');
      assert.equal(view.redirectUri, 'https://postroom.acme.com/oauth/callback');
      assert.ok(!JSON.stringify(view).includes('ms-very-secret-value'), 'the view must not contain the secret');

      const raw = await store.conn.collection('settings').findOne({ _id: 'business' as never });
      const rawText = JSON.stringify(raw);
      assert.ok(!rawText.includes('ms-very-secret-value'), 'the secret must be sealed at rest');
      const sealed = (raw as unknown as { oauth: { microsoft: { clientSecretEnc: string } } }).oauth.microsoft.clientSecretEnc;
      assert.equal(secretBox.open(sealed, clientSecretContext('microsoft')), 'ms-very-secret-value');
      assert.throws(() => secretBox.open(sealed, clientSecretContext('google')), 'bound to its provider');

      const resolved = await resolveProvider(deps, 'microsoft');
      assert.equal(resolved.clientSecret, 'ms-very-secret-value');
      assert.equal(resolved.clientId, 'ms-client');

      const audit = await store.models.AuditEvent.findOne({ action: 'settings.oauth', targetId: 'oauth:microsoft' }).lean();
      assert.ok(audit, 'an audit event is recorded');
      assert.deepEqual((audit.details as { clientSecretChanged?: boolean }).clientSecretChanged, true);
      assert.ok(!JSON.stringify(audit).includes('ms-very-secret-value'));

      // An empty secret keeps the stored one; clearClientSecret removes it.
      await updateOAuthSettings({ ...deps, actor }, 'microsoft', { clientSecret: '' });
      assert.equal((await resolveProvider(deps, 'microsoft')).clientSecret, 'ms-very-secret-value');
      await updateOAuthSettings({ ...deps, actor }, 'microsoft', { clearClientSecret: true });
      assert.equal((await resolveProvider(deps, 'microsoft')).clientSecret, '');
    });

    it('answers bad input field by field', async () => {
      await assert.rejects(
        updateOAuthSettings({ ...deps, actor: { email: 'admin@acme.com' } }, 'oidc', { issuer: 'http://idp.acme.com', tokenUrl: 'not a url', scopes: 'openid "x"', tenant: 'bad tenant!' }),
        (err: unknown) => {
          assert.ok(err instanceof AppError);
          assert.equal(err.status, 400);
          assert.deepEqual(Object.keys(err.fields ?? {}).sort(), ['issuer', 'scopes', 'tenant', 'tokenUrl']);
          return true;
        },
      );
      const views = await getOAuthSettings(deps);
      assert.equal(views.find((v) => v.id === 'oidc')?.stored.issuer, '', 'nothing was saved');
    });

    it('reports a secret sealed under another SECRET_KEY as "not configured", not a crash', async () => {
      const otherKey = new SecretBox(Buffer.alloc(32, 7));
      await store.models.BusinessSettings.updateOne({ _id: 'business' }, { $set: { 'oauth.oidc.clientId': 'x', 'oauth.oidc.issuer': 'https://sso.acme.com', 'oauth.oidc.clientSecretEnc': otherKey.seal('s', clientSecretContext('oidc')) } }, { upsert: true });
      await assert.rejects(resolveProvider(deps, 'oidc'), (err: unknown) => err instanceof AppError && err.code === 'OAUTH_NOT_CONFIGURED' && /SECRET_KEY/.test(err.message));
      const listed = await listProviders(deps);
      assert.equal(listed.find((p) => p.id === 'oidc')?.configured, false);
    });
  });
});
