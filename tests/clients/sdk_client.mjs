// The official TypeScript MCP SDK client against auth-mcp: discovery, dynamic client registration,
// authorization (a scripted browser approves our consent page and signs in on the GitHub stand-in),
// finishAuth, connect over Streamable HTTP, call get_user_profile. Prints one JSON line on stdout.
//
//   node sdk_client.mjs --url http://localhost:8000/mcp --login alice [--sdk v1|v2] [--era legacy|modern]
//                       [--tool NAME --arguments JSON]   (another server's tool, e.g. through the gateway)
//
// --sdk v1: @modelcontextprotocol/sdk 1.x (what most shipped clients embed), legacy handshake.
// --sdk v2: @modelcontextprotocol/client 2.x; --era modern pins protocol revision 2026-07-28.
import { parseArgs } from 'node:util';

import { ScriptedBrowser } from './lib/browser.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    login: { type: 'string', default: 'octocat' },
    sdk: { type: 'string', default: 'v1' },
    era: { type: 'string', default: 'legacy' },
    'timeout-ms': { type: 'string', default: '60000' },
    tool: { type: 'string' },
    arguments: { type: 'string', default: '{}' },
  },
});
if (!args.url) throw new Error('--url is required');

// Bounded: whatever hangs, the process ends.
setTimeout(() => {
  console.error(`sdk_client: gave up after ${args['timeout-ms']} ms`);
  process.exit(3);
}, Number(args['timeout-ms'])).unref();

const log = (message) => console.error(message);

const sdk =
  args.sdk === 'v2'
    ? await import('@modelcontextprotocol/client')
    : {
        ...(await import('@modelcontextprotocol/sdk/client/index.js')),
        ...(await import('@modelcontextprotocol/sdk/client/streamableHttp.js')),
        ...(await import('@modelcontextprotocol/sdk/client/auth.js')),
      };
const { Client, StreamableHTTPClientTransport, UnauthorizedError } = sdk;

// Nobody listens here: the scripted browser stops at the redirect and hands us its query.
const REDIRECT_URI = 'http://127.0.0.1:33419/callback';

class HeadlessProvider {
  constructor(browser) {
    this.browser = browser;
    this.authorizations = 0;
    this.expectedState = undefined;
  }
  get redirectUrl() {
    return REDIRECT_URI;
  }
  get clientMetadata() {
    return {
      client_name: `TypeScript SDK ${args.sdk} e2e client`,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    };
  }
  state() {
    this.expectedState = crypto.randomUUID();
    return this.expectedState;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this.savedTokens;
  }
  saveTokens(tokens) {
    this.savedTokens = tokens;
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
  saveDiscoveryState(state) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
  async redirectToAuthorization(url) {
    this.authorizations += 1;
    this.authorizationUrl = new URL(url);
    const landed = new URL(await this.browser.go(url.href, { until: REDIRECT_URI }));
    this.callback = landed.searchParams;
    this.lastIss = landed.searchParams.get('iss');
  }
}

const browser = new ScriptedBrowser({ login: args.login, log });
const provider = new HeadlessProvider(browser);
const clientOptions = args.era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {};
const newTransport = () => new StreamableHTTPClientTransport(new URL(args.url), { authProvider: provider });

async function connect() {
  const client = new Client({ name: 'auth-mcp-e2e', version: '1.0.0' }, clientOptions);
  let transport = newTransport();
  try {
    await client.connect(transport);
  } catch (error) {
    if (!(error instanceof UnauthorizedError) || !provider.callback) throw error;
    const callback = provider.callback;
    provider.callback = undefined;
    if (callback.get('error')) throw new Error(`authorization failed: ${callback}`);
    // The SDK leaves state to us (RFC 6749 §10.12).
    if (callback.get('state') !== provider.expectedState) throw new Error(`state mismatch: ${callback}`);
    if (args.sdk === 'v2') {
      await transport.finishAuth(callback); // code, and iss checked against the issuer (RFC 9207)
    } else {
      await transport.finishAuth(callback.get('code'));
    }
    transport = newTransport(); // a started transport cannot start again
    await client.connect(transport);
  }
  return client;
}

const client = await connect();
const protocolVersion = client.getNegotiatedProtocolVersion?.() ?? client.transport?.protocolVersion;
const tools = (await client.listTools()).tools.map((tool) => tool.name);
const first = args.tool ? { name: args.tool, arguments: JSON.parse(args.arguments) } : { name: 'get_user_profile', arguments: {} };
const profile = await client.callTool(first);
await client.close();

// A second connection reuses the stored tokens: no second trip through the browser.
const again = await connect();
const whoami = await again.callTool(args.tool ? first : { name: 'whoami', arguments: {} });
await again.close();

const authorize = provider.authorizationUrl;
console.log(
  JSON.stringify({
    sdk: args.sdk,
    era: args.era,
    protocolVersion,
    authorizations: provider.authorizations,
    clientId: provider.client?.client_id,
    authorizeParams: Object.fromEntries(authorize?.searchParams ?? []),
    callbackIss: provider.lastIss,
    visited: browser.visited,
    tools,
    profile: { isError: Boolean(profile.isError), structuredContent: profile.structuredContent, content: profile.content },
    whoami: { isError: Boolean(whoami.isError), structuredContent: whoami.structuredContent },
    tokenScope: provider.savedTokens?.scope,
  }),
);
