// Launches Debian's headless Chromium through playwright-core (never a downloaded browser), with the
// flags the browser suites need: a closed network, and WebGPU on SwiftShader (--enable-unsafe-webgpu).
import { existsSync } from 'node:fs';

const CANDIDATES = ['/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-headless-shell'];

/** The browser, or null (with the reason printed) when no Chromium is installed. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const executablePath = process.env.CHROMIUM ?? CANDIDATES.find(existsSync);
  if (!executablePath) {
    console.log('FAIL no Chromium found: apt-get install -y --no-install-recommends chromium (or set CHROMIUM=...)');
    return null;
  }
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu',
    ],
  });
}
