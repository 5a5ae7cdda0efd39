// MCP Inspector 2.x in headless Chromium, clicked through like a person would: add auth-mcp in the
// UI, connect, approve on our consent page, sign in on the GitHub stand-in, come back connected,
// list the tools, run one (get_user_profile by default) and read its output on the page. Prints one
// JSON line on stdout; on failure also a screenshot and the page's text under --artifacts.
//
//   node inspector.mjs --inspector http://127.0.0.1:6274/ --server http://localhost:8000/mcp \
//       --transport streamable-http|sse --login alice --artifacts DIR \
//       [--tool NAME --arguments '{"steps": 3}' --expect-output TEXT]
//
// --arguments are typed into the tool's form (one field per key); --expect-output is text the
// output must show (the login, for get_user_profile). While the call runs, every "Tool progress"
// toast the Inspector shows is recorded with the call's status and the time it appeared
// (result.progress), and so is the moment the call's status changed (result.callStatuses): the
// caller can tell progress that streamed in while the tool ran from progress that came with the result.
//
// The Inspector itself is started (and stopped) by the caller, tests/e2e/test_clients.py.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    inspector: { type: 'string' },
    server: { type: 'string' },
    transport: { type: 'string', default: 'streamable-http' },
    login: { type: 'string', default: 'octocat' },
    'server-id': { type: 'string', default: 'auth-mcp' },
    tool: { type: 'string', default: 'get_user_profile' },
    arguments: { type: 'string', default: '{}' },
    'expect-output': { type: 'string' },
    artifacts: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'step-timeout-ms': { type: 'string', default: '30000' },
    'timeout-ms': { type: 'string', default: '150000' },
  },
});
for (const name of ['inspector', 'server', 'artifacts']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}

const TRANSPORT_OPTION = { 'streamable-http': 'streamable-http', sse: 'sse (Server-Sent Events)' };
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

const inspectorOrigin = new URL(args.inspector).origin;
const serverOrigin = new URL(args.server).origin;
const label = `inspector-${args.transport}`;
const result = { transport: args.transport, steps: [], blocked: [], consoleErrors: [] };
let browser;
let page;
let step = 'start';

const log = (message) => console.error(`[${new Date().toISOString().slice(11, 23)}] ${message}`);

async function finish(code, error) {
  if (error) {
    result.error = `${step}: ${error.stack ?? error}`;
    result.failedStep = step;
    mkdirSync(args.artifacts, { recursive: true });
    if (page) {
      const base = join(args.artifacts, `${label}-${step}`);
      result.url = page.url();
      await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 10_000 }).catch(() => {});
      const text = await page.locator('body').innerText({ timeout: 5_000 }).catch(() => '(no text)');
      writeFileSync(`${base}.txt`, `URL: ${result.url}\n\n${text}\n`);
      result.screenshot = `${base}.png`;
    }
  }
  await browser?.close().catch(() => {});
  console.log(JSON.stringify(result));
  process.exit(code);
}

// Bounded, whatever hangs; and a caller's SIGTERM still closes Chromium.
setTimeout(() => finish(3, new Error(`gave up after ${args['timeout-ms']} ms`)), Number(args['timeout-ms'])).unref();
process.on('SIGTERM', () => finish(4, new Error('terminated')));

/** Wait for `expected`, failing at once with the text of auth-mcp's error page if that shows instead. */
async function expectOrServerError(expected) {
  const errorPage = page.locator('main.error');
  await expected.or(errorPage).first().waitFor();
  if (await errorPage.isVisible()) {
    throw new Error(`auth-mcp answered with an error page at ${page.url()}: ${(await errorPage.innerText()).replace(/\s+/g, ' ')}`);
  }
}

/**
 * In the page: record each new text of the Inspector's "Tool progress" toasts (one toast per call,
 * updated in place) and each change of the tools screen's call status, with the milliseconds since
 * this started. Read back from window.__watched.
 */
function watchProgress() {
  const started = performance.now();
  const watched = { progress: [], callStatuses: [] };
  window.__watched = watched;
  const record = () => {
    const ms = Math.round(performance.now() - started);
    const callStatus = document.querySelector('[data-testid="tools-screen"]')?.getAttribute('data-call-status');
    if (watched.callStatuses.at(-1)?.status !== callStatus) watched.callStatuses.push({ status: callStatus, ms });
    for (const toast of document.querySelectorAll('.mantine-Notification-root')) {
      if (toast.querySelector('.mantine-Notification-title')?.textContent !== 'Tool progress') continue;
      const text = toast.querySelector('.mantine-Notification-description')?.textContent;
      if (!watched.progress.some((seen) => seen.text === text)) watched.progress.push({ text, callStatus, ms });
    }
  };
  record();
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
}

async function run(name, action) {
  step = name;
  const started = Date.now();
  log(`step ${name}`);
  const value = await action();
  result.steps.push({ name, ms: Date.now() - started });
  return value;
}

