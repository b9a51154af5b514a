import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { packageRoot } from '../../agent/core/package-root.js';

/** Debian's chromium (scripts/rig-deps.sh installs it when missing). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Where browser tests leave their screenshots; kept after the run (gitignored). */
export function screenshotDir(): string {
  const dir = join(packageRoot(), 'test-output', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function haveChromium(): boolean {
  return existsSync(CHROMIUM);
}

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in a container: chromium's sandbox needs user namespaces it may not have.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

export async function shoot(page: Page, name: string): Promise<string> {
  const file = join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path: file as `${string}.png`, fullPage: false });
  return file;
}
