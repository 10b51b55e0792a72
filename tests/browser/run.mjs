// The browser compatibility test: two Chromium tabs run the unmodified ion-sdk-js 1.8.2
// against a real ion-agent. Tab A joins and publishes its fake camera and microphone; tab B
// joins the same session and must receive audio and video, with more than 30 decoded
// frames. Prints one JSON line with what it saw and exits 0 only when all of that held.
//
// With `simulcast`, tab A publishes two VP8 layers (VGA 'f', QVGA 'h') and the agent must
// switch tab B between them without the decoder stopping: B first decodes the top layer;
// A then turns 'f' off, and B must go on decoding at the lower width; A turns it back on,
// and B must return to the top width. Each phase needs 30 more decoded frames.
//
// With a viewer URL, tab B joins there instead: another node of a session that spans
// nodes, which receives A's media over a relay.
//
// With `failover`, once B decodes, the script prints {"event":"flowing"} and waits for a line
// on stdin: the test kills the session's node meanwhile. Both tabs' WebSockets must then
// close, and both tabs rejoin through the same URL as docs/operations.md tells an app to
// (a new Client, with backoff) until B decodes A's media again.
//
// With `hold`, the script prints the same event once B decodes and keeps both tabs in the
// call until the test writes a line (the recording test records meanwhile).
//
// With ION_TEST_TLS_CERT and ION_TEST_TLS_KEY (PEM files), the page is served over https
// with that certificate, and Chromium trusts it by its key's hash
// (--ignore-certificate-errors-spki-list), not by ignoring certificate errors: the page can
// then open wss:// URLs signed by the same certificate, as a real app served over https.
//
// Usage: node run.mjs <ws-url> <sid> [timeout-ms] [simulcast|failover|hold|plain] [viewer-ws-url]
import { createHash, X509Certificate } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const [url, sid, timeoutArg, mode, viewerArg] = process.argv.slice(2);
const viewerUrl = viewerArg || url;
const simulcast = mode === 'simulcast';
const failover = mode === 'failover';
const hold = mode === 'hold';
const timeoutMs = Number(timeoutArg || 45000);
if (!url || !sid) {
  console.error('usage: node run.mjs <ws-url> <sid> [timeout-ms]');
  process.exit(2);
}

const files = {
  '/': [join(here, 'page.html'), 'text/html'],
  '/ion-sdk.min.js': [join(here, 'node_modules/ion-sdk-js/dist/ion-sdk.min.js'), 'text/javascript'],
  '/json-rpc.min.js': [join(here, 'node_modules/ion-sdk-js/dist/json-rpc.min.js'), 'text/javascript'],
};
const tls = process.env.ION_TEST_TLS_CERT && {
  cert: await readFile(process.env.ION_TEST_TLS_CERT),
  key: await readFile(process.env.ION_TEST_TLS_KEY),
};
const handler = async (req, res) => {
  const entry = files[req.url];
  if (req.url === '/favicon.ico') {
    res.writeHead(204).end();
    return;
  }
  if (!entry) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': entry[1] }).end(await readFile(entry[0]));
};
const server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const page_url = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}/`;
// The base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's flag wants it.
const trust = tls
  ? ['--ignore-certificate-errors-spki-list=' + createHash('sha256')
      .update(new X509Certificate(tls.cert).publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64')]
  : [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    // Plain host candidates instead of mDNS names, so nothing is multicast on the network.
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    ...trust,
  ],
});

const result = { ok: false, publisher: null, subscriber: null, inbound: [], errors: [] };
const deadline = Date.now() + timeoutMs;
try {
  const context = await browser.newContext();
  const a = await context.newPage();
  const b = await context.newPage();
  for (const [name, page] of [['A', a], ['B', b]]) {
    page.on('console', (m) => { if (m.type() === 'error') result.errors.push(`${name}: ${m.text()}`); });
    page.on('pageerror', (e) => result.errors.push(`${name}: ${e.message}`));
    await page.goto(page_url);
  }
  await a.evaluate(([u, s]) => window.ionTest.join(u, s, 'tab-a'), [url, sid]);
  await a.evaluate((s) => window.ionTest.publish(s), simulcast);
  await b.evaluate(([u, s]) => window.ionTest.join(u, s, 'tab-b'), [viewerUrl, sid]);
  // Polls B's inbound stats until `done(video, audio)` holds; false at the deadline.
  const until = async (done) => {
    while (Date.now() < deadline) {
      result.inbound = await b.evaluate(() => window.ionTest.inbound());
      const video = result.inbound.find((s) => s.kind === 'video');
      const audio = result.inbound.find((s) => s.kind === 'audio');
      if (video && audio && done(video, audio)) return video;
      await new Promise((r) => setTimeout(r, 250));
    }
    return null;
  };
  let video = await until((v, au) => v.framesDecoded > 30 && au.packetsReceived > 0);
  if (video && simulcast) {
    result.phases = [];
    // The top layer's width, as A encodes it (Chromium may lower it under CPU load).
    const topWidth = async () => {
      const out = await a.evaluate(() => window.ionTest.outbound());
      result.outbound = out;
      return Math.max(...out.map((o) => o.frameWidth));
    };
    const phase = async (name, want) => {
      const from = video.framesDecoded;
      video = await until((v) => v.framesDecoded >= from + 30 && want(v));
      result.phases.push({ name, ok: !!video, inbound: video || result.inbound });
      return !!video;
    };
    let top = await topWidth();
    const ok =
      (await phase('top layer', (v) => v.frameWidth > 0 && v.frameWidth >= top)) &&
      (await a.evaluate(() => window.ionTest.setLayerActive('high', false)), true) &&
      (await phase('lower layer after f stops', (v) => v.frameWidth > 0 && v.frameWidth < top)) &&
      (await a.evaluate(() => window.ionTest.setLayerActive('high', true)), true) &&
      (top = await topWidth(), true) &&
      (await phase('top layer after f resumes', (v) => v.frameWidth >= top));
    if (!ok) video = null;
  }
  if (video && (failover || hold)) {
    console.log(JSON.stringify({ event: 'flowing' }));
    const lines = createInterface({ input: process.stdin });
    await new Promise((resolve) => lines.once('line', resolve));
    lines.close();
  }
  if (video && failover) {
    const closed = async () => [
      await a.evaluate(() => window.ionTest.state.closed),
      await b.evaluate(() => window.ionTest.state.closed),
    ];
    while (Date.now() < deadline && (await closed()).some((c) => !c)) {
      await new Promise((r) => setTimeout(r, 250));
    }
    result.closed = await closed();
    video = null;
    if (result.closed.every((c) => c)) {
      await a.evaluate(([u, s, d]) => window.ionTest.rejoin(u, s, 'tab-a', d), [url, sid, deadline]);
      await a.evaluate(() => window.ionTest.publish(false));
      await b.evaluate(([u, s, d]) => window.ionTest.rejoin(u, s, 'tab-b', d), [viewerUrl, sid, deadline]);
      video = await until((v, au) => v.framesDecoded > 30 && au.packetsReceived > 0);
    }
    result.rejoin = {
      a: await a.evaluate(() => window.ionTest.state.attempts),
      b: await b.evaluate(() => window.ionTest.state.attempts),
    };
  }
  result.ok = !!video;
  result.publisher = await a.evaluate(() => window.ionTest.state);
  result.subscriber = await b.evaluate(() => window.ionTest.state);
} catch (e) {
  result.errors.push(String(e && e.stack || e));
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
