// A scripted browser for auth-mcp's own pages (the Node twin of tests/support/browser.py):
// follows redirects by hand with a cookie jar, approves our consent page, signs in on the dev-mode
// GitHub stand-in, and stops at the MCP client's redirect URI without requesting it.

const MAX_HOPS = 20;
const REQUEST_TIMEOUT_MS = 15_000;

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#34': '"', '#39': "'", '#x27': "'", '#x2F': '/' };

function unescapeHtml(text) {
  return text.replace(/&(#?\w+);/g, (whole, name) => ENTITIES[name] ?? whole);
}

function attributes(tag) {
  const found = {};
  for (const match of tag.matchAll(/([\w-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    found[match[1].toLowerCase()] = unescapeHtml(match[2] ?? match[3] ?? match[4] ?? '');
  }
  return found;
}

/** The forms of a page: action, method, text/hidden fields and (name, value) of submit buttons. */
export function parseForms(html) {
  const forms = [];
  for (const match of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const form = attributes(match[1]);
    const fields = {};
    const buttons = [];
    for (const tag of match[2].matchAll(/<(input|button)\b([^>]*)>/gi)) {
      const attrs = attributes(tag[2]);
      if (!attrs.name) continue;
      if (tag[1].toLowerCase() === 'button') buttons.push([attrs.name, attrs.value ?? '']);
      else if (['hidden', 'text', undefined].includes(attrs.type)) fields[attrs.name] = attrs.value ?? '';
    }
    forms.push({ action: form.action ?? '', method: (form.method ?? 'get').toLowerCase(), fields, buttons });
  }
  return forms;
}

class CookieJar {
  #cookies = new Map(); // host -> Map(name -> value); our cookies are host-only, Path=/

  store(url, response) {
    const host = new URL(url).host;
    const jar = this.#cookies.get(host) ?? new Map();
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
      if (expired) jar.delete(name);
      else jar.set(name, pair.slice(eq + 1).trim());
    }
    this.#cookies.set(host, jar);
  }

  header(url) {
    const jar = this.#cookies.get(new URL(url).host);
    return jar && jar.size ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : undefined;
  }
}

export class BrowserStuck extends Error {}

export class ScriptedBrowser {
  /** consent: 'approve' | 'deny'; github: 'authorize' | 'cancel'. */
  constructor({ login = 'octocat', consent = 'approve', github = 'authorize', log = () => {} } = {}) {
    Object.assign(this, { login, consent, github, log });
    this.jar = new CookieJar();
    this.visited = [];
  }

  /** Navigate from `url` until a redirect to a URL starting with `until`; return that URL. */
  async go(url, { until }) {
    let method = 'GET';
    let body;
    let origin;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      if (url.startsWith(until)) return url;
      this.visited.push(`${method} ${new URL(url).origin}${new URL(url).pathname}`);
      this.log(`browser: ${method} ${new URL(url).pathname}`);
      const headers = { 'user-agent': 'auth-mcp-tests scripted browser' };
      const cookie = this.jar.header(url);
      if (cookie) headers.cookie = cookie;
      if (body) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        headers.origin = origin; // what a browser sends with a form post
      }
      const response = await fetch(url, {
        method,
        body,
        headers,
        redirect: 'manual',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      this.jar.store(url, response);
      [method, body] = ['GET', undefined];
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        await response.body?.cancel();
        url = new URL(location, url).href;
        continue;
      }
      const html = await response.text();
      if (response.status !== 200) {
        throw new BrowserStuck(`HTTP ${response.status} at ${url}: ${html.slice(0, 500)}`);
      }
      const [form] = parseForms(html);
      if (!form) throw new BrowserStuck(`no form at ${url}: ${html.slice(0, 500)}`);
      let data;
      if ('csrf' in form.fields) {
        data = submit(form, 'decision', this.consent); // our consent page
      } else if ('login' in form.fields) {
        form.fields.login = this.login; // the GitHub stand-in's login page
        data = submit(form, 'decision', this.github);
      } else {
        throw new BrowserStuck(`unknown form at ${url}: ${JSON.stringify(form)}`);
      }
      origin = new URL(url).origin;
      url = new URL(form.action || url, url).href;
      method = form.method.toUpperCase();
      body = new URLSearchParams(data).toString();
    }
    throw new BrowserStuck(`more than ${MAX_HOPS} hops: ${this.visited.join(' -> ')}`);
  }
}

function submit(form, name, value) {
  if (!form.buttons.some(([n, v]) => n === name && v === value)) {
    throw new BrowserStuck(`no ${name}=${value} button in ${JSON.stringify(form.buttons)}`);
  }
  return { ...form.fields, [name]: value };
}
