import { chromium, type Browser } from 'playwright-core';

/**
 * The console in a real browser: Debian's `chromium` (never a downloaded
 * browser), headless, with none of its own background traffic, so a test
 * talks only to the loopback servers it started.
 */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}
