// End-to-end browser check of the seatbridge admin UI, driven by a Rust integration test:
//
//   node tests/support/browser/admin.mjs
//
// Environment:
//   BASE_URL         seatbridge base URL, e.g. http://127.0.0.1:41234            (required)
//   LOGIN            account id typed into the OP's login form, e.g. operator@example.test (required)
//   TENANT           tenant slug to open, e.g. acme                               (required)
//   EXPECT_IN_USE    seats in use expected in the `default` pool gauge           (required)
//   EXPECT_LIMIT     limit expected in the `default` pool gauge ("unlimited" if none) (required)
//   DOWNGRADE_SEATS  seat count to preview on the License tab; must deentitle >= 1 user (required)
//   EXPECT_WARNING   "1" when the default pool is at >= 90 % and must show its warning (default: no check)
//   EXPECT_REFUSAL   a refusal code (e.g. SEAT_LIMIT_REACHED) the audit's "refused only" view must explain
//   SHOTS_DIR        directory for screenshots NN-name.png                       (default: ./admin-shots)
//   CHROMIUM         Chromium executable                                         (default: /usr/bin/chromium)
//   TIMEOUT_MS       overall time budget                                         (default: 60000)
//
// Prints `OK` and exits 0 on success. On failure prints `FAIL: <reason>` to stderr, saves
// SHOTS_DIR/99-failure.png and exits 1. Needs: Debian `chromium` and `npm ci` in this directory.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

let browser;
let page;
let step = 'config';
let failing = false;
const cspViolations = [];
const pageErrors = [];

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') fail(`environment variable ${name} is required`);
  return v;
};

const BASE_URL = env('BASE_URL').replace(/\/+$/, '');
const LOGIN = env('LOGIN');
const TENANT = env('TENANT');
const EXPECT_IN_USE = env('EXPECT_IN_USE');
const EXPECT_LIMIT = env('EXPECT_LIMIT');
const DOWNGRADE_SEATS = env('DOWNGRADE_SEATS');
const SHOTS_DIR = env('SHOTS_DIR', 'admin-shots');
const EXPECT_WARNING = process.env.EXPECT_WARNING === '1';
const EXPECT_REFUSAL = process.env.EXPECT_REFUSAL || '';
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const TIMEOUT_MS = Number(env('TIMEOUT_MS', '60000'));
const STEP_TIMEOUT = 15000;

function log(msg) { console.error(`[admin.mjs] ${msg}`); }

async function fail(reason) {
  if (failing) return new Promise(() => {}); // first failure wins; it exits the process
  failing = true;
  console.error(`FAIL: [${step}] ${reason}`);
  if (page) {
    try {
      console.error(`  page url: ${page.url()}`);
      const said = await page.evaluate(() => [document.querySelector('[role="alert"]:not([hidden])'), document.querySelector('h1')]
        .filter(Boolean).map((el) => el.textContent.trim()).join(' | ')).catch(() => '');
      if (said) console.error(`  page says: ${said}`);
      await page.screenshot({ path: join(SHOTS_DIR, '99-failure.png'), fullPage: true, timeout: 5000 });
      console.error(`  screenshot: ${join(SHOTS_DIR, '99-failure.png')}`);
    } catch (e) { console.error(`  (no failure screenshot: ${e.message})`); }
  }
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS_DIR, `${name}.png`), fullPage: true });
}

// Poll until check() returns a truthy value; fail with describe() otherwise.
async function until(describe, check, timeout = STEP_TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try { last = await check(); if (last) return last; } catch (e) { last = e.message; }
    await page.waitForTimeout(200);
  }
  return fail(`timed out waiting for ${describe}${last ? ` (last: ${last})` : ''}`);
}

async function visible(locator, what) {
  try { await locator.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT }); } catch {
    await fail(`${what} did not become visible`);
  }
  return locator.first();
}

const onAdmin = () => page.url().startsWith(`${BASE_URL}/admin`);

async function signIn() {
  step = '1-signin';
  await page.goto(`${BASE_URL}/admin/#/t/${encodeURIComponent(TENANT)}`);
  const link = await visible(page.getByTestId('signin-link'), 'sign-in card (signin-link)');
  await shot('01-signin');
  await link.click();

  step = '2-op-login';
  const login = page.locator('input[name="login"]');
  await visible(login, 'the OpenID Provider login form (input[name=login])');
  await login.fill(LOGIN);
  await page.locator('input[name="password"]').fill('any-password');
  await shot('02-op-login');
  await page.locator('form:has(input[name="login"]) [type="submit"]').first().click();

  // Either we are back on the admin UI, or the OP shows a consent page: submit it.
  let consents = 0;
  await until('the redirect back to the admin dashboard', async () => {
    if (onAdmin() && (await page.getByTestId('user-menu').count()) > 0) return true;
    if (onAdmin()) return false;
    if ((await page.locator('input[name="login"]').count()) > 0) return false; // still on login
    const submit = page.locator('form [type="submit"]').first();
    if (consents < 3 && (await submit.count()) > 0 && (await submit.isVisible())) {
      consents += 1;
      log(`submitting OP consent page (${page.url()})`);
      if (consents === 1) await shot('02b-op-consent');
      await submit.click();
    }
    return false;
  }, 25000);
}