try {
  browser = await run('launch-chromium', () =>
    chromium.launch({ executablePath: args.chromium, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 }),
  );
  const context = await browser.newContext({ serviceWorkers: 'block', viewport: { width: 1400, height: 1000 } });
  page = await context.newPage();
  page.setDefaultTimeout(Number(args['step-timeout-ms']));
  // Nothing leaves the machine: every request the page makes must go to a loopback address.
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (LOOPBACK.has(new URL(url).hostname)) return route.continue();
    result.blocked.push(url);
    return route.abort('blockedbyclient');
  });
  await page.routeWebSocket(/.*/, (ws) => {
    if (LOOPBACK.has(new URL(ws.url()).hostname)) return ws.connectToServer();
    result.blocked.push(ws.url());
    return ws.close();
  });
  page.on('console', (message) => {
    if (message.type() === 'error') result.consoleErrors.push(message.text().slice(0, 300));
  });

  await run('open-inspector', async () => {
    await page.goto(args.inspector);
    await page.getByRole('button', { name: /Add Servers/ }).waitFor();
  });

  await run('add-server', async () => {
    await page.getByRole('button', { name: /Add Servers/ }).click();
    await page.getByRole('menuitem', { name: /Add manually/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Add server' });
    await dialog.getByLabel('Server ID').fill(args['server-id']);
    await dialog.getByLabel('Transport').click();
    await page.getByRole('option', { name: TRANSPORT_OPTION[args.transport], exact: true }).click();
    await dialog.getByLabel('URL').fill(args.server);
    await dialog.getByRole('button', { name: 'Add', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
  });

  await run('connect', async () => {
    // Mantine's switch: the visible track is the <label> around the (hidden) checkbox input.
    const toggle = page.getByRole('switch', { name: `Connect or disconnect "${args['server-id']}"` });
    await toggle.locator('xpath=ancestor::label[1]').click();
  });

  await run('consent-page', async () => {
    // The Inspector navigates this tab to our /authorize, which shows the consent page.
    const approve = page.locator('button[name=decision][value=approve]');
    await expectOrServerError(approve);
    if (new URL(page.url()).origin !== serverOrigin) throw new Error(`consent page not on ${serverOrigin}: ${page.url()}`);
    result.consentText = (await page.locator('main').innerText()).replace(/\s+/g, ' ');
    result.consentRedirectUri = await page
      .locator('xpath=//dt[contains(., "sent back to")]/following-sibling::dd[1]/code')
      .innerText();
    await approve.click();
  });

  await run('github-stand-in', async () => {
    const login = page.locator('input[name=login]');
    await expectOrServerError(login);
    if (!page.url().startsWith(`${serverOrigin}/_dev/github/`)) throw new Error(`not the GitHub stand-in: ${page.url()}`);
    await login.fill(args.login);
    await page.locator('button[name=decision][value=authorize]').click();
  });

  await run('back-connected', async () => {
    await expectOrServerError(page.locator('[data-testid="connection-status"][data-status="connected"]'));
    if (new URL(page.url()).origin !== inspectorOrigin) throw new Error(`not back in the Inspector: ${page.url()}`);
    result.cardText = (await page.locator('body').innerText()).match(/MCP \d{4}-\d{2}-\d{2}/)?.[0];
  });

  const screen = page.locator('[data-testid="tools-screen"]');
  // A tool's entry shows its title (when it has one) and its name, each on a line of its own.
  const toolEntry = screen.getByRole('button', { name: new RegExp(`(^|\\s)${args.tool.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|\\s)`) });
  await run('list-tools', async () => {
    // The header's Servers/Tools/Prompts/Resources switcher (radio inputs behind their labels).
    const radio = page.getByRole('radio', { name: 'Tools', exact: true });
    const id = await radio.getAttribute('id');
    await page.locator(`label[for="${id}"]`).click();
    await screen.waitFor();
    await toolEntry.waitFor();
    result.toolCount = Number(await screen.getAttribute('data-tool-count'));
    result.tools = (await screen.innerText()).match(/^[a-z][a-z0-9_-]*$/gm);
  });

  await run(`call-${args.tool}`, async () => {
    await toolEntry.click();
    for (const [name, value] of Object.entries(JSON.parse(args.arguments))) {
      await screen.getByLabel(name, { exact: true }).fill(String(value));
    }
    await page.evaluate(watchProgress);
    await page.getByRole('button', { name: 'Execute Tool' }).click();
    await page.locator('[data-testid="tools-screen"]:is([data-call-status="ok"], [data-call-status="error"])').waitFor();
    result.callStatus = await screen.getAttribute('data-call-status');
    if (result.callStatus !== 'ok') throw new Error(`tool call failed: ${await screen.innerText()}`);
    if (args['expect-output']) await screen.getByText(args['expect-output']).first().waitFor();
    const structured = page.locator('[data-testid="structured-output"]');
    if (await structured.count()) result.structuredOutput = await structured.innerText();
    result.output = await screen.innerText();
    Object.assign(result, await page.evaluate(() => window.__watched));
  });

  await finish(0);
} catch (error) {
  await finish(1, error);
}