async function checkDashboard() {
  step = '3-dashboard';
  const gauge = await visible(page.locator('[data-testid="pool-gauge"][data-seat-type="default"]'), 'the default pool gauge');
  const inUse = (await gauge.getByTestId('pool-in-use').textContent()).trim();
  const limit = (await gauge.getByTestId('pool-limit').textContent()).trim();
  await shot('03-dashboard');
  if (inUse !== String(EXPECT_IN_USE)) await fail(`default pool in_use is "${inUse}", expected "${EXPECT_IN_USE}"`);
  if (limit !== String(EXPECT_LIMIT)) await fail(`default pool limit is "${limit}", expected "${EXPECT_LIMIT}"`);
  await visible(page.getByTestId('license-status'), 'license-status badge');
  if (EXPECT_WARNING && (await gauge.locator('.pool-warning').count()) === 0) {
    await fail('the default pool is at 90 % or more but shows no warning');
  }
  log(`dashboard ok: default pool ${inUse}/${limit}`);
}

async function createAndRevokeToken() {
  step = '4-tokens';
  await page.getByTestId('tab-tokens').click();
  const name = await visible(page.getByTestId('token-create-name'), 'token name input');
  await name.fill('browser-test');
  await page.getByTestId('token-create-submit').click();
  const secret = await visible(page.getByTestId('token-secret'), 'the new token secret');
  const value = await secret.inputValue();
  if (!value.startsWith('sbt_')) await fail(`token secret "${value.slice(0, 8)}…" does not start with sbt_`);
  const id = await secret.getAttribute('data-token-id');
  const row = page.locator(`[data-testid="token-row"][data-token-id="${id}"]`);
  await visible(row, `token row for the new token ${id}`);
  await shot('04-token-created');

  await row.getByTestId('token-revoke').click();
  await (await visible(page.getByTestId('confirm-yes'), 'revoke confirmation (confirm-yes)')).click();
  await until('the token row to show revoked', async () => {
    const r = page.locator(`[data-testid="token-row"][data-token-id="${id}"][data-revoked="true"]`);
    return (await r.count()) > 0 && /revoked/i.test(await r.first().textContent());
  });
  await shot('05-token-revoked');
  log('token created and revoked');
}

async function previewDowngrade() {
  step = '5-license';
  await page.getByTestId('tab-license').click();
  const seats = await visible(page.getByTestId('license-seats'), 'license seats input (operator edit form)');
  await seats.fill(String(DOWNGRADE_SEATS));
  await page.getByTestId('license-preview').click();
  await visible(page.getByTestId('preview-panel'), 'license preview panel');
  const lost = await until('preview-deentitled to list at least one user',
    async () => page.locator('[data-testid="preview-deentitled"] li').count());
  await visible(page.getByTestId('license-apply'), 'license-apply button');
  await shot('06-license-preview');
  log(`license preview ok: ${lost} user(s) would lose a seat (not applied)`);
}

async function checkAudit() {
  step = '6-audit';
  await page.getByTestId('tab-audit').click();
  await visible(page.getByTestId('audit-entry'), 'an audit entry');
  const n = await page.getByTestId('audit-entry').count();
  await shot('07-audit');
  log(`audit ok: ${n} entries shown`);
  if (EXPECT_REFUSAL) {
    await page.getByTestId('audit-refused-only').check();
    const refused = page.locator('[data-testid="audit-entry"][data-action="provisioning.refused"]').first();
    await visible(refused, 'a refused request in the audit timeline');
    await refused.locator('summary', { hasText: 'Why was this refused?' }).click();
    const text = await refused.innerText();
    if (!text.includes(EXPECT_REFUSAL)) fail(`the refusal explanation lacks ${EXPECT_REFUSAL}: ${text}`);
    if (!text.includes('POST /scim/v2/Users')) fail(`the refusal explanation lacks the request: ${text}`);
    await shot('08-refusal-explained');
    log('refusal explained');
  }
}

async function main() {
  mkdirSync(SHOTS_DIR, { recursive: true });
  const timer = setTimeout(() => fail(`overall timeout of ${TIMEOUT_MS} ms exceeded`), TIMEOUT_MS);
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
  } catch (e) {
    await fail(`could not launch Chromium at ${CHROMIUM}: ${e.message}`);
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT);
  page = await context.newPage();
  page.on('console', (m) => {
    if (!onAdmin()) return;
    const text = m.text();
    if (/Content Security Policy/i.test(text)) cspViolations.push(text);
    else if (m.type() === 'error' && !/status of 40[134]/.test(text)) log(`console error: ${text}`);
  });
  page.on('pageerror', (e) => { if (onAdmin()) pageErrors.push(e.message); });

  await signIn();
  await checkDashboard();
  await createAndRevokeToken();
  await previewDowngrade();
  await checkAudit();

  step = '7-done';
  if (cspViolations.length) await fail(`CSP violations on the admin UI:\n  ${cspViolations.join('\n  ')}`);
  if (pageErrors.length) await fail(`uncaught errors in the admin UI:\n  ${pageErrors.join('\n  ')}`);
  clearTimeout(timer);
  await browser.close();
  console.log('OK');
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
